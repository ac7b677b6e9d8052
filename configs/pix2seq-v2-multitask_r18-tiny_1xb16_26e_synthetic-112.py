# Pix2Seq v2 with every built task in one model on the synthetic easy preset (TASK=multitask bash
# tools/run_synthetic.sh): the instance segmentation recipe (pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py) whose
# decoder also learns the keypoint task of pix2seq-v2-keypoints_r18-tiny_1xb16_28e_synthetic-112.py, all three tasks
# from the same encoder pass, one vocabulary and one decoder steered by the task prompt, as the official multi-task
# model. The evaluator reports bbox and segm AP (CocoMetric) and keypoint AP (CocoKeypointMetric).
# Results: docs/keypoints.md#one-model-for-the-three-tasks.
_base_ = './pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py'
image_size = _base_.image_size

train_pipeline = [
    dict(type='CachedLoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='LoadKeypoints', flip_indices=(0, 3, 2, 1)),
    dict(type='PackKeypointDetInputs')
]

model = dict(
    head=dict(tokenizer=dict(tasks=('detection', 'instance_segmentation', 'keypoints'), num_keypoints=4)),
    train_cfg=dict(keypoints=dict(max_instances_per_image=2, invisible_weight=0.1, mask_inputs=True)),
    test_cfg=dict(keypoints=dict(num_samples=1, top_p=0.1, max_instances=20)))

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = [
    dict(type='CocoMetric', ann_file=_base_.val_evaluator.ann_file, metric=['bbox', 'segm']),
    dict(type='CocoKeypointMetric', ann_file=_base_.val_evaluator.ann_file, sigmas=[0.05] * 4)
]
test_evaluator = val_evaluator
# mmdet's visualiser that also draws the keypoints (DetInferencer, tools/demo.py, tools/test.py --show-dir)
visualizer = dict(type='KeypointDetLocalVisualizer')
