# The paper's from-scratch schedule: AdamW (0.9, 0.95), weight decay 0.05, 10 warm-up epochs then linear decay to
# 1 % of the peak, 300 epochs; backbone lr x0.1 and gradient clipping 0.1 (Stable-Pix2Seq's, DETR's).
# Peak lr: 3e-3 at batch 128 in the paper, scaled linearly to the base batch of 32 (8 GPUs x 4 images, copies of
# batch repetition included): 7.5e-4.
max_epochs = 300
warmup_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=7.5e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}, norm_decay_mult=0.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]

# train_dataloader.batch_size counts the copies made by batch repetition (what the model sees per GPU)
auto_scale_lr = dict(enable=False, base_batch_size=32)
