# Pix2Seq R50, the paper's from-scratch COCO recipe: 1333-px input with large-scale jitter, 2000 bins,
# batch repetition 2, AdamW with 10 warm-up epochs and linear decay, 300 epochs. 8 GPUs x 4 images.
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/coco_detection_lsj-1333.py',
    './_base_/schedules/adamw_300e.py', './_base_/default_runtime.py'
]
