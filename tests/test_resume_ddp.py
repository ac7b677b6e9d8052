"""Nothing is lost (issue 7): a process killed while saving keeps the previous checkpoint, a run stopped and resumed
trains exactly like an uninterrupted one, and two gloo processes train like one process with the same global batch."""
import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

import pix2seq_mmdet  # noqa: F401  (registers the checkpoint loader for the run's own files)
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
sys.argv = ['tools/train.py', *sys.argv[1:]]
runpy.run_path('tools/train.py', run_name='__main__')
'''


def data_options(root: Path) -> dict:
    return {'train_dataloader.dataset.data_root': f'{root}/', 'val_dataloader.dataset.data_root': f'{root}/',
            'val_evaluator.ann_file': f'{root}/annotations/instances_val.json'}


def train_losses(work_dir: Path):
    records = [json.loads(line) for line in next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    return {record['iter']: record['loss'] for record in records if 'loss' in record}


def train_in_process(cfg: Config, work_dir: Path, **options) -> Path:
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict({'work_dir': str(work_dir), 'experiment_name': work_dir.name, 'visualizer.name': work_dir.name,
                         **options})
    Runner.from_cfg(cfg).train()
    return work_dir


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


def test_two_gloo_processes_train_like_one_with_the_same_global_batch(synthetic_root, tmp_path):
    """Images have 1 to 3 objects, so the ranks' token-weight sums differ and only a loss normalised by the sum
    averaged over the ranks gives the one-process gradient; no random augmentation, frozen BatchNorm statistics."""
    annotations = json.loads((synthetic_root / 'annotations' / 'instances_train.json').read_text())
    annotations['annotations'] = [
        dict(id=3 * image['id'] + k, image_id=image['id'], category_id=annotations['categories'][k]['id'],
             bbox=[8 + 30 * k, 10 + 25 * k, 25, 40], area=1000.0, iscrowd=0)
        for image in annotations['images'] for k in range(1 + image['id'] % 3)]
    ann_file = tmp_path / 'one_to_three_objects.json'
    ann_file.write_text(json.dumps(annotations))
    config = tmp_path / 'ddp_equivalence.py'
    config.write_text(f'''
_base_ = [{str(SYNTHETIC_CONFIG)!r}]
train_dataloader = dict(batch_size=4, sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True), dataset=dict(
    data_root={f'{synthetic_root}/'!r}, ann_file={str(ann_file)!r}, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True), dict(type='Pad', size=(128, 128)),
        dict(type='Pix2SeqSequenceAug', num_classes=4, num_bins=128, max_objects=6, object_order='dist2ori',
             noise_mode='none', class_label_corruption='none'),
        dict(type='PackPix2SeqInputs')]))
model = dict(backbone=dict(norm_eval=True))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = None
train_cfg = dict(max_epochs=1)
val_dataloader = None
val_cfg = None
val_evaluator = None
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
log_processor = dict(window_size=1)
''')
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(29500 + (os.getpid() + 7) % 1000),
               PATH=f'{Path(sys.executable).parent}:{os.environ["PATH"]}')
    ddp = subprocess.Popen(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(tmp_path / 'ddp'),
                            '--cfg-options', 'train_dataloader.batch_size=2'], cwd=REPO_ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    single = train_in_process(Config.fromfile(str(config)), tmp_path / 'single')
    output, _ = ddp.communicate(timeout=600)
    assert ddp.returncode == 0, output[-3000:]
    single_losses, ddp_losses = train_losses(single), train_losses(tmp_path / 'ddp')
    assert sorted(single_losses) == sorted(ddp_losses) == [1, 2, 3, 4]
    assert [ddp_losses[step] for step in range(1, 5)] == pytest.approx([single_losses[step] for step in range(1, 5)],
                                                                        rel=1e-4)
    assert len(set(single_losses.values())) == 4  # the weights moved between iterations
    single_weights = _load_checkpoint(str(single / 'epoch_1.pth'))['state_dict']
    ddp_weights = _load_checkpoint(str(tmp_path / 'ddp' / 'epoch_1.pth'))['state_dict']
    # Adam turns float noise in near-zero gradients (e.g. attention key biases, to which softmax is blind) into
    # updates of up to ~1e-5; a wrong gradient would move weights by the learning rate (2e-3)
    for name, value in single_weights.items():
        assert torch.allclose(ddp_weights[name], value, rtol=1e-4, atol=1e-4), name
