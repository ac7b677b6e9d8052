# The hard preset's recipe with 2 target sequences per image (model.train_cfg.sequences_per_image: each its own noise
# objects and corruption, decoded against the image's memory computed once), for the recipe's training time: a step
# costs 1.23 times the recipe's (docs/learning_speed.md#sequences-per-image), so 28 epochs instead of 34.
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard_sine-pos.py'  # measured before the learned positions
max_epochs = 28
model = dict(
    train_cfg=dict(sequences_per_image=2),
    # measured on the recipe's one-hot coordinate targets, before it took Gaussian ones
    head=dict(coord_target_sigma=0.0))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
