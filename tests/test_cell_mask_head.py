"""The auxiliary cell mask head: the pixels of every token's cell, its targets from mmdet's masks, its loss."""
import copy

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData
from model_utils import IMAGE_SIZE, build_model, make_batch

from pix2seq_mmdet.models import CellMaskHead


def masked_sample(masks, img_hw=(50, 60), frame_hw=(64, 64)):
    sample = DetDataSample(metainfo=dict(img_shape=img_hw, pad_shape=frame_hw, batch_input_shape=frame_hw,
                                         img_path='shapes.png'))
    sample.gt_instances = InstanceData(bboxes=torch.zeros(len(masks), 4), labels=torch.zeros(len(masks)).long(),
                                       masks=masks)
    return sample


def test_logits_lay_every_token_over_its_own_cell():
    """Token (i, j) predicts the pixels (i * s + u, j * s + v), 0 <= u, v < s, in row-major order of its cell."""
    head = CellMaskHead(in_channels=3, stride=4)
    with torch.no_grad():  # logit = token value * (u * s + v) + 1000 * token index
        head.proj.weight.zero_()
        head.proj.bias.zero_()
        head.proj.weight[:, 0] = torch.arange(16.0)
        head.proj.weight[:, 1] = 1000.0
    feat_h, feat_w = 2, 3
    encoded = torch.zeros(1, feat_h * feat_w, 3)
    encoded[0, :, 0] = 1.0
    encoded[0, :, 1] = torch.arange(feat_h * feat_w, dtype=torch.float32)
    logits = head(encoded, (feat_h, feat_w))[0]
    assert logits.shape == (8, 12)
    for row in range(8):
        for col in range(12):
            token = (row // 4) * feat_w + col // 4
            assert logits[row, col] == 1000 * token + (row % 4) * 4 + col % 4


@pytest.mark.parametrize('kind', ['polygon', 'bitmap'])
def test_targets_are_the_union_of_the_masks_in_the_padded_frame(kind):
    height, width = 50, 60
    squares = [(5, 8, 20, 30), (40, 25, 59, 49)]  # x0, y0, x1, y1: pixel x0 .. x1 - 1 covered
    if kind == 'polygon':
        masks = PolygonMasks([[np.array([x0, y0, x1, y0, x1, y1, x0, y1], dtype=np.float64)]
                              for x0, y0, x1, y1 in squares], height, width)
    else:
        bitmaps = np.zeros((2, height, width), dtype=np.uint8)
        for index, (x0, y0, x1, y1) in enumerate(squares):
            bitmaps[index, y0:y1, x0:x1] = 1
        masks = BitmapMasks(bitmaps, height, width)
    empty = masked_sample(PolygonMasks([], height, width))
    targets = CellMaskHead(8, stride=16).targets([masked_sample(masks), empty], (64, 64))
    expected = np.zeros((64, 64), dtype=np.float32)
    for x0, y0, x1, y1 in squares:
        expected[y0:y1, x0:x1] = 1
    assert np.array_equal(targets[0].numpy(), expected)
    assert targets[1].sum() == 0


def test_targets_need_masks():
    sample = masked_sample(PolygonMasks([], 50, 60))
    del sample.gt_instances.masks
    with pytest.raises(ValueError, match=r'shapes.png: CellMaskHead trains on instance masks; load them with '
                                         r'LoadAnnotations\(with_mask=True\), got no masks'):
        CellMaskHead(8, stride=16).targets([sample], (64, 64))


def test_the_model_trains_the_encoder_with_it_and_predicts_without_it(synthetic_cfg):
    """``aux_mask_head``: ``aux_loss_mask`` is logged, reaches the encoder and the backbone but not the decoder, a
    wrong stride is named, and the weights leave the sequence loss and prediction alone."""
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.aux_mask_head = dict(stride=16, loss_weight=2.0)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.aux_mask_head.proj.in_features == model.encoder_dims
    inputs, samples = make_batch(model)
    for sample in samples:
        boxes = sample.gt_instances.bboxes.numpy()
        sample.gt_instances.masks = PolygonMasks([[np.array([x0, y0, x1, y0, x1, y1, x0, y1])]
                                                  for x0, y0, x1, y1 in boxes], IMAGE_SIZE, IMAGE_SIZE)
    losses = model.loss(inputs, samples)
    assert losses['aux_loss_mask'].item() > 0
    losses['aux_loss_mask'].backward()
    assert model.encoder.norm.weight.grad.abs().sum() > 0 and model.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.head.parameters())
    # the loss is its weight times the mean binary cross-entropy of the frame's pixels (in eval mode, without
    # dropout, the encoder gives the same output twice)
    model.eval()
    eval_loss = model.loss(inputs, samples)['aux_loss_mask']
    targets = model.aux_mask_head.targets(samples, (IMAGE_SIZE, IMAGE_SIZE))
    encoded = model.forward_encoder(model.extract_feat(inputs), samples)[2]
    expected = 2.0 * torch.nn.functional.binary_cross_entropy_with_logits(
        model.aux_mask_head(encoded, (IMAGE_SIZE // 16, IMAGE_SIZE // 16)), targets)
    assert eval_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = build_model(synthetic_cfg).eval()
    plain.load_state_dict({key: value for key, value in model.state_dict().items()
                           if not key.startswith('aux_mask_head.')})
    torch.manual_seed(2)  # the same random training sequences for both
    logits = model(inputs, samples, mode='tensor')
    torch.manual_seed(2)
    assert torch.equal(plain(inputs, samples, mode='tensor'), logits)
    cfg.model.aux_mask_head = dict(stride=8)
    wrong = build_model(cfg)
    with pytest.raises(ValueError, match='CellMaskHead stride 8 does not fit the feature map: 4 x 4 features of a '
                                         '64 x 64 input'):
        wrong.loss(inputs, samples)
