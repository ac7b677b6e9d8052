# The earlier main synthetic recipe, for its published results, as the base of its ablations (./*_44e_synthetic_*.py)
# and as the training time the peers (../peers/) are given in the learning-speed comparison (docs/learning_speed.md):
# the main recipe with one encoder layer, fixed sine positions only, no auxiliary head, the contiguous memory layout,
# torch's default AdamW and 44 epochs (5500 iterations).
_base_ = '../pix2seq_r18-tiny_1xb16_34e_synthetic.py'
max_epochs = 44
model = dict(
    data_preprocessor=dict(channels_last=False),
    encoder=dict(num_layers=1),
    aux_head=None,
    positional_encoding=dict(_delete_=True, type='SinePositionalEncoding', num_feats=64, normalize=True))
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(fused=None))
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
