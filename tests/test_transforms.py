import numpy as np
import pytest
import torch
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes

import pix2seq_mmdet  # noqa: F401
from pix2seq_mmdet.tokenizer import TOKENS_PER_OBJECT

NUM_CLASSES = 4


def make_results(boxes_xyxy, labels, size=(100, 200), ignore=None):
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    return dict(img_shape=size, pad_shape=size, gt_bboxes=HorizontalBoxes(boxes),
                gt_bboxes_labels=np.asarray(labels, dtype=np.int64),
                gt_ignore_flags=np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore))


def build(**kwargs):
    cfg = dict(type='Pix2SeqSequenceAug', num_classes=NUM_CLASSES, num_bins=100, max_objects=20)
    cfg.update(kwargs)
    return TRANSFORMS.build(cfg)


def test_sequences_shapes_weights_and_real_tokens():
    torch.manual_seed(0)
    transform = build(object_order='none', class_label_corruption='none')
    results = transform(make_results([[20, 10, 60, 50], [100, 0, 200, 100]], [1, 3]))
    tokenizer = transform.tokenizer
    target, inputs, weights = results['target_tokens'], results['input_tokens'], results['token_weights']
    assert target.shape == inputs.shape == weights.shape == (tokenizer.seq_len, )
    assert target.dtype == inputs.dtype == torch.long and weights.dtype == torch.float32
    # first object: x 20-60 of 200 px, y 10-50 of 100 px -> ymin, xmin, ymax, xmax
    assert tokenizer.dequantize(target[:4]).tolist() == pytest.approx([0.1, 0.1, 0.5, 0.3], abs=0.006)
    assert target[4] == tokenizer.CLASS_OFFSET + 1 and target[9] == tokenizer.CLASS_OFFSET + 3
    assert torch.all(weights[:10] == 1)
    noise = slice(10, TOKENS_PER_OBJECT * 20)
    noise_weights = weights[noise].view(-1, TOKENS_PER_OBJECT)
    assert torch.all(noise_weights[:, :4] == 0) and torch.all(noise_weights[:, 4] == 1.0)
    assert torch.all(target[noise].view(-1, TOKENS_PER_OBJECT)[:, 4] == tokenizer.FAKE)
    assert target[-1] == tokenizer.EOS and weights[-1] == pytest.approx(0.1)
    assert inputs[0] == tokenizer.BOS and torch.equal(inputs[1:], target[:-1])


def test_weights_follow_config_and_eos_without_noise():
    transform = build(noise_mode='none', eos_weight=0.3, class_label_corruption='none')
    results = transform(make_results([[0, 0, 50, 50]], [0]))
    target, weights = results['target_tokens'], results['token_weights']
    assert target[5] == transform.tokenizer.EOS and weights[5] == pytest.approx(0.3)
    assert torch.all(target[6:] == transform.tokenizer.PAD) and torch.all(weights[6:] == 0)
    empty = transform(make_results(np.zeros((0, 4)), []))
    assert empty['target_tokens'][0] == transform.tokenizer.EOS


def test_ignored_and_empty_boxes_are_dropped():
    transform = build(noise_mode='none', class_label_corruption='none')
    results = transform(make_results([[0, 0, 50, 50], [10, 10, 10, 40], [5, 5, 90, 90]], [0, 1, 2],
                                     ignore=[False, False, True]))
    assert results['target_tokens'][5] == transform.tokenizer.EOS


def test_label_outside_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match='num_classes does not match'):
        build()(make_results([[0, 0, 50, 50]], [NUM_CLASSES]))


def test_noise_proportions_match_config_and_boxes_stay_inside():
    torch.manual_seed(1)
    transform = build(max_objects=40, shift_fraction=0.5, max_duplicate_fraction=1.0)
    real = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.95]])
    counts = torch.zeros(3)
    for _ in range(400):
        boxes, kinds = transform.noise_boxes(real, 38)
        assert boxes.shape == (38, 4)
        assert torch.all((boxes >= 0) & (boxes <= 1))
        assert torch.all(boxes[:, 2:] >= boxes[:, :2])
        counts += torch.bincount(kinds, minlength=3)
    duplicate, shifted, random = (counts / counts.sum()).tolist()
    # duplicates ~ U{0..n}: half of the noise on average; the rest split evenly
    assert duplicate == pytest.approx(0.5, abs=0.05)
    assert shifted == pytest.approx(0.25, abs=0.04) and random == pytest.approx(0.25, abs=0.04)
    transform = build(max_objects=40, shift_fraction=0.8, max_duplicate_fraction=0.2)
    counts = sum(torch.bincount(transform.noise_boxes(real, 38)[1], minlength=3) for _ in range(400)).float()
    duplicate, shifted, random = (counts / counts.sum()).tolist()
    assert duplicate == pytest.approx(3.5 / 38, abs=0.03)  # U{0..floor(38 * 0.2)} of 38
    assert shifted / (shifted + random) == pytest.approx(0.8, abs=0.04)


def test_duplicates_are_jittered_copies_of_real_boxes():
    torch.manual_seed(2)
    transform = build(max_objects=30, max_duplicate_fraction=1.0)
    real = torch.tensor([[0.2, 0.2, 0.6, 0.4]])
    for _ in range(50):
        boxes, kinds = transform.noise_boxes(real, 29)
        duplicates = boxes[kinds == 0]
        # jitter is at most 0.1 of the box height (0.4) / width (0.2)
        assert torch.all((duplicates - real).abs() <= torch.tensor([0.04, 0.02, 0.04, 0.02]) + 1e-6)
        shifted = boxes[kinds == 1]
        inside = (shifted[:, 0] > 0) & (shifted[:, 2] < 1) & (shifted[:, 1] > 0) & (shifted[:, 3] < 1)
        assert torch.allclose(shifted[inside, 2:] - shifted[inside, :2], real[:, 2:] - real[:, :2], atol=1e-5)


def test_random_only_mode_and_no_real_boxes():
    transform = build(noise_mode='random_only')
    boxes, kinds = transform.noise_boxes(torch.tensor([[0.1, 0.1, 0.3, 0.3]]), 19)
    assert torch.all(kinds == 2) and boxes.shape == (19, 4)
    _, kinds = build().noise_boxes(torch.zeros(0, 4), 20)
    assert torch.all(kinds == 2)


@pytest.mark.parametrize('mode', ['rand_cls', 'real_n_fake_cls', 'rand_n_fake_cls'])
def test_class_corruption_rates_and_targets_unchanged(mode):
    torch.manual_seed(3)
    transform = build(noise_mode='none', class_label_corruption=mode, fake_class_prob=0.5, max_objects=10,
                      object_order='none')
    boxes = [[10 * i, 5 * i, 10 * i + 20, 5 * i + 30] for i in range(10)]
    labels = [i % NUM_CLASSES for i in range(10)]
    class_offset, fake = transform.tokenizer.CLASS_OFFSET, transform.tokenizer.FAKE
    fake_count = same_count = total = 0
    for _ in range(200):
        results = transform(make_results(boxes, labels))
        target, inputs = results['target_tokens'], results['input_tokens']
        assert target[4:50:5].tolist() == [label + class_offset for label in labels]
        input_classes = inputs[5:51:5]
        coordinate_positions = torch.ones(50, dtype=torch.bool)
        coordinate_positions[4::5] = False
        assert torch.equal(inputs[1:51][coordinate_positions], target[:50][coordinate_positions])
        fake_count += int((input_classes == fake).sum())
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
    transform = build(class_label_corruption='none', input_seq_drop_rate=0.3)
    results = transform(make_results([[0, 0, 50, 50]], [0]))
    target, inputs = results['target_tokens'], results['input_tokens']
    dropped = (inputs[1:] != target[:-1])
    assert torch.all(inputs[1:][dropped] == transform.tokenizer.FAKE)
    assert dropped.float().mean().item() == pytest.approx(0.3, abs=0.08)
    assert inputs[0] == transform.tokenizer.BOS


@pytest.mark.parametrize('kwargs', [dict(noise_mode='all'), dict(class_label_corruption='fake'),
                                    dict(object_order='size'), dict(shift_fraction=1.5), dict(jitter_std=-1),
                                    dict(num_bins=1), dict(max_objects=0)])
def test_invalid_arguments_fail_at_build_time(kwargs):
    with pytest.raises(ValueError):
        build(**kwargs)
