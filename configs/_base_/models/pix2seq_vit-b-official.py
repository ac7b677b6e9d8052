# Pix2Seq ViT-B exactly as the official code (google-research/pix2seq, configs/config_det_finetune.py with the
# 'vit-b' architecture, resnet_variant 'c1'), for converted official weights (docs/official_weights.md): the ViT-B/16
# encoder (768 wide, 12 layers, 12 heads, MLP 3072, the official sine-cosine positions after the stem LayerNorm) is
# the backbone and the whole image encoder (no neck, no separate encoder); the memory MLP at the decoder width with
# a second position code; a 6-layer decoder, 512 wide, 16 heads, MLP 2048. Input, vocabulary, LayerNorm eps and
# evaluation as the official R50 (pix2seq_r50-official.py).
_base_ = './pix2seq_r50-official.py'
model = dict(
    backbone=dict(
        _delete_=True, type='Pix2SeqViT', patch_size=16, embed_dims=768, num_layers=12, num_heads=12,
        ffn_dims=3072, dropout=0.1, drop_path=0.1, norm_eps=1e-6),
    neck=None,
    encoder=None,
    positional_encoding=None,
    memory_positional_encoding=dict(type='Pix2SeqSinCosPositionalEncoding', embed_dims=512),
    # proj_mlp of the official model: hidden width = decoder width x the encoder's mlp ratio (512 x 4)
    memory_proj=dict(mode='mlp', ffn_dims=2048),
    head=dict(embed_dims=512, num_layers=6, num_heads=16, ffn_dims=2048))
