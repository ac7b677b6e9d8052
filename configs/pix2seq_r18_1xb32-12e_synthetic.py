# Pix2Seq on the built-in synthetic shapes (tools/generate_synthetic.py, preset `easy`), sized for a 2-core CPU:
# 128-px input, 128 bins, at most 10 objects. The paper's model and loss, scaled down, plus the convergence switches
# that the README's table measures (stride-8 features, fixed 2-D sine positions, raster `dist2ori` order).
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/synthetic_detection.py',
    './_base_/schedules/adamw_300e.py', './_base_/default_runtime.py'
]
num_classes = 4
num_bins = 128
max_objects = 10
max_epochs = 12
warmup_iters = 200

model = dict(
    backbone=dict(
        depth=18, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, ), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[128], out_channels=128),
    encoder=dict(num_layers=2, embed_dims=128, num_heads=4, ffn_dims=512, dropout=0.0, drop_path=0.0),
    positional_encoding=dict(num_feats=64),
    head=dict(
        tokenizer=dict(num_classes=num_classes, num_bins=num_bins, max_objects=max_objects),
        embed_dims=128, num_layers=2, num_heads=4, ffn_dims=512, dropout=0.0, drop_path=0.0),
    test_cfg=dict(strategy='greedy', max_per_img=max_objects))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(128, 128)),
    dict(type='Pix2SeqSequenceAug', num_classes=num_classes, num_bins=num_bins, max_objects=max_objects,
         object_order='dist2ori'),
    dict(type='PackPix2SeqInputs')
]
train_dataloader = dict(batch_size=32, num_workers=1, dataset=dict(pipeline=train_pipeline))

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05), clip_grad=dict(max_norm=1.0),
                     paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
