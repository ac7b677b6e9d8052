# Ablation on the hard preset: the hard recipe in batches of 16 for 34 epochs (4250 steps), the recipe before it took
# batches of 8 and then 4 (docs/learning_speed.md#hard-preset-levers); the base of the hard ablations measured then.
_base_ = '../pix2seq_r18-tiny-s8_1xb4_31e_synthetic-hard.py'
max_epochs = 34
train_dataloader = dict(batch_size=16)
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
