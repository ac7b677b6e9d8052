# Ablation of the main synthetic config: stride-16 features (the paper's coarser map; a third half-width ResNet-18
# stage, 8 x 8 tokens) instead of stride 8.
_base_ = '../pix2seq_r18-tiny_1xb16-34e_synthetic.py'
model = dict(
    backbone=dict(num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, )),
    neck=dict(in_channels=[128]))
