"""Every config builds its model, and every config of the synthetic set trains one step at its frame; the vocabulary
is written once per config; the paper recipe keeps its name."""
import copy
import math
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT, SYNTHETIC_CONFIG

CONFIGS = sorted(p for p in (REPO_ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
# configs/peers/ holds mmdet's own detectors (no Pix2Seq head or tokenizer; tests/test_peers.py checks their settings)
PIX2SEQ_CONFIGS = [p for p in CONFIGS if 'peers' not in p.relative_to(REPO_ROOT / 'configs').parts]
# the configs trained on the synthetic set (the dataset field of their names), peers included: one training step each;
# the COCO configs (ResNet-50 at 640-1333 px, too slow for a step here) build their models
SYNTHETIC_CONFIGS = [p for p in CONFIGS if '_synthetic' in p.stem]
COCO_CONFIGS = [p for p in PIX2SEQ_CONFIGS if p not in SYNTHETIC_CONFIGS]
# a ResNet-50 config on the synthetic set (the official model fine-tuned at 640 px) steps at an eighth of the backbone's
# widths with one transformer layer on each side: the same frame and strides, a tenth of the time
RESNET50_LIGHT = {'model.backbone.base_channels': 8, 'model.neck.in_channels': [256], 'model.encoder.num_layers': 1,
                  'model.head.num_layers': 1}
# the Pix2Seq config files, bases included (the peers are mmdet's detectors: a two-stage one names its classes in each
# head; tests/test_peers.py checks them against the data)
ALL_CONFIG_FILES = sorted(p for p in (REPO_ROOT / 'configs').rglob('*.py')
                          if 'peers' not in p.relative_to(REPO_ROOT / 'configs').parts)
VOCABULARY_KEYS = ('num_classes', 'num_bins', 'max_objects')
CHECKPOINT_LOADER = 'pix2seq_mmdet.engine.checkpoint_loader'


def test_package_registers_in_mmdet_registries_through_custom_imports():
    cfg = Config.fromfile(str(CONFIGS[0]))
    assert cfg.custom_imports.imports == ['pix2seq_mmdet.models', 'pix2seq_mmdet.datasets', 'pix2seq_mmdet.evaluation',
                                          'pix2seq_mmdet.visualization', 'pix2seq_mmdet.engine', CHECKPOINT_LOADER]
    from mmdet.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS, VISUALIZERS
    for registry, names in ((MODELS, ('Pix2Seq', 'Pix2SeqHead', 'Pix2SeqDataPreprocessor', 'TokenProjection')),
                            (DATASETS, ('Pix2SeqCocoDataset', )), (DATA_SAMPLERS, ('BatchRepeatSampler', )),
                            (TRANSFORMS, ('LoadKeypoints', 'PackKeypointDetInputs')),
                            (METRICS, ('CocoKeypointMetric', )), (VISUALIZERS, ('KeypointDetLocalVisualizer', )),
                            (HOOKS, ('AtomicCheckpointHook', 'ConsistencyCheckHook', 'RandomStateHook'))):
        for name in names:
            assert registry.get(name) is not None, f'{name} missing from {registry.name}'


def test_importing_the_package_leaves_mmengines_checkpoint_loader_alone():
    """Only the explicit import of pix2seq_mmdet.engine.checkpoint_loader replaces the loader for local paths, not the
    registering submodules."""
    import subprocess
    import sys
    probe = ('import mmengine.runner.checkpoint as c; import {module}; '
             'print(c.CheckpointLoader._schemes[""].__module__)')
    registering = ('pix2seq_mmdet.models, pix2seq_mmdet.datasets, pix2seq_mmdet.evaluation, '
                   'pix2seq_mmdet.visualization, pix2seq_mmdet.engine')
    loader = CHECKPOINT_LOADER
    modules = {}
    for module in (registering, loader):
        result = subprocess.run([sys.executable, '-c', probe.format(module=module)], capture_output=True, text=True,
                                check=True)
        modules[module] = result.stdout.strip()
    assert modules == {registering: 'mmengine.runner.checkpoint', loader: loader}


def test_paper_recipe_is_available_under_the_promised_name():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_300e_coco.py'))
    assert cfg.model.head.tokenizer.num_bins == 2000 and cfg.train_cfg.max_epochs == 300
    assert cfg.train_dataloader.sampler.batch_repeat == 2
    assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.95)
    warmup, decay = cfg.param_scheduler
    assert (warmup.end, decay.begin, decay.end, decay.end_factor) == (10, 10, 300, 0.01)


def test_paper_configs_follow_the_official_batch_accounting_and_backbone_regime():
    """lr 3e-3 per 128 unique images (official data/dataset.py: batch_size counts images, batch_duplicates multiply
    them); BatchNorm trained, one lr for every parameter, no clipping; images without objects dropped."""
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_300e_coco.py'))
    unique_images = 8 * cfg.train_dataloader.batch_size // cfg.train_dataloader.sampler.batch_repeat
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(3e-3 * unique_images / 128)
    assert cfg.auto_scale_lr.base_batch_size == 8 * cfg.train_dataloader.batch_size
    backbone = cfg.model.backbone
    assert backbone.frozen_stages == -1 and backbone.norm_cfg.requires_grad and not backbone.norm_eval
    assert 'clip_grad' not in cfg.optim_wrapper and 'custom_keys' not in cfg.optim_wrapper.paramwise_cfg
    assert cfg.train_dataloader.dataset.filter_cfg.filter_empty_gt
    assert cfg.model.neck.type == 'TokenProjection' and cfg.model.neck.dropout == 0.1
    finetune = Config.fromfile(str(REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_40e_coco-640-ft.py'))
    assert finetune.train_dataloader.sampler.type == 'DefaultSampler'  # no batch repetition when fine-tuning
    assert finetune.optim_wrapper.optimizer.lr == 3e-5 and finetune.train_cfg.max_epochs == 40
    assert finetune.model.data_preprocessor.pad_size == (640, 640) and finetune.model.head.tokenizer.num_bins == 1000


@pytest.mark.parametrize('config', ALL_CONFIG_FILES, ids=[str(p.relative_to(REPO_ROOT / 'configs'))
                                                          for p in ALL_CONFIG_FILES])
def test_each_vocabulary_setting_is_written_at_most_once_per_config_file(config: Path):
    text = config.read_text()
    for key in VOCABULARY_KEYS:
        assert len(re.findall(rf'\b{key}\s*=', text)) <= 1, f'{key} set more than once in {config.name}'


def config_ids(configs):
    return [str(p.relative_to(REPO_ROOT / 'configs')) for p in configs]


def check_model_fits_its_dataset(cfg: Config, model) -> None:
    """A Pix2Seq config's classes are its tokenizer's, and no pipeline pads (the model pads to its frame)."""
    classes = cfg.train_dataloader.dataset.get('metainfo', {}).get('classes')
    assert classes is None or len(classes) == model.head.tokenizer.num_classes
    pipelines = cfg.train_dataloader.dataset.pipeline + cfg.test_dataloader.dataset.pipeline
    assert not any(step['type'] == 'Pad' for step in pipelines), 'the model pads to its frame, the pipeline must not'


def train_one_step(cfg: Config, data_root: Path) -> dict:
    """The config's model and optimiser wrapper built, and one ``train_step`` on two images of ``data_root`` through
    the config's training pipeline (its Resize into the frame) and data preprocessor (its frame, ``pad_size``)."""
    from mmdet.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=f'{data_root}/', indices=2))
    model = MODELS.build(cfg.model)
    model.init_weights()  # as the Runner does (DETR-style heads give NaN costs without it)
    if hasattr(model, 'head'):
        check_model_fits_its_dataset(cfg, model)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model.train_step(pseudo_collate([dataset[0], dataset[1]]), optim_wrapper)


@pytest.mark.parametrize('config', COCO_CONFIGS, ids=config_ids(COCO_CONFIGS))
def test_config_builds_its_model_for_its_dataset(config: Path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(config))
    check_model_fits_its_dataset(cfg, MODELS.build(cfg.model))


@pytest.mark.parametrize('config', COCO_CONFIGS, ids=config_ids(COCO_CONFIGS))
def test_coco_config_resizes_into_its_frame_for_training_and_testing(config: Path):
    """A 1024- or 1333-px config must not train or test at another frame (e.g. a 640-px pipeline it inherits)."""
    cfg = Config.fromfile(str(config))
    frame = tuple(cfg.model.data_preprocessor.pad_size)
    sizes = [tuple(step[key]) for dataloader in (cfg.train_dataloader, cfg.test_dataloader)
             for step in dataloader.dataset.pipeline for key in ('scale', 'crop_size') if key in step]
    assert len(sizes) >= 3 and set(sizes) == {frame}, (frame, sizes)


@pytest.mark.parametrize('config', SYNTHETIC_CONFIGS, ids=config_ids(SYNTHETIC_CONFIGS))
def test_config_trains_one_step_at_its_frame(config: Path, synthetic_root):
    """A frame the auxiliary head's stride does not fit, or a Resize larger than the frame, fails here."""
    cfg = Config.fromfile(str(config))
    if cfg.model.backbone.get('depth') == 50:
        cfg.merge_from_dict(RESNET50_LIGHT)
    log_vars = train_one_step(cfg, synthetic_root)
    assert all(math.isfinite(float(value)) for value in log_vars.values()), log_vars


@pytest.mark.parametrize('options, error', [
    ({'model.data_preprocessor.pad_size': (112, 112)}, 'does not fit in pad_size'),  # Resize to 128 px
    ({'model.aux_head.strides': [8]}, 'do not fit the feature map'),  # stride-16 features
], ids=['resize-larger-than-the-frame', 'aux-head-stride-misfit'])
def test_one_step_fails_where_the_frame_misfits(options, error, synthetic_cfg, synthetic_root):
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.merge_from_dict(options)
    with pytest.raises(ValueError, match=error):
        train_one_step(cfg, synthetic_root)


def test_a_derived_config_changes_num_classes_in_one_line_and_trains_and_decodes(synthetic_root, tmp_path):
    """A user's config: three of the four synthetic classes, `num_classes` changed on one line."""
    from mmengine.runner import Runner
    config = tmp_path / 'three_classes.py'
    config.write_text(f'''
_base_ = [{str(SYNTHETIC_CONFIG)!r}]
classes = ('circle', 'square', 'triangle')
model = dict(head=dict(tokenizer=dict(num_classes=3)))
train_dataloader = dict(batch_size=2, dataset=dict(data_root={f'{synthetic_root}/'!r}, metainfo=dict(classes=classes),
                                                   indices=2))
val_dataloader = dict(batch_size=2, dataset=dict(data_root={f'{synthetic_root}/'!r}, metainfo=dict(classes=classes),
                                                 indices=2))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={f'{synthetic_root}/annotations/instances_val.json'!r})
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
''')
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    model = runner.model
    assert model.head.tokenizer.num_classes == 3 and model.head.token_embed.num_embeddings == 4 + 3 + 128
    assert model.aux_head.num_classes == 3  # the auxiliary head takes the tokenizer's classes
    batch = next(iter(runner.test_dataloader))
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    tokens, class_probs, _ = model.head.generate(*model.encode(data['inputs'], data['data_samples']))
    assert tokens.shape == (2, 30) and class_probs.shape == (2, 6, 3)
    with torch.no_grad():
        predictions = model.test_step(batch)
    assert len(predictions) == 2
    for prediction in predictions:
        assert torch.all((prediction.pred_instances.labels >= 0) & (prediction.pred_instances.labels < 3))
