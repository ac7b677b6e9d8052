# Pix2Seq v2 instance segmentation on the synthetic easy preset (PRESET=easy TASK=seg bash tools/run_synthetic.sh):
# the main job's model and schedule, whose decoder also learns each shape's outline polygon from the prompt
# `[task, box, class]` (mmdet's PolygonMasks from the COCO file's `segmentation`), in the same run and from the same
# encoder pass as detection. At test time every detected box is answered with sampled polygons, averaged into
# `pred_instances.masks`, and mmdet's CocoMetric reports `bbox` and `segm` AP. Results: docs/instance_segmentation.md.
_base_ = './pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
image_size = _base_.image_size

train_pipeline = [
    dict(type='CachedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]

model = dict(
    # the 48-corner circles simplified within half a bin fit in 32 points with room for clipped outlines
    head=dict(tokenizer=dict(tasks=('detection', 'instance_segmentation'), max_points_per_object=32)),
    train_cfg=dict(instance_segmentation=dict(max_instances_per_image=2, simplify_tolerance=0.5, canonical_order=True)),
    test_cfg=dict(instance_segmentation=dict(num_samples=8, top_p=0.8, max_instances=20)))

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
