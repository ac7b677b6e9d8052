# Ablation of the earlier main synthetic recipe (the 44-epoch one): the encoder output reaches the decoder through
# Linear + LayerNorm only, without the positions added again (memory_proj mode 'linear') instead of the official 'mlp'
# projection.
_base_ = './pix2seq_r18-tiny_1xb16_44e_synthetic.py'
model = dict(memory_proj=dict(mode='linear'))
