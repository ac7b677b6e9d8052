"""Decoding: the key/value cache, the static-shape and compiled steps, the strategies and their options."""
import pytest
import torch
from model_utils import build_model, decode, make_batch

from pix2seq_mmdet.models.decoding import filter_logits, read_coordinates


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


def test_cached_and_uncached_greedy_decode_agree(synthetic_cfg):
    torch.manual_seed(2)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model, batch_size=3)
    options = dict(strategy='greedy', box_confidence=False)  # the class probabilities alone
    cached_tokens, cached_probs, _ = decode(model, inputs, samples, use_cache=True, **options)
    plain_tokens, plain_probs, _ = decode(model, inputs, samples, use_cache=False, **options)
    assert cached_tokens.shape == (3, 30) and cached_probs.shape == (3, 6, 4)
    assert torch.equal(cached_tokens, plain_tokens)
    assert torch.allclose(cached_probs, plain_probs, atol=1e-5)
    # official scores: the real classes' share of the whole-vocabulary softmax
    assert torch.all(cached_probs.sum(-1) < 1) and torch.all(cached_probs > 0)
    _, renormalized, _ = decode(model, inputs, samples, renormalize_scores=True, **options)
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
    graphed_tokens, graphed_probs, _ = decode(model, inputs, samples, cuda_graph=True, **test_cfg)
    eager_tokens, eager_probs, _ = decode(model, inputs, samples, cuda_graph=False, **{**test_cfg, 'compile': False})
    assert torch.equal(graphed_tokens, eager_tokens)
    assert torch.allclose(graphed_probs, eager_probs, atol=1e-4)


def test_compiled_decoding_equals_eager_and_compiles_once(synthetic_cfg):
    torch.manual_seed(6)
    model = build_model(synthetic_cfg, max_objects=3).eval()
    inputs, samples = make_batch(model, batch_size=2)
    eager_tokens, eager_probs, _ = decode(model, inputs, samples, strategy='greedy')
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled_tokens, compiled_probs, _ = decode(model, inputs, samples, strategy='greedy', compile=True)
    compiled_frames = torch._dynamo.utils.counters['stats']['unique_graphs']
    assert compiled_frames >= 1
    again_tokens, _, _ = decode(model, inputs, samples, strategy='greedy', compile=True)
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
        memory, memory_mask = model.encode(inputs, samples)
        bos = torch.full((2, 1), model.head.tokenizer.BOS)
        with torch.no_grad():
            logits = model.head(memory, memory_mask, torch.cat([bos, tokens[:, :-1]], dim=1))
        return logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1).mean(-1)

    greedy_tokens, _, _ = decode(model, inputs, samples, strategy='greedy', constrained=True)
    beam_tokens, beam_probs, _ = decode(model, inputs, samples, strategy='beam', beam_width=4, constrained=True)
    assert beam_tokens.shape == greedy_tokens.shape and beam_probs.shape == (2, 6, 4)
    assert torch.all(mean_log_prob(beam_tokens) >= mean_log_prob(greedy_tokens) - 1e-4)


def test_constrained_decoding_emits_tokens_of_the_right_kind(synthetic_cfg):
    torch.manual_seed(5)
    model = build_model(synthetic_cfg).eval()
    tokenizer = model.head.tokenizer
    inputs, samples = make_batch(model, batch_size=2)
    tokens, _, _ = decode(model, inputs, samples, strategy='nucleus', top_p=0.9, temperature=2.0, constrained=True,
                          seed=0)
    slots = tokens.view(2, -1, 5)
    ended = (slots == tokenizer.EOS).any(-1).cumsum(-1) > 0
    live = slots[~ended]
    assert torch.all(tokenizer.is_coord(live[:, :4]))
    assert torch.all(tokenizer.is_class(live[:, 4]))


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
    assert torch.isfinite(filter_logits(logits, top_p=0.6)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.85)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_k=1, top_p=0.9)).tolist() == [[True, False, False, False]]
    # top-k first, the nucleus over the renormalised top-k (0.5 / 0.8 = 0.625 of the mass): keeps one token at 0.6
    assert torch.isfinite(filter_logits(logits, top_k=2, top_p=0.6)).tolist() == [[True, False, False, False]]


def test_nucleus_keeps_the_tokens_within_top_p_as_the_official_top_logits():
    """Official ``top_logits``: the largest prefix of the sorted tokens whose cumulative mass is <= top_p (at least
    one). At the paper's p = 0.4 with probabilities [0.30, 0.20, ...] only the top token is left, so sampling decodes
    it every time (a filter that keeps the prefix reaching p would sample 60/40 between two)."""
    probs = torch.tensor([[0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.4))
    assert kept.tolist() == [[True] + [False] * 6]
    assert torch.isfinite(filter_logits(probs.log(), top_p=0.5)).sum() == 2  # 0.30 + 0.20 = 0.5 <= 0.5
    generator = torch.Generator().manual_seed(0)
    draws = torch.multinomial(filter_logits(probs.log(), top_p=0.4).softmax(-1).expand(200, -1), 1,
                              generator=generator)
    assert torch.all(draws == 0)


def test_stop_at_eos_ends_early_with_the_same_objects(synthetic_cfg):
    torch.manual_seed(7)
    model = build_model(synthetic_cfg).eval()
    with torch.no_grad():
        model.head.output_bias[model.head.tokenizer.EOS] = 50.0  # every sequence ends at once
    inputs, samples = make_batch(model)
    tokens, _, _ = decode(model, inputs, samples, strategy='greedy', stop_at_eos=True)
    assert torch.all(tokens[:, 0] == model.head.tokenizer.EOS)
    assert torch.all(tokens[:, 1:] == model.head.tokenizer.PAD)


@pytest.mark.parametrize('test_cfg, message', [(dict(strategy='sampling'), 'strategy'), (dict(top_p=0.0), 'top_p'),
                                               (dict(top_p=1.5), 'top_p'), (dict(beam_width=0), 'beam_width'),
                                               (dict(temperature=0.0), 'temperature'),
                                               (dict(strategy='top_k', top_k=0), 'top_k'),
                                               (dict(coord_window=-1), 'coord_window'),
                                               (dict(coord_window=1.5), 'coord_window')])
def test_invalid_decoding_config_fails_at_build(synthetic_cfg, test_cfg, message):
    with pytest.raises(ValueError, match=message):
        build_model(synthetic_cfg, **test_cfg)


def test_read_coordinates_is_the_mean_bin_near_the_decoded_one(synthetic_cfg):
    tokenizer = build_model(synthetic_cfg).head.tokenizer
    bins = tokenizer.num_bins
    probs = torch.full((2, bins), 1e-12)
    probs[0, [10, 11, 12, 20]] = torch.tensor([0.5, 0.2, 0.1, 0.2])  # decoded 11: bins 10-12 within 1, not 20
    probs[1, [0, 1]] = torch.tensor([0.7, 0.3])  # decoded 0: the window clipped at the frame's edge
    logits = torch.full((2, tokenizer.vocab_size), -1e4)
    logits[:, tokenizer.coordinates] = probs.log()
    chosen = tokenizer.coord_offset + torch.tensor([11, 0])
    coords, confidence = read_coordinates(logits, chosen, tokenizer, window=1)
    assert torch.allclose(coords * (bins - 1), torch.tensor([(10 * 0.5 + 11 * 0.2 + 12 * 0.1) / 0.8, 0.3]))
    assert torch.allclose(confidence, torch.tensor([0.8, 1.0]))
    coords, confidence = read_coordinates(logits, chosen, tokenizer, window=0)  # the decoded bins, exactly
    assert torch.equal(coords, tokenizer.dequantize(chosen))
    assert torch.allclose(confidence, torch.tensor([0.2, 0.7]))


@pytest.mark.parametrize('strategy', ['greedy', 'beam'])
def test_coordinate_readout_and_box_confidence(synthetic_cfg, strategy):
    """The tokens do not change; the coordinates move by at most the window; the scores are the class
    probabilities times the geometric mean of the four coordinates' probability within the window, computed here
    from the decoder's logits along the decoded sequences."""
    torch.manual_seed(8)
    model = build_model(synthetic_cfg).eval()
    tokenizer, window = model.head.tokenizer, 3
    inputs, samples = make_batch(model, batch_size=3)
    options = dict(strategy=strategy, beam_width=3, constrained=True)
    tokens, class_probs, coords = decode(model, inputs, samples, coord_window=0, box_confidence=False, **options)
    is_coord = tokenizer.is_coord(tokens)
    assert is_coord.any()
    assert torch.equal(coords[is_coord], tokenizer.dequantize(tokens[is_coord]))  # window 0: the bins
    read_tokens, scores, read = decode(model, inputs, samples, coord_window=window, box_confidence=True, **options)
    assert torch.equal(read_tokens, tokens)
    shift = (read - coords)[is_coord] * (tokenizer.num_bins - 1)
    assert shift.abs().max() <= window + 1e-4 and shift.abs().max() > 0
    memory, memory_mask = model.encode(inputs, samples)
    inputs_seq = torch.cat([torch.full((3, 1), tokenizer.BOS), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        logits = model.head(memory, memory_mask, inputs_seq)
    probs = logits[..., tokenizer.coordinates].softmax(-1)
    near = (torch.arange(tokenizer.num_bins) - tokenizer.bins(tokens)[..., None]).abs() <= window
    mass = (probs * near).sum(-1).view(3, tokenizer.max_objects, 5)[..., :4]
    valid = tokenizer.decode(tokens)[2]
    want = class_probs * mass.clamp(min=1e-30).log().mean(-1).exp()[..., None]
    assert torch.allclose(scores[valid], want[valid], rtol=1e-4, atol=1e-6)


def test_coordinate_readout_needs_token_by_token_decoding(synthetic_cfg):
    with pytest.raises(ValueError, match='coord_window=0'):
        build_model(synthetic_cfg, strategy='greedy', parallel=True, coord_window=2)
