# Ablation on the hard preset: the hard recipe in batches of 16 with the fixed sine positions alone instead of sine
# plus learned positions, the recipe before it took the learned ones (docs/learning_speed.md#hard-preset-levers); the
# base of the hard ablations measured then.
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py'
model = dict(positional_encoding={{_base_.sine_positions}})
