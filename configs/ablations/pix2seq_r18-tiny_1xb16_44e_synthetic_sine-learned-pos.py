# Ablation of the main synthetic recipe: fixed sine positions plus learned per-row and per-column embeddings that start
# near zero (SumPositionalEncoding), instead of sine positions alone.
_base_ = '../pix2seq_r18-tiny_1xb16_44e_synthetic.py'
model = dict(positional_encoding=dict(
    _delete_=True, type='SumPositionalEncoding', encodings=[
        dict(type='SinePositionalEncoding', num_feats=64, normalize=True),
        dict(type='LearnedPositionalEncoding', num_feats=64, row_num_embed=16, col_num_embed=16,
             init_cfg=dict(type='Normal', layer='Embedding', std=0.02))]))
