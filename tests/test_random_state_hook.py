"""RandomStateHook: a run stopped and resumed at a checkpoint trains exactly like one that never stopped."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from runner_utils import data_options, train_in_process, train_losses

import pix2seq_mmdet.engine.checkpoint_loader  # noqa: F401  (loads the run's own files on torch >= 2.6)
from conftest import SYNTHETIC_CONFIG


@pytest.fixture(scope='module')
def resume_cfg(synthetic_root):
    """8 images in batches of 4 (2 iterations per epoch), validation after every epoch with nucleus sampling (which
    draws from the global random stream), a checkpoint every epoch, a fixed seed, the checked dataset."""
    cfg = Config.fromfile(str(SYNTHETIC_CONFIG))
    cfg.merge_from_dict({**data_options(synthetic_root), 'train_dataloader.dataset.indices': 8,
                         'train_dataloader.batch_size': 4, 'val_dataloader.batch_size': 4,
                         'train_cfg.val_interval': 1, 'default_hooks.checkpoint.interval': 1,
                         'default_hooks.logger.interval': 1, 'log_processor.window_size': 1,
                         'model.test_cfg.strategy': 'nucleus', 'model.test_cfg.top_p': 1.0,
                         'model.test_cfg.constrained': True, 'randomness.seed': 0,
                         'train_dataloader.dataset.type': 'Pix2SeqCocoDataset',
                         'val_dataloader.dataset.type': 'Pix2SeqCocoDataset'})
    return cfg


def test_stopped_and_resumed_run_equals_uninterrupted_run(resume_cfg, tmp_path):
    straight = train_in_process(resume_cfg, tmp_path / 'straight', **{'train_cfg.max_epochs': 2})
    first_half = train_in_process(resume_cfg, tmp_path / 'first_half', **{'train_cfg.max_epochs': 1})
    second_half = train_in_process(resume_cfg, tmp_path / 'second_half', **{
        'train_cfg.max_epochs': 2, 'resume': True, 'load_from': str(first_half / 'epoch_1.pth')})
    losses = train_losses(straight)
    assert sorted(losses) == [1, 2, 3, 4]
    assert train_losses(first_half) == {step: losses[step] for step in (1, 2)}
    assert train_losses(second_half) == {step: losses[step] for step in (3, 4)}
    weights = _load_checkpoint(str(straight / 'epoch_2.pth'))['state_dict']
    resumed = _load_checkpoint(str(second_half / 'epoch_2.pth'))['state_dict']
    assert all(torch.equal(weights[name], resumed[name]) for name in weights)
