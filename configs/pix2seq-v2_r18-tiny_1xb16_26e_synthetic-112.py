# Pix2Seq v2 instance segmentation on the synthetic easy preset (PRESET=easy TASK=seg bash tools/run_synthetic.sh):
# the main job's model and schedule, whose decoder also learns each shape's outline polygon from the prompt
# `[task, box, class]` (mmdet's PolygonMasks from the COCO file's `segmentation`), in the same run and from the same
# encoder pass as detection. At test time every detected box is answered with sampled polygons, averaged into
# `pred_instances.masks`, and mmdet's CocoMetric reports `bbox` and `segm` AP. A step costs 1.16 times the main job's
# (the polygon sequences), so 26 epochs take the main job's 30 epochs' time. Results: docs/instance_segmentation.md.
_base_ = './pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
image_size = _base_.image_size
max_epochs = 26

train_pipeline = [
    dict(type='CachedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]

model = dict(
    # outlines simplified within a bin (the 48-corner circles keep at most 16 corners; the masks read back from these
    # tokens score 0.98 segm mAP: tools/analysis_tools/vocabulary_ceiling.py), each part from its topmost corner,
    # clockwise; two shapes of each image per step; the task's loss weighted twice the detection's
    head=dict(tokenizer=dict(tasks=('detection', 'instance_segmentation'), max_points_per_object=24)),
    train_cfg=dict(instance_segmentation=dict(max_instances_per_image=2, simplify_tolerance=1.0,
                                              canonical_order=True, loss_weight=2.0)),
    # the official sampling: 8 polygons per box at top-p 0.8, averaged
    test_cfg=dict(instance_segmentation=dict(num_samples=8, top_p=0.8, max_instances=20)))

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
