# The main job (tools/run_synthetic.sh, preset `easy`): the main synthetic recipe
# (pix2seq_r18-tiny_1xb16_34e_synthetic.py) in a 112-px frame, for 30 epochs. The easy preset's 128-px images are
# resized to 112 px on loading (objects of 20-60 % of the side become 22-67 px, 7 x 7 memory tokens); a training step
# costs about 0.8 of the 128-px one's and the recipe learns as much per epoch (docs/results_synthetic.md#frame-size).
# 30 epochs instead of the recipe's 34, for the auxiliary head's 7 % more per step (docs/results_synthetic.md#main-job).
# The frame is a property of the data: the hard and varied presets, whose objects are a few pixels, keep the 128-px
# frame.
_base_ = './pix2seq_r18-tiny_1xb16_34e_synthetic.py'
max_epochs = 30
image_size = (112, 112)  # the frame: the pipelines' Resize scale and model.data_preprocessor.pad_size

train_pipeline = [
    dict(type='CachedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs')
]

model = dict(data_preprocessor=dict(pad_size=image_size))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
