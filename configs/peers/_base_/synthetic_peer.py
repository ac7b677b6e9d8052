# What the peer configs (mmdet's own detectors on the synthetic set) share with the Pix2Seq synthetic recipes in place
# of mmdet's COCO data and runtime: the synthetic data (128-px frame, batches of 16 loaded in the main process), the
# project's runtime and its seed. mmengine allows no key in two bases, and a peer's mmdet config defines the same
# dataloaders, evaluators and hooks, so a peer inherits its mmdet config, reads this file with Config.fromfile and
# takes its `replacements` (below, each in the form that replaces mmdet's value), and its `param_scheduler`,
# `train_cfg` and `default_hooks` completed with the peer's max_epochs; a peer on the `hard` preset (*-hard.py) takes
# `hard_preset` over its easy peer.
_base_ = ['../../_base_/datasets/synthetic_detection.py', '../../_base_/default_runtime.py']

# the project's ConsistencyCheckHook checks Pix2Seq's tokenizer; the random streams are still saved for exact resume
custom_hooks = [dict(type='RandomStateHook')]
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(max_keep_ckpts=1))  # the peer sets its interval
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=16)
# the Pix2Seq recipe's schedule: 200 warm-up iterations, then linear decay to 1 % at the peer's max_epochs (`end`)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=200),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=True, begin=0, convert_to_iter_based=True)
]
train_cfg = dict(val_interval=5)  # and the peer's max_epochs

# mmdet's dataloaders deleted (their samplers and pipelines are COCO's), its evaluators and runtime overridden
replacements = dict(
    dataset_type=_base_.dataset_type, data_root=_base_.data_root, train_pipeline=_base_.train_pipeline,
    test_pipeline=_base_.test_pipeline, train_dataloader=dict(_delete_=True, **_base_.train_dataloader),
    val_dataloader=dict(_delete_=True, **_base_.val_dataloader),
    test_dataloader=dict(_delete_=True, **_base_.val_dataloader), val_evaluator=_base_.val_evaluator,
    test_evaluator=_base_.val_evaluator, custom_imports=_base_.custom_imports, custom_hooks=custom_hooks,
    randomness=randomness, auto_scale_lr=auto_scale_lr)

# the `hard` preset's data (up to 12 objects, small ones, clutter), as in
# ../../pix2seq_r18-tiny-s8_1xb4_31e_synthetic-hard.py
hard_root = 'data/synthetic_hard/'
hard_preset = dict(
    data_root=hard_root, train_dataloader=dict(dataset=dict(data_root=hard_root)),
    val_dataloader=dict(dataset=dict(data_root=hard_root)), test_dataloader=dict(dataset=dict(data_root=hard_root)),
    val_evaluator=dict(ann_file=hard_root + 'annotations/instances_val.json'),
    test_evaluator=dict(ann_file=hard_root + 'annotations/instances_val.json'))
