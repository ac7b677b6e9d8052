# The main synthetic recipe (the main job, tools/run_synthetic.sh, trains it in a 112-px frame; PRESET=varied as it
# is), sized for a 2-core CPU: 128-px frame, 128 bins, at most 6 objects, 34 epochs of 125 iterations. The paper's
# model, loss and sequence augmentation, scaled down, with convergence switches (off in the COCO configs): stride-16
# features of a half-width three-stage ResNet-18, DETR's 1x1-conv stem, two encoder layers, fixed 2-D sine positions
# plus learned per-row and per-column embeddings, an auxiliary dense head on the encoder output during training,
# raster (`dist2ori`) object order, batches of 16 without batch repetition, greedy decoding, one detection per class
# for every decoded box, sub-bin coordinates and the box confidence in the scores. Results and the levers measured:
# docs/results_synthetic.md.
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/synthetic_detection.py',
    './_base_/schedules/adamw_300e.py', './_base_/default_runtime.py'
]
max_epochs = 34
warmup_iters = 200
# fixed sine positions plus a learned correction that starts near zero (16 x 16 covers the stride-8 variants too);
# replaces the base model's positions (`_delete_`), and configs that apply it to another recipe use
# `{{_base_.sine_learned_positions}}`
sine_learned_positions = dict(
    _delete_=True, type='SumPositionalEncoding', encodings=[
        dict(type='SinePositionalEncoding', num_feats=64, normalize=True),
        dict(type='LearnedPositionalEncoding', num_feats=64, row_num_embed=16, col_num_embed=16,
             init_cfg=dict(type='Normal', layer='Embedding', std=0.02))])

# Co-DETR's collaborative auxiliary head, as mmdet's FCOS on the single encoder feature map (no conv tower: the memory
# tokens themselves learn each nearby object's class and box from the first step, and the decoder reads them);
# training only, 7 % of a step. Classes and widths come from the tokenizer and the encoder; `strides` is the feature
# stride, given where the head is used (the stride-8 configs: `dict(_base_.aux_fcos_head, _delete_=True, strides=[8])`).
aux_fcos_head = dict(
    type='FCOSHead', stacked_convs=0, regress_ranges=((-1, 1e8), ), center_sampling=True, norm_on_bbox=True,
    centerness_on_reg=True, loss_bbox=dict(type='GIoULoss', loss_weight=1.0))

model = dict(
    # the channels-last layout runs the CPU convolutions ~10 % faster (same values)
    data_preprocessor=dict(pad_size={{_base_.image_size}}, channels_last=True),
    backbone=dict(
        depth=18, base_channels=32, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, ),
        init_cfg=None),
    neck=dict(_delete_=True, type='ChannelMapper', in_channels=[128], kernel_size=1, out_channels=128, act_cfg=None,
              norm_cfg=dict(type='GN', num_groups=32), num_outs=1),
    encoder=dict(num_layers=2, embed_dims=128, num_heads=4, ffn_dims=512, dropout=0.0, drop_path=0.0),
    positional_encoding=sine_learned_positions,
    aux_head=dict(aux_fcos_head, strides=[16]),
    head=dict(
        tokenizer=dict(num_classes=4, num_bins=128, max_objects=6),
        embed_dims=128, num_layers=2, num_heads=4, ffn_dims=512, dropout=0.0, drop_path=0.0),
    train_cfg=dict(object_order='dist2ori'),
    # greedy decoding; each box becomes one detection per class, scored by that class's probability (a box whose
    # class is still uncertain keeps its right-class detection) times the box's confidence, the probability of its
    # coordinates within 2 bins of the decoded ones, each coordinate read as the mean bin there (sub-bin; not in the
    # paper: docs/learning_speed.md#reading-the-coordinates)
    test_cfg=dict(strategy='greedy', classes_per_box='all', coord_window=2, box_confidence=True))

train_cfg = dict(max_epochs=max_epochs, val_interval=5)
# the backbone's parameters, its norm layers included, at the full lr and weight decay (a custom key exempts them from
# norm_decay_mult); torch's fused AdamW (same update, one kernel: a third of the for-loop's time on the CPU)
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05, fused=True), clip_grad=dict(max_norm=1.0),
                     paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
# a fixed seed: after this short training the final mAP depends strongly on the seed (docs/results_synthetic.md);
# mmdet's own configs leave it unset, `--cfg-options randomness.seed=N` chooses another
randomness = dict(seed=0)
