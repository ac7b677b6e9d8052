# COCO 2017 at 1024 px with the official fine-tuning augmentation (coco_detection_lsj-640.py at this frame: scale
# jitter 0.3-2.0 of the 1024 frame, fixed-size 1024 crop, flip; test images resized into the frame).
_base_ = './coco_detection_lsj-640.py'
image_size = (1024, 1024)
train_pipeline = [
    dict(step, scale=image_size) if step['type'] in ('RandomResize', 'Resize') else
    dict(step, crop_size=image_size) if step['type'] == 'RandomCrop' else step for step in _base_.train_pipeline
]
test_pipeline = [dict(step, scale=image_size) if step['type'] == 'Resize' else step for step in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
