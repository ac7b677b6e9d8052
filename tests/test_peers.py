"""The peer configs (configs/peers/: mmdet's DETR, Deformable DETR and FCOS on the synthetic set) train and evaluate,
keep the main Pix2Seq job's data and backbone, and their `-hard` variants change only the data paths."""
import json
import math
from pathlib import Path

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from runner_utils import data_options, train_in_process, train_losses

PEERS = REPO_ROOT / 'configs' / 'peers'
# the Pix2Seq recipe whose data, backbone, schedule shape and training time the peers share (docs/learning_speed.md)
BUDGET_CONFIG = REPO_ROOT / 'configs' / 'ablations' / 'pix2seq_r18-tiny_1xb16_44e_synthetic.py'
EASY_PEERS = ('detr_r18-tiny_1xb16_43e_synthetic.py', 'deformable-detr_r18-tiny_1xb16_21e_synthetic.py',
              'fcos_r18-tiny_1xb16_18e_synthetic.py')
# 2 iterations of 2 images, one validation of 8; no checkpoint (each formats the config with yapf: seconds on 2 cores)
TRAIN_OPTIONS = {'train_dataloader.batch_size': 2, 'train_dataloader.dataset.indices': 4,
                 'val_dataloader.batch_size': 8, 'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
                 'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 2,
                 'default_hooks.checkpoint.save_last': False, 'default_hooks.checkpoint.save_best': None}
# an FCOS trained for 2 iterations scores every location near its 0.01 prior, under mmdet's 0.05 threshold: without
# detections CocoMetric logs an error and returns no keys
TEST_OPTIONS = {'fcos_r18-tiny_1xb16_18e_synthetic.py': {'model.test_cfg.score_thr': 0.0}}


def without_scope(value):
    """A config value as plain Python, without the `_scope_` keys mmengine adds to what an mmdet:: base defines."""
    if isinstance(value, dict):
        return {key: without_scope(item) for key, item in value.items() if key != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(without_scope(item) for item in value)
    return value


def replace_strings(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {key: replace_strings(item, old, new) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(replace_strings(item, old, new) for item in value)
    return value


def val_metrics(work_dir: Path) -> dict:
    records = [json.loads(line) for line in next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    return next(record for record in records if any(key.startswith('coco/') for key in record))


@pytest.mark.parametrize('config', EASY_PEERS)
def test_peer_trains_two_iterations_and_evaluates_with_coco_metric(config, synthetic_root, tmp_path):
    cfg = Config.fromfile(str(PEERS / config))
    work_dir = train_in_process(cfg, tmp_path / Path(config).stem, **data_options(synthetic_root), **TRAIN_OPTIONS,
                                **TEST_OPTIONS.get(config, {}))
    losses = train_losses(work_dir)
    assert sorted(losses) == [1, 2] and all(math.isfinite(loss) for loss in losses.values()), losses
    assert 'coco/bbox_mAP' in val_metrics(work_dir)
    assert not list(work_dir.glob('*.pth'))


@pytest.mark.parametrize('config', EASY_PEERS)
def test_peer_keeps_the_main_jobs_data_and_backbone(config):
    """mmdet's COCO pipelines (DETR's multi-scale crops) and loaders replaced by the synthetic ones, as in the main
    Pix2Seq job; its half-width three-stage ResNet-18 trained from scratch with BatchNorm; its schedule."""
    cfg, main = Config.fromfile(str(PEERS / config)), Config.fromfile(str(BUDGET_CONFIG))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'randomness'):
        assert without_scope(cfg[key].to_dict()) == without_scope(main[key].to_dict()), key
    backbone, main_backbone = cfg.model.backbone, main.model.backbone
    for key in ('type', 'depth', 'base_channels', 'num_stages', 'strides', 'dilations', 'style', 'norm_cfg',
                'frozen_stages', 'norm_eval', 'init_cfg'):
        assert backbone.get(key) == main_backbone.get(key), key
    # the main job's schedule shape (warm-up iterations, linear decay to 1 %) over the peer's own max_epochs
    main_schedule = [dict(step, end=cfg.train_cfg.max_epochs) if step.by_epoch else dict(step)
                     for step in main.param_scheduler]
    assert [dict(step) for step in cfg.param_scheduler] == main_schedule
    assert cfg.train_cfg.val_interval == main.train_cfg.val_interval
    assert cfg.auto_scale_lr.base_batch_size == main.auto_scale_lr.base_batch_size
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == cfg.lr


@pytest.mark.parametrize('config', EASY_PEERS)
def test_hard_peer_differs_from_its_easy_peer_only_in_the_data_paths(config):
    easy = Config.fromfile(str(PEERS / config)).to_dict()
    hard = Config.fromfile(str(PEERS / config.replace('.py', '-hard.py'))).to_dict()
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert hard[loader]['dataset']['data_root'] == 'data/synthetic_hard/'
    for evaluator in ('val_evaluator', 'test_evaluator'):
        assert hard[evaluator]['ann_file'] == 'data/synthetic_hard/annotations/instances_val.json'
    assert replace_strings(hard, 'data/synthetic_hard/', 'data/synthetic/') == easy


SEG_PEER = 'mask-rcnn_r18-tiny_fpn_1xb16_2e_synthetic-112.py'
# the Pix2Seq v2 recipe whose data, backbone and training time the Mask R-CNN peer shares
# (docs/instance_segmentation.md)
SEG_CONFIG = REPO_ROOT / 'configs' / 'pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py'


def test_mask_rcnn_peer_trains_two_iterations_and_evaluates_masks(synthetic_root, tmp_path):
    cfg = Config.fromfile(str(PEERS / SEG_PEER))
    # after 2 iterations every score is under mmdet's 0.05 threshold
    work_dir = train_in_process(cfg, tmp_path / 'mask_rcnn', **data_options(synthetic_root), **TRAIN_OPTIONS,
                                **{'model.test_cfg.rcnn.score_thr': 0.0})
    losses = train_losses(work_dir)
    assert sorted(losses) == [1, 2] and all(math.isfinite(loss) for loss in losses.values()), losses
    metrics = val_metrics(work_dir)
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics


def test_mask_rcnn_peer_keeps_the_segmentation_recipes_data_and_backbone():
    cfg, seg = Config.fromfile(str(PEERS / SEG_PEER)), Config.fromfile(str(SEG_CONFIG))
    for key in ('val_dataloader', 'test_dataloader', 'val_evaluator', 'randomness'):
        assert without_scope(cfg[key].to_dict()) == without_scope(seg[key].to_dict()), key
    # the same transforms; Mask R-CNN trains on bitmaps (mmdet's default poly2mask=True), Pix2Seq on the polygons
    peer_pipeline = without_scope(cfg.train_dataloader.dataset.pipeline)
    seg_pipeline = without_scope(seg.train_dataloader.dataset.pipeline)
    assert [dict(step, poly2mask=False) if step['type'] == 'LoadAnnotations' else step
            for step in peer_pipeline] == seg_pipeline
    for key in ('type', 'depth', 'base_channels', 'num_stages', 'strides', 'dilations', 'style', 'norm_cfg',
                'frozen_stages', 'norm_eval', 'init_cfg'):
        assert cfg.model.backbone.get(key) == seg.model.backbone.get(key), key
    classes = len(seg.train_dataloader.dataset.metainfo.classes)
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == classes
    main_schedule = [dict(step, end=cfg.train_cfg.max_epochs) if step.by_epoch else dict(step)
                     for step in seg.param_scheduler]
    assert [dict(step) for step in cfg.param_scheduler] == main_schedule
