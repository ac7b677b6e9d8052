# Lever on the hard preset without the auxiliary head: the hard recipe without its head, with the main recipe's two
# encoder layers and fixed sine plus learned positions (docs/results_synthetic.md#hard-preset).
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard_no-aux-head.py'
model = dict(
    encoder=dict(num_layers=2),
    # `_delete_` restated: the variable reaches this file through the hard recipe, whose merge took it out, and the
    # base's sine positions must be replaced, not merged into
    positional_encoding=dict(_base_.sine_learned_positions, _delete_=True))
