# COCO 2017 with DETR's multi-scale augmentation, as Stable-Pix2Seq trained: flip, then either a resize of the
# short side to 480-800 (long side <= 1333) or a resize to 400-600, a random crop of 384-600 and the same
# multi-scale resize; finally a pad to the 1333 x 1333 square that normalises Pix2Seq's coordinates.
_base_ = './coco_detection_lsj-1333.py'
image_size = (1333, 1333)
multi_scales = [(1333, short) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice',
         transforms=[[dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
                     [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                           keep_ratio=True),
                      dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                           allow_negative_crop=True),
                      dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)]]),
    dict(type='Pad', size=image_size),
    dict(type='Pix2SeqSequenceAug', num_classes=80, num_bins=2000, max_objects=100, noise_mode='random_only',
         class_label_corruption='rand_cls'),
    dict(type='PackPix2SeqInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
