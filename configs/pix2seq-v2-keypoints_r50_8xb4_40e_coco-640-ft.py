# Pix2Seq v2 person detection + keypoints on COCO (person_keypoints_*.json), fine-tuned at 640 px from a Pix2Seq
# detection checkpoint: the detection fine-tuning recipe (pix2seq_r50_8xb4_40e_coco-640-ft.py) on the persons, with the
# official keypoint task (configs/config_multi_task.py: prompt [task, box, class], 17 points, an unlabelled point as
# INVISIBLE with weight 0.1, response inputs masked as INVISIBLE at a random rate; at test one sample per box at
# top-p 0.1 with INVISIBLE suppressed). Unlike the official task, which crops
# the image around each person, the points are read from the whole image's memory, up to 10 persons per image and
# step. The keypoints follow the scale jitter, crop and flip (LoadKeypoints after them; a flip exchanges left and
# right). The detection checkpoint's vocabulary gains the task's tokens and has 80 classes: load only the rest, e.g.
#   --cfg-options load_from=ckpt.pth   (ConsistencyCheckHook names what does not fit)
# CocoMetric reports the person bbox AP, CocoKeypointMetric the keypoint AP (COCO's OKS constants; each person scored
# by its box and its points, the official points-only score being for ground-truth boxes). Settings and
# differences from the official task: docs/keypoints.md.
_base_ = './pix2seq_r50_8xb4_40e_coco-640-ft.py'
data_root = 'data/coco/'
metainfo = dict(classes=('person', ))
# COCO's keypoint order: nose, then left/right pairs (eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
flip_indices = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
train_pipeline = [step for step in _base_.train_pipeline if step['type'] != 'PackDetInputs'] + [
    dict(type='LoadKeypoints', flip_indices=flip_indices),
    dict(type='PackKeypointDetInputs')
]

model = dict(
    head=dict(tokenizer=dict(num_classes=1, tasks=('detection', 'keypoints'), num_keypoints=17)),
    train_cfg=dict(keypoints=dict(max_instances_per_image=10, invisible_weight=0.1, mask_inputs=True)),
    test_cfg=dict(keypoints=dict(num_samples=1, top_p=0.1, suppress_invisible=True, max_instances=100)))

train_dataloader = dict(dataset=dict(metainfo=metainfo, ann_file='annotations/person_keypoints_train2017.json',
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(metainfo=metainfo, ann_file='annotations/person_keypoints_val2017.json'))
test_dataloader = val_dataloader
val_evaluator = [
    dict(_base_.val_evaluator, ann_file=data_root + 'annotations/person_keypoints_val2017.json'),
    dict(type='CocoKeypointMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json')
]
test_evaluator = val_evaluator
# mmdet's visualiser that also draws the keypoints (DetInferencer, tools/demo.py, tools/test.py --show-dir)
visualizer = dict(type='KeypointDetLocalVisualizer')
