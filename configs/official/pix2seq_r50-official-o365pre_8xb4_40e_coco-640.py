# Fine-tuning the converted official Objects365-pretrained ResNet-50 on COCO at 640 px with the official fine-tune
# recipe (configs/config_det_finetune.py): batch 32 (8 GPUs x 4), AdamW (0.9, 0.95) lr 3e-5, weight decay 0.05,
# 2 warm-up epochs then linear decay to 1 %, 40 epochs, no batch repetition; the official model (official vocabulary,
# classes at 100 + COCO category id: the official code fine-tunes the Objects365 class rows as they are).
#   python tools/model_converters/pix2seq_tf2mmdet.py resnet_640x640_b256_s400k/ \
#       checkpoints/pix2seq_r50-official_obj365-640.pth
#   tools/dist_train.sh configs/official/pix2seq_r50-official-o365pre_8xb4_40e_coco-640.py 8
_base_ = [
    '../_base_/models/pix2seq_r50-official.py', '../_base_/datasets/coco_detection_lsj-640.py',
    '../_base_/schedules/adamw_finetune_40e.py', '../_base_/default_runtime.py'
]
load_from = 'checkpoints/pix2seq_r50-official_obj365-640.pth'
model = dict(data_preprocessor=dict(pad_size=(640, 640)))
# the official evaluation batch is 8 images
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
sync_bn = 'torch'
