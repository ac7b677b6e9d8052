# The synthetic recipes' half-width ResNet-18 on stride-8 features: two stages instead of three, so the encoder and the
# decoder's memory hold 14 x 14 tokens of the 112-px frame instead of 7 x 7, and the auxiliary head reads stride 8.
# A recipe takes it as `model = _base_.stride8_model`.
stride8_model = dict(
    backbone=dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, )),
    neck=dict(in_channels=[64]),
    aux_head=dict(strides=[8]))
