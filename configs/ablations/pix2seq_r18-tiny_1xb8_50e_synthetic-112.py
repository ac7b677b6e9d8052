# The main job's config in batches of 8 instead of 16, the same learning rate, for the whole training time of the
# learning-speed comparison: an epoch is twice the optimisation steps at 0.55 of a 16-image step's time, so 50 epochs
# (12500 steps) take the time of the 16-image config's 55 (6875 steps) (tools/analysis_tools/time_budget.py,
# docs/learning_speed.md#training-time-and-batch-size).
_base_ = '../pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
max_epochs = 50
train_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
