# The Pix2Seq v2 synthetic recipe (../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py) on stride-8 features: two
# ResNet-18 stages instead of three, so the encoder and the decoder's memory hold 14 x 14 tokens of the 112-px frame
# instead of 7 x 7 (the auxiliary head at stride 8). A step costs 1.55 times the recipe's, so 17 epochs take its 26
# epochs' time. Results: docs/instance_segmentation.md#levers.
_base_ = ['../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py', '../_base_/models/stride8_r18-tiny.py']
max_epochs = 17

model = _base_.stride8_model

train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
