"""The local checkpoint loader: weights load safely, a run's own files resume, the rest fails with a clear error."""
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from pix2seq_mmdet.engine.checkpoint_loader import TRUST_ENV


def save_run_checkpoint(path):
    """What mmengine's CheckpointHook writes: weights plus a message hub holding HistoryBuffers and numpy arrays."""
    torch.save(dict(state_dict={'weight': torch.ones(2)},
                    message_hub=dict(log_scalars={'train/loss': HistoryBuffer([1.0, 2.0], [1, 1])},
                                     runtime_info={'seed': np.int64(3), 'array': np.zeros(2)})), path)


def test_weights_only_checkpoint_loads_anywhere(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save(dict(state_dict={'weight': torch.arange(3.0)}, meta=dict(array=np.ones(2))), path)
    checkpoint = _load_checkpoint(str(path))
    assert torch.equal(checkpoint['state_dict']['weight'], torch.arange(3.0))


def test_run_checkpoint_loads_beside_last_checkpoint(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    save_run_checkpoint(path)
    (tmp_path / 'last_checkpoint').write_text(str(path))
    checkpoint = _load_checkpoint(str(path))
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'], HistoryBuffer)


def test_foreign_pickle_is_refused_unless_trusted(tmp_path, monkeypatch):
    path = tmp_path / 'downloaded.pth'
    save_run_checkpoint(path)
    with pytest.raises(RuntimeError, match=f'not a file of this run.*{TRUST_ENV}=1.*HistoryBuffer'):
        _load_checkpoint(str(path))
    monkeypatch.setenv(TRUST_ENV, '1')
    assert 'message_hub' in _load_checkpoint(str(path))


def test_truncated_and_missing_checkpoints_name_the_problem(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    save_run_checkpoint(path)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='truncated.pth is truncated or corrupt'):
        _load_checkpoint(str(truncated))
    with pytest.raises(FileNotFoundError, match='missing.pth can not be found'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))
