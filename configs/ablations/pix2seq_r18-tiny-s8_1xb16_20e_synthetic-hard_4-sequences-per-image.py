# The hard preset's recipe in batches of 16 with 4 target sequences per image (model.train_cfg.sequences_per_image),
# for the recipe's training time: a step costs 1.68 times the recipe's (docs/learning_speed.md#sequences-per-image),
# so 20 epochs instead of 34. The same model as the 2-sequence ablation, so K = 1, 2 and 4 compare.
_base_ = './pix2seq_r18-tiny-s8_1xb16_28e_synthetic-hard_2-sequences-per-image.py'
max_epochs = 20
model = dict(train_cfg=dict(sequences_per_image=4))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
