# Fine-tuning at 640 px from a pretrained Pix2Seq checkpoint (the paper's Objects365 -> COCO recipe: lr 3e-5 at
# batch 32, 2 warm-up epochs). Set `load_from` to the pretrained checkpoint, e.g.
#   tools/dist_train.sh configs/pix2seq_r50_8xb4-50e_coco-640-ft.py 8 --cfg-options load_from=pretrained.pth
_base_ = './pix2seq_r50_8xb4-300e_coco-640.py'
max_epochs = 50
warmup_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=3e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
