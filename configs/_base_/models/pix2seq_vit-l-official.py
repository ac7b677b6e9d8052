# Pix2Seq ViT-L as the official code ('vit-l' architecture): the ViT-L/16 encoder (1024 wide, 24 layers, 16 heads,
# MLP 4096) and an 8-layer decoder, 512 wide, 16 heads, MLP 2048; everything else as ViT-B.
_base_ = './pix2seq_vit-b-official.py'
model = dict(
    backbone=dict(embed_dims=1024, num_layers=24, num_heads=16, ffn_dims=4096),
    head=dict(num_layers=8))
