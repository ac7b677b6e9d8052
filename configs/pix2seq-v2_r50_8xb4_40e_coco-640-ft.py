# Pix2Seq v2 detection + instance segmentation on COCO, fine-tuned at 640 px from a Pix2Seq detection checkpoint: the
# detection fine-tuning recipe (pix2seq_r50_8xb4_40e_coco-640-ft.py) with the official instance segmentation task
# (configs/config_multi_task.py: prompt [task, box, class], at most 128 polygon points, 10 instances per image in
# training, EOS weight 1.0, task weight 1.0; at test 8 polygons per box sampled at top-p 0.8, averaged and thresholded
# at 0.5; here decoded 200 box samples at a time, which bounds the key/value cache). The polygons are COCO's
# `segmentation` (instances_*.json), loaded as mmdet's PolygonMasks and moved by the same scale jitter, crop and flip
# as the boxes; crowd annotations are left out as in detection. The detection
# checkpoint's vocabulary gains the task's tokens, so its token embedding and output bias cannot be loaded as they are:
# load only the rest, e.g. a converted official checkpoint with
#   --cfg-options load_from=ckpt.pth   (ConsistencyCheckHook names what does not fit)
# CocoMetric reports bbox and segm AP. Settings and differences from the official task: docs/instance_segmentation.md.
_base_ = './pix2seq_r50_8xb4_40e_coco-640-ft.py'
# the detection recipe's training pipeline, loading the polygons too
train_pipeline = [
    dict(step, with_mask=True, poly2mask=False) if step['type'] == 'LoadAnnotations' else step
    for step in _base_.train_pipeline
]

model = dict(
    head=dict(tokenizer=dict(tasks=('detection', 'instance_segmentation'), max_points_per_object=128)),
    train_cfg=dict(instance_segmentation=dict(max_instances_per_image=10, eos_weight=1.0, loss_weight=1.0)),
    test_cfg=dict(instance_segmentation=dict(num_samples=8, top_p=0.8, threshold=0.5, max_instances=100,
                                             max_rows=200)))

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
