# The official fine-tune schedule (configs/config_det_finetune.py): AdamW (0.9, 0.95), eps 1e-8, weight decay 0.05,
# lr 3e-5 for a batch of 32 images without repetition (8 GPUs x 4), 2 warm-up epochs then linear decay to 1 %,
# 40 epochs, every parameter at one learning rate, no gradient clipping.
_base_ = './adamw_300e.py'
max_epochs = 40
warmup_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=3e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=32)
