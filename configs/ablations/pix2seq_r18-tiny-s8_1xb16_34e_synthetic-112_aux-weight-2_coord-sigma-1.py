# The easy preset's best recipe at the learning-speed comparison's whole time: the main job's config on stride-8
# features for 34 epochs, with the auxiliary dense head's losses weighted 2 and Gaussian coordinate targets of one bin
# (each coordinate token's loss against a Gaussian over the bins around its target, `model.head.coord_target_sigma`;
# docs/learning_speed.md#gaussian-coordinate-targets).
_base_ = ['./pix2seq_r18-tiny-s8_1xb16_34e_synthetic-112.py', '../_base_/models/aux-weight-2_r18-tiny.py']
model = dict(_base_.aux_weight_2_model, head=dict(coord_target_sigma=1.0))
