# FCOS (mmdet's fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py: centre sampling, GIoU,
# normalised regression, centre-ness on the regression branch) on the built-in synthetic set, a peer of the 44-epoch
# Pix2Seq recipe (../ablations/pix2seq_r18-tiny_1xb16_44e_synthetic.py) for comparing learning speed: the same
# from-scratch half-width three-stage ResNet-18, width 128, data, batch, AdamW, schedule shape and seed; an FPN of
# strides 8, 16 and 32.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py'
lr = 1e-3
# the 44-epoch Pix2Seq recipe's training time at this detector's speed (docs/learning_speed.md,
# tools/analysis_tools/time_budget.py)
max_epochs = 18

model = dict(
    # mmdet's (torchvision) mean/std in RGB for the pytorch-style ResNet, not the caffe ones; pad_size_divisor stays
    # 32 (a no-op for 128 x 128 images)
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    # stages 2 and 3 (64 and 128 channels, strides 8 and 16); the FPN adds a stride-32 level on its output
    backbone=dict(depth=18, base_channels=32, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                  out_indices=(1, 2), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  style='pytorch', init_cfg=None),
    neck=dict(in_channels=[64, 128], out_channels=128, start_level=0, num_outs=3),
    # a GN head of width 128; regress ranges halved from mmdet's (-1, 64), (64, 128), ... for 128-px images
    bbox_head=dict(num_classes=4, in_channels=128, feat_channels=128, strides=[8, 16, 32],
                   regress_ranges=((-1, 32), (32, 64), (64, 1e8))))
# AdamW as the Pix2Seq recipe (betas (0.9, 0.95), weight decay 0.05, none on norms or biases) instead of mmdet's SGD,
# one lr for every parameter; no clipping, as this mmdet config
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=lr, betas=(0.9, 0.95), weight_decay=0.05),
                     paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))

# the synthetic data, the project's runtime and the Pix2Seq recipe's schedule in place of mmdet's COCO ones
# (./_base_/synthetic_peer.py)
from mmengine import Config as __Config  # noqa: E402
__peer = __Config.fromfile('{{ fileDirname }}/_base_/synthetic_peer.py')
globals().update(__peer.replacements)
param_scheduler = [__peer.param_scheduler[0], dict(__peer.param_scheduler[1], end=max_epochs)]
train_cfg = dict(__peer.train_cfg, max_epochs=max_epochs)
default_hooks = dict(__peer.default_hooks, checkpoint=dict(__peer.default_hooks.checkpoint, interval=max_epochs))
