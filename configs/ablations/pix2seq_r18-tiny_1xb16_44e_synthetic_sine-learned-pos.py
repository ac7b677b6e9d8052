# Ablation of the earlier main synthetic recipe (the 44-epoch one): fixed sine positions plus learned per-row and
# per-column embeddings that start near zero (SumPositionalEncoding), instead of sine positions alone.
_base_ = './pix2seq_r18-tiny_1xb16_44e_synthetic.py'
model = dict(positional_encoding={{_base_.sine_learned_positions}})
