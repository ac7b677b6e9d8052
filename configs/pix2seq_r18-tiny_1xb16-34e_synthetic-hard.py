# The synthetic config on the `hard` preset (up to 12 objects, small ones, clutter): data/synthetic_hard/.
_base_ = './pix2seq_r18-tiny_1xb16-34e_synthetic.py'
data_root = 'data/synthetic_hard/'
max_objects = 12
model = dict(head=dict(tokenizer=dict(max_objects=max_objects)), test_cfg=dict(max_per_img=max_objects * 4))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(128, 128)),
    dict(type='Pix2SeqSequenceAug', num_classes=4, num_bins=128, max_objects=max_objects, object_order='dist2ori'),
    dict(type='PackPix2SeqInputs')
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
