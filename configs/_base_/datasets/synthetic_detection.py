# The built-in synthetic shapes dataset (pix2seq_mmdet/datasets/synthetic.py, tools/generate_synthetic.py) in a frame of
# `image_size` pixels.
# Preset `easy` (data/synthetic/, 128-px squares); the *_synthetic-hard.py and *_synthetic-varied.py configs point at
# data/synthetic_hard/ and data/synthetic_varied/ (images of 160-320 px, varied aspect). The pipelines resize every
# image into the frame keeping its aspect ratio, so the same config trains on a COCO-format dataset with images of any
# size; the model pads to the frame.
# mmdet's CocoDataset with checked annotations and named image failures (pix2seq_mmdet/datasets/coco.py)
dataset_type = 'Pix2SeqCocoDataset'
data_root = 'data/synthetic/'
classes = ('circle', 'square', 'triangle', 'star')
image_size = (128, 128)
backend_args = None
metainfo = dict(classes=classes)
# training loads with mmcv's LoadImageFromFile keeping the decoded images in memory (98 MB for the easy preset's 2000
# train images, read 34 times over in the main process: pix2seq_mmdet/datasets/transforms.py); for a large dataset of
# your own, use LoadImageFromFile. The test pipeline keeps LoadImageFromFile, which mmdet's DetInferencer looks for.

train_pipeline = [
    dict(type='CachedLoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs')
]

# data loading in the main process: on 2 cores a worker process slows training down (0.89 -> 0.68 s/iter measured
# at batch 32)
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
