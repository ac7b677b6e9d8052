# What the peer configs (mmdet's own detectors on the synthetic set) share with the main Pix2Seq job: the synthetic
# data (128-px frame, batches of 16 loaded in the main process), the project's runtime and its seed. A peer inherits
# its mmdet config and reads this file with Config.fromfile to replace mmdet's COCO data and runtime: mmengine
# allows no key in two bases, and both define the dataloaders, evaluators and hooks.
_base_ = ['../../_base_/datasets/synthetic_detection.py', '../../_base_/default_runtime.py']

# the project's ConsistencyCheckHook checks Pix2Seq's tokenizer; the random streams are still saved for exact resume
custom_hooks = [dict(type='RandomStateHook')]
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(max_keep_ckpts=1))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=16)
