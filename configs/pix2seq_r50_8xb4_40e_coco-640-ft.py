# Fine-tuning at 640 px from a pretrained Pix2Seq checkpoint, the official recipe (configs/config_det_finetune.py):
# 1000 bins, batch 32 images without repetition, AdamW lr 3e-5, 2 warm-up epochs, linear decay to 1 %, 40 epochs.
# Set `load_from` to the pretrained checkpoint:
#   tools/dist_train.sh configs/pix2seq_r50_8xb4_40e_coco-640-ft.py 8 --cfg-options load_from=pretrained.pth
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/coco_detection_lsj-640.py',
    './_base_/schedules/adamw_300e.py', './_base_/default_runtime.py'
]
max_epochs = 40
warmup_epochs = 2
model = dict(data_preprocessor=dict(pad_size=(640, 640)), head=dict(tokenizer=dict(num_bins=1000)))
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=3e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
sync_bn = 'torch'
