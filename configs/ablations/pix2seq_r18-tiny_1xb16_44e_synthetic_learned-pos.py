# Ablation of the earlier main synthetic recipe (the 44-epoch one): learned 2-D positions (mmdet's
# LearnedPositionalEncoding, the paper's default) instead of fixed sine positions.
_base_ = './pix2seq_r18-tiny_1xb16_44e_synthetic.py'
model = dict(positional_encoding=dict(_delete_=True, type='LearnedPositionalEncoding', num_feats=64,
                                      row_num_embed=16, col_num_embed=16))
