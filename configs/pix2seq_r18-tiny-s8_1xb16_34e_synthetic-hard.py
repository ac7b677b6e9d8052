# The stride-8 synthetic recipe on the `hard` preset (up to 12 objects, small ones, clutter): data/synthetic_hard/.
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic.py'
data_root = 'data/synthetic_hard/'
model = dict(head=dict(tokenizer=dict(max_objects=12)))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
