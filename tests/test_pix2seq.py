"""The Pix2Seq detector: loss, gradients, modes and the encoder side."""
import copy

import pytest
import torch
from model_utils import IMAGE_SIZE, build_model, make_batch


def test_loss_shapes_and_gradients_reach_every_part(synthetic_cfg):
    torch.manual_seed(0)
    model = build_model(synthetic_cfg)
    inputs, samples = make_batch(model)
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss', 'coord_ce', 'class_ce', 'eos_ce'}
    assert all(value.dim() == 0 and value.dtype == torch.float32 for value in losses.values())
    assert not any(value.requires_grad for name, value in losses.items() if name != 'loss')
    # an untrained model is close to uniform over the vocabulary
    assert losses['loss'].item() == pytest.approx(torch.log(torch.tensor(model.head.tokenizer.vocab_size)).item(),
                                                  rel=0.2)
    losses['loss'].backward()
    for part in (model.backbone, model.neck, model.encoder, model.memory_proj, model.head.layers,
                 model.head.token_embed):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_memory_projection_with_positions_needs_equal_widths(synthetic_cfg):
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.head.embed_dims = 64
    with pytest.raises(ValueError, match='must equal the head'):
        build_model(synthetic_cfg)
    synthetic_cfg.model.memory_proj = dict(mode='linear')
    assert build_model(synthetic_cfg).memory_proj(torch.randn(1, 5, 128), None).shape == (1, 5, 64)


def test_tensor_mode_returns_logits(synthetic_cfg):
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model)
    logits = model(inputs, samples, mode='tensor')
    assert logits.shape == (2, model.head.tokenizer.seq_len, model.head.tokenizer.vocab_size)


def test_padding_is_attended_unless_mask_padding(synthetic_cfg):
    """The official code attends to the whole padded frame; ``mask_padding=True`` keeps attention off it."""
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model)
    samples[0].set_metainfo(dict(img_shape=(32, 64)))  # the lower half of the first image is padding
    _, memory_mask = model._encode(inputs, samples)
    assert memory_mask is None
    synthetic_cfg.model.mask_padding = True
    model = build_model(synthetic_cfg).eval()
    _, memory_mask = model._encode(inputs, samples)
    feature_rows = memory_mask.shape[1] // (IMAGE_SIZE // 16)
    assert memory_mask[0].view(feature_rows, -1)[feature_rows // 2:].all()
    assert not memory_mask[0].view(feature_rows, -1)[:feature_rows // 2].any() and not memory_mask[1].any()
