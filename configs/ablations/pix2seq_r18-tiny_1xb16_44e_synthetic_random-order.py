# Ablation of the earlier main synthetic recipe (the 44-epoch one): objects in random order (the paper's default)
# instead of raster order.
_base_ = './pix2seq_r18-tiny_1xb16_44e_synthetic.py'
model = dict(train_cfg=dict(object_order='random'))
