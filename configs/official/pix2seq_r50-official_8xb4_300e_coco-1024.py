# Inference on COCO val2017 with the converted official COCO-finetuned ResNet-50 at 1024 px (official AP 41.7):
#   python tools/model_converters/pix2seq_tf2mmdet.py resnet_1024x1024/ checkpoints/pix2seq_r50-official_coco-1024.pth
#   python tools/test.py configs/official/pix2seq_r50-official_8xb4_300e_coco-1024.py \
#       checkpoints/pix2seq_r50-official_coco-1024.pth
# The same model and vocabulary (1000 bins) as at 640 px, in a 1024 x 1024 frame.
_base_ = './pix2seq_r50-official_8xb4_300e_coco-640.py'
image_size = (1024, 1024)
test_pipeline = [dict(step, scale=image_size) if step.type == 'Resize' else step for step in _base_.test_pipeline]
model = dict(data_preprocessor=dict(pad_size=image_size))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
