# The hard recipe (pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py) in batches of 8 instead of 16, the same learning
# rate, for the same training time: an epoch is twice the optimisation steps at 0.47 of a 16-image step's time, so
# 37 epochs (9250 steps) take the time of the recipe's 34 (4250 steps) (tools/analysis_tools/time_budget.py,
# docs/learning_speed.md#training-time-and-batch-size).
_base_ = '../pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py'
max_epochs = 37
train_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
