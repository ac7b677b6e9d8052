"""MergedParamGroupsConstructor: mmengine's parameter settings in one group per distinct setting, same training."""
import copy
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from pix2seq_mmdet.engine import MergedParamGroupsConstructor

# the synthetic recipe's optimiser: no weight decay on norms, custom keys, fused AdamW, clipping
OPTIM_WRAPPER = dict(type='OptimWrapper', clip_grad=dict(max_norm=1.0),
                     optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05, fused=True),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.5,
                                        custom_keys={'head': dict(lr_mult=0.1)}))


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        backbone=nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten()),
        head=nn.Sequential(nn.Linear(8 * 6 * 6, 16), nn.LayerNorm(16), nn.Linear(16, 4))))


def build(constructor, model, optim_wrapper=OPTIM_WRAPPER):
    """The optimiser wrapper as mmengine's ``build_optim_wrapper`` builds it with ``constructor``."""
    optim_wrapper = copy.deepcopy(optim_wrapper)
    paramwise_cfg = optim_wrapper.pop('paramwise_cfg', None)
    return constructor(optim_wrapper, paramwise_cfg)(model)


def named_settings(optim_wrapper, model):
    """Every parameter's name and the settings of its group."""
    names = {id(p): name for name, p in model.named_parameters()}
    return {names[id(p)]: {k: v for k, v in group.items() if k != 'params'}
            for group in optim_wrapper.optimizer.param_groups for p in group['params']}


def test_every_parameter_keeps_its_settings_in_one_group_per_distinct_setting():
    model = small_model()
    default = build(DefaultOptimWrapperConstructor, model)
    merged = build(MergedParamGroupsConstructor, model)
    params = [p for group in merged.optimizer.param_groups for p in group['params']]
    assert len(params) == len(set(map(id, params))) == len(list(model.parameters()))
    assert named_settings(merged, model) == named_settings(default, model)
    settings = [tuple(sorted(named.items())) for named in named_settings(default, model).values()]
    assert named_settings(merged, model)['head.0.weight']['lr'] == pytest.approx(2e-4)  # the custom key applies
    assert len(merged.optimizer.param_groups) == len(set(settings)) < len(default.optimizer.param_groups)


def test_training_is_the_same_as_with_mmengines_groups():
    """Bit for bit without clipping (the clipped norm sums the gradients in the groups' order: equal to rounding)."""
    optim_wrapper_cfg = {k: v for k, v in OPTIM_WRAPPER.items() if k != 'clip_grad'}
    torch.manual_seed(1)
    batches = [(torch.randn(4, 3, 8, 8), torch.randn(4, 4)) for _ in range(5)]
    trained = []
    for constructor in (DefaultOptimWrapperConstructor, MergedParamGroupsConstructor):
        model = small_model()
        optim_wrapper = build(constructor, model, optim_wrapper_cfg)
        for inputs, targets in batches:
            optim_wrapper.update_params(nn.functional.mse_loss(model(inputs), targets))
        trained.append(model.state_dict())
    for name, value in trained[0].items():
        assert torch.equal(value, trained[1][name]), name
    assert not torch.equal(trained[0]['backbone.0.weight'], small_model().state_dict()['backbone.0.weight'])


def test_without_paramwise_cfg_it_is_mmengines_single_group():
    cfg = {k: v for k, v in OPTIM_WRAPPER.items() if k != 'paramwise_cfg'}
    optimizer = build(MergedParamGroupsConstructor, small_model(), cfg).optimizer
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]['lr'] == pytest.approx(2e-3)
