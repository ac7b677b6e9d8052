# The paper's from-scratch recipe with a ResNet-101 backbone.
_base_ = './pix2seq_r50_8xb4_300e_coco.py'
model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
