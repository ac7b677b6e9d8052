# Pix2Seq v2 keypoints on the synthetic easy preset (TASK=keypoints bash tools/run_synthetic.sh): the main job's model
# and schedule, whose decoder also learns, from the prompt `[task, box, class]`, each shape's four extreme points
# (top, right, bottom, left: the generator's COCO `keypoints`), in the same run and from the same encoder pass as
# detection. At test time every detected box is answered with its points (`pred_instances.keypoints`) and the
# evaluator reports mmdet's CocoMetric bbox AP and the package's CocoKeypointMetric (pycocotools' keypoint OKS AP).
# Results: docs/keypoints.md.
_base_ = './pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
image_size = _base_.image_size
max_epochs = 28
keypoint_names = ('top', 'right', 'bottom', 'left')

train_pipeline = [
    dict(type='CachedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # after the geometric transforms: the points follow their recorded maps; a flip exchanges right and left
    dict(type='LoadKeypoints', flip_indices=(0, 3, 2, 1)),
    dict(type='PackKeypointDetInputs')
]

model = dict(
    head=dict(tokenizer=dict(tasks=('detection', 'keypoints'), num_keypoints=len(keypoint_names))),
    # the official weights (INVISIBLE targets 0.1, inputs masked at a random rate); two shapes of each image per step
    train_cfg=dict(keypoints=dict(max_instances_per_image=2, invisible_weight=0.1, mask_inputs=True)),
    # the official decoding: one sample at top-p 0.1, INVISIBLE suppressed
    test_cfg=dict(keypoints=dict(num_samples=1, top_p=0.1, max_instances=20)))

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# OKS constant 0.05 for every point (COCO's person keypoints use 0.025 for the eyes to 0.107 for the hips)
val_evaluator = [
    _base_.val_evaluator,
    dict(type='CocoKeypointMetric', ann_file=_base_.val_evaluator.ann_file, sigmas=[0.05] * len(keypoint_names))
]
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
# mmdet's visualiser that also draws the keypoints (DetInferencer, tools/demo.py, tools/test.py --show-dir)
visualizer = dict(type='KeypointDetLocalVisualizer')
