# The official multi-task Pix2Seq v2 ViT-B at 640 px on COCO persons (person_keypoints_val2017.json): person
# detection, then one keypoint prompt per detected person (the official keypoint task, prompt 12, 17 points, one sample
# at top-p 0.1 with INVISIBLE suppressed), scored by CocoMetric (bbox) and CocoKeypointMetric (keypoints).
#   python tools/test.py configs/official/pix2seq-v2-multitask_vit-b-official_coco-keypoints-640.py \
#       checkpoints/pix2seq-v2-multitask_vit-b-official_coco-640.pth
# Persons are official class id 1 (token 101). The official keypoint task reads a crop around each person (its box
# padded by half, crop_to_bbox) where this package reads the whole image's memory, so the released weights, trained on
# crops, are run outside their training setting here: docs/keypoints.md.
_base_ = './pix2seq-v2-multitask_vit-b-official_coco-640.py'
data_root = 'data/coco/'
metainfo = dict(classes=('person', ))
# COCO's keypoint order: nose, then left/right pairs (eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
flip_indices = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
train_pipeline = [
    step for step in _base_.train_pipeline if step['type'] != 'PackDetInputs'
] + [dict(type='LoadKeypoints', flip_indices=flip_indices), dict(type='PackKeypointDetInputs')]
model = dict(
    head=dict(tokenizer=dict(num_classes=1, class_ids=(1, ), tasks=('detection', 'keypoints'), num_keypoints=17)),
    train_cfg=dict(_delete_=True, keypoints=dict(max_instances_per_image=1, invisible_weight=0.1, mask_inputs=True)),
    test_cfg=dict(_delete_=True, strategy='nucleus', top_p=0.4, temperature=1.0, top_k=0, stop_at_eos=False,
                  use_cache=True, keypoints=dict(num_samples=1, top_p=0.1, suppress_invisible=True, max_instances=100)))
train_dataloader = dict(dataset=dict(metainfo=metainfo, ann_file='annotations/person_keypoints_train2017.json',
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(metainfo=metainfo, ann_file='annotations/person_keypoints_val2017.json'))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json', metric='bbox'),
    dict(type='CocoKeypointMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json')
]
test_evaluator = val_evaluator
visualizer = dict(type='KeypointDetLocalVisualizer')
