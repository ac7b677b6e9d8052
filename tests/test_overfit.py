"""A real learning test: on a handful of synthetic images the loss falls and greedy decoding recovers the boxes."""
import copy

import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

NUM_IMAGES = 4
ITERATIONS = 300


def test_overfit_a_few_images(synthetic_cfg, synthetic_root):
    torch.manual_seed(0)
    cfg = copy.deepcopy(synthetic_cfg)
    train_loader = copy.deepcopy(cfg.train_dataloader)
    train_loader.update(batch_size=2 * NUM_IMAGES, num_workers=0, persistent_workers=False)
    # every batch holds each image twice, differently augmented
    train_loader.sampler = dict(type='BatchRepeatSampler', batch_repeat=2, shuffle=True)
    train_loader.dataset.update(data_root=str(synthetic_root), indices=NUM_IMAGES, filter_cfg=None)
    test_loader = copy.deepcopy(cfg.test_dataloader)
    test_loader.update(batch_size=NUM_IMAGES, num_workers=0, persistent_workers=False)
    test_loader.dataset.update(data_root=str(synthetic_root), ann_file='annotations/instances_train.json',
                               data_prefix=dict(img='train/'), indices=NUM_IMAGES)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
                                                    clip_grad=dict(max_norm=1.0)))
    loader = Runner.build_dataloader(train_loader, seed=0)
    batches = iter(loader)
    losses = []
    model.train()
    for _ in range(ITERATIONS):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        losses.append(model.train_step(batch, optim_wrapper)['loss'].item())
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20

    model.eval()
    batch = next(iter(Runner.build_dataloader(test_loader, seed=0)))
    with torch.no_grad():
        results = model.test_step(batch)
    matched = total = 0
    for result in results:
        gt_boxes = result.gt_instances.bboxes
        gt_boxes = gt_boxes.tensor if hasattr(gt_boxes, 'tensor') else gt_boxes
        pred = result.pred_instances
        total += len(gt_boxes)
        if len(gt_boxes) and len(pred.bboxes):
            ious = bbox_overlaps(gt_boxes, pred.bboxes)
            same_class = result.gt_instances.labels[:, None] == pred.labels[None]
            matched += int(((ious > 0.7) & same_class).any(1).sum())
    assert total > 0 and matched >= 0.9 * total, f'{matched} of {total} boxes recovered'
