from pathlib import Path

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT

CONFIGS = sorted(p for p in (REPO_ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


def test_package_registers_in_mmdet_registries_through_custom_imports():
    cfg = Config.fromfile(str(CONFIGS[0]))
    assert cfg.custom_imports.imports == ['pix2seq_mmdet']
    from mmdet.registry import DATA_SAMPLERS, MODELS, TRANSFORMS
    for registry, names in ((MODELS, ('Pix2Seq', 'Pix2SeqHead')),
                            (TRANSFORMS, ('Pix2SeqSequenceAug', 'PackPix2SeqInputs')),
                            (DATA_SAMPLERS, ('BatchRepeatSampler', ))):
        for name in names:
            assert registry.get(name) is not None, f'{name} missing from {registry.name}'


def test_paper_recipe_is_available_under_the_promised_name():
    assert (REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_300e_coco.py').exists()
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_300e_coco.py'))
    assert cfg.model.head.tokenizer.num_bins == 2000 and cfg.train_cfg.max_epochs == 300
    assert cfg.train_dataloader.sampler.batch_repeat == 2
    assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.95)
    warmup, decay = cfg.param_scheduler
    assert (warmup.end, decay.begin, decay.end, decay.end_factor) == (10, 10, 300, 0.01)


@pytest.mark.parametrize('config', CONFIGS, ids=[str(p.relative_to(REPO_ROOT / 'configs')) for p in CONFIGS])
def test_config_builds_its_model_with_a_consistent_vocabulary(config: Path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    tokenizer = model.head.tokenizer
    sequence_aug = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Pix2SeqSequenceAug']
    assert len(sequence_aug) == 1, 'the training pipeline needs exactly one Pix2SeqSequenceAug'
    assert (sequence_aug[0].num_classes, sequence_aug[0].num_bins, sequence_aug[0].get('max_objects', 100)) == \
        (tokenizer.num_classes, tokenizer.num_bins, tokenizer.max_objects)
    classes = cfg.train_dataloader.dataset.get('metainfo', {}).get('classes')
    assert classes is None or len(classes) == tokenizer.num_classes
