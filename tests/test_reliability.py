"""Bad input gets a clear error naming the file, field and value, or a documented skip with a warning: images,
annotations, configuration, checkpoints, non-finite losses and malformed decoded sequences (issue 7)."""
import copy
import functools
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from conftest import SYNTHETIC_CONFIG
from pix2seq_mmdet.consistency import ConsistencyCheckHook, check_checkpoint_fits, warn_about_truncated_sequences

CLASSES = ('circle', 'square', 'triangle', 'star')
CATEGORIES = [dict(id=index + 1, name=name) for index, name in enumerate(CLASSES)]
SEQUENCE_AUG = dict(type='Pix2SeqSequenceAug', num_classes=4, num_bins=128, max_objects=3, object_order='none',
                    noise_mode='none', class_label_corruption='none')
TRAIN_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='Pad', size=(128, 128)), SEQUENCE_AUG, dict(type='PackPix2SeqInputs')]
TEST_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), keep_ratio=True),
                 dict(type='Pad', size=(128, 128)), dict(type='PackPix2SeqInputs')]


def write_image(path: Path, height: int, width: int, channels: int = 3) -> None:
    shape = (height, width) if channels == 1 else (height, width, channels)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))


def coco_image(image_id: int, file_name: str, width: int = 96, height: int = 64) -> dict:
    return dict(id=image_id, file_name=file_name, width=width, height=height)


def box(annotation_id: int, image_id: int, bbox, category_id: int = 1, iscrowd: int = 0) -> dict:
    return dict(id=annotation_id, image_id=image_id, category_id=category_id, bbox=bbox, area=100.0, iscrowd=iscrowd)


def write_annotations(root: Path, content, name: str = 'ann.json') -> str:
    path = root / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def build_dataset(root: Path, ann_file: str, pipeline=(), test_mode: bool = False):
    return DATASETS.build(dict(type='Pix2SeqCocoDataset', data_root=str(root), ann_file=ann_file,
                               data_prefix=dict(img=''), metainfo=dict(classes=CLASSES), test_mode=test_mode,
                               filter_cfg=dict(filter_empty_gt=False), pipeline=list(pipeline)))


def recorded_warnings(function, *args, **kwargs):
    """The result of ``function`` and the text of every warning it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = function(*args, **kwargs)
    return result, '\n'.join(str(warning.message) for warning in caught)


# ---------------------------------------------------------------------------------------------------------- images
@pytest.fixture(scope='module')
def image_root(tmp_path_factory) -> Path:
    """One good image and one of every kind of bad or unusual image file, each with one box."""
    root = tmp_path_factory.mktemp('images')
    write_image(root / 'good.png', 64, 96)
    write_image(root / 'gray.png', 64, 96, channels=1)
    write_image(root / 'rgba.png', 64, 96, channels=4)
    write_image(root / 'tiny.png', 1, 1)
    write_image(root / 'wide.png', 2, 3000)
    write_image(root / 'source.jpg', 64, 96)
    (root / 'empty.png').write_bytes(b'')
    (root / 'truncated.png').write_bytes((root / 'good.png').read_bytes()[:300])
    (root / 'truncated.jpg').write_bytes((root / 'source.jpg').read_bytes()[:300])
    (root / 'text.jpg').write_text('not an image')
    sizes = {'tiny.png': (1, 1), 'wide.png': (3000, 2)}
    names = ['good.png', 'missing.png', 'empty.png', 'truncated.png', 'truncated.jpg', 'text.jpg', 'gray.png',
             'rgba.png', 'tiny.png', 'wide.png']
    images = [coco_image(index, name, *sizes.get(name, (96, 64))) for index, name in enumerate(names)]
    annotations = [box(index, index, [0, 0, 1, 1] if index == 8 else [0, 0, 2, 2]) for index in range(len(names))]
    write_annotations(root, dict(images=images, annotations=annotations, categories=CATEGORIES))
    return root


def index_of(dataset, name: str) -> int:
    return next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'].endswith(name))


@pytest.mark.parametrize('name, problem', [('missing.png', 'does not exist'), ('empty.png', r'is empty \(0 bytes\)'),
                                           ('truncated.png', 'cannot be decoded'),
                                           ('truncated.jpg', 'cannot be decoded'), ('text.jpg', 'cannot be decoded')])
def test_bad_image_file_is_skipped_in_training_and_an_error_in_testing(image_root, name, problem):
    dataset = build_dataset(image_root, 'ann.json', TRAIN_PIPELINE)
    result, messages = recorded_warnings(dataset.prepare_data, index_of(dataset, name))
    assert result is None
    assert f'{name} (id {index_of(dataset, name)})' in messages and 'skipped' in messages
    assert problem.replace('\\', '') in messages
    # mmengine's refetch: the sample slot is filled by another image
    sample, _ = recorded_warnings(dataset.__getitem__, index_of(dataset, name))
    assert not sample['data_samples'].img_path.endswith(name)
    test_set = build_dataset(image_root, 'ann.json', TEST_PIPELINE, test_mode=True)
    with pytest.raises(OSError, match=f'{name}.*{problem}.*restore the file or remove the image'):
        test_set.prepare_data(index_of(test_set, name))


@pytest.mark.parametrize('name', ['gray.png', 'rgba.png', 'tiny.png'])
def test_grayscale_four_channel_and_one_pixel_images_load_as_three_channels(image_root, name):
    for pipeline, test_mode in ((TRAIN_PIPELINE, False), (TEST_PIPELINE, True)):
        dataset = build_dataset(image_root, 'ann.json', pipeline, test_mode=test_mode)
        packed = dataset.prepare_data(index_of(dataset, name))
        assert packed['inputs'].shape == (3, 128, 128)


def test_extreme_aspect_ratio_error_names_the_image(image_root):
    """Resizing a 3000 x 2 image to 128 px makes it 0 px high: OpenCV's error, with a note naming the image."""
    dataset = build_dataset(image_root, 'ann.json', TEST_PIPELINE, test_mode=True)
    with pytest.raises(cv2.error) as error:
        dataset.prepare_data(index_of(dataset, 'wide.png'))
    assert any('while preparing image' in note and 'wide.png (id 9)' in note for note in error.value.__notes__)


# ----------------------------------------------------------------------------------------------------- annotations
@pytest.mark.parametrize('content, message', [
    ('{"images": [', r'ann.json is not valid JSON: Expecting value at line 1, column 13'),
    ('[1, 2]', 'holds a JSON list'),
    (dict(annotations=[], categories=CATEGORIES), r'has no images section'),
    (dict(images=[], categories=CATEGORIES), r'has no annotations section'),
    (dict(images=[], annotations=[]), r'has no categories section'),
    (dict(images=[coco_image(1, 'a.png'), coco_image(1, 'b.png')], annotations=[], categories=CATEGORIES),
     r'image id 1 is used by both a.png and b.png'),
    (dict(images=[dict(id=1, file_name='a.png')], annotations=[], categories=CATEGORIES), r'images\[0\] lacks width'),
    (dict(images=[coco_image(1, 'a.png', width=0)], annotations=[], categories=CATEGORIES), r'has width 0'),
    (dict(images=[coco_image(1, 'a.png')], annotations=[box(7, 1, [0, 0, 5, 5]), box(7, 1, [1, 1, 5, 5])],
          categories=CATEGORIES), r'annotation id 7 appears twice'),
])
def test_malformed_annotation_file_is_an_error_naming_the_field(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        build_dataset(tmp_path, write_annotations(tmp_path, content))


def test_test_files_without_annotations_load(tmp_path):
    dataset = build_dataset(tmp_path, write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png')],
                                                                       categories=CATEGORIES)), test_mode=True)
    assert len(dataset) == 1 and dataset.get_data_info(0)['instances'] == []


def test_unusable_annotations_are_skipped_with_warnings_and_partial_boxes_clipped(tmp_path):
    annotations = [
        box(1, 1, [10, 10, 20, 20]),  # fine
        box(2, 1, [10, 10, -5, 20]),  # negative width
        box(3, 1, [10, 10, 20, 0]),  # zero height
        box(4, 1, [200, 10, 20, 20]),  # entirely right of the 96-px image
        box(5, 1, [float('nan'), 10, 20, 20]),  # NaN
        box(6, 1, [10, 10, float('inf'), 20]),  # inf
        box(7, 1, [10, 10, 20, 20], category_id=99),  # unknown category
        box(8, 42, [10, 10, 20, 20]),  # unknown image
        box(9, 1, [10, 10, 20]),  # three numbers
        box(10, 1, [-10, 50, 30, 30]),  # partly outside: clipped to [0, 50, 20, 14]
        box(11, 1, [30, 30, 10, 10], iscrowd=1),  # crowd: kept, ignored
    ]
    path = write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png'), coco_image(2, 'empty.png')],
                                            annotations=annotations, categories=CATEGORIES))
    dataset, messages = recorded_warnings(build_dataset, tmp_path, path)
    for expected in ('skipped 2 annotation(s) with a bbox width or height below 1 pixel, e.g. id 2 (image a.png',
                     'skipped 1 annotation(s) with a bbox with less than 1 pixel inside its image, e.g. id 4',
                     'skipped 3 annotation(s) with a bbox that is not four finite numbers',
                     'id 5 (image a.png, bbox [nan, 10, 20, 20])', 'id 6 (image a.png, bbox [10, 10, inf, 20])',
                     'skipped 1 annotation(s) with a category_id that is not in "categories", e.g. id 7',
                     'skipped 1 annotation(s) with an image_id that is not in "images", e.g. id 8 (image ?',
                     'clipped 1 box(es) partly outside their image to the image, e.g. id 10 (image a.png, '
                     'bbox [0, 50, 20, 14])'):
        assert expected in messages
    assert messages.count('ann.json') == 6
    first, empty = dataset.get_data_info(0), dataset.get_data_info(1)
    assert [instance['bbox'] for instance in first['instances']] == [[10, 10, 30, 30], [0, 50, 20, 64],
                                                                     [30, 30, 40, 40]]
    assert [instance['ignore_flag'] for instance in first['instances']] == [0, 0, 1]
    assert empty['img_path'].endswith('empty.png') and empty['instances'] == []


def test_crowd_objects_and_objects_beyond_max_objects_leave_the_sequence(tmp_path):
    write_image(tmp_path / 'a.png', 64, 96)
    annotations = [box(index, 1, [10 * index, 5, 8, 8]) for index in range(1, 6)]
    annotations.append(box(6, 1, [0, 40, 20, 20], iscrowd=1))
    path = write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png')], annotations=annotations,
                                            categories=CATEGORIES))
    dataset = build_dataset(tmp_path, path, TRAIN_PIPELINE)
    tokenizer = dataset.pipeline.transforms[3].tokenizer
    _, messages = recorded_warnings(warn_about_truncated_sequences, dataset, tokenizer)
    assert '1 of 1 training images have more than max_objects=3 objects (up to 5)' in messages
    target = dataset.prepare_data(0)['data_samples'].target_tokens
    # 3 of the 5 real objects (object_order 'none': the first three), then EOS; the crowd box is not among them
    assert target[15] == tokenizer.EOS and tokenizer.is_coord(target[:15].view(3, 5)[:, :4]).all()
    xmin = tokenizer.dequantize(target[:15].view(3, 5)[:, 1]) * 128
    assert xmin.tolist() == pytest.approx([10, 20, 30], abs=0.6)


def test_images_without_annotations_train_on_an_empty_sequence(tmp_path):
    write_image(tmp_path / 'a.png', 64, 96)
    path = write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png')], annotations=[], categories=CATEGORIES))
    packed = build_dataset(tmp_path, path, TRAIN_PIPELINE).prepare_data(0)
    assert packed['data_samples'].target_tokens[0] == 1  # EOS first
    assert packed['data_samples'].token_weights[1:].sum() == 0


def test_dataset_classes_must_be_categories_of_the_file(tmp_path):
    categories = [dict(id=1, name='circle'), dict(id=2, name='box')]
    path = write_annotations(tmp_path, dict(images=[], annotations=[], categories=categories))
    with pytest.raises(ValueError, match=r"classes \['square', 'triangle', 'star'\] are not category names.*"
                                         r"\['circle', 'box'\]"):
        build_dataset(tmp_path, path)


# ------------------------------------------------------------------------------------------------------- config
def synthetic_model(synthetic_cfg, **tokenizer):
    model_cfg = copy.deepcopy(synthetic_cfg.model)
    model_cfg.head.tokenizer.update(tokenizer)
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def train_set(synthetic_root):
    """The synthetic training set with the synthetic config's classes (4) and TRAIN_PIPELINE (max_objects 3)."""
    return DATASETS.build(dict(type='CocoDataset', data_root=str(synthetic_root),
                               ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                               metainfo=dict(classes=CLASSES), pipeline=TRAIN_PIPELINE))


@pytest.mark.parametrize('tokenizer, message', [
    (dict(num_classes=5), r'train_dataloader.dataset has 4 classes \(circle, square, triangle, star\) but '
                          r'model.head.tokenizer.num_classes is 5: set num_classes=4'),
    (dict(max_objects=2), r'Pix2SeqSequenceAug has num_classes=4, num_bins=128, max_objects=3 \(vocabulary of 136 '
                          r'tokens, sequences of 16\) but model.head.tokenizer has .*max_objects=2 .*sequences of 11'),
    (dict(num_bins=64), r'Pix2SeqSequenceAug has .*num_bins=128.* \(vocabulary of 136 tokens.*but '
                        r'model.head.tokenizer has .*num_bins=64.*\(72 tokens'),
])
def test_model_dataset_and_pipeline_disagreements_fail_before_training(synthetic_cfg, train_set, tokenizer, message):
    model = synthetic_model(synthetic_cfg, **{'max_objects': 3, **tokenizer})
    runner = SimpleNamespace(model=model, train_dataloader=SimpleNamespace(dataset=train_set))
    with pytest.raises(ValueError, match=message):
        ConsistencyCheckHook().before_train(runner)


def test_training_pipeline_without_sequences_fails_before_training(synthetic_cfg, train_set):
    dataset = copy.copy(train_set)
    dataset.pipeline = SimpleNamespace(transforms=train_set.pipeline.transforms[:3])
    runner = SimpleNamespace(model=synthetic_model(synthetic_cfg, max_objects=3),
                             train_dataloader=SimpleNamespace(dataset=dataset))
    with pytest.raises(ValueError, match='must contain Pix2SeqSequenceAug followed by PackPix2SeqInputs'):
        ConsistencyCheckHook().before_train(runner)


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
         r'neck.convs.0.conv.weight \(1, 1, 1, 1\) vs \(128, 64, 1, 1\)'),
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


# ------------------------------------------------------------------------------------------------------ numerics
def training_batch(model, batch_size=2):
    tokenizer = model.head.tokenizer
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0)))
        target = tokenizer.encode(torch.tensor([[0.1, 0.2, 0.5, 0.6]]), torch.tensor([1]))
        sample.target_tokens = target
        sample.input_tokens = torch.cat([torch.tensor([tokenizer.BOS]), target[:-1]])
        sample.token_weights = (target != tokenizer.PAD).float()
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(batch_size)],
                data_samples=samples)


def test_non_finite_loss_stops_before_the_update_naming_the_iteration(synthetic_cfg):
    model = synthetic_model(synthetic_cfg)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(training_batch(model), optim_wrapper)
    assert torch.isfinite(log_vars['loss']) and not log_vars['loss'].requires_grad
    weights = {name: value.detach().clone() for name, value in model.named_parameters()}
    with torch.no_grad():
        model.head.output_bias[5] = float('nan')
    MessageHub.get_current_instance().update_info('iter', 7)
    with pytest.raises(FloatingPointError, match=r'loss is not finite at iteration 8 \(loss=nan.*class_ce=nan.*\); '
                                                 r'training stopped before this update'):
        model.train_step(training_batch(model), optim_wrapper)
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


# ------------------------------------------------------------------------------------------------------ decoding
def test_malformed_decoded_slots_are_dropped_never_raised(synthetic_cfg):
    head = synthetic_model(synthetic_cfg).head
    head.classes_per_box = 1  # one detection per decoded box (the synthetic config makes one per class)
    tokenizer = head.tokenizer
    good = tokenizer.quantize(torch.tensor([0.1, 0.2, 0.5, 0.6])).tolist()
    real = tokenizer.CLASS_OFFSET + 1
    slots = [good + [real],
             good[:3] + [tokenizer.vocab_size + 7, real],  # an out-of-range bin
             [tokenizer.PAD] + good[1:] + [real],  # a non-coordinate token where a coordinate belongs
             good + [tokenizer.coord_offset + 3],  # a coordinate where the class belongs
             good[:2] + [good[0] - 5, good[3], real],  # ymax < ymin
             [-4] + good[1:] + [real]]  # a negative id
    meta = dict(img_shape=(128, 128), pad_shape=(128, 128))
    result = head.tokens_to_instances(torch.tensor(sum(slots, [])), torch.full((6, 4), 0.25), meta, rescale=False)
    assert result.bboxes.tolist() == [pytest.approx([25.2, 13.1, 76.6, 64.5], abs=0.1)]
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        tokens = torch.randint(-5, tokenizer.vocab_size + 30, (30, ), generator=generator)
        result = head.tokens_to_instances(tokens, torch.rand(6, 4, generator=generator), meta, rescale=False)
        assert torch.all((result.bboxes >= 0) & (result.bboxes <= 128))
        assert torch.all((result.labels >= 0) & (result.labels < 4))
    for length in (0, 4, 7, 31):  # the tokenizer reads whole 5-token slots only
        boxes, class_tokens, valid = tokenizer.decode(torch.randint(-5, tokenizer.vocab_size + 30, (2, length)))
        assert boxes.shape == (2, length // 5, 4) and valid.shape == class_tokens.shape == (2, length // 5)
