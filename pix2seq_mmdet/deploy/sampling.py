"""Token selection and the decoding loops of the ONNX runtime, in numpy: the greedy, top-k and nucleus strategies
of ``pix2seq_mmdet.models.decoding`` (the official nucleus filter), constrained decoding, PAD after EOS and the class
probabilities at class positions; the responses to instance prompts as ``decoding.decode_responses``."""
import argparse
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .metadata import TOKENS_PER_OBJECT, Vocabulary, softmax

STRATEGIES = ('greedy', 'top_k', 'nucleus')


@dataclass
class DecodingOptions:
    """Decoding settings (defaults: the exported model's ``test_cfg``); see ``DecodingConfig``."""
    strategy: str = 'greedy'
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.4
    constrained: bool = False
    stop_at_eos: bool = False
    renormalize_scores: bool = False
    parallel: bool = False
    parallel_verify: bool = True
    coord_window: int = 0
    box_confidence: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f'the ONNX runtime decodes with one of {STRATEGIES}, got strategy {self.strategy!r} '
                             f'(pass strategy=... to override the exported default)')
        if self.parallel and self.strategy != 'greedy':
            raise ValueError(f'parallel decoding is greedy, got strategy {self.strategy!r} (pass strategy=\'greedy\')')
        if not self.temperature > 0:
            raise ValueError(f'temperature must be > 0, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.top_k < 0 or (self.strategy == 'top_k' and self.top_k < 1):
            raise ValueError(f'top_k must be >= 0 (>= 1 for strategy top_k), got {self.top_k}')
        if not (isinstance(self.coord_window, int) and self.coord_window >= 0):
            raise ValueError(f'coord_window must be an int >= 0 (bins), got {self.coord_window!r}')
        if self.parallel and (self.coord_window or self.box_confidence):
            raise ValueError('parallel decoding reads the decoded bins only: pass coord_window=0 and '
                             f'box_confidence=False (got {self.coord_window}, {self.box_confidence})')


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding options of the deployment tools (``onnx_demo.py``, ``onnx_test.py``): ``--strategy``, ``--seed``,
    ``--parallel`` and ``--no-parallel-verify``, passed to the runtime as :class:`DecodingOptions` overrides (None:
    the exported default)."""
    parser.add_argument('--strategy', choices=STRATEGIES, help='decoding strategy (default: the exported test_cfg\'s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the sampling strategies')
    parser.add_argument('--parallel', action='store_true',
                        help='parallel box decoding, one object per block step, greedy (an export of a model trained '
                             'with model.head.block_decoding)')
    parser.add_argument('--no-parallel-verify', dest='parallel_verify', action='store_const', const=False,
                        help='with --parallel: keep every drafted object, one step per object, instead of checking '
                             'it against token-by-token decoding (default: the exported test_cfg\'s)')


NUCLEUS_MIN_RATIO = 1e-4  # nucleus candidates: probability at least this fraction of the most likely token's


def _kept(ids: np.ndarray, probs: np.ndarray, top_p: float) -> np.ndarray:
    """Weights of tokens sorted by decreasing probability: theirs inside the nucleus of mass ``top_p``, else 0."""
    keep = np.cumsum(probs, axis=-1) <= top_p
    keep[..., 0] = True
    return np.where(keep, probs, 0)


def sampling_candidates(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """The tokens the official nucleus filter (``pix2seq_mmdet.models.decoding.filter_logits``) keeps and their
    sampling weights, without sorting the whole vocabulary.

    With ``top_k`` the top-k tokens are sorted (``argpartition``).  Without it the nucleus is looked for among the
    tokens whose probability is at least :data:`NUCLEUS_MIN_RATIO` of the most likely one's; a row where they hold
    no more than ``top_p`` of the mass, so that the nucleus might reach beyond them, is sorted whole.  (N, V) ->
    ``ids`` (N, W) and ``weights`` (N, W), proportional to the probabilities of the kept tokens, 0 elsewhere.
    """
    num_rows, vocab_size = logits.shape
    if top_k > 0 or top_p >= 1.0:
        width = min(vocab_size, top_k) if top_k > 0 else vocab_size
        rows = np.arange(num_rows)[:, None]
        ids = np.argpartition(-logits, width - 1, axis=-1)[:, :width] if width < vocab_size else None
        ids = (np.argsort(-logits, axis=-1, kind='stable') if ids is None
               else ids[rows, np.argsort(-logits[rows, ids], axis=-1, kind='stable')])
        probs = softmax(logits[rows, ids])  # the official nucleus: renormalised over the top-k
        return ids, _kept(ids, probs, top_p) if top_p < 1.0 else probs
    probs = softmax(logits)
    found_ids, found_weights = [], []
    for row in probs:
        candidates = np.flatnonzero(row >= row.max() * NUCLEUS_MIN_RATIO)
        if 4 * len(candidates) < vocab_size and row[candidates].sum() > top_p:
            ids = candidates[np.argsort(-row[candidates], kind='stable')]
        else:  # a flat distribution: sort the whole row
            ids = np.argsort(-row, kind='stable')
        found_ids.append(ids)
        found_weights.append(_kept(ids, row[ids], top_p))
    width = max(len(ids) for ids in found_ids)
    ids, weights = np.zeros((num_rows, width), np.int64), np.zeros((num_rows, width), probs.dtype)
    for index, (row_ids, row_weights) in enumerate(zip(found_ids, found_weights)):
        ids[index, :len(row_ids)], weights[index, :len(row_ids)] = row_ids, row_weights
    return ids, weights


def select_next_token(logits: np.ndarray, options: DecodingOptions, rng: np.random.Generator) -> np.ndarray:
    """(N, V) logits -> (N,) next tokens: the most likely, or one drawn from the top-k / nucleus
    (:func:`sampling_candidates`)."""
    if options.strategy == 'greedy':
        return logits.argmax(-1)
    top_p = options.top_p if options.strategy == 'nucleus' else 1.0
    ids, weights = sampling_candidates(logits / options.temperature, options.top_k, top_p)
    cumulative = np.cumsum(weights, axis=-1)
    threshold = rng.random(len(weights))[:, None] * cumulative[:, -1:]
    picked = np.minimum((cumulative < threshold).sum(-1), weights.shape[-1] - 1)
    return np.take_along_axis(ids, picked[:, None], axis=-1)[:, 0]


def read_coordinates(logits: np.ndarray, chosen: np.ndarray, vocab: Vocabulary,
                     window: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``decoding.read_coordinates``: (N, V) logits at coordinate positions and the (N,) decoded tokens -> (N,)
    normalised coordinates (the mean bin within ``window`` bins of the decoded one) and (N,) their confidence (the
    probability within that window)."""
    probs = softmax(logits[:, vocab.coord_offset:vocab.coord_offset + vocab.num_bins].astype(np.float32))
    centre = np.clip(chosen - vocab.coord_offset, 0, vocab.num_bins - 1)
    offsets = np.arange(vocab.num_bins) - centre[:, None]
    weights = probs * (np.abs(offsets) <= window)
    confidence = weights.sum(-1)
    shift = (weights * offsets).sum(-1) / np.maximum(confidence, np.finfo(np.float32).tiny)
    return ((centre + shift) / (vocab.num_bins - 1)).astype(np.float32), confidence.astype(np.float32)


def decoded_coordinates(tokens: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """``decoding.decoded_coordinates``: (..., L) tokens -> (..., L) the decoded bins normalised at coordinate tokens,
    0 elsewhere (float32)."""
    return np.where(vocab.is_coord(tokens), vocab.dequantize(tokens), 0).astype(np.float32)


def box_confidence(confidence: np.ndarray) -> np.ndarray:
    """``decoding.box_confidence``: (N, 4) coordinate confidences -> (N,) their geometric mean."""
    return np.exp(np.log(np.maximum(confidence, np.finfo(np.float32).tiny)).mean(-1))


def decode_tokens(step, batch_size: int, vocab: Vocabulary, options: DecodingOptions,
                  rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoding loop of ``decode_sequences`` (greedy and sampling strategies) over ``step(tokens (B,),
    position) -> logits (B, V)``; returns ``tokens`` (B, 5 K) int64, ``class_probs`` (B, K, C) float32 (times the
    box confidence with ``options.box_confidence``) and ``coords`` (B, 5 K) float32, the coordinates read with
    ``options.coord_window`` (:func:`read_coordinates`)."""
    rng = rng if rng is not None else np.random.default_rng()
    tokens = np.full((batch_size, vocab.seq_len), vocab.pad, dtype=np.int64)
    class_probs = np.zeros((batch_size, vocab.max_objects, vocab.num_classes), dtype=np.float32)
    coords = np.zeros((batch_size, vocab.seq_len), dtype=np.float32)
    coord_confidence = np.ones((batch_size, vocab.seq_len), dtype=np.float32)
    finished = np.zeros(batch_size, dtype=bool)
    current = np.full(batch_size, vocab.bos, dtype=np.int64)
    reads_coordinates = options.coord_window > 0 or options.box_confidence  # else the decoded bins, after the loop
    for position in range(vocab.seq_len):
        logits = step(current, position)
        if options.constrained:
            logits = logits + vocab.constraint[position % TOKENS_PER_OBJECT]
        is_class_position = position % TOKENS_PER_OBJECT == TOKENS_PER_OBJECT - 1
        next_tokens = select_next_token(logits, options, rng)
        if is_class_position:
            probs = vocab.class_probabilities(logits, options.renormalize_scores)
            if options.box_confidence:
                probs = probs * box_confidence(coord_confidence[:, position - TOKENS_PER_OBJECT + 1:position])[:, None]
            class_probs[:, position // TOKENS_PER_OBJECT] = probs
        elif reads_coordinates:
            read = read_coordinates(logits, next_tokens, vocab, options.coord_window)
            coords[:, position], coord_confidence[:, position] = read
        next_tokens = np.where(finished, vocab.pad, next_tokens)
        finished |= next_tokens == vocab.eos
        tokens[:, position] = next_tokens
        current = next_tokens
        if options.stop_at_eos and is_class_position and finished.all():
            break
    return tokens, class_probs, coords if reads_coordinates else decoded_coordinates(tokens, vocab)


def end_mask(block: np.ndarray, finished: np.ndarray, end_token: int) -> np.ndarray:
    """``decoding.end_mask``: (N, 5) tokens and (N,) ended rows -> (N, 5) bool, True where token-by-token decoding
    writes PAD."""
    is_end = block == end_token
    return finished[:, None] | ((np.cumsum(is_end, axis=1) - is_end) > 0)


def decode_in_blocks(step, block_step, batch_size: int, vocab: Vocabulary,
                     options: DecodingOptions) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The loop of ``decoding.decode_in_blocks`` (greedy, one object per block step, each drafted object checked by
    the next step and corrected token by token where it differs, unless ``options.parallel_verify`` is False) over
    ``block_step(tokens (B, T), position, with_queries) -> logits (B, T (+ 4), V)`` and ``step(tokens (B,),
    position) -> logits (B, V)``; returns what :func:`decode_tokens` does, the coordinates the decoded bins."""
    queries, max_objects = TOKENS_PER_OBJECT - 1, vocab.max_objects
    tokens = np.full((batch_size, vocab.seq_len), vocab.pad, dtype=np.int64)
    class_probs = np.zeros((batch_size, max_objects, vocab.num_classes), dtype=np.float32)
    finished = np.zeros(batch_size, dtype=bool)

    def run(real: np.ndarray, position: int, with_queries: bool) -> np.ndarray:
        logits = block_step(real, position, with_queries)
        if options.constrained:
            logits = logits + vocab.constraint[(position + np.arange(logits.shape[1])) % TOKENS_PER_OBJECT]
        return logits

    def commit(slot: int, block: np.ndarray, class_logits: np.ndarray) -> np.ndarray:
        nonlocal finished
        class_probs[:, slot] = vocab.class_probabilities(class_logits, options.renormalize_scores)
        block = np.where(end_mask(block, finished, vocab.eos), vocab.pad, block)
        finished = finished | (block == vocab.eos).any(1)
        tokens[:, slot * TOKENS_PER_OBJECT:(slot + 1) * TOKENS_PER_OBJECT] = block
        return block

    def correct(slot: int, draft: np.ndarray, verified: np.ndarray, wrong: np.ndarray,
                verified_class_logits: np.ndarray) -> np.ndarray:
        first_wrong = np.where(wrong.any(1), wrong.argmax(1) + 1, TOKENS_PER_OBJECT)
        offsets = np.arange(TOKENS_PER_OBJECT)
        chosen = np.where(offsets == first_wrong[:, None], np.concatenate([draft[:, :1], verified], axis=1), draft)
        class_logits = verified_class_logits
        for offset in range(int(first_wrong.min()) + 1, TOKENS_PER_OBJECT):
            logits = step(chosen[:, offset - 1], slot * TOKENS_PER_OBJECT + offset)
            if options.constrained:
                logits = logits + vocab.constraint[offset]
            chosen[:, offset] = np.where(offset > first_wrong, logits.argmax(-1), chosen[:, offset])
            if offset == TOKENS_PER_OBJECT - 1:
                class_logits = np.where((first_wrong < offset)[:, None], logits, class_logits)
        return commit(slot, chosen, class_logits)

    pending = np.full((batch_size, 1), vocab.bos, dtype=np.int64)  # real tokens the cache lacks
    position, slot, draft = 0, 0, None
    while slot < max_objects or draft is not None:
        logits = run(pending, position, slot < max_objects)
        if draft is not None:  # the logits at the drafted object's positions check it
            verified = logits[:, :queries].argmax(-1)
            wrong = ~end_mask(draft, finished, vocab.eos)[:, 1:] & (verified != draft[:, 1:])
            if wrong.any():
                pending = correct(slot - 1, draft, verified, wrong, logits[:, queries - 1])[:, -1:]
                position, draft = slot * TOKENS_PER_OBJECT, None
                continue  # this slot's block again, from the corrected object
            commit(slot - 1, draft, logits[:, queries - 1])
            draft = None
        if slot == max_objects:
            break
        block = logits[:, pending.shape[1] - 1:].argmax(-1)  # (B, 5): the first token exact, four drafted
        ends_here = finished | (block[:, 0] == vocab.eos)
        if options.parallel_verify and not (options.stop_at_eos and ends_here.all()):
            draft = np.where(end_mask(block, finished, vocab.eos), vocab.pad, block)
            pending = draft if slot + 1 < max_objects else draft[:, :queries]
        else:
            pending = commit(slot, block, logits[:, -1])
        position = slot * TOKENS_PER_OBJECT + 1
        slot += 1
        if options.stop_at_eos and ends_here.all():
            break
    return tokens, class_probs, decoded_coordinates(tokens, vocab)


def decode_responses(step, prompts: np.ndarray, response_len: int, end_token: int, pad_token: int,
                     options: DecodingOptions, constraint: Optional[np.ndarray] = None,
                     rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The loop of ``decoding.decode_responses`` over ``step(tokens (N,), position) -> logits (N, V)``: the (N, P)
    prompts fed one token per step (the step graph reads one token), then each row's response token by token with
    ``options``' strategy, ``constraint`` (V,) added to the logits, PAD after the row's ``end_token``, until every row
    has ended or ``response_len`` tokens; returns the (N, response_len) int64 responses and float32 ``token_probs``,
    each token's probability under the softmax of its (constrained) logits, 0 after the row's end."""
    rng = rng if rng is not None else np.random.default_rng()
    num_rows, prompt_len = prompts.shape
    responses = np.full((num_rows, response_len), pad_token, dtype=np.int64)
    token_probs = np.zeros((num_rows, response_len), dtype=np.float32)
    finished = np.zeros(num_rows, dtype=bool)
    for position in range(prompt_len):
        logits = step(prompts[:, position], position)
    for index in range(response_len):
        if constraint is not None:
            logits = logits + constraint
        next_tokens = np.where(finished, pad_token, select_next_token(logits, options, rng))
        chosen_probs = np.take_along_axis(softmax(logits), next_tokens[:, None], axis=-1)[:, 0]
        token_probs[:, index] = np.where(finished, 0, chosen_probs)
        finished |= next_tokens == end_token
        responses[:, index] = next_tokens
        if index + 1 == response_len or finished.all():
            break
        logits = step(next_tokens, prompt_len + index)
    return responses, token_probs
