# Mask R-CNN (mmdet's mask-rcnn_r50_fpn_1x_coco.py) on the built-in synthetic set in the 112-px frame, the peer of the
# Pix2Seq v2 instance segmentation recipe (../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py): the same from-scratch
# half-width three-stage ResNet-18, data, frame, batch, AdamW, schedule shape and seed; an FPN of strides 8, 16 and 32
# of width 128, anchors sized for shapes of 22-67 px, masks from the same COCO polygons. 128 sampled RoIs per image
# (mmdet: 512, for COCO's crowded images; these hold at most 4 shapes) and RoIAlign with 2 x 2 samples per bin: mmcv's
# CPU RoIAlign backward is half of a step at mmdet's settings (a step then costs 3.8 s against 2.0 s here).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
lr = 1e-3
# the Pix2Seq v2 recipe's training time at this detector's speed: a step costs 10.7 times the recipe's on the 2-core
# CPU (docs/instance_segmentation.md, tools/analysis_tools/time_budget.py)
max_epochs = 2

model = dict(
    # mmdet's (torchvision) mean/std in RGB for the pytorch-style ResNet
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    # stages 2 and 3 (64 and 128 channels, strides 8 and 16); the FPN adds a stride-32 level by max pooling
    backbone=dict(depth=18, base_channels=32, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                  out_indices=(1, 2), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  style='pytorch', init_cfg=None),
    neck=dict(in_channels=[64, 128], out_channels=128, num_outs=3),
    rpn_head=dict(in_channels=128, feat_channels=128,
                  anchor_generator=dict(scales=[3], strides=[8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128, featmap_strides=[8, 16, 32],
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2)),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=4),
        mask_roi_extractor=dict(out_channels=128, featmap_strides=[8, 16, 32],
                                roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2)),
        mask_head=dict(in_channels=128, conv_out_channels=128, num_classes=4)),
    train_cfg=dict(rcnn=dict(sampler=dict(num=128))))
# AdamW as the Pix2Seq recipe (betas (0.9, 0.95), weight decay 0.05, none on norms or biases) instead of mmdet's SGD
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=lr, betas=(0.9, 0.95), weight_decay=0.05),
                     paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))

# the synthetic data, the project's runtime and the Pix2Seq recipe's schedule in place of mmdet's COCO ones
# (./_base_/synthetic_peer.py), with masks and the 112-px frame of the Pix2Seq v2 recipe
from mmengine import Config as __Config  # noqa: E402
__peer = __Config.fromfile('{{ fileDirname }}/_base_/synthetic_peer.py')
globals().update(__peer.replacements)
# the Pix2Seq v2 recipe's pipelines; Mask R-CNN trains on bitmaps (mmdet's default), Pix2Seq on the polygons
__seg = __Config.fromfile('{{ fileDirname }}/../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py')
train_pipeline = [
    dict(step, poly2mask=True) if step['type'] == 'LoadAnnotations' else step for step in __seg.train_pipeline
]
test_pipeline = __seg.test_pipeline
__data = __peer.replacements
train_dataloader = dict(__data.train_dataloader, dataset=dict(__data.train_dataloader.dataset, pipeline=train_pipeline))
val_dataloader = dict(__data.val_dataloader, dataset=dict(__data.val_dataloader.dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(__data.val_evaluator, metric=['bbox', 'segm'])
test_evaluator = val_evaluator
param_scheduler = [__peer.param_scheduler[0], dict(__peer.param_scheduler[1], end=max_epochs)]
train_cfg = dict(__peer.train_cfg, max_epochs=max_epochs)
default_hooks = dict(__peer.default_hooks, checkpoint=dict(__peer.default_hooks.checkpoint, interval=max_epochs))
