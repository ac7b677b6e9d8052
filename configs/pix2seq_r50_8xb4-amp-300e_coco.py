# Mixed precision (fp16 autocast with a dynamic loss scaler); `tools/train.py --amp` does the same for any config.
_base_ = './pix2seq_r50_8xb4-300e_coco.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
