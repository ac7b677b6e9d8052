# Ablation of the main synthetic config: the encoder output reaches the decoder through Linear + LayerNorm only,
# without the positions added again (memory_proj mode 'linear') instead of the official 'mlp' projection.
_base_ = '../pix2seq_r18-tiny_1xb16-34e_synthetic.py'
model = dict(memory_proj=dict(mode='linear'))
