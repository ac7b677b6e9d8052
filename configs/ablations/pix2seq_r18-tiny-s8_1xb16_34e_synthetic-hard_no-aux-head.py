# Ablation on the hard preset: the hard recipe without its auxiliary dense head (docs/results_synthetic.md#hard-preset).
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard_sine-pos.py'  # measured before the learned positions
model = dict(
    aux_head=None,
    # measured on the recipe's one-hot coordinate targets, before it took Gaussian ones
    head=dict(coord_target_sigma=0.0))
