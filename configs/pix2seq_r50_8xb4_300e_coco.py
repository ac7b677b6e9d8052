# Pix2Seq R50, the paper's from-scratch COCO recipe as the official code runs it: 1333-px frame, scale jitter
# 0.1-3.0, 2000 bins, batch repetition 2 (8 GPUs x 4 samples = 16 images per step), AdamW with 10 warm-up epochs and
# linear decay, 300 epochs, trained BatchNorm (synchronised across GPUs), one lr for every parameter, no clipping.
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/coco_detection_lsj-1333.py',
    './_base_/schedules/adamw_300e.py', './_base_/default_runtime.py'
]
# BatchNorm statistics over all GPUs' images (mmengine converts BN to SyncBN when training is distributed)
sync_bn = 'torch'
