"""Runner plumbing: hooks (atomic checkpoints, model/data/checkpoint checks, random-state resume) and
the optimiser constructor that merges equal parameter groups.

The local checkpoint loader (:mod:`.checkpoint_loader`) is not imported here: it replaces mmengine's loader for
plain paths, so a config asks for it by name in ``custom_imports``.
"""
from .checkpoint_hook import AtomicCheckpointHook
from .consistency_check_hook import ConsistencyCheckHook
from .optim_wrapper_constructor import MergedParamGroupsConstructor
from .random_state_hook import RandomStateHook

__all__ = ['AtomicCheckpointHook', 'ConsistencyCheckHook', 'MergedParamGroupsConstructor', 'RandomStateHook']
