"""The ``train`` section: ``model.train_step`` with the optimiser wrapper each config builds."""
from typing import Callable

from mmengine.optim import build_optim_wrapper

from .models import autocast, build_detector, load_config, make_data_batch


def setup_train(task: dict) -> Callable[[], object]:
    """``model.train_step`` with the config's optimiser wrapper (``AmpOptimWrapper`` for ``--amp`` on CUDA)."""
    cfg = load_config(task['model'], task['model_objects'], task['tiny'], size=task['size'],
                      peer_queries=task.get('peer_queries'))
    data_batch = make_data_batch(task['size'], task['batch'], task['gt_boxes'])
    model = build_detector(cfg, task['device']).train()
    optim_cfg = cfg.optim_wrapper
    cuda_amp = task['amp'] and task['device'] == 'cuda'
    if cuda_amp:
        optim_cfg = dict(optim_cfg, type='AmpOptimWrapper', dtype='float16')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)

    def run():
        with autocast(task['device'], task['amp'] and not cuda_amp):
            return model.train_step(data_batch, optim_wrapper)

    return run
