"""SequenceAugmentation: the training sequences the head builds from a batch's data samples."""
import copy
import json
import subprocess
import sys

import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from conftest import REPO_ROOT

from pix2seq_mmdet.models import Pix2SeqTokenizer, SequenceAugmentation
from pix2seq_mmdet.models.tokenizer import TOKENS_PER_OBJECT

NUM_CLASSES = 4


def make_sample(boxes_xyxy, labels, img_shape=(100, 200), pad_shape=None) -> DetDataSample:
    """A data sample as the pipeline and the data preprocessor leave it: pixel boxes of the image inside the
    padded frame (``pad_shape``, default: the image itself)."""
    sample = DetDataSample(metainfo=dict(img_shape=img_shape, pad_shape=pad_shape or img_shape))
    sample.gt_instances = InstanceData(
        bboxes=HorizontalBoxes(torch.tensor(boxes_xyxy, dtype=torch.float32).reshape(-1, 4)),
        labels=torch.tensor(labels, dtype=torch.long))
    return sample


def build(num_bins=100, max_objects=20, **kwargs) -> SequenceAugmentation:
    return SequenceAugmentation(Pix2SeqTokenizer(NUM_CLASSES, num_bins, max_objects), **kwargs)


def test_sequences_shapes_weights_and_real_tokens():
    torch.manual_seed(0)
    augmentation = build(object_order='none', class_label_corruption='none')
    inputs, target, weights = augmentation([make_sample([[20, 10, 60, 50], [100, 0, 200, 100]], [1, 3])])
    inputs, target, weights = inputs[0], target[0], weights[0]
    tokenizer = augmentation.tokenizer
    assert target.shape == inputs.shape == weights.shape == (tokenizer.seq_len, )
    assert target.dtype == inputs.dtype == torch.long and weights.dtype == torch.float32
    # first object: x 20-60 of 200 px, y 10-50 of 100 px -> ymin, xmin, ymax, xmax
    assert tokenizer.dequantize(target[:4]).tolist() == pytest.approx([0.1, 0.1, 0.5, 0.3], abs=0.006)
    assert tokenizer.labels(target[[4, 9]]).tolist() == [1, 3]
    assert torch.all(weights[:10] == 1)
    noise = slice(10, TOKENS_PER_OBJECT * 20)
    noise_weights = weights[noise].view(-1, TOKENS_PER_OBJECT)
    assert torch.all(noise_weights[:, :4] == 0) and torch.all(noise_weights[:, 4] == 1.0)
    assert torch.all(target[noise].view(-1, TOKENS_PER_OBJECT)[:, 4] == tokenizer.FAKE)
    assert target[-1] == tokenizer.EOS and weights[-1] == pytest.approx(0.1)
    assert inputs[0] == tokenizer.BOS and torch.equal(inputs[1:], target[:-1])


def test_a_batch_stacks_one_sequence_per_sample():
    augmentation = build(max_objects=5)
    samples = [make_sample([[0, 0, 50, 50]], [0]), make_sample([[10, 10, 30, 90], [0, 0, 5, 5]], [2, 1])]
    for tensor in augmentation(samples):
        assert tensor.shape == (2, 26)


def test_weights_follow_config_and_eos_without_noise():
    augmentation = build(noise_mode='none', eos_weight=0.3, class_label_corruption='none')
    _, target, weights = augmentation.sample_sequences(make_sample([[0, 0, 50, 50]], [0]))
    assert target[5] == augmentation.tokenizer.EOS and weights[5] == pytest.approx(0.3)
    assert torch.all(target[6:] == augmentation.tokenizer.PAD) and torch.all(weights[6:] == 0)
    _, empty, _ = augmentation.sample_sequences(make_sample([], []))
    assert empty[0] == augmentation.tokenizer.EOS


def test_class_weight_applies_to_real_class_tokens_only():
    augmentation = build(max_objects=4, class_weight=3.0, noise_class_weight=0.5, class_label_corruption='none')
    _, target, weights = augmentation.sample_sequences(make_sample([[0, 0, 50, 50], [60, 10, 90, 40]], [0, 2]))
    per_object = weights[:TOKENS_PER_OBJECT * 4].view(4, TOKENS_PER_OBJECT)
    assert torch.all(per_object[:2, :4] == 1) and torch.all(per_object[:2, 4] == 3.0)
    assert torch.all(per_object[2:, :4] == 0) and torch.all(per_object[2:, 4] == 0.5)


def test_empty_boxes_are_dropped():
    augmentation = build(noise_mode='none', class_label_corruption='none')
    _, target, _ = augmentation.sample_sequences(make_sample([[0, 0, 50, 50], [10, 10, 10, 40]], [0, 1]))
    assert target[5] == augmentation.tokenizer.EOS


def test_label_outside_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match='num_classes does not match'):
        build().sample_sequences(make_sample([[0, 0, 50, 50]], [NUM_CLASSES]))


def test_noise_proportions_match_config_and_boxes_stay_inside():
    torch.manual_seed(1)
    augmentation = build(max_objects=40, shift_fraction=0.5, max_duplicate_fraction=1.0)
    real = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.95]])
    whole_frame = torch.ones(2)
    counts = torch.zeros(3)
    for _ in range(400):
        boxes, kinds = augmentation.noise_boxes(real, 38, whole_frame)
        assert boxes.shape == (38, 4)
        assert torch.all((boxes >= 0) & (boxes <= 1))
        assert torch.all(boxes[:, 2:] >= boxes[:, :2])
        counts += torch.bincount(kinds, minlength=3)
    duplicate, shifted, random = (counts / counts.sum()).tolist()
    # duplicates ~ U{0..n}: half of the noise on average; the rest split evenly
    assert duplicate == pytest.approx(0.5, abs=0.05)
    assert shifted == pytest.approx(0.25, abs=0.04) and random == pytest.approx(0.25, abs=0.04)
    augmentation = build(max_objects=40, shift_fraction=0.8, max_duplicate_fraction=0.2)
    counts = sum(torch.bincount(augmentation.noise_boxes(real, 38, whole_frame)[1], minlength=3)
                 for _ in range(400)).float()
    duplicate, shifted, random = (counts / counts.sum()).tolist()
    assert duplicate == pytest.approx(3.5 / 38, abs=0.03)  # U{0..floor(38 * 0.2)} of 38
    assert shifted / (shifted + random) == pytest.approx(0.8, abs=0.04)


def test_noise_lies_on_the_image_not_on_the_padding():
    """A 100 x 50 image padded into a 400 x 400 frame: every noise box, random ones included, stays inside the image
    (the official code adds noise before padding), and random sizes are relative to the image."""
    torch.manual_seed(5)
    augmentation = build(max_objects=50, object_order='none', class_label_corruption='none')
    sample = make_sample([[5, 10, 30, 60]], [2], img_shape=(100, 50), pad_shape=(400, 400))
    extent = torch.tensor([100 / 400, 50 / 400])
    tokenizer = augmentation.tokenizer
    largest = torch.zeros(2)
    for _ in range(50):
        _, target, _ = augmentation.sample_sequences(sample)
        noise = tokenizer.dequantize(target[5:-1].view(-1, TOKENS_PER_OBJECT)[:, :4])
        half_bin = 0.5 / (tokenizer.num_bins - 1)
        assert torch.all(noise[:, 2:] <= extent + half_bin)
        largest = torch.maximum(largest, (noise[:, 2:] - noise[:, :2]).amax(0))
    # random boxes reach sizes of the order of the image, never of the frame
    assert torch.all(largest > 0.5 * extent) and torch.all(largest <= extent + 1e-6)


def test_noise_objects_come_in_random_order():
    """Duplicates, shifted and random boxes are shuffled together (official ``augment_bbox``), not grouped."""
    torch.manual_seed(6)
    augmentation = build(max_objects=30)
    real = torch.tensor([[0.2, 0.2, 0.6, 0.4]])
    first_kinds = set()
    grouped = 0
    for _ in range(100):
        _, kinds = augmentation.noise_boxes(real, 29, torch.ones(2))
        first_kinds.add(int(kinds[0]))
        grouped += bool(torch.all(kinds[:-1] <= kinds[1:]))
    assert first_kinds == {0, 1, 2}
    assert grouped < 20  # some draws are sorted by chance (e.g. all duplicates), most are not


def test_duplicates_are_jittered_copies_of_real_boxes():
    torch.manual_seed(2)
    augmentation = build(max_objects=30, max_duplicate_fraction=1.0)
    real = torch.tensor([[0.2, 0.2, 0.6, 0.4]])
    for _ in range(50):
        boxes, kinds = augmentation.noise_boxes(real, 29, torch.ones(2))
        duplicates = boxes[kinds == 0]
        # jitter is at most 0.1 of the box height (0.4) / width (0.2)
        assert torch.all((duplicates - real).abs() <= torch.tensor([0.04, 0.02, 0.04, 0.02]) + 1e-6)
        shifted = boxes[kinds == 1]
        inside = (shifted[:, 0] > 0) & (shifted[:, 2] < 1) & (shifted[:, 1] > 0) & (shifted[:, 3] < 1)
        assert torch.allclose(shifted[inside, 2:] - shifted[inside, :2], real[:, 2:] - real[:, :2], atol=1e-5)


def test_random_only_mode_and_no_real_boxes():
    augmentation = build(noise_mode='random_only')
    boxes, kinds = augmentation.noise_boxes(torch.tensor([[0.1, 0.1, 0.3, 0.3]]), 19, torch.ones(2))
    assert torch.all(kinds == 2) and boxes.shape == (19, 4)
    _, kinds = build().noise_boxes(torch.zeros(0, 4), 20, torch.ones(2))
    assert torch.all(kinds == 2)


@pytest.mark.parametrize('mode', ['rand_cls', 'real_n_fake_cls', 'rand_n_fake_cls'])
def test_class_corruption_rates_and_targets_unchanged(mode):
    torch.manual_seed(3)
    augmentation = build(noise_mode='none', class_label_corruption=mode, fake_class_prob=0.5, max_objects=10,
                         object_order='none')
    boxes = [[10 * i, 5 * i, 10 * i + 20, 5 * i + 30] for i in range(10)]
    labels = [i % NUM_CLASSES for i in range(10)]
    tokenizer = augmentation.tokenizer
    fake_count = same_count = total = 0
    sample = make_sample(boxes, labels)
    for _ in range(200):
        inputs, target, _ = augmentation.sample_sequences(sample)
        assert tokenizer.labels(target[4:50:5]).tolist() == labels
        input_classes = inputs[5:51:5]
        coordinate_positions = ~tokenizer.is_class_position(torch.arange(50))
        assert torch.equal(inputs[1:51][coordinate_positions], target[:50][coordinate_positions])
        fake_count += int((input_classes == tokenizer.FAKE).sum())
        same_count += int((input_classes == target[4:50:5]).sum())
        total += len(input_classes)
    fake_rate, same_rate = fake_count / total, same_count / total
    if mode == 'rand_cls':
        assert fake_rate == 0 and same_rate == pytest.approx(1 / NUM_CLASSES, abs=0.05)
    elif mode == 'real_n_fake_cls':
        assert fake_rate == pytest.approx(0.5, abs=0.05) and same_rate == pytest.approx(0.5, abs=0.05)
    else:
        assert fake_rate == pytest.approx(0.5, abs=0.05)
        assert same_rate == pytest.approx(0.5 / NUM_CLASSES, abs=0.04)


def test_input_token_drop():
    torch.manual_seed(4)
    augmentation = build(class_label_corruption='none', input_seq_drop_rate=0.3)
    inputs, target, _ = augmentation.sample_sequences(make_sample([[0, 0, 50, 50]], [0]))
    dropped = (inputs[1:] != target[:-1])
    assert torch.all(inputs[1:][dropped] == augmentation.tokenizer.FAKE)
    assert dropped.float().mean().item() == pytest.approx(0.3, abs=0.08)
    assert inputs[0] == augmentation.tokenizer.BOS


def test_sequences_per_image_have_their_own_order_noise_and_corruption():
    """K sequences of one image in consecutive rows, each its own draw of the object order, the noise objects and the
    input corruption; the real objects are the same in all of them."""
    torch.manual_seed(0)
    boxes = [[10 * i, 5, 10 * i + 8, 60] for i in range(5)]
    samples = [make_sample(boxes, [0, 1, 2, 3, 0]), make_sample([[0, 0, 50, 50]], [1])]
    inputs, targets, weights = build(max_objects=8, sequences_per_image=4)(samples)
    assert inputs.shape == targets.shape == weights.shape == (8, 5 * 8 + 1)
    first = targets[:4, :5 * 5].view(4, 5, 5)  # the five real objects of the first image, per sequence
    orders = {tuple(slots[:, 1].tolist()) for slots in first}  # xmin tokens in sequence order
    assert len(orders) > 1 and all(sorted(order) == sorted(next(iter(orders))) for order in orders)
    noise = targets[:4, 5 * 5:5 * 8]
    assert len({tuple(row.tolist()) for row in noise}) == 4
    assert not torch.equal(inputs[0], inputs[1])
    assert torch.equal(targets[4:, :4], targets[4:5, :4].expand(4, -1))  # the second image's one real box


@pytest.mark.parametrize('kwargs', [dict(noise_mode='all'), dict(class_label_corruption='fake'),
                                    dict(object_order='size'), dict(shift_fraction=1.5), dict(jitter_std=-1),
                                    dict(class_weight=-1), dict(sequences_per_image=0)])
def test_invalid_arguments_fail_at_build_time(kwargs):
    with pytest.raises(ValueError, match='model.train_cfg'):
        build(**kwargs)


# ------------------------------------------------------------ through the synthetic config's data path
def synthetic_dataloader_cfg(cfg, root, batch_size=4, batch_repeat=1):
    dataloader = copy.deepcopy(cfg.train_dataloader)
    dataloader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    dataloader.sampler = dict(type='BatchRepeatSampler', batch_repeat=batch_repeat, shuffle=True)
    dataloader.dataset.data_root = str(root)
    return dataloader


def test_config_batch_becomes_sequences_and_a_finite_loss(synthetic_cfg, synthetic_root):
    """dataset -> pipeline -> batch repetition -> preprocessor (fixed frame) -> the head's sequences -> loss."""
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    dataloader = Runner.build_dataloader(synthetic_dataloader_cfg(synthetic_cfg, synthetic_root, batch_repeat=2),
                                         seed=0)
    model = MODELS.build(copy.deepcopy(synthetic_cfg.model))
    data = model.data_preprocessor(next(iter(dataloader)), training=True)
    samples = data['data_samples']
    assert data['inputs'].shape == (4, 3, 128, 128)
    # batch repetition: consecutive copies of one image, each with its own sequence augmentation
    assert samples[0].img_path == samples[1].img_path and samples[2].img_path == samples[3].img_path
    inputs, _, weights = model.head.sequence_augmentation(samples)
    assert not torch.equal(inputs[0], inputs[1])
    for sample, sample_weights in zip(samples, weights):
        num_real = len(sample.gt_instances)
        assert torch.all(sample_weights[:TOKENS_PER_OBJECT * num_real] == 1)
        noise_weights = sample_weights[TOKENS_PER_OBJECT * num_real:-1].view(-1, TOKENS_PER_OBJECT)
        assert torch.all(noise_weights[:, :4] == 0) and torch.all(noise_weights[:, 4] == 1)
        assert sample.metainfo['pad_shape'][:2] == (128, 128)
    assert torch.isfinite(model(**data, mode='loss')['loss'])


@pytest.fixture(scope='module')
def varied_root(tmp_path_factory):
    """A few images of the varied preset: each its own size and aspect, resized into the 128-px frame and padded."""
    root = tmp_path_factory.mktemp('synthetic_varied')
    subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'generate_synthetic.py'), '--preset', 'varied',
                    '--out-dir', str(root), '--num-train', '12', '--num-val', '2', '--seed', '5'], check=True,
                   capture_output=True)
    return root


def test_sequence_boxes_are_the_annotations_resized_and_flipped(synthetic_cfg, varied_root):
    """The real tokens encode the file's annotations as mmdet's transforms leave them: scaled into the frame, and
    mirrored across the resized image (not the padded frame) when the pipeline flipped it; the expected boxes are
    computed here by hand from the COCO file and the ``scale_factor`` / ``flip`` metainfo."""
    from mmdet.registry import MODELS
    coco = json.loads((varied_root / 'annotations' / 'instances_train.json').read_text())
    boxes_of = {}
    for annotation in coco['annotations']:
        x, y, w, h = annotation['bbox']
        boxes_of.setdefault(annotation['image_id'], []).append([x, y, x + w, y + h])
    dataloader = Runner.build_dataloader(synthetic_dataloader_cfg(synthetic_cfg, varied_root, batch_size=4), seed=1)
    model = MODELS.build(copy.deepcopy(synthetic_cfg.model))
    tokenizer = model.head.tokenizer
    frame = model.data_preprocessor.pad_size
    half_bin = 0.5 * max(frame) / (tokenizer.num_bins - 1) + 1e-3
    flipped = padded = 0
    for _ in range(3):  # epochs: other flips
        for batch in dataloader:
            samples = model.data_preprocessor(batch, training=True)['data_samples']
            _, target_tokens, _ = model.head.sequence_augmentation(samples)
            for sample, target in zip(samples, target_tokens):
                img_h, img_w = sample.metainfo['img_shape'][:2]
                expected = torch.tensor(boxes_of.get(sample.metainfo['img_id'], []), dtype=torch.float32)
                expected = expected.reshape(-1, 4) * torch.tensor(sample.metainfo['scale_factor']).repeat(2)
                if sample.metainfo['flip']:
                    assert sample.metainfo['flip_direction'] == 'horizontal'
                    expected = torch.stack([img_w - expected[:, 2], expected[:, 1], img_w - expected[:, 0],
                                            expected[:, 3]], dim=1)
                    flipped += 1
                padded += (img_h, img_w) != tuple(frame)
                assert len(sample.gt_instances) == len(expected)
                if len(expected) == 0:
                    continue
                slots = target[:TOKENS_PER_OBJECT * len(expected)].view(-1, TOKENS_PER_OBJECT)
                encoded = tokenizer.denormalize_boxes(tokenizer.dequantize(slots[:, :4]), frame)
                # every annotation is encoded once (in the sequence's order), within half a bin
                distance = (encoded[:, None, :] - expected[None]).abs().amax(-1)
                assert torch.all(distance.min(1).values <= half_bin) and torch.all(distance.min(0).values <= half_bin)
    assert flipped >= 4 and padded >= 12
