# The paper's from-scratch schedule: AdamW (0.9, 0.95), eps 1e-8, weight decay 0.05, 10 warm-up epochs then linear
# decay to 1 % of the peak, 300 epochs; every parameter at one learning rate and no gradient clipping, as the official
# optimisation config (global_clipnorm -1).
# Peak lr: 3e-3 for a batch of 128 images in the paper. The official input pipeline counts unique images in its
# batch_size and feeds batch_size x batch_duplicates samples per step (data/dataset.py), so the lr scales with unique
# images: 8 GPUs x 4 samples with batch repetition 2 are 16 images per step, 3e-3 * 16 / 128 = 3.75e-4.
max_epochs = 300
warmup_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# mmengine's constructor, with the per-parameter groups that paramwise_cfg creates merged when their settings are equal
# (same updates, a cheaper optimiser step: pix2seq_mmdet/engine/optim_wrapper_constructor.py)
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='MergedParamGroupsConstructor',
    optimizer=dict(type='AdamW', lr=3.75e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]

# mmengine compares base_batch_size with GPUs x train_dataloader.batch_size, which counts the copies of batch
# repetition: 32 samples here are the 16 images the lr above is set for
auto_scale_lr = dict(enable=False, base_batch_size=32)
