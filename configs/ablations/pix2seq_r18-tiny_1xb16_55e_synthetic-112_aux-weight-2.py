# The main job's config at the learning-speed comparison's whole time (55 epochs) with the auxiliary dense head's
# three losses (classes, boxes, centre-ness) weighted 2 instead of 1 against the sequence loss: more of the encoder's
# signal per image from the dense supervision (docs/learning_speed.md#training-time-and-batch-size).
_base_ = './pix2seq_r18-tiny_1xb16_55e_synthetic-112.py'
model = dict(
    aux_head=dict(
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0)))
