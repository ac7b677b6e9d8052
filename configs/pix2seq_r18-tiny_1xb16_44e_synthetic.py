# The main synthetic recipe as it stood until 2026-12-01, for its published results and as the time budget of the
# learning-speed comparison (docs/learning_speed.md): the current recipe with one encoder layer, fixed sine positions
# only, no auxiliary head, the contiguous memory layout, torch's default AdamW and 44 epochs (5500 iterations).
_base_ = './pix2seq_r18-tiny_1xb16_34e_synthetic.py'
max_epochs = 44
warmup_iters = 200
model = dict(
    data_preprocessor=dict(channels_last=False),
    encoder=dict(num_layers=1),
    aux_head=None,
    positional_encoding=dict(_delete_=True, type='SinePositionalEncoding', num_feats=64, normalize=True))
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(fused=None))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
