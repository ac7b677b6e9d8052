"""AtomicCheckpointHook: a process killed while saving keeps the previous checkpoint."""
import os
import signal
import subprocess
import sys

from mmengine.runner.checkpoint import _load_checkpoint
from runner_utils import data_options

import pix2seq_mmdet.engine.checkpoint_loader  # noqa: F401  (loads the run's own files on torch >= 2.6)
from conftest import REPO_ROOT, SYNTHETIC_CONFIG

KILL_DURING_SECOND_SAVE = '''
import os, runpy, signal, sys
from mmengine.fileio.backends import LocalBackend
put = LocalBackend.put
def put_half_then_die(self, obj, filepath):
    if 'epoch_2' in str(filepath):
        with open(filepath, 'wb') as file:
            file.write(obj[:len(obj) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    put(self, obj, filepath)
LocalBackend.put = put_half_then_die
sys.path.insert(0, 'tools')  # as `python tools/train.py` puts it first
sys.argv = ['tools/train.py', *sys.argv[1:]]
runpy.run_path('tools/train.py', run_name='__main__')
'''


def test_killed_mid_save_keeps_the_previous_checkpoint(synthetic_root, tmp_path):
    """max_keep_ckpts=1: mmengine's own hook deletes epoch_1.pth before writing epoch_2.pth in place."""
    options = {**data_options(synthetic_root), 'train_dataloader.dataset.indices': 8, 'train_dataloader.batch_size': 8,
               'train_cfg.max_epochs': 2, 'train_cfg.val_interval': 10, 'default_hooks.checkpoint.interval': 1,
               'default_hooks.checkpoint.max_keep_ckpts': 1}
    script = tmp_path / 'kill_during_second_save.py'
    script.write_text(KILL_DURING_SECOND_SAVE)
    work_dir = tmp_path / 'work'
    result = subprocess.run([sys.executable, str(script), str(SYNTHETIC_CONFIG), '--work-dir', str(work_dir),
                             '--cfg-options', *[f'{key}={value}' for key, value in options.items()]],
                            cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO_ROOT)),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stdout[-3000:] + result.stderr[-3000:]
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'epoch_1.pth')
    assert _load_checkpoint(str(work_dir / 'epoch_1.pth'))['meta']['epoch'] == 1
    assert not (work_dir / 'epoch_2.pth').exists()
