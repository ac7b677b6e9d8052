"""The loss guard: a non-finite loss stops training before the update; mmengine's loss scaler skips overflows."""
import copy
import functools

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData


def training_batch(batch_size=2):
    """A batch as the synthetic config's dataloader yields it: 64-px images with one object each."""
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.tensor([[10.0, 6.0, 40.0, 32.0]])),
                                           labels=torch.tensor([1]))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(batch_size)],
                data_samples=samples)


def test_non_finite_loss_stops_before_the_update_naming_the_iteration(synthetic_cfg):
    model = MODELS.build(copy.deepcopy(synthetic_cfg.model))
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(training_batch(), optim_wrapper)
    assert torch.isfinite(log_vars['loss']) and not log_vars['loss'].requires_grad
    weights = {name: value.detach().clone() for name, value in model.named_parameters()}
    with torch.no_grad():
        model.head.output_bias[5] = float('nan')
    MessageHub.get_current_instance().update_info('iter', 7)
    with pytest.raises(FloatingPointError, match=r'loss is not finite at iteration 8 \(loss=nan.*class_ce=nan.*\); '
                                                 r'training stopped before this update'):
        model.train_step(training_batch(), optim_wrapper)
    for name, value in model.named_parameters():
        if name != 'head.output_bias':
            assert torch.equal(value, weights[name]), f'{name} changed by the failed step'
    assert all(parameter.grad is None or not parameter.grad.isnan().any() for parameter in model.parameters())


def test_amp_gradient_overflow_is_skipped_by_mmengines_loss_scaler(monkeypatch):
    """mmengine's AmpOptimWrapper (CUDA-only by its own check) with a CPU GradScaler: an overflowing step leaves the
    weights alone and halves the scale, the next finite step applies."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp_optimizer_wrapper, 'GradScaler', functools.partial(torch.amp.GradScaler, 'cpu'))
    weight = torch.nn.Parameter(torch.ones(3))
    wrapper = amp_optimizer_wrapper.AmpOptimWrapper(optimizer=torch.optim.SGD([weight], lr=0.1),
                                                    loss_scale=dict(init_scale=2.0**16))
    wrapper.update_params((weight * 1e35).sum())  # scaled by 2^16 the gradient exceeds float32
    assert torch.equal(weight.detach(), torch.ones(3)) and wrapper.loss_scaler.get_scale() == 2.0**15
    wrapper.update_params(weight.sum())
    assert torch.allclose(weight.detach(), torch.full((3, ), 0.9))
