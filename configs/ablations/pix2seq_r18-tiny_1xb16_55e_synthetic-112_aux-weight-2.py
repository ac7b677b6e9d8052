# The main job's config at the learning-speed comparison's whole time (55 epochs) with the auxiliary dense head's
# three losses weighted 2 instead of 1 against the sequence loss (docs/learning_speed.md#training-time-and-batch-size).
_base_ = ['./pix2seq_r18-tiny_1xb16_55e_synthetic-112.py', '../_base_/models/aux-weight-2_r18-tiny.py']
model = _base_.aux_weight_2_model
