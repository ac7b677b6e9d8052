# The official multi-task Pix2Seq v2 ViT-B (configs/config_multi_task.py; gs://pix2seq/multi_task/ckpt/vit_b_640x640,
# detection AP 44.2) on COCO val2017 at 640 px: detection and instance segmentation through this package's v2 task
# interface (CocoMetric bbox and segm; keypoints: ./pix2seq-v2-multitask_vit-b-official_coco-keypoints-640.py).
#   python tools/model_converters/pix2seq_tf2mmdet.py vit_b_640x640/ \
#       checkpoints/pix2seq-v2-multitask_vit-b-official_coco-640.pth
#   python tools/test.py configs/official/pix2seq-v2-multitask_vit-b-official_coco-640.py \
#       checkpoints/pix2seq-v2-multitask_vit-b-official_coco-640.pth
# The multi-task vocabulary has 35000 tokens (captioning's text tokens from 3000 on, never written here); the task
# prompts are the official ones (detection 10, instance segmentation 11, keypoints 12). The official instance
# segmentation evaluation: 8 polygons per box sampled at top-p 0.8, averaged and thresholded at 0.5. Captioning is not
# part of this package. Differences from the official tasks: docs/instance_segmentation.md, docs/keypoints.md.
_base_ = [
    '../_base_/models/pix2seq_vit-b-official.py', '../_base_/datasets/coco_detection_lsj-640.py',
    '../_base_/schedules/adamw_finetune_40e.py', '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(pad_size=(640, 640)),
    head=dict(tokenizer=dict(vocab_size=35000, tasks=('detection', 'instance_segmentation'),
                             max_points_per_object=128)),
    train_cfg=dict(instance_segmentation=dict(max_instances_per_image=10, eos_weight=1.0, loss_weight=1.0)),
    test_cfg=dict(instance_segmentation=dict(num_samples=8, top_p=0.8, threshold=0.5, max_instances=100,
                                             max_rows=200)))
train_pipeline = [
    dict(step, with_mask=True, poly2mask=False) if step['type'] == 'LoadAnnotations' else step
    for step in _base_.train_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# the official evaluation batch is 8 images
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
