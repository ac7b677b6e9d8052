"""Pix2SeqHead: its loss options and the detections it makes of decoded sequences."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from model_utils import IMAGE_SIZE, build_model, make_batch
from runner_utils import train_in_process, train_losses

import pix2seq_mmdet.engine.checkpoint_loader  # noqa: F401  (loads the run's own files on torch >= 2.6)
from conftest import REPO_ROOT, SYNTHETIC_CONFIG


def test_predict_returns_rescaled_instances(synthetic_cfg):
    torch.manual_seed(8)
    # near-uniform sampling of 30 slots: about half the boxes are well-formed, the rest must be dropped
    model = build_model(synthetic_cfg, max_objects=30, strategy='nucleus', top_p=1.0, temperature=3.0,
                        constrained=True, max_per_img=12).eval()
    inputs, samples = make_batch(model)
    with torch.no_grad():
        results = model.predict(inputs, samples)
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape[1] == 4 and pred.bboxes.dtype == torch.float32
        assert 0 < len(pred.bboxes) == len(pred.scores) == len(pred.labels) <= 12
        assert torch.all(pred.scores[:-1] >= pred.scores[1:])
        assert torch.all((pred.labels >= 0) & (pred.labels < 4))
        # rescaled to the 128-px original (scale_factor 0.5): inside it, possibly beyond the 64-px input
        assert torch.all((pred.bboxes >= 0) & (pred.bboxes <= 2 * IMAGE_SIZE))
        assert torch.all(pred.bboxes[:, 2:] > pred.bboxes[:, :2])


def test_tokens_to_instances_drops_malformed_slots_and_undoes_flip(synthetic_cfg):
    head = build_model(synthetic_cfg).head
    head.classes_per_box = 1  # the paper's one detection per box (the synthetic config makes one per class)
    tokenizer = head.tokenizer
    box = tokenizer.quantize(torch.tensor([0.25, 0.5, 0.75, 1.0]))
    bad_box = tokenizer.quantize(torch.tensor([0.75, 0.5, 0.25, 1.0]))  # ymax < ymin
    tokens = torch.cat([box, torch.tensor([tokenizer.CLASS_OFFSET + 2]),
                        bad_box, torch.tensor([tokenizer.CLASS_OFFSET]),
                        torch.tensor([tokenizer.CLASS_OFFSET, 0, 0, 0, tokenizer.CLASS_OFFSET])])
    tokens = torch.cat([tokens, torch.full((30 - len(tokens), ), tokenizer.PAD)])
    class_probs = torch.full((6, 4), 0.25)
    class_probs[0] = torch.tensor([0.1, 0.1, 0.7, 0.1])
    meta = dict(img_shape=(100, 100), pad_shape=(100, 100), scale_factor=(0.5, 0.5))
    result = head.tokens_to_instances(tokens, class_probs, meta)
    assert result.labels.tolist() == [2] and result.scores.tolist() == pytest.approx([0.7])
    assert result.bboxes[0].tolist() == pytest.approx([100.0, 50.0, 200.0, 150.0], abs=1.0)
    flipped = head.tokens_to_instances(tokens, class_probs, dict(meta, flip=True, flip_direction='horizontal'))
    assert flipped.bboxes[0].tolist() == pytest.approx([0.0, 50.0, 100.0, 150.0], abs=1.0)
    # the image fills only the left half of the padded input: a box in the right half is dropped, not clipped to 0
    left_half = head.tokens_to_instances(tokens, class_probs, dict(meta, img_shape=(100, 50)))
    assert len(left_half) == 0


def test_gaussian_coordinate_target_rewards_near_misses(synthetic_cfg):
    head = build_model(synthetic_cfg).head
    tokenizer = head.tokenizer
    target = torch.tensor([[tokenizer.coord_offset + 60, tokenizer.CLASS_OFFSET + 1]])
    logits = torch.zeros(3, 2, tokenizer.vocab_size)
    logits[0, 0, tokenizer.coord_offset + 61] = 10.0  # one bin off
    logits[1, 0, tokenizer.coord_offset + 80] = 10.0  # twenty bins off
    logits[2, 0, tokenizer.coord_offset + 60] = 10.0  # right
    logits[:, 1, tokenizer.CLASS_OFFSET + 1] = 10.0
    hard = head._token_cross_entropy(logits, target.expand(3, 2))
    assert hard[0, 0] == pytest.approx(hard[1, 0].item())  # the paper's one-hot target: any miss is a miss
    head.coord_target_sigma = 2.0
    soft = head._token_cross_entropy(logits, target.expand(3, 2))
    assert soft[2, 0] < soft[0, 0] < soft[1, 0]
    assert torch.allclose(soft[:, 1], hard[:, 1])  # class tokens keep the one-hot target


def build_model_with_box_losses(synthetic_cfg, **losses):
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.head.update(losses)
    return build_model(synthetic_cfg)


def one_object_sequences(tokenizer, box_yxyx, bin_shift=0, noise_bins=(3, 9, 90, 120)):
    """Targets, weights and peaked logits of two sequences: one real object then one noise object, and an empty
    one; the logits put the real coordinates ``bin_shift`` bins off their targets, the noise ones at
    ``noise_bins``."""
    real = tokenizer.quantize(torch.tensor(box_yxyx))
    noise = torch.tensor(noise_bins) + tokenizer.coord_offset
    length = tokenizer.seq_len
    targets = torch.full((2, length), tokenizer.PAD)
    targets[0, :10] = torch.cat([real, torch.tensor([tokenizer.CLASS_OFFSET + 1]), noise,
                                 torch.tensor([tokenizer.FAKE])])
    targets[0, 10] = targets[1, 0] = tokenizer.EOS
    weights = torch.zeros(2, length)
    weights[0, :5] = 1.0
    weights[0, 9] = weights[0, 10] = weights[1, 0] = 1.0  # FAKE and EOS; the noise coordinates weigh 0
    logits = torch.zeros(2, length, tokenizer.vocab_size)
    logits[0, torch.arange(4), real + bin_shift] = 40.0
    logits[0, torch.arange(5, 9), noise] = 40.0
    return targets, weights, logits


def test_expected_box_losses_measure_how_far_the_real_boxes_are(synthetic_cfg):
    from mmdet.structures.bbox import bbox_overlaps
    head = build_model_with_box_losses(synthetic_cfg, loss_bbox=dict(type='L1Loss', loss_weight=1.0),
                                       loss_iou=dict(type='GIoULoss', loss_weight=1.0)).head
    tokenizer = head.tokenizer
    box = [0.2, 0.3, 0.5, 0.4]  # yxyx
    targets, weights, exact = one_object_sequences(tokenizer, box)
    losses = head.expected_box_losses(exact, targets, weights)
    assert set(losses) == {'loss_bbox', 'loss_iou'}
    assert losses['loss_bbox'].item() == pytest.approx(0.0, abs=1e-5)
    assert losses['loss_iou'].item() == pytest.approx(0.0, abs=1e-5)
    # ten bins too far on every coordinate: the L1 is the four distances, the IoU loss 1 - GIoU of the two boxes
    _, _, shifted = one_object_sequences(tokenizer, box, bin_shift=10)
    losses = head.expected_box_losses(shifted, targets, weights)
    step = 10 / (tokenizer.num_bins - 1)
    assert losses['loss_bbox'].item() == pytest.approx(4 * step, rel=1e-4)
    target_bins = tokenizer.dequantize(tokenizer.quantize(torch.tensor(box)))
    to_xyxy = [1, 0, 3, 2]
    giou = bbox_overlaps((target_bins + step)[to_xyxy][None], target_bins[to_xyxy][None], mode='giou')
    assert losses['loss_iou'].item() == pytest.approx(1 - giou.item(), rel=1e-4)
    # the noise object's coordinates (weight 0) and the empty sequence do not count
    _, _, other_noise = one_object_sequences(tokenizer, box, bin_shift=10, noise_bins=(50, 60, 20, 10))
    other_noise[1] = torch.randn(other_noise.shape[1:])
    again = head.expected_box_losses(other_noise, targets, weights)
    assert all(again[name].item() == pytest.approx(losses[name].item(), rel=1e-6) for name in losses)
    # a batch without real objects: zero (not NaN)
    empty = head.expected_box_losses(torch.randn(2, targets.shape[1], tokenizer.vocab_size), targets,
                                     torch.zeros_like(weights))
    assert set(empty) == {'loss_bbox', 'loss_iou'} and all(value.item() == 0 for value in empty.values())


def test_expected_box_losses_join_the_loss_and_reach_the_decoder(synthetic_cfg):
    torch.manual_seed(0)
    model = build_model_with_box_losses(synthetic_cfg, loss_iou=dict(type='GIoULoss', loss_weight=2.0))
    inputs, samples = make_batch(model)
    losses = model.loss(inputs, samples)
    assert 'loss_iou' in losses and 'loss_bbox' not in losses and losses['loss_iou'].item() > 0
    model.zero_grad()
    losses['loss_iou'].backward()
    for part in (model.head.layers, model.encoder):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)


def test_classes_per_box_turns_a_box_into_one_detection_per_likely_class(synthetic_cfg):
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.test_cfg.classes_per_box = 2
    head = build_model(synthetic_cfg).head
    tokenizer = head.tokenizer
    box = tokenizer.quantize(torch.tensor([0.25, 0.5, 0.75, 1.0]))
    tokens = torch.cat([box, torch.tensor([tokenizer.CLASS_OFFSET + 2])])
    tokens = torch.cat([tokens, torch.full((30 - len(tokens), ), tokenizer.PAD)])
    class_probs = torch.zeros(6, 4)
    class_probs[0] = torch.tensor([0.1, 0.3, 0.5, 0.1])
    result = head.tokens_to_instances(tokens, class_probs, dict(img_shape=(100, 100), pad_shape=(100, 100)))
    assert result.labels.tolist() == [2, 1] and result.scores.tolist() == pytest.approx([0.5, 0.3])
    assert torch.equal(result.bboxes[0], result.bboxes[1])
    synthetic_cfg.model.test_cfg.classes_per_box = 5
    with pytest.raises(ValueError, match='classes_per_box'):
        build_model(synthetic_cfg)


def test_malformed_decoded_slots_are_dropped_never_raised(synthetic_cfg):
    head = build_model(synthetic_cfg).head
    head.classes_per_box = 1  # one detection per decoded box (the synthetic config makes one per class)
    tokenizer = head.tokenizer
    good = tokenizer.quantize(torch.tensor([0.1, 0.2, 0.5, 0.6])).tolist()
    real = int(tokenizer.class_tokens(torch.tensor([1])))
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


def test_two_gloo_processes_train_like_one_with_the_same_global_batch(synthetic_root, tmp_path):
    """Images have 1 to 3 objects, so the ranks' token-weight sums differ and only a loss normalised by the sum
    averaged over the ranks gives the one-process gradient; no random augmentation, frozen BatchNorm statistics."""
    annotations = json.loads((synthetic_root / 'annotations' / 'instances_train.json').read_text())
    annotations['annotations'] = [
        dict(id=3 * image['id'] + k, image_id=image['id'], category_id=annotations['categories'][k]['id'],
             bbox=[8 + 30 * k, 10 + 25 * k, 25, 40], area=1000.0, iscrowd=0)
        for image in annotations['images'] for k in range(1 + image['id'] % 3)]
    ann_file = tmp_path / 'one_to_three_objects.json'
    ann_file.write_text(json.dumps(annotations))
    config = tmp_path / 'ddp_equivalence.py'
    config.write_text(f'''
_base_ = [{str(SYNTHETIC_CONFIG)!r}]
train_dataloader = dict(batch_size=4, sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True), dataset=dict(
    data_root={f'{synthetic_root}/'!r}, ann_file={str(ann_file)!r}, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]))
model = dict(backbone=dict(norm_eval=True), train_cfg=dict(noise_mode='none', class_label_corruption='none'))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = None
train_cfg = dict(max_epochs=1)
val_dataloader = None
val_cfg = None
val_evaluator = None
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
log_processor = dict(window_size=1)
''')
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(29500 + (os.getpid() + 7) % 1000),
               PATH=f'{Path(sys.executable).parent}:{os.environ["PATH"]}')
    ddp = subprocess.Popen(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(tmp_path / 'ddp'),
                            '--cfg-options', 'train_dataloader.batch_size=2'], cwd=REPO_ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    single = train_in_process(Config.fromfile(str(config)), tmp_path / 'single')
    output, _ = ddp.communicate(timeout=600)
    assert ddp.returncode == 0, output[-3000:]
    single_losses, ddp_losses = train_losses(single), train_losses(tmp_path / 'ddp')
    assert sorted(single_losses) == sorted(ddp_losses) == [1, 2, 3, 4]
    assert [ddp_losses[step] for step in range(1, 5)] == pytest.approx(
        [single_losses[step] for step in range(1, 5)], rel=1e-4)
    assert len(set(single_losses.values())) == 4  # the weights moved between iterations
    single_weights = _load_checkpoint(str(single / 'epoch_1.pth'))['state_dict']
    ddp_weights = _load_checkpoint(str(tmp_path / 'ddp' / 'epoch_1.pth'))['state_dict']
    # Adam turns float noise in near-zero gradients (e.g. attention key biases, to which softmax is blind, or
    # convolution weights summed over a batch of 2 and of 4 in other orders) into updates of up to ~3e-4 over the
    # 4 steps; a wrong gradient would move weights by about the learning rate (2e-3) at every step
    for name, value in single_weights.items():
        assert torch.allclose(ddp_weights[name], value, rtol=1e-4, atol=5e-4), name
