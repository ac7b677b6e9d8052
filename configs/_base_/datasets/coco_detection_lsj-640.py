# COCO 2017 at 640 px with the paper's augmentation (large-scale jitter, crop, flip, pad to square).
# 1000 coordinate bins at this size (the model config must match: see pix2seq_r50_8xb4-300e_coco-640.py).
_base_ = './coco_detection_lsj-1333.py'
image_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.3, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=image_size),
    dict(type='Pix2SeqSequenceAug', num_classes=80, num_bins=1000, max_objects=100),
    dict(type='PackPix2SeqInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPix2SeqInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
