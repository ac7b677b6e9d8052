# Pix2Seq v2 instance segmentation on the synthetic easy preset (PRESET=easy TASK=seg bash tools/run_synthetic.sh):
# the recipe of ./pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py (the main job's model and schedule, whose decoder also
# writes each shape's outline polygon from the prompt `[task, box, class]`) with a box memory: each instance sequence
# also reads 7 x 7 tokens of the backbone's stride-8 level, sampled bilinearly inside its prompt's box
# (`head.box_memory`), so a polygon's points can read the outline at a few pixels' spacing, where the encoder's 7 x 7
# tokens hold a 16-px cell each. Detection sequences read the encoder's tokens alone, as before. A step costs 1.08 to
# 1.11 times the recipe without it, so 23 epochs take its 26 epochs' time. Results: docs/instance_segmentation.md.
_base_ = ['./pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py', './_base_/models/box_memory_r18-tiny.py']
max_epochs = 23

model = _base_.box_memory_model
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
