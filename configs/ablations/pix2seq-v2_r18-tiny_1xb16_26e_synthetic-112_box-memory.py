# The Pix2Seq v2 synthetic recipe (../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py) whose instance sequences also
# read the backbone's stride-8 level inside their prompt's box (`head.box_memory`): 7 x 7 tokens sampled bilinearly
# at the box's grid centres from the projected 14 x 14 level, after the image's 7 x 7 encoder tokens, so a polygon's
# points can read the outline at a few pixels' spacing. Detection sequences read the recipe's memory alone. The
# level is projected without the memory projection's feed-forward block (`linear_p`), which over its 196 tokens per
# image would cost a fifth of a step.
# Results: docs/instance_segmentation.md#levers.
_base_ = '../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py'

model = dict(
    backbone=dict(out_indices=(1, 2)),
    neck=dict(in_channels=[64, 128], num_outs=2),
    fine_memory_proj=dict(mode='linear_p'),
    head=dict(box_memory=dict(size=7)))
