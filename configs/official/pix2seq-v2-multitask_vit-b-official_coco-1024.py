# The official multi-task Pix2Seq v2 ViT-B at 1024 px (gs://pix2seq/multi_task/ckpt/vit_b_1024x1024, detection
# AP 46.5): ./pix2seq-v2-multitask_vit-b-official_coco-640.py in a 1024 x 1024 frame (test and training pipelines).
#   python tools/model_converters/pix2seq_tf2mmdet.py vit_b_1024x1024/ \
#       checkpoints/pix2seq-v2-multitask_vit-b-official_coco-1024.pth
_base_ = './pix2seq-v2-multitask_vit-b-official_coco-640.py'
image_size = (1024, 1024)
train_pipeline = [
    dict(step, scale=image_size) if step['type'] in ('RandomResize', 'Resize') else
    dict(step, crop_size=image_size) if step['type'] == 'RandomCrop' else step for step in _base_.train_pipeline
]
test_pipeline = [dict(step, scale=image_size) if step['type'] == 'Resize' else step for step in _base_.test_pipeline]
model = dict(data_preprocessor=dict(pad_size=image_size))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
