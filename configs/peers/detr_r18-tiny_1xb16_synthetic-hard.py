# The DETR peer of the main Pix2Seq job on the `hard` preset (up to 12 objects, small ones, clutter):
# data/synthetic_hard/, as pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py. Everything else as the easy peer.
_base_ = './detr_r18-tiny_1xb16_synthetic.py'
data_root = 'data/synthetic_hard/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
