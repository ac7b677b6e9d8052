# Fine-tuning at 640 px from a pretrained Pix2Seq checkpoint, the official recipe (configs/config_det_finetune.py):
# 1000 bins, batch 32 images without repetition, AdamW lr 3e-5, 2 warm-up epochs, linear decay to 1 %, 40 epochs.
# Set `load_from` to the pretrained checkpoint:
#   tools/dist_train.sh configs/pix2seq_r50_8xb4_40e_coco-640-ft.py 8 --cfg-options load_from=pretrained.pth
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/coco_detection_lsj-640.py',
    './_base_/schedules/adamw_finetune_40e.py', './_base_/default_runtime.py'
]
model = dict(data_preprocessor=dict(pad_size=(640, 640)), head=dict(tokenizer=dict(num_bins=1000)))
sync_bn = 'torch'
