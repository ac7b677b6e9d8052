# Fine-tuning the converted official Objects365-pretrained ResNet-50 on COCO at 640 px with the official fine-tune
# recipe (configs/config_det_finetune.py): batch 32 (8 GPUs x 4), AdamW (0.9, 0.95) lr 3e-5, weight decay 0.05,
# 2 warm-up epochs then linear decay to 1 %, 40 epochs, no batch repetition; the official model (official vocabulary,
# classes at 100 + COCO category id: the official code fine-tunes the Objects365 class rows as they are).
#   python tools/model_converters/pix2seq_tf2mmdet.py resnet_640x640_b256_s400k/ \
#       checkpoints/pix2seq_r50-official_obj365-640.pth
#   tools/dist_train.sh configs/official/pix2seq_r50-official-o365pre_8xb4_40e_coco-640.py 8
_base_ = './pix2seq_r50-official_8xb4_300e_coco-640.py'
load_from = 'checkpoints/pix2seq_r50-official_obj365-640.pth'
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
sync_bn = 'torch'
