# DETR (mmdet's detr_r50_8xb2-150e_coco.py) on the built-in synthetic set, a peer of the 44-epoch Pix2Seq recipe
# (../ablations/pix2seq_r18-tiny_1xb16_44e_synthetic.py) for comparing learning speed: the same from-scratch half-width
# three-stage ResNet-18 (stride-16 features), transformer size (width 128, 4 heads, FFN 512, 1 encoder and 2 decoder
# layers, no dropout), data, batch, schedule shape and seed; mmdet's DETR detector, losses, optimiser and clipping.
_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
# mmdet's own lr: of the two tried on the easy preset, 1e-3 and 1e-4, the one with which DETR learns at all
# (docs/learning_speed.md)
lr = 1e-4
# the 44-epoch Pix2Seq recipe's training time at this detector's speed (docs/learning_speed.md,
# tools/analysis_tools/time_budget.py)
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

# the synthetic data, the project's runtime and the Pix2Seq recipe's schedule in place of mmdet's COCO ones
# (./_base_/synthetic_peer.py)
from mmengine import Config as __Config  # noqa: E402
__peer = __Config.fromfile('{{ fileDirname }}/_base_/synthetic_peer.py')
globals().update(__peer.replacements)
param_scheduler = [__peer.param_scheduler[0], dict(__peer.param_scheduler[1], end=max_epochs)]
train_cfg = dict(__peer.train_cfg, max_epochs=max_epochs)
default_hooks = dict(__peer.default_hooks, checkpoint=dict(__peer.default_hooks.checkpoint, interval=max_epochs))
