# The main job (pix2seq_r18-tiny_1xb16_30e_synthetic-112.py) with an exponential moving average of the weights
# (mmengine's EMAHook, as mmdet's YOLOX and RTMDet recipes train): the average follows the weights with momentum 0.002,
# about the last 500 of the 3750 iterations, buffers included; validation and testing use it, and the checkpoint
# keeps it beside the raw weights (ema_state_dict). A lever of learning speed that costs no extra forward pass
# (docs/learning_speed.md#weight-averaging).
_base_ = '../pix2seq_r18-tiny_1xb16_30e_synthetic-112.py'
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.002, update_buffers=True, priority=49)
]
