# The easy preset's best recipe at the whole time (stride-8 features, auxiliary losses weighted 2, Gaussian coordinate
# targets of one bin) for 19 epochs, the main job's wall clock: 18 epochs hold the main job's 30 by the step-time
# ratio (1.63; 29.3 epochs) but trained in 0.92 of its seconds beside the same load, with four validations instead
# of six (docs/learning_speed.md#gaussian-coordinate-targets).
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-112_aux-weight-2_coord-sigma-1.py'
max_epochs = 19
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
