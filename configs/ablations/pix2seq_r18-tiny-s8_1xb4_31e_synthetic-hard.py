# Lever on the hard preset: the hard recipe in batches of 4 instead of 8, the same learning rate, so twice its
# optimisation steps per epoch again. An epoch in batches of 4 costs 1.04-1.11 times one in batches of 8 (two
# measurements of tools/analysis_tools/time_budget.py), so 31 epochs (15500 steps) instead of the recipe's 33
# (docs/learning_speed.md#hard-preset-levers).
_base_ = '../pix2seq_r18-tiny-s8_1xb8_33e_synthetic-hard.py'
max_epochs = 31
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
