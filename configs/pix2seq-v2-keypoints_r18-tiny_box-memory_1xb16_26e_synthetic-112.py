# Pix2Seq v2 keypoints on the synthetic easy preset (TASK=keypoints bash tools/run_synthetic.sh): the keypoint recipe
# of ./pix2seq-v2-keypoints_r18-tiny_1xb16_28e_synthetic-112.py (the main job's model and schedule, whose decoder also
# writes each shape's four extreme points from the prompt `[task, box, class]`) with the instance segmentation
# recipe's box memory: each keypoint sequence also reads 7 x 7 tokens of the backbone's stride-8 level sampled inside
# its prompt's box (`head.box_memory`, the level projected by `linear_p`). 26 epochs: the 28 epochs' time of the recipe
# without it. Results: docs/keypoints.md.
_base_ = ['./pix2seq-v2-keypoints_r18-tiny_1xb16_28e_synthetic-112.py', './_base_/models/box_memory_r18-tiny.py']
max_epochs = 26

model = _base_.box_memory_model
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
