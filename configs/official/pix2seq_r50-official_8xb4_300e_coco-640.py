# Inference on COCO val2017 with the converted official COCO-finetuned ResNet-50 at 640 px (official AP 39.1):
#   python tools/model_converters/pix2seq_tf2mmdet.py resnet_640x640/ checkpoints/pix2seq_r50-official_coco-640.pth
#   python tools/test.py configs/official/pix2seq_r50-official_8xb4_300e_coco-640.py \
#       checkpoints/pix2seq_r50-official_coco-640.pth
# mmcv's Resize (bilinear, no antialias) replaces TF's antialiased bilinear resize; COCO images (longest side 640)
# are not resized at this frame. See docs/official_weights.md. The name's training fields (8xb4_300e) are the
# schedule this config inherits (the paper's from-scratch one); the released COCO checkpoints come from the official
# code's fine-tuning (its 640-px recipe: ./pix2seq_r50-official-o365pre_8xb4_40e_coco-640.py).
_base_ = [
    '../_base_/models/pix2seq_r50-official.py', '../_base_/datasets/coco_detection_lsj-640.py',
    '../_base_/schedules/adamw_300e.py', '../_base_/default_runtime.py'
]
model = dict(data_preprocessor=dict(pad_size=(640, 640)))
# the official evaluation batch is 8 images
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
