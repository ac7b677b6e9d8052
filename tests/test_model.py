import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from pix2seq_mmdet.decoding import filter_logits
from pix2seq_mmdet.transformer import TransformerLayer

IMAGE_SIZE = 64


def build_model(cfg, max_objects=6, **test_cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.head.tokenizer.max_objects = max_objects
    model_cfg.test_cfg.update(test_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def make_batch(model, batch_size=2, seed=0):
    """Random images and data samples carrying sequences like the training pipeline's."""
    generator = torch.Generator().manual_seed(seed)
    tokenizer = model.head.tokenizer
    inputs = torch.rand(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(metainfo=dict(img_shape=(IMAGE_SIZE, IMAGE_SIZE), pad_shape=(IMAGE_SIZE, IMAGE_SIZE),
                                             batch_input_shape=(IMAGE_SIZE, IMAGE_SIZE), scale_factor=(0.5, 0.5),
                                             ori_shape=(2 * IMAGE_SIZE, 2 * IMAGE_SIZE)))
        corners = torch.rand(3, 2, 2, generator=generator).sort(dim=1).values
        boxes = torch.cat([corners[:, 0], corners[:, 1]], dim=1)
        target = tokenizer.encode(boxes, torch.tensor([0, 1, -1]))
        sample.target_tokens = target
        sample.input_tokens = torch.cat([torch.tensor([tokenizer.BOS]), target[:-1]])
        sample.token_weights = (target != tokenizer.PAD).float()
        sample.gt_instances = InstanceData(bboxes=boxes * IMAGE_SIZE, labels=torch.tensor([0, 1, 2]))
        samples.append(sample)
    return inputs, samples


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


def test_mismatched_vocabulary_is_a_clear_error(synthetic_cfg):
    model = build_model(synthetic_cfg)
    inputs, samples = make_batch(model)
    samples[0].input_tokens = samples[0].input_tokens[:-5]
    with pytest.raises(ValueError, match='same max_objects'):
        model.loss(inputs, samples)
    inputs, samples = make_batch(model)
    samples[0].target_tokens[0] = model.head.tokenizer.vocab_size + 3
    with pytest.raises(ValueError, match='same num_classes and num_bins'):
        model.loss(inputs, samples)


def test_cached_decoder_matches_full_decoder_logits(synthetic_cfg):
    torch.manual_seed(1)
    head = build_model(synthetic_cfg).head.eval()
    memory = torch.randn(3, 20, 128)
    memory_mask = torch.zeros(3, 20, dtype=torch.bool)
    memory_mask[1, 15:] = True
    tokens = torch.randint(0, head.tokenizer.vocab_size, (3, 12))
    with torch.no_grad():
        full = head(memory, memory_mask, tokens)
        cache = head.init_cache(memory, memory_mask)
        stepped = torch.cat([head.forward_step(tokens[:, i:i + 1], i, cache) for i in range(12)], dim=1)
        cache = head.init_cache(memory, memory_mask)
        chunked = torch.cat([head.forward_step(tokens[:, :7], 0, cache), head.forward_step(tokens[:, 7:], 7, cache)],
                            dim=1)
        cache = head.init_cache(memory, memory_mask)  # static shapes (CUDA graphs): tensor positions
        static = torch.cat([head.forward_step(tokens[:, i:i + 1], torch.tensor([i]), cache) for i in range(12)], dim=1)
    assert torch.allclose(full, stepped, atol=1e-5)
    assert torch.allclose(full, chunked, atol=1e-5)
    assert torch.allclose(full, static, atol=1e-5)


def decode(model, inputs, samples, seed=None, **test_cfg):
    from pix2seq_mmdet.decoding import DecodingConfig
    cfg = {**vars(model.head.decoding_cfg), **test_cfg}
    model.head.decoding_cfg = DecodingConfig(**cfg)
    memory, memory_mask = model._encode(inputs, samples)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return model.head.generate(memory, memory_mask, generator)


def test_cached_and_uncached_greedy_decode_agree(synthetic_cfg):
    torch.manual_seed(2)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model, batch_size=3)
    cached_tokens, cached_probs = decode(model, inputs, samples, strategy='greedy', use_cache=True)
    plain_tokens, plain_probs = decode(model, inputs, samples, strategy='greedy', use_cache=False)
    assert cached_tokens.shape == (3, 30) and cached_probs.shape == (3, 6, 4)
    assert torch.equal(cached_tokens, plain_tokens)
    assert torch.allclose(cached_probs, plain_probs, atol=1e-5)
    # official scores: the real classes' share of the whole-vocabulary softmax
    assert torch.all(cached_probs.sum(-1) < 1) and torch.all(cached_probs > 0)
    _, renormalized = decode(model, inputs, samples, strategy='greedy', renormalize_scores=True)
    assert torch.allclose(renormalized.sum(-1), torch.ones(3, 6))
    assert torch.allclose(renormalized, cached_probs / cached_probs.sum(-1, keepdim=True), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
@pytest.mark.parametrize('test_cfg', [dict(strategy='greedy'), dict(strategy='beam', beam_width=3),
                                      dict(strategy='greedy', compile=True)])
def test_cuda_graph_decoding_equals_eager_decoding(synthetic_cfg, test_cfg):
    torch.manual_seed(5)
    model = build_model(synthetic_cfg).eval().cuda()
    inputs, samples = make_batch(model, batch_size=2)
    inputs = inputs.cuda()
    graphed_tokens, graphed_probs = decode(model, inputs, samples, cuda_graph=True, **test_cfg)
    eager_tokens, eager_probs = decode(model, inputs, samples, cuda_graph=False, **{**test_cfg, 'compile': False})
    assert torch.equal(graphed_tokens, eager_tokens)
    assert torch.allclose(graphed_probs, eager_probs, atol=1e-4)


def test_compiled_decoding_equals_eager_and_compiles_once(synthetic_cfg):
    torch.manual_seed(6)
    model = build_model(synthetic_cfg, max_objects=3).eval()
    inputs, samples = make_batch(model, batch_size=2)
    eager_tokens, eager_probs = decode(model, inputs, samples, strategy='greedy')
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled_tokens, compiled_probs = decode(model, inputs, samples, strategy='greedy', compile=True)
    compiled_frames = torch._dynamo.utils.counters['stats']['unique_graphs']
    assert compiled_frames >= 1
    again_tokens, _ = decode(model, inputs, samples, strategy='greedy', compile=True)
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] == compiled_frames  # same shapes: no recompiling
    assert torch.equal(compiled_tokens, eager_tokens) and torch.equal(again_tokens, eager_tokens)
    assert torch.allclose(compiled_probs, eager_probs, atol=1e-4)


def test_beam_of_width_one_and_top_k_one_equal_greedy(synthetic_cfg):
    torch.manual_seed(3)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model, batch_size=2)
    greedy = decode(model, inputs, samples, strategy='greedy')
    for result in (decode(model, inputs, samples, strategy='beam', beam_width=1),
                   decode(model, inputs, samples, strategy='top_k', top_k=1, seed=5)):
        assert torch.equal(result[0], greedy[0]) and torch.allclose(result[1], greedy[1])


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(synthetic_cfg):
    torch.manual_seed(4)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model, batch_size=2)

    def mean_log_prob(tokens):
        memory, memory_mask = model._encode(inputs, samples)
        bos = torch.full((2, 1), model.head.tokenizer.BOS)
        with torch.no_grad():
            logits = model.head(memory, memory_mask, torch.cat([bos, tokens[:, :-1]], dim=1))
        return logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1).mean(-1)

    greedy_tokens, _ = decode(model, inputs, samples, strategy='greedy', constrained=True)
    beam_tokens, beam_probs = decode(model, inputs, samples, strategy='beam', beam_width=4, constrained=True)
    assert beam_tokens.shape == greedy_tokens.shape and beam_probs.shape == (2, 6, 4)
    assert torch.all(mean_log_prob(beam_tokens) >= mean_log_prob(greedy_tokens) - 1e-4)


def test_constrained_decoding_emits_tokens_of_the_right_kind(synthetic_cfg):
    torch.manual_seed(5)
    model = build_model(synthetic_cfg).eval()
    tokenizer = model.head.tokenizer
    inputs, samples = make_batch(model, batch_size=2)
    tokens, _ = decode(model, inputs, samples, strategy='nucleus', top_p=0.9, temperature=2.0, constrained=True,
                       seed=0)
    slots = tokens.view(2, -1, 5)
    ended = (slots == tokenizer.EOS).any(-1).cumsum(-1) > 0
    live = slots[~ended]
    assert torch.all(tokenizer.is_coord(live[:, :4]))
    assert torch.all((live[:, 4] >= tokenizer.FAKE) & (live[:, 4] < tokenizer.coord_offset))


def test_nucleus_sampling_is_reproducible_with_a_seed(synthetic_cfg):
    torch.manual_seed(6)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model)
    first = decode(model, inputs, samples, strategy='nucleus', top_p=0.9, seed=11)[0]
    assert torch.equal(first, decode(model, inputs, samples, strategy='nucleus', top_p=0.9, seed=11)[0])
    assert not torch.equal(first, decode(model, inputs, samples, strategy='nucleus', top_p=0.9, seed=12)[0])


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.4)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.6)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_k=1, top_p=0.9)).tolist() == [[True, False, False, False]]


def test_stop_at_eos_ends_early_with_the_same_objects(synthetic_cfg):
    torch.manual_seed(7)
    model = build_model(synthetic_cfg).eval()
    with torch.no_grad():
        model.head.output_bias[model.head.tokenizer.EOS] = 50.0  # every sequence ends at once
    inputs, samples = make_batch(model)
    tokens, _ = decode(model, inputs, samples, strategy='greedy', stop_at_eos=True)
    assert torch.all(tokens[:, 0] == model.head.tokenizer.EOS)
    assert torch.all(tokens[:, 1:] == model.head.tokenizer.PAD)


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


@pytest.mark.parametrize('test_cfg, message', [(dict(strategy='sampling'), 'strategy'), (dict(top_p=0.0), 'top_p'),
                                               (dict(top_p=1.5), 'top_p'), (dict(beam_width=0), 'beam_width'),
                                               (dict(temperature=0.0), 'temperature'),
                                               (dict(strategy='top_k', top_k=0), 'top_k')])
def test_invalid_decoding_config_fails_at_build(synthetic_cfg, test_cfg, message):
    with pytest.raises(ValueError, match=message):
        build_model(synthetic_cfg, **test_cfg)


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
