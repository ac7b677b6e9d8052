# A short 12-epoch fine-tune at 640 px (see pix2seq_r50_8xb4-50e_coco-640-ft.py).
_base_ = './pix2seq_r50_8xb4-50e_coco-640-ft.py'
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True)
]
