# Inference on COCO val2017 with the converted official COCO-finetuned ResNet-50 at 1024 px (official AP 41.7):
#   python tools/model_converters/pix2seq_tf2mmdet.py resnet_1024x1024/ checkpoints/pix2seq_r50-official_coco-1024.pth
#   python tools/test.py configs/official/pix2seq_r50-official_8xb4_300e_coco-1024.py \
#       checkpoints/pix2seq_r50-official_coco-1024.pth
# The same model and vocabulary (1000 bins) as at 640 px, in a 1024 x 1024 frame; training, too, runs at this
# frame (the official fine-tuning augmentation at 1024 px: ../_base_/datasets/coco_detection_lsj-ft-1024.py).
_base_ = [
    '../_base_/models/pix2seq_r50-official.py', '../_base_/datasets/coco_detection_lsj-ft-1024.py',
    '../_base_/schedules/adamw_300e.py', '../_base_/default_runtime.py'
]
model = dict(data_preprocessor=dict(pad_size=(1024, 1024)))
# the official evaluation batch is 8 images
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
