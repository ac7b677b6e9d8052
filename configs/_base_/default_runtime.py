# Runtime shared by every Pix2Seq config: mmdet's scope, this package's registration, mmdet's hooks and visualiser.
default_scope = 'mmdet'
# pix2seq_mmdet's models, datasets, evaluation, visualization and engine register the models, datasets, transforms,
# metrics, the keypoint visualiser, hooks and optimiser constructor; pix2seq_mmdet.engine.checkpoint_loader replaces
# mmengine's loader for local paths so that mmengine's own checkpoints load on torch >= 2.6 (weights-only first, full
# unpickling only for a run's own work dir or with PIX2SEQ_TRUST_CHECKPOINTS=1); drop it to keep mmengine's loader
custom_imports = dict(imports=['pix2seq_mmdet.models', 'pix2seq_mmdet.datasets', 'pix2seq_mmdet.evaluation',
                               'pix2seq_mmdet.visualization', 'pix2seq_mmdet.engine',
                               'pix2seq_mmdet.engine.checkpoint_loader'],
                      allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook with atomic writes, outdated checkpoints deleted only after the new one is saved
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
# dataset classes and loaded checkpoints checked against the model before the first step; random streams saved for
# exact resume
custom_hooks = [dict(type='ConsistencyCheckHook'), dict(type='RandomStateHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when CUDA is unavailable, so the same config runs a CPU smoke test
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
