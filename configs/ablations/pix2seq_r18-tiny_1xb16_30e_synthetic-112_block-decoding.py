# The main job (pix2seq_r18-tiny_1xb16_30e_synthetic-112.py) with the block objective of parallel box decoding (not in
# the paper): besides the next-token loss, a query stream learns each object's five tokens from the objects before it
# (block_decoding, logged as loss_block), so the same model decodes token by token (the default) or one object per
# step: --cfg-options model.test_cfg.parallel=True (docs/benchmark.md#parallel-box-decoding).
_base_ = '../pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
# parallel decoding reads the decoded bins: token by token does too here, so that the two compare
model = dict(head=dict(block_decoding=dict(block_size=5, loss_weight=1.0)),
             test_cfg=dict(coord_window=0, box_confidence=False))
