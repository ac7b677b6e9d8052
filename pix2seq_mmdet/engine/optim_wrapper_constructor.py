"""mmengine's optimiser constructor with one parameter group per distinct setting instead of one per parameter.

With a ``paramwise_cfg`` (e.g. ``norm_decay_mult=0``), mmengine's :class:`DefaultOptimWrapperConstructor` puts every
parameter in a group of its own: 127 groups for the synthetic configs' model, 300 and more for a ResNet-50 one.
torch's optimisers run their Python bookkeeping and, with ``foreach`` or ``fused``, one kernel launch per group, so
on a small model the optimiser step costs several times what one group per setting would (23.5 against 9.0 ms per
step for the synthetic model on 2 CPU cores). :class:`MergedParamGroupsConstructor` builds the same groups as
mmengine's constructor, then merges those whose settings (learning rate, weight decay and every other option) are
equal. Every parameter keeps the learning rate, weight decay and update rule it would get otherwise, and the
schedulers scale each merged group as they scaled its members: without gradient clipping, training is the same bit for
bit. Clipping's norm sums the gradients in the order of the groups, which the merge changes, so with clipping the
results agree to rounding (and, as with any rounding change, training then follows another trajectory). The
optimiser's state dict changes shape too: a checkpoint written with per-parameter groups does not resume into merged
ones (loading its weights with ``load_from`` does).
"""
from typing import List, Optional, Union

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.optim import DefaultOptimWrapperConstructor


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MergedParamGroupsConstructor(DefaultOptimWrapperConstructor):
    """:class:`DefaultOptimWrapperConstructor` whose parameter groups with equal settings are merged.

    Use it as ``optim_wrapper = dict(constructor='MergedParamGroupsConstructor', paramwise_cfg=..., ...)``; the
    arguments are mmengine's. Groups are merged in the order of their first parameter, parameters keep their order.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """mmengine's recursive ``add_params``; the call for the whole model (empty prefix) then merges the groups."""
        if prefix:
            super().add_params(params, module, prefix, is_dcn_module)
            return
        per_parameter: List[dict] = []
        super().add_params(per_parameter, module, prefix, is_dcn_module)
        merged = {}
        for group in per_parameter:
            settings = tuple(sorted((key, value) for key, value in group.items() if key != 'params'))
            merged.setdefault(settings, []).extend(group['params'])
        params.extend(dict(settings, params=group_params) for settings, group_params in merged.items())
