# The Pix2Seq v2 synthetic recipe (../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py) with a two-level memory: the
# backbone's stride-8 level (14 x 14 tokens in the 112-px frame), projected by the neck, follows the encoder's 7 x 7
# stride-16 tokens in the decoder's memory without passing through the encoder (`fine_memory`), so the polygons'
# points can read outlines finer than a 16-px cell. Results: docs/instance_segmentation.md#levers.
_base_ = '../pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py'

model = dict(
    backbone=dict(out_indices=(1, 2)),
    neck=dict(in_channels=[64, 128], num_outs=2),
    fine_memory=True)
