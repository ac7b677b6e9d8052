# The hard preset's recipe (PRESET=hard; up to 12 objects, small ones, clutter: data/synthetic_hard/): the stride-8
# synthetic recipe with 12 objects per sequence, the main recipe's auxiliary dense head on its stride-8 encoder output
# and its fixed sine plus learned positions, Gaussian coordinate targets of one bin, and batches of 4 at the same
# learning rate: four times the optimisation steps per epoch of batches of 16. On stride-8 features an epoch in
# batches of 4 costs 1.04-1.11 times one in batches of 8, which costs 1.02 times one in batches of 16
# (tools/analysis_tools/time_budget.py), so 31 epochs (15500 steps) in the time of 34 in batches of 16 (4250); the
# ablations configs/ablations/pix2seq_r18-tiny-s8_1xb8_33e_synthetic-hard.py and ..._1xb16_34e_synthetic-hard.py
# train the same model in batches of 8 and 16 (docs/results_synthetic.md#hard-preset,
# docs/learning_speed.md#hard-preset-levers).
_base_ = './pix2seq_r18-tiny-s8_1xb16_34e_synthetic.py'
max_epochs = 31
data_root = 'data/synthetic_hard/'
model = dict(
    positional_encoding={{_base_.sine_learned_positions}},
    head=dict(tokenizer=dict(max_objects=12), coord_target_sigma=1.0),
    aux_head=dict(_base_.aux_fcos_head, _delete_=True, strides=[8]),  # the stride-8 recipe has none
    # sub-bin coordinates, but the class probabilities alone as scores: on this preset the box confidence ranks the
    # many small objects, whose coordinates are less sure, down and costs mAP (two seeds,
    # docs/learning_speed.md#reading-the-coordinates)
    test_cfg=dict(box_confidence=False))
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_epochs)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
