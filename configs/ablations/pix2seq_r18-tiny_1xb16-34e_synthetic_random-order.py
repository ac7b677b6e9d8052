# Ablation of the main synthetic config: objects in random order (the paper's default) instead of raster order.
_base_ = '../pix2seq_r18-tiny_1xb16-34e_synthetic.py'
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(128, 128)),
    dict(type='Pix2SeqSequenceAug', num_classes=4, num_bins=128, max_objects=6, object_order='random'),
    dict(type='PackPix2SeqInputs')
]))
