"""What tools/train.py and tools/test.py share (imported from this folder): their common flags, the config they build
from them, and the distributed set-up (and tear-down) that lets mmengine's Runner use torch.distributed on machines
without CUDA."""
import argparse
import gc
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags of mmdet's tools: ``--work-dir``, ``--cfg-options``, ``--launcher`` and torchrun's local rank."""
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with ``--cfg-options`` merged, the launcher set and a work dir chosen
    (``--work-dir``, else the config's, else ``work_dirs/<config name>``)."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def prepare_distributed(cfg: Config) -> None:
    """Choose the process-group backend from the device before the Runner starts.

    On CUDA nothing changes (nccl, mmengine's own initialisation and DDP wrapper).  Without CUDA the backend becomes
    gloo, the process group is initialised here from torchrun's environment (mmengine's ``init_dist`` would call
    ``torch.cuda.set_device``), and DDP wraps the model with ``device_ids=None`` (mmengine's default passes the
    local rank as a CUDA device).  Slurm and MPI launchers go through mmengine unchanged.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                 find_unused_parameters=False)


def finish_distributed() -> None:
    """Destroy the process group after the run, so that every rank leaves torch.distributed before the interpreter
    exits: a rank exiting with a live gloo group can abort ("terminate called without an active exception") after
    its work is done, failing the launch.  Call it after dropping the runner: its DDP wrapper holds the group, so the
    wrapper is collected first (``gc.collect``, the runner and its hooks refer to each other), then the ranks meet at
    a barrier, so that none destroys the group while another still uses it.  No-op without a process group."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
