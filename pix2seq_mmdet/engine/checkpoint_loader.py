"""Loading local checkpoints on torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.

Importing this module replaces mmengine's loader for plain local paths, for every model of the process, with
:func:`load_local_checkpoint`; nothing else imports it.  The configs opt in through their runtime's
``custom_imports`` (``configs/_base_/default_runtime.py``); a user script does ``import
pix2seq_mmdet.engine.checkpoint_loader``.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``, so on torch 2.13 every checkpoint that mmengine
itself wrote fails to load (its message hub pickles ``HistoryBuffer`` objects, whose state holds bound methods
rebuilt through ``getattr``).  Allow-listing ``getattr`` would make every file able to reach arbitrary objects, so
instead the local loader (mmengine's ``CheckpointLoader`` scheme for plain paths) does:

1. ``weights_only=True`` first, with numpy's array types allow-listed: model weights (``torchvision://`` downloads,
   published checkpoints, converted ones) load safely;
2. full unpickling only for a run's own files: checkpoints in a folder that also holds mmengine's
   ``last_checkpoint`` marker (the work dir a Runner writes, which ``--resume`` reads), or anywhere when the user
   sets ``PIX2SEQ_TRUST_CHECKPOINTS=1``;
3. a clear error otherwise, and for truncated or corrupt files.
"""
import os
import os.path as osp
import pickle
import zipfile

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader

TRUST_ENV = 'PIX2SEQ_TRUST_CHECKPOINTS'
SAFE_NUMPY_GLOBALS = [np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar] + \
    [type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'int32', 'bool')]


def is_trusted(filename: str) -> bool:
    """A run's own checkpoint (next to mmengine's ``last_checkpoint``) or trust granted by the environment."""
    return os.environ.get(TRUST_ENV) == '1' or osp.isfile(osp.join(osp.dirname(osp.abspath(filename)),
                                                                   'last_checkpoint'))


def _unsupported_global(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if 'Unsupported global' in line]
    return lines[0].split('. Please')[0] if lines else repr(error)


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str, map_location=None):
    """Load a local checkpoint file (see the module docstring for the trust rules)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if not is_trusted(filename):
            raise RuntimeError(
                f'checkpoint {filename} holds Python objects besides weights and is not a file of this run '
                f'(no last_checkpoint beside it); load it only if you trust it, with {TRUST_ENV}=1. '
                f'torch said: {_unsupported_global(error)}') from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise RuntimeError(f'checkpoint {filename} is truncated or corrupt and cannot be read ({error})') from None
    return torch.load(filename, map_location=map_location, weights_only=False)
