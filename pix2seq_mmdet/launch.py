"""Distributed set-up that lets mmengine's Runner use torch.distributed on machines without CUDA."""
import torch
import torch.distributed as dist
from mmengine.config import Config


def prepare_distributed(cfg: Config) -> None:
    """Choose the process-group backend from the device before the Runner starts.

    On CUDA nothing changes (nccl, mmengine's own initialisation and DDP wrapper).  Without CUDA the backend becomes
    gloo, the process group is initialised here from torchrun's environment (mmengine's ``init_dist`` would call
    ``torch.cuda.set_device``), and DDP wraps the model without ``device_ids`` (mmengine's default passes the local
    rank as a CUDA device).  Slurm and MPI launchers go through mmengine unchanged.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                 find_unused_parameters=False)
