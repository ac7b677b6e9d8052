# The box memory of the synthetic Pix2Seq v2 recipes (model.head.box_memory, docs/instance_segmentation.md#levers):
# each instance sequence (a polygon, keypoints) also reads 7 x 7 tokens of the half-width ResNet-18's stride-8 level,
# sampled bilinearly inside its prompt's box, after the image's 7 x 7 encoder tokens. The level is projected without
# the memory projection's feed-forward block (`linear_p`: over its 196 tokens per image that block would cost a fifth
# of a step). A recipe takes it as `model = _base_.box_memory_model`.
box_memory_model = dict(
    backbone=dict(out_indices=(1, 2)),
    neck=dict(in_channels=[64, 128], num_outs=2),
    fine_memory_proj=dict(mode='linear_p'),
    head=dict(box_memory=dict(size=7)))
