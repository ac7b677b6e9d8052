# The main job's config on stride-8 features, for the learning-speed comparison's whole time: two ResNet-18 stages
# instead of three, so the encoder and the decoder's memory hold 14 x 14 tokens of the 112-px frame instead of 7 x 7,
# and the auxiliary head reads stride 8. A step costs 1.63 times the main job's, so 34 epochs take the time of its
# 55 (tools/analysis_tools/time_budget.py, docs/learning_speed.md#training-time-and-batch-size).
_base_ = ['./pix2seq_r18-tiny_1xb16_55e_synthetic-112.py', '../_base_/models/stride8_r18-tiny.py']
max_epochs = 34
model = _base_.stride8_model
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
