# Lever on the hard preset: the hard recipe (stride 8, 12 objects, 34 epochs) with the main recipe's two encoder layers
# and fixed sine plus learned positions (docs/results_synthetic.md#hard-preset).
_base_ = '../pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py'
model = dict(
    encoder=dict(num_layers=2),
    positional_encoding={{_base_.sine_learned_positions}})
