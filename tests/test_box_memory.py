"""The head's ``box_memory``: the fine level sampled inside each instance prompt's box, read by that prompt's
sequence alone (its ONNX export: tests/test_deploy.py)."""
import copy

import pytest
import torch
from mmdet.registry import MODELS

from pix2seq_mmdet.models.box_memory import BoxMemory
from test_instance_segmentation import V2, polygon_sample


def box_memory_model(synthetic_cfg, size=4, fine_memory_proj=dict(mode='linear_p'), **test_cfg):
    """The synthetic model without its auxiliary head, with instance segmentation, the backbone's stride-8 level
    beside its stride-16 one projected with ``fine_memory_proj``, and ``head.box_memory``."""
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.aux_head = None
    cfg.backbone.out_indices = (1, 2)
    cfg.neck.update(in_channels=[64, 128], num_outs=2)
    cfg.head.tokenizer.update(tasks=V2, max_points_per_object=16)
    cfg.head.box_memory = dict(size=size)
    cfg.fine_memory_proj = fine_memory_proj
    cfg.test_cfg.update(instance_segmentation=test_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def ground_truth_sample(flip=False):
    """:func:`polygon_sample` with its boxes in the original image's pixels, as a test pipeline loads them."""
    sample, _ = polygon_sample(flip)
    boxes = sample.gt_instances.bboxes.tensor
    sample.gt_instances.bboxes = boxes / boxes.new_tensor(sample.metainfo['scale_factor']).repeat(2)
    return sample


@pytest.mark.parametrize('frame', [96, 100])  # 100: a 13-cell map covers 104 pixels
def test_samples_are_the_box_grid_centres_of_each_image(frame):
    """On a map whose channels hold each cell centre's normalised (y, x), bilinear samples read back the grid's
    points; each box reads its own image (the second map is offset by 1)."""
    stride, box_memory = 8, BoxMemory(size=3)
    cells = -(-frame // stride)
    centres = (torch.arange(cells, dtype=torch.float32) + 0.5) * stride / frame
    yx = torch.stack(torch.meshgrid(centres, centres, indexing='ij'))  # (2, cells, cells)
    feature_map = torch.stack([yx, yx + 1])
    boxes = torch.tensor([[0.2, 0.3, 0.5, 0.9], [0.1, 0.1, 0.8, 0.4]])
    sampled = box_memory(feature_map, torch.tensor([1, 0]), boxes, (frame, frame))
    expected = box_memory.sample_points(boxes).flatten(1, 2) + torch.tensor([1.0, 0.0])[:, None, None]
    assert sampled.shape == (2, 9, 2)
    torch.testing.assert_close(sampled, expected, rtol=0, atol=1e-5)
    assert torch.allclose(sampled[1, :3, 0], torch.tensor([0.1 + 0.7 / 6, 0.1 + 0.7 / 6, 0.1 + 0.7 / 6]))


def test_a_sequence_reads_the_fine_level_inside_its_box_only(synthetic_cfg):
    """An instance row's logits change with the fine map inside its prompt's box and not with the map far outside
    it; rows of the detection task read no box memory."""
    model = box_memory_model(synthetic_cfg).eval()
    head, frame = model.head, (128, 128)
    memory = torch.randn(1, 16, head.embed_dims)
    fine_map = torch.randn(1, head.embed_dims, 16, 16)
    boxes = torch.tensor([[0.1, 0.1, 0.4, 0.3]])
    prompts = head.tokenizer.instance_prompts(boxes, torch.tensor([1]))
    tokens = torch.cat([prompts, head.tokenizer.quantize(torch.tensor([[0.2, 0.2, 0.3, 0.25]]))], dim=1)
    image_index = torch.tensor([0])

    def logits(feature_map):
        with torch.no_grad():
            row_memory = head.prompt_memory(feature_map, image_index, tokens, frame)
            return head(memory, None, tokens, image_index, row_memory)

    before = logits(fine_map)
    outside, inside = fine_map.clone(), fine_map.clone()
    outside[..., 10:, 10:] += 5  # the map's lower right, far from the box
    inside[..., 2:4, 2:4] += 5  # within the box (rows 1.6-6.4, columns 1.6-4.8 of the map)
    torch.testing.assert_close(logits(outside), before, rtol=0, atol=0)
    assert not torch.allclose(logits(inside), before, atol=1e-3)
    with pytest.raises(ValueError, match='needs the detector\'s fine level'):
        head.prompt_memory(None, image_index, tokens, frame)


def test_detection_loss_does_not_read_the_fine_level_and_the_mask_loss_does(synthetic_cfg):
    model = box_memory_model(synthetic_cfg)
    inputs, sample = torch.rand(1, 3, 128, 128), polygon_sample(False)[0]
    losses = model.loss(inputs, [sample])
    projection = list(model.fine_memory_proj.parameters())
    detection_grads = torch.autograd.grad(losses['loss'], projection, allow_unused=True)
    assert all(grad is None for grad in detection_grads)
    losses['loss_segm'].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projection)
    assert model.neck.convs[0].conv.weight.grad.abs().sum() > 0  # the stride-8 level's own projection


def test_masks_at_the_original_size_and_the_same_in_row_batches(synthetic_cfg):
    sample = ground_truth_sample(flip=True)
    masks = []
    for max_rows in (None, 4):
        model = box_memory_model(synthetic_cfg, num_samples=3, prompt_boxes='ground_truth', strategy='greedy',
                                 max_rows=max_rows).eval()
        with torch.no_grad():
            (result, ) = model.predict(torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)),
                                       [copy.deepcopy(sample)])
        masks.append(result.pred_instances.masks)
    assert masks[0].shape == (2, 64, 96) and masks[0].dtype == torch.bool
    assert torch.equal(*masks)


def test_box_memory_needs_an_instance_task_and_a_fine_level(synthetic_cfg):
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.head.box_memory = dict(size=4)
    with pytest.raises(ValueError, match='has no instance task'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='box_memory.size'):
        BoxMemory(size=0)
    model = box_memory_model(synthetic_cfg)
    with pytest.raises(ValueError, match='need a neck of two or more levels'):
        model.fine_map(model.extract_feats(torch.rand(1, 3, 128, 128))[-1:])
    assert not hasattr(model.fine_memory_proj, 'mlp')  # the memory projection's default mode: 'mlp'
    assert hasattr(box_memory_model(synthetic_cfg, fine_memory_proj=None).fine_memory_proj, 'mlp')
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.fine_memory_proj = dict(mode='linear_p')
    with pytest.raises(ValueError, match='neither fine_memory nor head.box_memory'):
        MODELS.build(cfg)
