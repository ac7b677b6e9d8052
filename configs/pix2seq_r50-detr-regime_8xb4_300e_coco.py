# The paper's recipe with DETR's backbone regime (Stable-Pix2Seq's): frozen BatchNorm and stem + stage 1, backbone
# lr x 0.1, gradient clipping at 0.1. Pick it when the per-GPU batch is small and BatchNorm cannot be synchronised, or
# when the from-scratch run is unstable; the paper's numbers were obtained without it.
_base_ = './pix2seq_r50_8xb4_300e_coco.py'
model = dict(
    backbone=dict(frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True))
sync_bn = None
optim_wrapper = dict(
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
