# The main synthetic recipe with stride-8 features (two ResNet-18 stages, 16 x 16 tokens): the finer map that the hard
# preset's small objects need. Without three of the main recipe's levers (one encoder layer instead of two, fixed sine
# positions only, no auxiliary head; the hard recipe, pix2seq_r18-tiny-s8_1xb4_31e_synthetic-hard.py, takes back the
# head and the positions), with the contiguous memory layout and torch's default AdamW.
_base_ = './pix2seq_r18-tiny_1xb16_34e_synthetic.py'
# `{{_base_.sine_positions}}`
sine_positions = dict(_delete_=True, type='SinePositionalEncoding', num_feats=64, normalize=True)
model = dict(
    data_preprocessor=dict(channels_last=False),
    backbone=dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1, )),
    neck=dict(in_channels=[64]),
    encoder=dict(num_layers=1),
    positional_encoding=sine_positions,
    aux_head=None)
optim_wrapper = dict(optimizer=dict(fused=None))
