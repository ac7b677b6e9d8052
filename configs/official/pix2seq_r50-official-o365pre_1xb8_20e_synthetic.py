# Fine-tuning the converted official Objects365-pretrained ResNet-50 on a COCO-format dataset with your own classes,
# here the synthetic shapes (4 classes; tools/generate_synthetic.py). Every weight of the converted model is kept
# except the class-token rows (tokens 100..999) of the tied token embedding and of the output bias, which the
# converter re-initialises with --reinit-classes (docs/official_weights.md):
#   python tools/model_converters/pix2seq_tf2mmdet.py resnet_640x640_b256_s400k/ \
#       checkpoints/pix2seq_r50-official_obj365-640_reinit-classes.pth --reinit-classes
#   python tools/train.py configs/official/pix2seq_r50-official-o365pre_1xb8_20e_synthetic.py
# The classes become official class ids 1..4 (tokens 101..104; set class_ids to choose others). The official
# fine-tune recipe (lr 3e-5, 2 warm-up epochs, linear decay) at the pretraining's 640-px frame (the 128-px images are
# enlarged into it). For another dataset, change the dataset settings and num_classes.
_base_ = [
    '../_base_/models/pix2seq_r50-official.py', '../_base_/datasets/synthetic_detection.py',
    '../_base_/schedules/adamw_300e.py', '../_base_/default_runtime.py'
]
load_from = 'checkpoints/pix2seq_r50-official_obj365-640_reinit-classes.pth'
image_size = (640, 640)
max_epochs = 20
warmup_epochs = 2
model = dict(
    data_preprocessor=dict(pad_size=image_size),
    head=dict(tokenizer=dict(num_classes=4, class_ids=None)),
    # sampling with the official top-p, one detection per decoded box
    test_cfg=dict(strategy='nucleus', top_p=0.4))
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=3e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
