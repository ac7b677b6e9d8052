"""Exact resumption of the random streams that drive data augmentation.

mmengine's checkpoints hold the weights, the optimizer, the schedulers and the seed, but not the state of Python's,
numpy's and torch's random generators: a resumed run re-seeds them, so the sequence augmentation, the flips and the
noise boxes of the resumed epochs differ from an uninterrupted run.  :class:`RandomStateHook` stores the generators'
states in every checkpoint and restores them when training resumes, and keeps validation (which may sample, e.g.
nucleus decoding) from consuming the training streams, so a run stopped and resumed at a checkpoint trains exactly
like one that never stopped (CPU, fixed seed, data loaded in the main process or in non-persistent workers).

Only single-process runs are restored: a checkpoint is written by rank 0 alone, so under DDP the other ranks'
states are not in it and every rank keeps mmengine's seeding.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

CHECKPOINT_KEY = 'random_state'


def capture_random_state() -> dict:
    """The states of Python's, numpy's and torch's (CPU) global generators, as plain Python objects and a tensor."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return dict(python=random.getstate(), numpy=(name, keys.tolist(), position, has_gauss, cached_gaussian),
                torch=torch.get_rng_state(), world_size=get_world_size())


def restore_random_state(state: dict) -> None:
    """Set the global generators to a state of :func:`capture_random_state`."""
    random.setstate(state['python'])
    name, keys, position, has_gauss, cached_gaussian = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state['torch'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the training random streams in checkpoints, restore them on resume, shield them from validation."""
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._loaded: Optional[dict] = None  # the state of the checkpoint being loaded
        self._training: Optional[dict] = None  # the training state, set while validation runs

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # during validation (mmengine saves the best checkpoint there) the training streams are the ones before it
        checkpoint[CHECKPOINT_KEY] = self._training or capture_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(CHECKPOINT_KEY)

    def before_train(self, runner) -> None:
        # after mmengine's resume, which re-seeds when the configured seed differs from the checkpoint's
        resumed = runner.iter > 0 and self._loaded is not None
        if resumed and self._loaded['world_size'] == 1 and get_world_size() == 1:
            restore_random_state(self._loaded)
        self._loaded = None

    def before_val(self, runner) -> None:
        self._training = capture_random_state()

    def after_val(self, runner) -> None:
        restore_random_state(self._training)
        self._training = None
