# The main job's recipe with 2 target sequences per image (model.train_cfg.sequences_per_image: each its own object
# order, noise objects and corruption, decoded against the image's memory computed once), for the main job's training
# time: a step costs more (docs/learning_speed.md#sequences-per-image), so 25 epochs instead of 30.
_base_ = '../pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
max_epochs = 25
model = dict(train_cfg=dict(sequences_per_image=2))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
