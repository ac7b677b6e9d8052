# The easy preset's best recipe at the whole time (stride-8 features, auxiliary losses weighted 2, Gaussian coordinate
# targets of one bin) cut to the main job's time: a stride-8 step costs 1.63 times the main job's, so 18 epochs take
# the time of its 30 (29.3; tools/analysis_tools/time_budget.py, docs/learning_speed.md#training-time-and-batch-size).
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-112_aux-weight-2_coord-sigma-1.py'
max_epochs = 18
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
