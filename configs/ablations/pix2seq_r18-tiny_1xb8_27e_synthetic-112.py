# The main job's config in batches of 8 instead of 16, the same learning rate, for the main job's training time: an
# epoch in batches of 8 costs 1.11 times one in batches of 16 (0.89 against 0.80 of the earlier recipe's,
# docs/learning_speed/time_budget_batch_size_1thread.json), so 27 epochs (6750 steps) instead of 30 (3750)
# (docs/learning_speed.md#hard-preset-levers).
_base_ = '../pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
max_epochs = 27
train_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
