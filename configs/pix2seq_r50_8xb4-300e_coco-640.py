# 640-px input, 1000 coordinate bins (the dataset config's Pix2SeqSequenceAug uses the same).
_base_ = [
    './_base_/models/pix2seq_r50.py', './_base_/datasets/coco_detection_lsj-640.py',
    './_base_/schedules/adamw_300e.py', './_base_/default_runtime.py'
]
model = dict(head=dict(tokenizer=dict(num_bins=1000)))
