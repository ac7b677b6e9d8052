# Pix2Seq R50-C4 as the official code ('resnet-c' architecture, resnet_variant 'c4'): the ResNet-50 up to its third
# block group (stride 16, 1024 channels), a 12-layer encoder and an 8-layer decoder, both 512 wide with 16 heads and
# MLP 2048; everything else as the official R50 (pix2seq_r50-official.py).
_base_ = './pix2seq_r50-official.py'
model = dict(
    backbone=dict(num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, )),
    neck=dict(in_channels=[1024], out_channels=512),
    encoder=dict(num_layers=12, embed_dims=512, num_heads=16, ffn_dims=2048),
    positional_encoding=dict(embed_dims=512),
    memory_positional_encoding=dict(embed_dims=512),
    memory_proj=dict(ffn_dims=2048),
    head=dict(embed_dims=512, num_layers=8, num_heads=16, ffn_dims=2048))
