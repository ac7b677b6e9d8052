# The main synthetic recipe with stride-8 features (two ResNet-18 stages, 16 x 16 tokens) and 34 epochs, about the
# main recipe's time: the finer map that the hard preset's small objects need.
_base_ = './pix2seq_r18-tiny_1xb16_44e_synthetic.py'
max_epochs = 34
model = dict(
    backbone=dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, )),
    neck=dict(in_channels=[64]))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
