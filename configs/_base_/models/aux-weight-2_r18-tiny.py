# The synthetic recipes' auxiliary dense head with its three losses (classes, boxes, centre-ness) weighted 2 instead of
# 1 against the sequence loss: more of the encoder's signal per image from the dense supervision
# (docs/learning_speed.md#training-time-and-batch-size). The loss types are FCOSHead's defaults, spelled out because a
# config that sets a loss replaces it whole. A recipe takes it as `model = _base_.aux_weight_2_model`.
aux_weight_2_model = dict(
    aux_head=dict(
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0)))
