"""Autoregressive decoding for Pix2Seq: the key/value cache and the decoding strategies.

The decoder is driven through a ``step`` callable, ``step(tokens, position) -> logits``, that maps the (N, 1) tokens
at ``position`` to the (N, V) logits of the next token; with a :class:`DecodingCache` each step costs one token's
worth of compute, without it (``use_cache=False``) the whole prefix is decoded again at every step.  On a GPU the
cached step is recorded once as a CUDA graph and replayed (``cuda_graph``); ``compile`` fuses its small operations
with ``torch.compile`` (:class:`StaticStep` drives both).

Strategies (``DecodingConfig.strategy``):
    * ``greedy``: the most likely token.
    * ``top_k``: sample among the ``top_k`` most likely tokens (``temperature`` applies).
    * ``nucleus``: sample from the largest set of most likely tokens whose total probability stays within ``top_p``
      (paper: 0.4), at least the most likely one, as the official ``top_logits``; ``top_k`` > 0 caps the set
      first.
    * ``beam``: beam search of width ``beam_width``. Beams are ranked by the sum of token log-probabilities while
      searching; the returned beam of each image is the one with the highest *mean* token log-probability (sum
      divided by its length up to and including EOS), so short and long object lists compete fairly.

Whatever the strategy, once a sequence has produced EOS every later token is PAD, and the class and score of the
object in slot ``k`` come from the logits at its class position: the class is the most probable *real* class (FAKE
and all non-class tokens excluded), its score that class's probability under the softmax over the whole vocabulary,
as the official implementation computes it (``decode_object_seq_to_bbox``), so a slot the model takes for noise
(mass on FAKE) scores low.  ``renormalize_scores=True`` renormalises the softmax over the real classes instead.
A coordinate is the decoded bin; ``coord_window`` reads it as the mean bin of its distribution near the decoded one,
and ``box_confidence`` scales the scores by how much of the coordinates' probability lies there
(:func:`read_coordinates`), neither in the paper.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor

from .tokenizer import TOKENS_PER_OBJECT, Pix2SeqTokenizer

STRATEGIES = ('greedy', 'top_k', 'nucleus', 'beam')
StepFn = Callable[[Tensor, int], Tensor]


@dataclass
class DecodingConfig:
    """Decoding options, read from the head's ``test_cfg``.

    Args:
        strategy (str): One of :data:`STRATEGIES`.
        temperature (float): Divides the logits before sampling (> 0).
        top_k (int): Keep the ``top_k`` most likely tokens when sampling (0: off).
        top_p (float): Nucleus mass in (0, 1].
        beam_width (int): Beams per image for ``beam`` (>= 1).
        constrained (bool): Coordinate positions may only emit coordinate tokens (or EOS at an object's first
            position), class positions only class tokens (real or FAKE).
        stop_at_eos (bool): Stop once every sequence of the batch has ended (checked once per object, the only
            host synchronisation in the loop); otherwise decode all ``max_objects`` slots, as the paper does.
        use_cache (bool): Incremental decoding with the key/value cache; ``False`` re-runs the full decoder on the
            whole prefix at every step (the slow path of other implementations, kept for comparison).
        cuda_graph (bool): With the cache on a CUDA device, record the decoder step once as a CUDA graph and replay
            it at every position (:class:`StaticStep`); ignored on the CPU.
        compile (bool): With the cache, ``torch.compile`` the decoder step (static shapes, one graph; on CUDA before
            it is recorded as a CUDA graph).  The first decode of each batch size compiles, which takes tens of
            seconds.
        renormalize_scores (bool): Class probabilities renormalised over the real classes instead of the official
            whole-vocabulary softmax.
        parallel (bool): Decode one object (5 tokens) per decoder step (:func:`decode_in_blocks`; greedy, with the
            cache; needs a head trained with ``block_decoding``).  Not in the paper.
        parallel_verify (bool): With ``parallel``, check every drafted object against the token-by-token logits of
            the next step and correct it where it differs, so that the tokens are greedy token-by-token decoding's
            (default); ``False``: keep the drafts, one step per object.
        coord_window (int): Read each coordinate as the mean bin of its distribution (the softmax over the
            coordinate tokens) within ``coord_window`` bins of the decoded token, a sub-bin value
            (:func:`read_coordinates`); 0 (default): the decoded bin, the paper's.  Not in the paper; not with
            ``parallel``.
        box_confidence (bool): Multiply each object's class probabilities by its box confidence, the geometric mean
            over its four coordinates of the probability within ``coord_window`` bins of the decoded token, so
            that tight boxes rank above loose ones at the high IoU thresholds.  Not in the paper (default False);
            not with ``parallel``.
    """
    strategy: str = 'nucleus'
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.4
    beam_width: int = 1
    constrained: bool = False
    stop_at_eos: bool = False
    use_cache: bool = True
    cuda_graph: bool = True
    compile: bool = False
    renormalize_scores: bool = False
    parallel: bool = False
    parallel_verify: bool = True
    coord_window: int = 0
    box_confidence: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f'test_cfg.strategy must be one of {STRATEGIES}, got {self.strategy!r}')
        if not self.temperature > 0:
            raise ValueError(f'test_cfg.temperature must be > 0, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'test_cfg.top_p must be in (0, 1], got {self.top_p}')
        if self.top_k < 0:
            raise ValueError(f'test_cfg.top_k must be >= 0, got {self.top_k}')
        if self.strategy == 'top_k' and self.top_k < 1:
            raise ValueError('test_cfg.strategy="top_k" needs test_cfg.top_k >= 1')
        if self.beam_width < 1:
            raise ValueError(f'test_cfg.beam_width must be >= 1, got {self.beam_width}')
        if self.parallel and (self.strategy != 'greedy' or not self.use_cache):
            raise ValueError('test_cfg.parallel decodes greedily with the key/value cache: set strategy=\'greedy\' '
                             f'and use_cache=True (got strategy={self.strategy!r}, use_cache={self.use_cache})')
        if not (isinstance(self.coord_window, int) and self.coord_window >= 0):
            raise ValueError(f'test_cfg.coord_window must be an int >= 0 (bins), got {self.coord_window!r}')
        if self.parallel and (self.coord_window or self.box_confidence):
            raise ValueError('test_cfg.parallel reads the decoded bins only: set coord_window=0 and '
                             f'box_confidence=False (got coord_window={self.coord_window}, '
                             f'box_confidence={self.box_confidence})')


class DecodingCache:
    """Per-layer buffers for incremental decoding.

    Before each decoder step :meth:`seek` places the step's tokens; each layer then calls :meth:`extend` to write
    their self-attention keys/values into its buffers and read back what its queries attend to.  The position is
    either a Python ``int`` (attention reads the filled prefix, no more) or, for *static shapes*, a (1,) int64 tensor
    on the buffers' device: every step then has the same shapes and touches the same buffers (attention reads the
    whole buffer under a causal mask; buffers start zeroed so that unwritten entries are finite), which is what a CUDA
    graph and a compiled step need (:class:`StaticStep`).  :meth:`allocate` makes the zeroed buffers; the ONNX export
    passes its graph inputs as the buffers and overrides :meth:`extend` to write them functionally.

    Args:
        memory_key_value (list[tuple]): Per decoder layer, cross-attention keys and values of the encoder memory,
            each (N, H, S, Dh), projected once before the first step.
        memory_attn_mask (Tensor, optional): bool (N, 1, 1, S), True for valid memory positions.
        self_key_value (list[tuple]): Per decoder layer, the self-attention key and value buffers, each
            (N, H, max_len, Dh).
    """

    def __init__(self, memory_key_value: List[Tuple[Tensor, Tensor]], memory_attn_mask: Optional[Tensor],
                 self_key_value: List[Tuple[Tensor, Tensor]]) -> None:
        self.memory_key_value = memory_key_value
        self.memory_attn_mask = memory_attn_mask
        self.self_key_value = list(self_key_value)
        max_len = self.self_key_value[0][0].shape[2]
        self.key_positions = torch.arange(max_len, device=self.self_key_value[0][0].device)
        self.positions = self.key_positions[:1]
        self.window = 1
        self.attn_mask: Optional[Tensor] = None

    @classmethod
    def allocate(cls, memory_key_value: List[Tuple[Tensor, Tensor]], memory_attn_mask: Optional[Tensor],
                 num_heads: int, head_dims: int, max_len: int) -> 'DecodingCache':
        """A cache with zeroed (N, H, max_len, Dh) buffers of the memory's dtype and device, one key and one value
        buffer per layer of ``memory_key_value``."""
        reference = memory_key_value[0][0]
        shape = (reference.shape[0], num_heads, max_len, head_dims)
        buffers = [(reference.new_zeros(shape), reference.new_zeros(shape)) for _ in memory_key_value]
        return cls(memory_key_value, memory_attn_mask, buffers)

    def seek(self, position: Union[int, Tensor], num_tokens: int) -> None:
        """Place the next step's ``num_tokens`` tokens at ``position``, ``position + 1``, ... (an ``int``, or a (1,)
        int64 device tensor for static shapes); sets ``positions`` (T,), the attended ``window`` and the causal
        ``attn_mask`` (T, window), True where a query may attend (None for one token in the dynamic case)."""
        if isinstance(position, Tensor):
            self.positions = position if num_tokens == 1 else position + self.key_positions[:num_tokens]
            self.window = self.key_positions.shape[0]
        else:
            self.positions = self.key_positions[position:position + num_tokens]
            self.window = position + num_tokens
        static_or_chunk = isinstance(position, Tensor) or num_tokens > 1
        self.attn_mask = self.key_positions[:self.window] <= self.positions[:, None] if static_or_chunk else None

    def extend(self, layer_index: int, key: Tensor, value: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Write a layer's (N, H, T, Dh) keys/values at ``positions``; return the (N, H, window, Dh) keys/values its
        queries attend to and the (T, window) mask."""
        key_buffer, value_buffer = self.self_key_value[layer_index]
        key_buffer.index_copy_(2, self.positions, key)
        value_buffer.index_copy_(2, self.positions, value)
        return key_buffer[:, :, :self.window], value_buffer[:, :, :self.window], self.attn_mask

    def reorder(self, rows: Tensor) -> None:
        """Keep the self-attention history of ``rows`` (N,) (beam search), in place (the buffers stay the same
        tensors); the memory is shared by an image's beams, so it needs no reordering."""
        for key, value in self.self_key_value:
            key.copy_(key.index_select(0, rows))
            value.copy_(value.index_select(0, rows))


class StaticStep:
    """A decoding step driven with static shapes, optionally recorded once as a CUDA graph and replayed.

    ``static_step(tokens (N, 1), position (1,) int64) -> logits (N, V)`` must use the same shapes and buffers at every
    position (a :class:`DecodingCache` driven with a tensor position).  Each call copies the tokens and the position
    into the same two device tensors, so a ``torch.compile``-d step sees identical inputs and never recompiles.

    Small-batch decoding on a GPU is bound by launching the decoder's few hundred small kernels per token, not by
    the GPU's arithmetic; with ``cuda_graph`` the step is recorded once and a replay launches them all at once.
    Recording runs the step twice on a side stream first (CUDA's lazy initialisations, and compilation), which writes
    position 0 of the cache; the first real step overwrites it.  The returned logits are then the graph's output
    buffer, overwritten by the next call.
    """

    def __init__(self, static_step: Callable[[Tensor, Tensor], Tensor], num_rows: int, device: torch.device,
                 cuda_graph: bool) -> None:
        self.static_step = static_step
        self.tokens = torch.zeros((num_rows, 1), dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.graph = None
        if cuda_graph:
            side_stream = torch.cuda.Stream(device)
            side_stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side_stream):
                for _ in range(2):
                    static_step(self.tokens, self.position)
            torch.cuda.current_stream(device).wait_stream(side_stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = static_step(self.tokens, self.position)

    def __call__(self, tokens: Tensor, position: int) -> Tensor:
        self.tokens.copy_(tokens)
        self.position.fill_(position)
        if self.graph is None:
            return self.static_step(self.tokens, self.position)
        self.graph.replay()
        return self.logits


def position_constraint(tokenizer: Pix2SeqTokenizer, device: torch.device) -> Tensor:
    """Additive logit masks for constrained decoding: (5, V) float, 0 where :meth:`Pix2SeqTokenizer.allowed_tokens`
    allows a token and -inf elsewhere; row ``i`` applies to positions ``p`` with ``p % 5 == i``."""
    allowed = tokenizer.allowed_tokens(device)
    return torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float('-inf'))


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set to -inf every logit outside the top-k and outside the nucleus of mass ``top_p``.

    The nucleus is the official one (``top_logits`` in the official ``utils.py``): the most likely tokens whose
    cumulative probability, renormalised over the top-k when ``top_k`` > 0, is at most ``top_p``.  Both filters share
    one descending sort.  The most likely token always survives.

    Args:
        logits (Tensor): (N, V).

    Returns:
        Tensor: (N, V) filtered logits.
    """
    if top_k <= 0 and top_p >= 1.0:
        return logits
    sorted_logits, sorted_index = logits.sort(dim=-1, descending=True)
    remove = torch.zeros_like(sorted_logits, dtype=torch.bool)
    if top_k > 0:
        remove[:, top_k:] = True
    if top_p < 1.0:
        probs = sorted_logits.masked_fill(remove, float('-inf')).softmax(-1)
        remove |= probs.cumsum(-1) > top_p
    remove[:, 0] = False
    return logits.masked_fill(remove.scatter(1, sorted_index, remove), float('-inf'))


def select_next_token(logits: Tensor, cfg: DecodingConfig, generator: Optional[torch.Generator] = None) -> Tensor:
    """(N, V) logits -> (N,) next tokens for the greedy and sampling strategies."""
    if cfg.strategy == 'greedy':
        return logits.argmax(-1)
    top_p = cfg.top_p if cfg.strategy == 'nucleus' else 1.0
    probs = filter_logits(logits / cfg.temperature, cfg.top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def class_probabilities(logits: Tensor, tokenizer: Pix2SeqTokenizer, renormalize: bool = False) -> Tensor:
    """(N, V) logits at class positions -> (N, C) probabilities of the real classes: their share of the softmax over
    the whole vocabulary, or, when ``renormalize``, the softmax over the real-class tokens alone."""
    real = tokenizer.real_classes
    return logits[:, real].softmax(-1) if renormalize else logits.softmax(-1)[:, real]


def read_coordinates(logits: Tensor, chosen: Tensor, tokenizer: Pix2SeqTokenizer,
                     window: int = 0) -> Tuple[Tensor, Tensor]:
    """(N, V) logits at coordinate positions and the (N,) decoded tokens -> ``coords`` (N,) normalised coordinates
    and ``confidence`` (N,).

    Over the softmax of the coordinate tokens, ``coords`` is the mean bin within ``window`` bins of the decoded
    token's (its own bin when ``window`` is 0), divided by ``num_bins - 1`` as :meth:`Pix2SeqTokenizer.dequantize`
    divides a bin; ``confidence`` is the probability within that window.  A decoded token that is not a coordinate
    reads as its clamped bin.
    """
    probs = logits[:, tokenizer.coordinates].float().softmax(-1)  # (N, bins)
    centre = tokenizer.bins(chosen)
    offsets = torch.arange(tokenizer.num_bins, device=logits.device) - centre[:, None]  # (N, bins)
    weights = probs * (offsets.abs() <= window)
    confidence = weights.sum(-1)
    shift = (weights * offsets).sum(-1) / confidence.clamp(min=torch.finfo(probs.dtype).tiny)  # 0 when window is 0
    return (centre + shift) / (tokenizer.num_bins - 1), confidence


def decoded_coordinates(tokens: Tensor, tokenizer: Pix2SeqTokenizer) -> Tensor:
    """(..., L) tokens -> (..., L) the decoded bins normalised at coordinate tokens, 0 elsewhere: the coordinates
    :func:`read_coordinates` gives with a window of 0, without reading the logits."""
    return tokenizer.dequantize(tokens).masked_fill(~tokenizer.is_coord(tokens), 0)


def box_confidence(confidence: Tensor) -> Tensor:
    """(N, 4) coordinate confidences of objects -> (N,) their geometric mean."""
    return confidence.clamp(min=torch.finfo(confidence.dtype).tiny).log().mean(-1).exp()


def _beam_step(logits: Tensor, beam_scores: Tensor, finished: Tensor, row_base: Tensor,
               pad_token: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Extend every beam by one token and keep the ``W`` best of the ``W * V`` candidates of each image.

    Args:
        logits (Tensor): (B * W, V) next-token logits, beams of an image in consecutive rows.
        beam_scores (Tensor): (B, W) summed log-probabilities so far.
        finished (Tensor): (B * W,) bool, beams that produced EOS; they can only continue with PAD, at no cost.
        row_base (Tensor): (B, 1) first row of each image.
        pad_token (int): The PAD id.

    Returns:
        tuple: new ``beam_scores`` (B, W), the parent ``rows`` (B * W,) and the ``next_tokens`` (B * W,).
    """
    batch_size, beam_width = beam_scores.shape
    log_probs = logits.log_softmax(-1)
    ended_row = torch.full_like(log_probs[0], float('-inf'))
    ended_row[pad_token] = 0
    log_probs = torch.where(finished[:, None], ended_row, log_probs)
    candidates = (beam_scores[..., None] + log_probs.view(batch_size, beam_width, -1)).flatten(1)
    beam_scores, flat_index = candidates.topk(beam_width, dim=-1)
    vocab_size = log_probs.shape[-1]
    return beam_scores, (row_base + flat_index // vocab_size).flatten(), (flat_index % vocab_size).flatten()


def decode_sequences(step: StepFn, batch_size: int, device: torch.device, tokenizer: Pix2SeqTokenizer,
                     cfg: DecodingConfig, reorder: Optional[Callable[[Tensor], None]] = None,
                     generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Decode ``max_objects`` object slots for every image.

    Args:
        step (callable): ``step(tokens (N, 1), position) -> (N, V) logits``, N = ``batch_size * beam_width``
            (beams of one image are consecutive rows).
        batch_size (int): Images ``B``.
        device (torch.device): Where to allocate the outputs.
        tokenizer (Pix2SeqTokenizer): The vocabulary.
        cfg (DecodingConfig): Strategy and options.
        reorder (callable, optional): ``reorder(rows (N,))`` permutes the decoder state; needed by beam search.
        generator (torch.Generator, optional): Randomness of the sampling strategies.

    Returns:
        tuple: ``tokens`` (B, 5 * max_objects) int64, ``class_probs`` (B, max_objects, C) float32 (times the box
        confidence with ``cfg.box_confidence``) and ``coords`` (B, 5 * max_objects) float32, the normalised
        coordinate read at each coordinate position (:func:`read_coordinates` with ``cfg.coord_window``; 0 at class
        positions).
    """
    seq_len = TOKENS_PER_OBJECT * tokenizer.max_objects
    use_beams = cfg.strategy == 'beam'
    beam_width = cfg.beam_width if use_beams else 1
    num_rows = batch_size * beam_width
    tokens = torch.full((num_rows, seq_len), tokenizer.PAD, dtype=torch.long, device=device)
    class_probs = torch.zeros(num_rows, tokenizer.max_objects, tokenizer.num_classes, device=device)
    coords = torch.zeros(num_rows, seq_len, device=device)
    coord_confidence = torch.ones(num_rows, seq_len, device=device)
    finished = torch.zeros(num_rows, dtype=torch.bool, device=device)
    constraint = position_constraint(tokenizer, device) if cfg.constrained else None
    reads_coordinates = cfg.coord_window > 0 or cfg.box_confidence  # else the decoded bins, after the loop
    if use_beams:
        lengths = torch.full((num_rows, ), seq_len, dtype=torch.long, device=device)  # up to and including EOS
        beam_scores = torch.zeros(batch_size, beam_width, device=device)
        beam_scores[:, 1:] = float('-inf')  # all beams start identical: expand the first one only
        row_base = torch.arange(batch_size, device=device)[:, None] * beam_width
    current = torch.full((num_rows, 1), tokenizer.BOS, dtype=torch.long, device=device)

    for position in range(seq_len):
        logits = step(current, position).float()
        if constraint is not None:
            logits = logits + constraint[position % TOKENS_PER_OBJECT]
        slot = position // TOKENS_PER_OBJECT
        is_class_position = tokenizer.is_class_position(position)
        if not use_beams:
            next_tokens = select_next_token(logits, cfg, generator)
        else:
            beam_scores, rows, next_tokens = _beam_step(logits, beam_scores, finished, row_base, tokenizer.PAD)
            tokens, finished, lengths, class_probs = tokens[rows], finished[rows], lengths[rows], class_probs[rows]
            coords, coord_confidence, logits = coords[rows], coord_confidence[rows], logits[rows]
            reorder(rows)
        if is_class_position:
            class_probs[:, slot] = class_probabilities(logits, tokenizer, cfg.renormalize_scores)
            if cfg.box_confidence:
                object_coords = slice(position - TOKENS_PER_OBJECT + 1, position)
                class_probs[:, slot] *= box_confidence(coord_confidence[:, object_coords])[:, None]
        elif reads_coordinates:
            read = read_coordinates(logits, next_tokens, tokenizer, cfg.coord_window)
            coords[:, position], coord_confidence[:, position] = read
        next_tokens = torch.where(finished, tokenizer.PAD, next_tokens)
        newly_ended = ~finished & (next_tokens == tokenizer.EOS)
        if use_beams:
            lengths = torch.where(newly_ended, position + 1, lengths)
        finished = finished | newly_ended
        tokens[:, position] = next_tokens
        current = next_tokens[:, None]
        if cfg.stop_at_eos and is_class_position and bool(finished.all()):
            break

    if use_beams:
        mean_log_prob = beam_scores / lengths.view(batch_size, beam_width)
        best = row_base.squeeze(1) + mean_log_prob.argmax(-1)
        tokens, class_probs, coords = tokens[best], class_probs[best], coords[best]
    return tokens, class_probs, coords if reads_coordinates else decoded_coordinates(tokens, tokenizer)


def block_attention_mask(length: int, block_size: int, device: torch.device) -> Tensor:
    """(2 L, 2 L) bool self-attention mask (True: attend) of the block objective over ``[real (L); queries (L)]``:
    the real tokens attend causally to real tokens; the query at ``p``, in the block that starts at
    ``s = block_size * (p // block_size)``, attends to the real tokens before ``s`` and to its block's queries from
    ``s`` to ``p``."""
    positions = torch.arange(length, device=device)
    starts = positions // block_size * block_size
    causal = positions[None, :] <= positions[:, None]
    before_block = positions[None, :] < starts[:, None]
    in_block = causal & (positions[None, :] >= starts[:, None])
    top = torch.cat([causal, torch.zeros_like(causal)], dim=1)
    bottom = torch.cat([before_block, in_block], dim=1)
    return torch.cat([top, bottom], dim=0)


def end_mask(block: Tensor, finished: Tensor, end_token: int) -> Tensor:
    """(N, 5) tokens of an object and (N,) rows already ended -> (N, 5) bool, True where token-by-token decoding
    writes PAD: every token of an ended row and the tokens after the object's first ``end_token``."""
    is_end = block == end_token
    return finished[:, None] | ((is_end.cumsum(1) - is_end.long()) > 0)


def decode_in_blocks(step: Callable[..., Tensor], batch_size: int, device: torch.device,
                     tokenizer: Pix2SeqTokenizer, cfg: DecodingConfig) -> Tuple[Tensor, Tensor, Tensor]:
    """Greedy decoding of one object per step (``cfg.parallel``).

    A block step feeds the real tokens not yet in the cache and 4 block queries, and reads the object's five tokens
    from the logits at the block start (the first token, exact: it follows the real tokens) and at the queries (the
    other four, drafted from the objects before it).  With ``cfg.parallel_verify`` (default) the next block step
    feeds the drafted object as real tokens before the next object's queries, so its logits at those positions are
    token-by-token decoding's given the draft: where a drafted token differs from the greedy one, the object takes
    the greedy token, its remaining tokens are decoded token by token (one step of the batch each, the other rows
    re-feeding their own tokens), and the next object's block is decoded again from the corrected object; the last
    object is checked by a step without queries.  The tokens are then token-by-token greedy decoding's, in one step
    per object where the drafts hold.  Without verification each object keeps its draft: one step per object.

    Args:
        step (callable): ``step(real (B, T), position, with_queries) -> (B, T (+ 4), V)`` logits of the real
            tokens at ``position .. position + T - 1`` with the key/value cache, followed by ``TOKENS_PER_OBJECT -
            1`` positions that read the block query when ``with_queries`` (``Pix2SeqHead.block_step``).
        batch_size (int): Images ``B``.
        device (torch.device): Where to allocate the outputs.
        tokenizer (Pix2SeqTokenizer): The vocabulary.
        cfg (DecodingConfig): ``constrained``, ``renormalize_scores``, ``stop_at_eos``, ``parallel_verify``.

    Returns:
        tuple: as :func:`decode_sequences`, ``tokens`` (B, 5 * max_objects), ``class_probs`` (B, max_objects, C) and
        ``coords`` (B, 5 * max_objects), the decoded bins normalised.
    """
    queries, max_objects = TOKENS_PER_OBJECT - 1, tokenizer.max_objects
    tokens = torch.full((batch_size, TOKENS_PER_OBJECT * max_objects), tokenizer.PAD, dtype=torch.long,
                        device=device)
    class_probs = torch.zeros(batch_size, max_objects, tokenizer.num_classes, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    constraint = position_constraint(tokenizer, device) if cfg.constrained else None

    def run(real: Tensor, position: int, with_queries: bool) -> Tensor:
        """Logits (B, T (+ 4), V) of the real tokens at ``position ..`` (and the block queries), constrained."""
        logits = step(real, position, with_queries).float()
        if constraint is not None:
            logits = logits + constraint[(position + torch.arange(logits.shape[1], device=device)) % TOKENS_PER_OBJECT]
        return logits

    def commit(slot: int, block: Tensor, class_logits: Tensor) -> Tensor:
        """Write an object's tokens (PAD where token-by-token decoding writes PAD) and class probabilities."""
        nonlocal finished
        class_probs[:, slot] = class_probabilities(class_logits, tokenizer, cfg.renormalize_scores)
        block = block.masked_fill(end_mask(block, finished, tokenizer.EOS), tokenizer.PAD)
        finished = finished | (block == tokenizer.EOS).any(1)
        tokens[:, slot * TOKENS_PER_OBJECT:(slot + 1) * TOKENS_PER_OBJECT] = block
        return block

    def correct(slot: int, draft: Tensor, verified: Tensor, wrong: Tensor, verified_class_logits: Tensor) -> Tensor:
        """Commit object ``slot``: the draft up to each row's first wrong token, the greedy token there, then token
        by token."""
        first_wrong = torch.where(wrong.any(1), wrong.float().argmax(1) + 1, TOKENS_PER_OBJECT)  # offsets 1 .. 4
        offsets = torch.arange(TOKENS_PER_OBJECT, device=device)
        chosen = torch.where(offsets == first_wrong[:, None], torch.cat([draft[:, :1], verified], dim=1), draft)
        class_logits = verified_class_logits
        for offset in range(int(first_wrong.min()) + 1, TOKENS_PER_OBJECT):
            logits = run(chosen[:, offset - 1:offset], slot * TOKENS_PER_OBJECT + offset, False)[:, -1]
            chosen[:, offset] = torch.where(offset > first_wrong, logits.argmax(-1), chosen[:, offset])
            if offset == TOKENS_PER_OBJECT - 1:
                class_logits = torch.where((first_wrong < offset)[:, None], logits, class_logits)
        return commit(slot, chosen, class_logits)

    pending = torch.full((batch_size, 1), tokenizer.BOS, dtype=torch.long, device=device)  # real, not yet cached
    position, slot, draft = 0, 0, None
    while slot < max_objects or draft is not None:
        logits = run(pending, position, slot < max_objects)
        if draft is not None:  # the logits at the drafted object's positions check it
            verified = logits[:, :queries].argmax(-1)
            checked = ~end_mask(draft, finished, tokenizer.EOS)[:, 1:]
            wrong = checked & (verified != draft[:, 1:])
            if bool(wrong.any()):
                pending = correct(slot - 1, draft, verified, wrong, logits[:, queries - 1])[:, -1:]
                position, draft = slot * TOKENS_PER_OBJECT, None
                continue  # this slot's block again, from the corrected object
            commit(slot - 1, draft, logits[:, queries - 1])
            draft = None
        if slot == max_objects:
            break
        block = logits[:, pending.shape[1] - 1:].argmax(-1)  # (B, 5): the first token exact, four drafted
        ends_here = finished | (block[:, 0] == tokenizer.EOS)
        if cfg.parallel_verify and not (cfg.stop_at_eos and bool(ends_here.all())):
            draft = block.masked_fill(end_mask(block, finished, tokenizer.EOS), tokenizer.PAD)
            # the last object is checked without queries: its four first tokens fit in the cache
            pending = draft if slot + 1 < max_objects else draft[:, :queries]
        else:
            pending = commit(slot, block, logits[:, -1])
        position = slot * TOKENS_PER_OBJECT + 1
        slot += 1
        if cfg.stop_at_eos and bool(ends_here.all()):
            break
    return tokens, class_probs, decoded_coordinates(tokens, tokenizer)


def decode_responses(step: StepFn, prompts: Tensor, response_len: int, end_token: int, pad_token: int,
                     cfg: DecodingConfig, constraint: Optional[Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """Decode the response to each prompt of an instance task, token by token, until every row has its end token.

    Args:
        step (callable): ``step(tokens (N, T), position) -> (N, V)`` logits of the token after the last of the T
            tokens placed at ``position .. position + T - 1`` (a :class:`DecodingCache`-backed step reads the prompt
            as one chunk, then one token per step).
        prompts (Tensor): (N, P) prompt tokens, task token first.
        response_len (int): Most tokens per response.
        end_token (int): Ends a row (EOS); every later token of the row is ``pad_token``.
        cfg (DecodingConfig): Token selection (greedy or sampling; beam search does not apply).
        constraint (Tensor, optional): (V,) additive logit mask (0 allowed, -inf not).
        generator (torch.Generator, optional): Randomness of the sampling strategies.

    Returns:
        tuple: ``responses`` (N, response_len) int64 and ``token_probs`` (N, response_len) float32, each token's
        probability under the softmax of its (constrained) logits, 0 after the row's end.
    """
    if cfg.strategy == 'beam':
        raise ValueError('instance task responses are decoded greedily or sampled; beam search does not apply')
    num_rows, prompt_len = prompts.shape
    responses = torch.full((num_rows, response_len), pad_token, dtype=torch.long, device=prompts.device)
    token_probs = torch.zeros((num_rows, response_len), device=prompts.device)
    finished = torch.zeros(num_rows, dtype=torch.bool, device=prompts.device)
    logits = step(prompts, 0).float()
    for index in range(response_len):
        if constraint is not None:
            logits = logits + constraint
        next_tokens = torch.where(finished, pad_token, select_next_token(logits, cfg, generator))
        chosen_probs = logits.softmax(-1).gather(1, next_tokens[:, None]).squeeze(1)
        token_probs[:, index] = torch.where(finished, 0.0, chosen_probs)
        finished = finished | (next_tokens == end_token)
        responses[:, index] = next_tokens
        if index + 1 == response_len or bool(finished.all()):
            break
        logits = step(next_tokens[:, None], prompt_len + index).float()
    return responses, token_probs
