"""What the detector does with its losses before the optimizer sees them: log the global batch's values under DDP
and stop on a non-finite loss before it reaches the weights."""
from collections import OrderedDict
from typing import Dict

import torch
from mmengine.dist import all_reduce_dict
from mmengine.logging import MessageHub
from torch import Tensor


def guarded_log_vars(log_vars: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Detached log values averaged over the ranks, after checking that the loss is finite.

    mmengine logs rank 0's values only; averaged, a DDP run logs the loss of its whole batch, the curve a
    single-process run with the same global batch logs.  A NaN or infinite loss raises ``FloatingPointError`` before
    the backward pass, naming the iteration and the non-finite terms: the weights and the checkpoints stay intact
    (mmengine would step with NaN gradients and save them).  Every rank sees the same averaged values, so under DDP
    every rank stops at the same iteration.

    Args:
        log_vars (dict): mmengine's ``parse_losses`` output, ``loss`` first.

    Returns:
        OrderedDict: The values to log.
    """
    averaged = OrderedDict((name, value.detach().clone()) for name, value in log_vars.items())
    all_reduce_dict(averaged, op='mean')
    if not bool(torch.isfinite(averaged['loss'])):
        iteration = MessageHub.get_current_instance().get_info('iter')
        where = f'at iteration {iteration + 1}' if iteration is not None else 'outside a training loop'
        bad = ', '.join(f'{name}={value.item()}' for name, value in averaged.items()
                        if not bool(torch.isfinite(value).all()))
        raise FloatingPointError(
            f'Pix2Seq: the loss is not finite {where} ({bad}); training stopped before this update, so the weights '
            'and the checkpoints of the work dir are intact. Resume from the last checkpoint (--resume) with a lower '
            'optim_wrapper.optimizer.lr or with optim_wrapper.clip_grad set; under fp16 AMP try bfloat16')
    return averaged
