# DETR (mmdet's detr_r50_8xb2-150e_coco.py) on the built-in synthetic set, a peer of the main Pix2Seq job
# (pix2seq_r18-tiny_1xb16_44e_synthetic.py) for comparing learning speed: the same from-scratch half-width
# three-stage ResNet-18 (stride-16 features), transformer size (width 128, 4 heads, FFN 512, 1 encoder and 2 decoder
# layers, no dropout), data, batch, schedule shape and seed; mmdet's DETR detector, losses, optimiser and clipping.
_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
# mmdet's own lr: of the two tried on the easy preset, 1e-3 and 1e-4, the one with which DETR learns at all
# (docs/learning_speed.md)
lr = 1e-4
# the main job's training time at this detector's speed (docs/learning_speed.md: tools/analysis_tools/time_budget.py)
max_epochs = 43

# mmdet's data_preprocessor unchanged: torchvision mean/std, pad_size_divisor 1 (every image is 128 x 128)
model = dict(
    num_queries=30,  # at most 4 objects an image in the easy preset, 12 in the hard one
    backbone=dict(depth=18, base_channels=32, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, ),
                  frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[128], out_channels=128),
    encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg=dict(embed_dims=128, num_heads=4, dropout=0.0),
                                              ffn_cfg=dict(embed_dims=128, feedforward_channels=512, ffn_drop=0.0))),
    decoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=dict(embed_dims=128, num_heads=4, dropout=0.0),
                                              cross_attn_cfg=dict(embed_dims=128, num_heads=4, dropout=0.0),
                                              ffn_cfg=dict(embed_dims=128, feedforward_channels=512, ffn_drop=0.0))),
    positional_encoding=dict(num_feats=64),
    bbox_head=dict(num_classes=4, embed_dims=128),
    # DETR's softmax head keeps the top max_per_img of its queries: at most num_queries (mmdet's 100 fails)
    test_cfg=dict(max_per_img=30))
# mmdet's AdamW (weight decay 1e-4) and clipping (max norm 0.1); the from-scratch backbone at the full lr, not 0.1x
optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))
# the main job's schedule: 200 warm-up iterations, then linear decay to 1 % at max_epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=200),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)

# the synthetic data and the project's runtime in place of mmdet's COCO ones (./_base_/synthetic_peer.py)
from mmengine import Config as __Config  # noqa: E402
__synthetic = __Config.fromfile('{{ fileDirname }}/_base_/synthetic_peer.py')
dataset_type, data_root = __synthetic.dataset_type, __synthetic.data_root
train_pipeline, test_pipeline = __synthetic.train_pipeline, __synthetic.test_pipeline
train_dataloader = dict(_delete_=True, **__synthetic.train_dataloader)
val_dataloader = dict(_delete_=True, **__synthetic.val_dataloader)
test_dataloader = val_dataloader
val_evaluator = test_evaluator = __synthetic.val_evaluator
custom_imports, custom_hooks, randomness = __synthetic.custom_imports, __synthetic.custom_hooks, __synthetic.randomness
default_hooks = dict(__synthetic.default_hooks,
                     checkpoint=dict(__synthetic.default_hooks.checkpoint, interval=max_epochs))
auto_scale_lr = __synthetic.auto_scale_lr
