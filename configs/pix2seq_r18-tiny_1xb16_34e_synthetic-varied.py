# The main synthetic recipe on the `varied` preset (per-image sizes, short side 160-320 px, aspect ratio 1-2, 1-6
# objects of 8-60 % of the short side): data/synthetic_varied/. The pipelines resize each image into the 128-px frame
# keeping its aspect ratio; the model pads to the frame.
_base_ = './pix2seq_r18-tiny_1xb16_34e_synthetic.py'
data_root = 'data/synthetic_varied/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
