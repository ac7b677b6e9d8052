# The hard preset's batch-16 recipe (./pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py) with the block objective of
# parallel box decoding (not in the paper; see ./pix2seq_r18-tiny_1xb16_30e_synthetic-112_block-decoding.py): the same
# model decodes token by token (the default) or one object per step with --cfg-options model.test_cfg.parallel=True
# (docs/benchmark.md#parallel-box-decoding).
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard_sine-pos.py'  # measured before the learned positions
# parallel decoding reads the decoded bins: token by token does too here, so that the two compare
model = dict(
    # measured on the recipe's one-hot coordinate targets, before it took Gaussian ones
    head=dict(block_decoding=dict(block_size=5, loss_weight=1.0), coord_target_sigma=0.0),
    test_cfg=dict(coord_window=0, box_confidence=False))
