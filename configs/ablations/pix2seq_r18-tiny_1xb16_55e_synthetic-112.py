# The main job's config (pix2seq_r18-tiny_1xb16_30e_synthetic-112.py) trained for the whole training time of the
# learning-speed comparison: 55 epochs take the time of the earlier recipe's 44 and of FCOS's 18
# (tools/analysis_tools/time_budget.py, docs/learning_speed.md#training-time-and-batch-size). The main job stops at 30
# for its time limit.
_base_ = '../pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
max_epochs = 55
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
