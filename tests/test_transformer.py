"""The Transformer layers, the memory projection and the official stem."""
import copy

import pytest
import torch
from model_utils import build_model, make_batch

from pix2seq_mmdet.models.transformer import TransformerLayer


@pytest.mark.parametrize('attn_dropout', [0.0, 0.5])
def test_dropout_only_where_the_official_code_has_it(attn_dropout):
    """FFN hidden units and (when set) attention weights are dropped in training; the residual branches are not."""
    torch.manual_seed(0)
    layer = TransformerLayer(16, 2, 32, dropout=0.5, drop_path=0.0, attn_dropout=attn_dropout,
                             cross_attention=True).train()
    torch.nn.init.zeros_(layer.ffn.layers[-1].weight)  # the FFN branch adds its bias whatever its hidden dropout
    memory = layer.cross_attn.project_key_value(torch.randn(2, 7, 16))
    x = torch.randn(2, 5, 16)
    first, second = (layer(x, is_causal=True, memory_key_value=memory) for _ in range(2))
    assert torch.equal(first, second) == (attn_dropout == 0)
    hidden = torch.randn(2, 5, 32)
    assert not torch.equal(layer.ffn.layers[2](hidden), hidden)  # the hidden-unit dropout is live


@pytest.mark.parametrize('mode', ['linear', 'linear_p', 'mlp'])
def test_memory_projection_adds_positions_unless_linear(synthetic_cfg, mode):
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.memory_proj = dict(mode=mode)
    projection = build_model(synthetic_cfg).memory_proj.eval()
    memory, positions = torch.randn(2, 10, 128), torch.randn(2, 10, 128)
    shifted = projection(memory, positions + 1.0)
    assert shifted.shape == (2, 10, 128)
    assert torch.allclose(projection(memory, positions), shifted) == (mode == 'linear')


def test_token_projection_is_the_official_stem():
    """Feature dropout, then per position Linear(C_in, C) and LayerNorm (eps 1e-6): (B, C_in, h, w) -> (B, C, h, w),
    the same as the official stem on the flattened tokens."""
    from pix2seq_mmdet.models import TokenProjection
    torch.manual_seed(0)
    stem = TokenProjection([8, 32], 16, dropout=0.1).eval()
    assert stem.norm.eps == 1e-6
    features = torch.randn(2, 32, 3, 5)
    (projected, ) = stem((torch.randn(2, 8, 6, 10), features))
    assert projected.shape == (2, 16, 3, 5)
    tokens = features.flatten(2).transpose(1, 2)  # (B, h * w, C_in), the official layout
    expected = torch.nn.functional.layer_norm(tokens @ stem.proj.weight.T + stem.proj.bias, (16, ),
                                              stem.norm.weight, stem.norm.bias, eps=1e-6)
    assert torch.allclose(projected.flatten(2).transpose(1, 2), expected, atol=1e-5)
    stem.train()
    assert not torch.equal(stem((features, ))[0], stem((features, ))[0])  # the feature dropout is live


def test_sum_positional_encoding_adds_fixed_and_learned_codes(synthetic_cfg):
    """Sine + learned positions (the synthetic recipe's): the sum of both codes, the learned part trained through the
    detector's loss."""
    from mmdet.registry import MODELS
    assert synthetic_cfg.model.positional_encoding.type == 'SumPositionalEncoding'
    sine, learned = synthetic_cfg.model.positional_encoding.encodings
    encoding = MODELS.build(dict(type='SumPositionalEncoding', encodings=[sine, learned]))
    encoding.init_weights()
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    fixed, trained = (part(mask) for part in encoding.encodings)
    assert trained.abs().max() > 0
    assert torch.allclose(encoding(mask), fixed + trained)

    model = build_model(synthetic_cfg)
    inputs, samples = make_batch(model)
    model.loss(inputs, samples)['loss'].backward()
    assert model.positional_encoding.encodings[1].row_embed.weight.grad.abs().sum() > 0

    with pytest.raises(ValueError, match='different shapes'):
        MODELS.build(dict(type='SumPositionalEncoding', encodings=[sine, dict(learned, num_feats=32)]))(mask)
    with pytest.raises(ValueError, match='at least two'):
        MODELS.build(dict(type='SumPositionalEncoding', encodings=[sine]))
    # a feature map beyond the learned table (a larger frame at the same stride): the setting to raise is named
    too_large = torch.zeros(2, learned.row_num_embed + 1, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match='row_num_embed'):
        encoding(too_large)


def test_attention_kernel_is_replaceable_and_may_merge_the_heads():
    """``Attention.kernel`` computes the attention of the projected heads; a kernel may return them merged (B, T, D),
    the layout of ONNX Runtime's operators, and the layer gives the same output; another kernel changes it."""
    from pix2seq_mmdet.models.transformer import dot_product_attention
    torch.manual_seed(0)
    layer = TransformerLayer(16, 2, 32, dropout=0.0, drop_path=0.0, cross_attention=True).eval()
    memory = layer.cross_attn.project_key_value(torch.randn(2, 7, 16))
    x = torch.randn(2, 5, 16)
    expected = layer(x, is_causal=True, memory_key_value=memory)

    def merged_kernel(query, key, value, attn_mask=None, is_causal=False, dropout_p=0.0):
        return dot_product_attention(query, key, value, attn_mask, is_causal, dropout_p).transpose(1, 2).flatten(2)

    layer.self_attn.kernel = layer.cross_attn.kernel = merged_kernel
    assert torch.allclose(layer(x, is_causal=True, memory_key_value=memory), expected, atol=1e-6)
    layer.self_attn.kernel = lambda query, key, value, *args: torch.zeros_like(query)
    assert not torch.allclose(layer(x, is_causal=True, memory_key_value=memory), expected, atol=1e-3)
