"""ConsistencyCheckHook: dataset classes, truncated sequences and loaded checkpoints checked against the model."""
import copy
from types import SimpleNamespace

import pytest
import torch
from coco_utils import CATEGORIES, CLASSES, TRAIN_PIPELINE, box, build_dataset, coco_image, recorded_warnings, \
    write_annotations, write_image
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from conftest import SYNTHETIC_CONFIG
from pix2seq_mmdet.engine.consistency_check_hook import (ConsistencyCheckHook, check_checkpoint_fits,
                                                         warn_about_truncated_sequences)


# ------------------------------------------------------------------------------------------------------- config
def synthetic_model(synthetic_cfg, **tokenizer):
    model_cfg = copy.deepcopy(synthetic_cfg.model)
    model_cfg.head.tokenizer.update(tokenizer)
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def train_set(synthetic_root):
    """The synthetic training set with the synthetic config's classes (4)."""
    return DATASETS.build(dict(type='CocoDataset', data_root=str(synthetic_root),
                               ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                               metainfo=dict(classes=CLASSES), pipeline=TRAIN_PIPELINE))


def test_dataset_with_another_class_count_fails_before_training(synthetic_cfg, train_set):
    runner = SimpleNamespace(model=synthetic_model(synthetic_cfg, num_classes=5),
                             train_dataloader=SimpleNamespace(dataset=train_set))
    with pytest.raises(ValueError, match=r'train_dataloader.dataset has 4 classes \(circle, square, triangle, star\) '
                                         r'but model.head.tokenizer.num_classes is 5: set num_classes=4'):
        ConsistencyCheckHook().before_train(runner)
    ConsistencyCheckHook().before_train(SimpleNamespace(model=synthetic_model(synthetic_cfg),
                                                        train_dataloader=SimpleNamespace(dataset=train_set)))


def test_images_with_more_objects_than_a_sequence_holds_are_reported_and_truncated(synthetic_cfg, tmp_path):
    """One warning before training; the sequence keeps the first ``max_objects`` objects (after ordering), and mmdet
    keeps crowd boxes out of it (ignored instances)."""
    write_image(tmp_path / 'a.png', 64, 96)
    annotations = [box(index, 1, [10 * index, 5, 8, 8]) for index in range(1, 6)]
    annotations.append(box(6, 1, [0, 40, 20, 20], iscrowd=1))
    path = write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png')], annotations=annotations,
                                            categories=CATEGORIES))
    dataset = build_dataset(tmp_path, path, TRAIN_PIPELINE)
    model_cfg = copy.deepcopy(synthetic_cfg.model)
    model_cfg.head.tokenizer.max_objects = 3
    model_cfg.train_cfg.update(object_order='none', noise_mode='none', class_label_corruption='none')
    model = MODELS.build(model_cfg)
    tokenizer = model.head.tokenizer
    _, messages = recorded_warnings(warn_about_truncated_sequences, dataset, tokenizer)
    assert '1 of 1 training images have more than max_objects=3 objects (up to 5)' in messages
    samples = model.data_preprocessor(pseudo_collate([dataset.prepare_data(0)]), training=True)['data_samples']
    _, target, _ = model.head.sequence_augmentation(samples)
    target = target[0]
    # 3 of the 5 real objects (object_order 'none': the first three), then EOS; the crowd box is not among them
    assert target[15] == tokenizer.EOS and tokenizer.is_coord(target[:15].view(3, 5)[:, :4]).all()
    xmin = tokenizer.dequantize(target[:15].view(3, 5)[:, 1]) * 128
    assert xmin.tolist() == pytest.approx([10, 20, 30], abs=0.6)


@pytest.fixture
def runner_cfg(synthetic_root, tmp_path):
    """The synthetic config on the test set, with the runtime's hooks (as tools/train.py builds it)."""
    cfg = Config.fromfile(str(SYNTHETIC_CONFIG))
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': f'{synthetic_root}/', 'train_dataloader.batch_size': 4,
                         'val_dataloader.dataset.data_root': f'{synthetic_root}/', 'train_cfg.max_epochs': 1,
                         'val_evaluator.ann_file': f'{synthetic_root}/annotations/instances_val.json',
                         'work_dir': str(tmp_path), 'experiment_name': tmp_path.name})
    return cfg


def test_runner_fails_on_a_class_count_mismatch_before_the_first_step(runner_cfg, tmp_path):
    runner_cfg.model.head.tokenizer.num_classes = 5
    runner = Runner.from_cfg(runner_cfg)
    with pytest.raises(ValueError, match='has 4 classes .*num_classes is 5'):
        runner.train()
    assert runner.iter == 0 and not list(tmp_path.glob('*.pth'))


# --------------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_another_vocabulary_or_model_is_refused_by_name(synthetic_cfg, runner_cfg, tmp_path):
    model = synthetic_model(synthetic_cfg)
    check_checkpoint_fits(dict(state_dict=model.state_dict()), model, 'same.pth')  # fits: no error
    other_bins = synthetic_model(synthetic_cfg, num_bins=64)
    cases = [
        (dict(state_dict=other_bins.state_dict(), meta=dict(dataset_meta=dict(classes=CLASSES))),
         r'other.pth has a vocabulary of 72 tokens \(head.token_embed.weight \(72, 128\), trained on 4 classes\) but '
         r'this model has 136 \(4 special tokens \+ num_classes 4 \+ num_bins 128\)'),
        (dict(state_dict=synthetic_model(synthetic_cfg, max_objects=10).state_dict()),
         r'other.pth was trained on sequences of 51 tokens \(max_objects 10\) but this model uses 31 '
         r'\(max_objects 6\)'),
        (dict(state_dict={'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(1000, 512)}),
         r"other.pth holds none of the parameters of this Pix2Seq model \(its first keys: \['conv1.weight'"),
        (dict(state_dict={**model.state_dict(), 'neck.convs.0.conv.weight': torch.zeros(1, 1, 1, 1)}),
         r'other.pth does not fit this model: 1 parameter\(s\) differ in shape \(checkpoint vs model\): '
         r'neck.convs.0.conv.weight \(1, 1, 1, 1\) vs \(128, 128, 1, 1\)'),
    ]
    for checkpoint, message in cases:
        with pytest.raises(ValueError, match=message):
            check_checkpoint_fits(checkpoint, model, 'other.pth')
    # through the runner (load_from / --resume) the hook refuses it before the weights are copied
    path = tmp_path / 'other_vocab.pth'
    torch.save(dict(state_dict=other_bins.state_dict()), path)
    runner_cfg.load_from = str(path)
    runner = Runner.from_cfg(runner_cfg)
    before = runner.model.head.token_embed.weight.clone()
    with pytest.raises(ValueError, match=f'checkpoint {path} has a vocabulary of 72 tokens'):
        runner.load_or_resume()
    assert torch.equal(runner.model.head.token_embed.weight, before)
