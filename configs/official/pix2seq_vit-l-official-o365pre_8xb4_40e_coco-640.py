# ViT-L/16 Pix2Seq on COCO at 640 px, as the released checkpoints were made: fine-tuning the converted official
# Objects365-pretrained model with the official fine-tune recipe at this frame, and inference with the converted
# COCO-finetuned model (official AP 47.6; docs/official_weights.md):
#   python tools/model_converters/pix2seq_tf2mmdet.py vit_l_640x640_b256_s400k/ \
#       checkpoints/pix2seq_vit-l-official_obj365-640.pth
#   tools/dist_train.sh configs/official/pix2seq_vit-l-official-o365pre_8xb4_40e_coco-640.py 8
#   python tools/model_converters/pix2seq_tf2mmdet.py vit_l_640x640/ checkpoints/pix2seq_vit-l-official_coco-640.pth
#   tools/dist_test.sh configs/official/pix2seq_vit-l-official-o365pre_8xb4_40e_coco-640.py \
#       checkpoints/pix2seq_vit-l-official_coco-640.pth 8
_base_ = [
    '../_base_/models/pix2seq_vit-l-official.py', '../_base_/datasets/coco_detection_lsj-640.py',
    '../_base_/schedules/adamw_finetune_40e.py', '../_base_/default_runtime.py'
]
load_from = 'checkpoints/pix2seq_vit-l-official_obj365-640.pth'
model = dict(data_preprocessor=dict(pad_size=(640, 640)))
# the official evaluation batch is 8 images
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
