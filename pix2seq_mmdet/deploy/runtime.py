"""Pix2Seq inference with ONNX Runtime: numpy, onnxruntime and OpenCV, no torch, mmcv or mmdet.

Reads a folder written by ``tools/deployment/pytorch2onnx.py`` (``pix2seq.json``, ``encoder.onnx``,
``decoder_step.onnx``, optionally ``decoder_step_int8.onnx``)::

    from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
    detector = Pix2SeqRuntime('work_dirs/onnx')            # decoder='int8' for the quantised decoder step
    result = detector('demo.jpg')[0]                       # or a BGR uint8 array, or a list of either
    result.bboxes, result.scores, result.labels            # xyxy in the original image's pixels

The module imports nothing from its package, so it also works copied alone, or loaded from its file
(``tools/deployment/onnx_demo.py`` does that, so the demo needs no torch).

What happens, as the PyTorch model does it:

* preprocessing (:meth:`Pix2SeqRuntime.preprocess`): the test pipeline's ``Resize`` (mmcv's ``imrescale`` with
  ``keep_ratio``: scale factor ``min(long / long_edge, short / short_edge)``, sizes rounded half up, bilinear
  ``cv2.resize``), BGR -> RGB, ``(x - mean) / std``, padding at the bottom and right to the fixed frame ``pad_size``
  with ``pad_value``, as ``Pix2SeqDataPreprocessor`` does;
* the encoder graph once per batch, its outputs (memory and every decoder layer's cross-attention keys and values)
  written into preallocated buffers;
* one decoder-step graph call per token (:class:`DecoderStep`).  Every input and output is bound once through
  ONNX Runtime's IO binding to preallocated buffers: the encoder's outputs are the decoder's inputs as they are, and
  each layer's self-attention cache output is bound to the same buffer as its input, so the graph writes the new
  position in place (``GroupQueryAttention`` appends into a shared past/present buffer; the ``--attention onnx``
  graph's ``ScatterElements`` skips its copy when input and output share a buffer) and nothing of the cache is
  copied per step; only the (B, V) logits come back to numpy;
* token selection as ``pix2seq_mmdet.models.decoding.decode_sequences`` (greedy, top-k, nucleus with the official
  filter of ``decoding.filter_logits``; optional constrained decoding; PAD after EOS; class probabilities from the
  logits at class positions, the official whole-vocabulary softmax);
* post-processing as ``Pix2SeqHead.tokens_to_instances``: malformed slots dropped, ``classes_per_box`` detections
  per box, boxes normalised to the frame, clipped to the resized image, empty ones dropped, divided by the scale
  factor, sorted by score, at most ``max_per_img``.

Errors: a missing file is a ``FileNotFoundError``; a graph that is not the one ``pix2seq.json`` describes (another
export, a modified file, other inputs) an :class:`ExportMismatchError`; an image of the wrong type a ``TypeError``,
of the wrong dtype or shape a ``ValueError``.
"""
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import onnxruntime as ort

FORMAT_VERSION = 1
META_FILE = 'pix2seq.json'
EXPORT_ID_KEY = 'pix2seq_export_id'
TOKENS_PER_OBJECT = 5
STRATEGIES = ('greedy', 'top_k', 'nucleus')
DECODERS = {'fp32': 'decoder_step', 'int8': 'decoder_step_int8'}
# ONNX Runtime folds the attention's 1/sqrt(Dh) query scaling into its MatMul (MatMulScaleFusion, alpha != 1), which
# sends the single-query products off MLAS's matrix-vector kernels (they take alpha == 1) onto the packing GEMM path
DISABLED_OPTIMIZERS = ('MatMulScaleFusion', )
ImageLike = Union[str, os.PathLike, np.ndarray]


class ExportMismatchError(ValueError):
    """A graph file, or the graph's inputs and outputs, do not match the ``pix2seq.json`` beside them."""


@dataclass
class Detections:
    """One image's detections, in the original image's pixels.

    Attributes:
        bboxes (np.ndarray): (N, 4) float32 ``x1, y1, x2, y2``.
        scores (np.ndarray): (N,) float32, descending.
        labels (np.ndarray): (N,) int64, 0-based class indices (``Pix2SeqRuntime.class_names``).
    """
    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ImageMeta:
    """Where one preprocessed image sits in the frame: ``ori_shape`` and ``img_shape`` (resized) as (h, w),
    ``scale_factor`` as (w_scale, h_scale), like mmdet's metainfo."""
    ori_shape: Tuple[int, int]
    img_shape: Tuple[int, int]
    scale_factor: Tuple[float, float]


def sha256_file(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def load_metadata(model_dir: Union[str, os.PathLike]) -> dict:
    """Read and check ``pix2seq.json`` of an export folder."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: export the model with tools/deployment/pytorch2onnx.py first')
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f'{path} is not valid JSON: {error}') from None
    if not isinstance(meta, dict) or meta.get('format') != 'pix2seq-onnx':
        raise ValueError(f'{path} is not a Pix2Seq ONNX export description (no "format": "pix2seq-onnx")')
    if meta.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'{path} has format version {meta.get("format_version")}, this runtime reads version '
                         f'{FORMAT_VERSION}: export the model again with this version of pix2seq_mmdet')
    return meta


# --------------------------------------------------------------------------------------------- token handling
def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def filter_logits(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """numpy twin of ``pix2seq_mmdet.models.decoding.filter_logits``: -inf outside the top-k and outside the official
    nucleus (the most likely tokens whose cumulative probability, renormalised over the top-k, is at most ``top_p``;
    the most likely token always survives).  (N, V) -> (N, V)."""
    if top_k <= 0 and top_p >= 1.0:
        return logits
    order = np.argsort(-logits, axis=-1, kind='stable')
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    remove = np.zeros(sorted_logits.shape, dtype=bool)
    if top_k > 0:
        remove[:, top_k:] = True
    if top_p < 1.0:
        probs = softmax(np.where(remove, -np.inf, sorted_logits))
        remove |= np.cumsum(probs, axis=-1) > top_p
    remove[:, 0] = False
    mask = np.empty_like(remove)
    np.put_along_axis(mask, order, remove, axis=-1)
    return np.where(mask, -np.inf, logits).astype(logits.dtype, copy=False)


class Vocabulary:
    """The token layout of an export (``pix2seq.json``'s ``vocabulary``, written from the model's tokenizer): special
    ids, class token ids, coordinate ids ``coord_offset .. coord_offset + num_bins - 1``."""

    def __init__(self, spec: dict) -> None:
        self.vocab_size = int(spec['vocab_size'])
        self.pad, self.eos, self.bos, self.fake = (int(spec[key]) for key in ('pad', 'eos', 'bos', 'fake'))
        self.class_ids = np.asarray(spec['class_token_ids'], dtype=np.int64)
        self.num_classes = len(self.class_ids)
        self.coord_offset, self.num_bins = int(spec['coord_offset']), int(spec['num_bins'])
        self.max_objects = int(spec['max_objects'])
        self.label_of_token = np.full(self.vocab_size, -1, dtype=np.int64)
        self.label_of_token[self.class_ids] = np.arange(self.num_classes)
        self.class_or_fake = np.zeros(self.vocab_size, dtype=bool)
        self.class_or_fake[self.class_ids] = True
        self.class_or_fake[self.fake] = True
        # (5, V) additive masks of constrained decoding, from the tokenizer's allowed_tokens (runs of allowed ids)
        self.constraint = np.full((TOKENS_PER_OBJECT, self.vocab_size), -np.inf, dtype=np.float32)
        for row, runs in enumerate(spec['allowed_token_runs']):
            for start, end in runs:
                self.constraint[row, start:end] = 0

    @property
    def seq_len(self) -> int:
        """Decoded tokens per image, ``5 * max_objects``."""
        return TOKENS_PER_OBJECT * self.max_objects

    def is_coord(self, tokens: np.ndarray) -> np.ndarray:
        return (tokens >= self.coord_offset) & (tokens < self.coord_offset + self.num_bins)

    def is_class(self, tokens: np.ndarray) -> np.ndarray:
        """Real classes and FAKE; ids beyond the vocabulary are not."""
        inside = (tokens >= 0) & (tokens < self.vocab_size)
        return inside & self.class_or_fake[np.clip(tokens, 0, self.vocab_size - 1)]

    def dequantize(self, tokens: np.ndarray) -> np.ndarray:
        bins = np.clip(tokens - self.coord_offset, 0, self.num_bins - 1)
        return bins.astype(np.float32) / (self.num_bins - 1)

    def class_probabilities(self, logits: np.ndarray, renormalize: bool = False) -> np.ndarray:
        """(N, V) logits at a class position -> (N, C): the real classes' share of the whole-vocabulary softmax (the
        official score), or the softmax over the real classes alone when ``renormalize``."""
        if renormalize:
            return softmax(logits[:, self.class_ids])
        return softmax(logits)[:, self.class_ids]

    def decode_slots(self, tokens: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """One image's (L,) tokens -> ``boxes_yxyx`` (K, 4) normalised and ``valid`` (K,), as
        ``Pix2SeqTokenizer.decode``."""
        num_slots = tokens.shape[-1] // TOKENS_PER_OBJECT
        slots = tokens[:num_slots * TOKENS_PER_OBJECT].reshape(num_slots, TOKENS_PER_OBJECT)
        coords, classes = slots[:, :4], slots[:, 4]
        boxes = self.dequantize(coords)
        ended = np.cumsum((slots == self.eos).any(-1)) > 0
        valid = (self.is_coord(coords).all(-1) & self.is_class(classes) & ~ended
                 & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        return boxes, valid


# ---------------------------------------------------------------------------------------------- image input
def load_image(image: ImageLike) -> np.ndarray:
    """A path (read with OpenCV, BGR) or an (H, W, 3) uint8 BGR array -> the (H, W, 3) uint8 BGR array."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'image {path} not found')
        array = cv2.imread(path, cv2.IMREAD_COLOR)
        if array is None:
            raise ValueError(f'image {path} could not be decoded by OpenCV')
        return array
    if not isinstance(image, np.ndarray):
        raise TypeError(f'an image must be a file path or an (H, W, 3) uint8 BGR numpy array, got '
                        f'{type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'an image array must be uint8 (BGR, as OpenCV reads it), got dtype {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'an image array must be (H, W, 3) BGR, got shape {image.shape}')
    if min(image.shape[:2]) < 1:
        raise ValueError(f'an image array must not be empty, got shape {image.shape}')
    return image


def rescale_size(width: int, height: int, scale: Sequence[int], keep_ratio: bool) -> Tuple[int, int]:
    """mmcv's ``rescale_size`` (keep_ratio) or a fixed size: the (new_w, new_h) of mmdet's ``Resize``."""
    if not keep_ratio:
        return int(scale[0]), int(scale[1])
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


INTERPOLATIONS = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
                  'area': cv2.INTER_AREA, 'lanczos': cv2.INTER_LANCZOS4}


# ---------------------------------------------------------------------------------------------- ORT sessions
def _check_graph(path: Path, spec: dict, meta: dict, meta_path: Path) -> None:
    """The file exists and is byte for byte the one the JSON was written with."""
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found (listed in {meta_path}); export the model again')
    digest = sha256_file(path)
    if digest != spec['sha256']:
        raise ExportMismatchError(f'{path} does not match {meta_path} (sha256 {digest[:12]}..., the JSON expects '
                                  f'{spec["sha256"][:12]}...): the graph and the JSON come from different exports '
                                  f'or the file was modified; use the folder an export wrote as it is')


def make_session_options(num_threads: int = 0) -> ort.SessionOptions:
    """Session options of the runtime: ``num_threads`` intra-op threads (0: ONNX Runtime's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    return options


def create_session(path: Union[str, os.PathLike], options: Optional[ort.SessionOptions] = None,
                   providers: Optional[Sequence[str]] = None) -> ort.InferenceSession:
    """An ONNX Runtime session of a graph with the runtime's settings (:data:`DISABLED_OPTIMIZERS`)."""
    return ort.InferenceSession(str(path), sess_options=options or make_session_options(),
                                providers=list(providers or ['CPUExecutionProvider']),
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))


def _open_session(path: Path, spec: dict, meta: dict, options: ort.SessionOptions,
                  providers: Sequence[str]) -> ort.InferenceSession:
    session = create_session(path, options, providers)
    export_id = session.get_modelmeta().custom_metadata_map.get(EXPORT_ID_KEY)
    if export_id != meta['export_id']:
        raise ExportMismatchError(f'{path} belongs to export {export_id}, pix2seq.json to export '
                                  f'{meta["export_id"]}: use the JSON written together with the graphs')
    inputs = [node.name for node in session.get_inputs()]
    outputs = [node.name for node in session.get_outputs()]
    if inputs != spec['inputs'] or outputs != spec['outputs']:
        raise ExportMismatchError(f'{path} has inputs {inputs} and outputs {outputs}, pix2seq.json describes '
                                  f'{spec["inputs"]} and {spec["outputs"]}')
    return session


def _bound(array: np.ndarray) -> ort.OrtValue:
    """An OrtValue over ``array``'s memory (CPU): ONNX Runtime reads and writes the numpy buffer itself."""
    return ort.OrtValue.ortvalue_from_numpy(array)


class EncoderOutputs:
    """The encoder's outputs for one batch, in numpy buffers bound as OrtValues: ``memory`` (B, S, D) and
    ``memory_key_value`` (per decoder layer, keys and values (B, H, S, Dh))."""

    def __init__(self, batch_size: int, geometry: dict) -> None:
        self.batch_size = batch_size
        heads, length, dims = geometry['num_heads'], geometry['memory_len'], geometry['head_dims']
        self.memory = np.zeros((batch_size, length, geometry['embed_dims']), np.float32)
        self.memory_key_value = [np.zeros((batch_size, heads, length, dims), np.float32)
                                 for _ in range(2 * geometry['num_layers'])]
        self.values = [_bound(array) for array in [self.memory] + self.memory_key_value]


class DecoderStep:
    """``decoder_step.onnx`` (or its int8 version) in an ONNX Runtime session, driven through IO binding.

    :meth:`start` binds, for a batch, the encoder's key/value buffers as inputs, a zeroed self-attention cache per
    layer as both input and output (updated in place by the graph), the token and position inputs and the logits
    output; :meth:`step` then writes the tokens and the position into their bound buffers and runs.  Buffers are
    kept per batch size and reused by later batches of that size (entries of an earlier decode beyond the current
    position are masked out by the graph's causal mask, so the cache needs no clearing).

    Args:
        session (ort.InferenceSession): The decoder-step session.
        geometry (dict): ``pix2seq.json``'s ``geometry``.
        vocab_size (int): Logits per row.
        static_batch (int, optional): The graph's fixed batch size (None: dynamic).
    """

    def __init__(self, session: ort.InferenceSession, geometry: dict, vocab_size: int,
                 static_batch: Optional[int]) -> None:
        self.session = session
        self.geometry = geometry
        self.vocab_size = vocab_size
        self.static_batch = static_batch
        self.num_layers = geometry['num_layers']
        self._buffers: Dict[int, dict] = {}
        self.binding: Optional[ort.IOBinding] = None
        self.buffers: Optional[dict] = None

    def _allocate(self, batch_size: int) -> dict:
        if batch_size not in self._buffers:
            shape = (batch_size, self.geometry['num_heads'], self.geometry['cache_len'], self.geometry['head_dims'])
            cache = [np.zeros(shape, np.float32) for _ in range(2 * self.num_layers)]
            tokens = np.zeros((batch_size, 1), np.int64)
            position = np.zeros(1, np.int64)
            logits = np.zeros((batch_size, self.vocab_size), np.float32)
            self._buffers[batch_size] = dict(cache=cache, cache_values=[_bound(array) for array in cache],
                                             tokens=tokens, position=position, logits=logits,
                                             tokens_value=_bound(tokens), position_value=_bound(position),
                                             logits_value=_bound(logits))
        return self._buffers[batch_size]

    def start(self, encoded: EncoderOutputs) -> None:
        """Bind everything for decoding the batch whose encoder outputs are ``encoded``."""
        batch_size = encoded.batch_size
        if self.static_batch is not None and batch_size != self.static_batch:
            raise ValueError(f'the decoder graph was exported for batch size {self.static_batch}, got {batch_size} '
                             f'images (export with --dynamic-batch, or --batch-size {batch_size})')
        buffers = self._allocate(batch_size)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input('tokens', buffers['tokens_value'])
        binding.bind_ortvalue_input('position', buffers['position_value'])
        for layer in range(self.num_layers):
            for offset, kind in enumerate(('key', 'value')):
                binding.bind_ortvalue_input(f'memory_{kind}_{layer}', encoded.values[1 + 2 * layer + offset])
                cache_value = buffers['cache_values'][2 * layer + offset]
                binding.bind_ortvalue_input(f'cache_{kind}_{layer}', cache_value)
                binding.bind_ortvalue_output(f'new_cache_{kind}_{layer}', cache_value)  # in place
        binding.bind_ortvalue_output('logits', buffers['logits_value'])
        self.binding, self.buffers = binding, buffers

    def step(self, tokens: np.ndarray, position: int) -> np.ndarray:
        """(B,) int64 tokens at ``position`` -> (B, V) float32 logits of the next token (the bound output buffer,
        overwritten by the next step)."""
        self.buffers['tokens'][:, 0] = tokens
        self.buffers['position'][0] = position
        self.session.run_with_iobinding(self.binding)
        return self.buffers['logits']


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

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f'the ONNX runtime decodes with one of {STRATEGIES}, got strategy {self.strategy!r} '
                             f'(pass strategy=... to override the exported default)')
        if not self.temperature > 0:
            raise ValueError(f'temperature must be > 0, got {self.temperature}')
        if not 0 < self.top_p <= 1:
            raise ValueError(f'top_p must be in (0, 1], got {self.top_p}')
        if self.top_k < 0 or (self.strategy == 'top_k' and self.top_k < 1):
            raise ValueError(f'top_k must be >= 0 (>= 1 for strategy top_k), got {self.top_k}')


NUCLEUS_MIN_RATIO = 1e-4  # nucleus candidates: probability at least this fraction of the most likely token's


def _kept(ids: np.ndarray, probs: np.ndarray, top_p: float) -> np.ndarray:
    """Weights of tokens sorted by decreasing probability: theirs inside the nucleus of mass ``top_p``, else 0."""
    keep = np.cumsum(probs, axis=-1) <= top_p
    keep[..., 0] = True
    return np.where(keep, probs, 0)


def sampling_candidates(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """The tokens :func:`filter_logits` keeps and their sampling weights, without sorting the whole vocabulary.

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
    (:func:`sampling_candidates`, the official filter of :func:`filter_logits`)."""
    if options.strategy == 'greedy':
        return logits.argmax(-1)
    top_p = options.top_p if options.strategy == 'nucleus' else 1.0
    ids, weights = sampling_candidates(logits / options.temperature, options.top_k, top_p)
    cumulative = np.cumsum(weights, axis=-1)
    threshold = rng.random(len(weights))[:, None] * cumulative[:, -1:]
    picked = np.minimum((cumulative < threshold).sum(-1), weights.shape[-1] - 1)
    return np.take_along_axis(ids, picked[:, None], axis=-1)[:, 0]


def decode_tokens(step, batch_size: int, vocab: Vocabulary, options: DecodingOptions,
                  rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The decoding loop of ``decode_sequences`` (greedy and sampling strategies) over ``step(tokens (B,),
    position) -> logits (B, V)``; returns ``tokens`` (B, 5 K) int64 and ``class_probs`` (B, K, C) float32."""
    rng = rng if rng is not None else np.random.default_rng()
    tokens = np.full((batch_size, vocab.seq_len), vocab.pad, dtype=np.int64)
    class_probs = np.zeros((batch_size, vocab.max_objects, vocab.num_classes), dtype=np.float32)
    finished = np.zeros(batch_size, dtype=bool)
    current = np.full(batch_size, vocab.bos, dtype=np.int64)
    for position in range(vocab.seq_len):
        logits = step(current, position)
        if options.constrained:
            logits = logits + vocab.constraint[position % TOKENS_PER_OBJECT]
        is_class_position = position % TOKENS_PER_OBJECT == TOKENS_PER_OBJECT - 1
        next_tokens = select_next_token(logits, options, rng)
        if is_class_position:
            class_probs[:, position // TOKENS_PER_OBJECT] = vocab.class_probabilities(logits,
                                                                                      options.renormalize_scores)
        next_tokens = np.where(finished, vocab.pad, next_tokens)
        finished |= next_tokens == vocab.eos
        tokens[:, position] = next_tokens
        current = next_tokens
        if options.stop_at_eos and is_class_position and finished.all():
            break
    return tokens, class_probs


# -------------------------------------------------------------------------------------------------- runtime
class Pix2SeqRuntime:
    """An exported Pix2Seq detector in ONNX Runtime.

    Args:
        model_dir (str | Path): The export folder (``pix2seq.json`` and the graphs).
        decoder (str): ``'fp32'`` (``decoder_step.onnx``) or ``'int8'`` (``decoder_step_int8.onnx``, exported with
            ``--int8``).
        encoder (str): ``'fp32'`` (``encoder.onnx``) or ``'int8'`` (``encoder_int8.onnx``, ``--int8-encoder``).
        providers (list[str]): ONNX Runtime execution providers (default: the CPU's).  The bound buffers live in
            host memory.
        num_threads (int): Intra-op threads of both sessions (0: ONNX Runtime's default, one per physical core).
        verify (bool): Check the graph files' sha256 against the JSON (detects files from another export).
        session_options (ort.SessionOptions, optional): Used as given (``num_threads`` then ignored), e.g. with
            profiling enabled.
    """

    def __init__(self, model_dir: Union[str, os.PathLike], decoder: str = 'fp32', encoder: str = 'fp32',
                 providers: Optional[Sequence[str]] = None, num_threads: int = 0, verify: bool = True,
                 session_options: Optional[ort.SessionOptions] = None) -> None:
        self.model_dir = Path(model_dir)
        self.meta = meta = load_metadata(self.model_dir)
        meta_path = self.model_dir / META_FILE
        for name, choice in (('decoder', decoder), ('encoder', encoder)):
            if choice not in DECODERS:
                raise ValueError(f'{name} must be one of {tuple(DECODERS)}, got {choice!r}')
        encoder_key = 'encoder' if encoder == 'fp32' else 'encoder_int8'
        decoder_key = DECODERS[decoder]
        graphs = meta['graphs']
        for key, option in ((encoder_key, f'encoder={encoder!r}'), (decoder_key, f'decoder={decoder!r}')):
            if key not in graphs:
                raise FileNotFoundError(f'{meta_path} lists no {key} graph ({option}): export with '
                                        f'{"--int8-encoder" if key == "encoder_int8" else "--int8"}')
            if verify:
                _check_graph(self.model_dir / graphs[key]['file'], graphs[key], meta, meta_path)
        session_options = session_options or make_session_options(num_threads)
        providers = providers or ['CPUExecutionProvider']
        self.encoder_session = _open_session(self.model_dir / graphs[encoder_key]['file'], graphs[encoder_key],
                                             meta, session_options, providers)
        decoder_session = _open_session(self.model_dir / graphs[decoder_key]['file'], graphs[decoder_key], meta,
                                        session_options, providers)
        self.vocab = Vocabulary(meta['vocabulary'])
        self.geometry = meta['geometry']
        self.static_batch = None if meta['dynamic_batch'] else int(meta['batch_size'])
        self.decoder = DecoderStep(decoder_session, self.geometry, self.vocab.vocab_size, self.static_batch)
        self.class_names = list(meta['classes'])
        defaults = meta['decoding']
        self.default_options = {key: defaults[key] for key in DecodingOptions.__dataclass_fields__ if key in defaults}
        self.classes_per_box = int(defaults['classes_per_box'])
        self.max_per_img = int(defaults['max_per_img'])
        self._encoder_outputs: Dict[int, EncoderOutputs] = {}

    # ---------------------------------------------------------------------------------------- preprocessing
    def preprocess(self, images: Union[ImageLike, Sequence[ImageLike]]) -> Tuple[np.ndarray, List[ImageMeta]]:
        """Images -> (B, 3, H, W) float32 batch in the frame and each image's :class:`ImageMeta`."""
        images = self._as_list(images)
        spec = self.meta['preprocess']
        pad_h, pad_w = spec['pad_size']
        mean = np.asarray(spec['mean'], np.float32).reshape(-1, 1, 1)
        std = np.asarray(spec['std'], np.float32).reshape(-1, 1, 1)
        batch = np.full((len(images), 3, pad_h, pad_w), spec['pad_value'], dtype=np.float32)
        metas = []
        for index, image in enumerate(images):
            image = load_image(image)
            height, width = image.shape[:2]
            resize = spec['resize']
            if resize is not None:
                new_w, new_h = rescale_size(width, height, resize['scale'], resize['keep_ratio'])
                image = cv2.resize(image, (new_w, new_h), interpolation=INTERPOLATIONS[resize['interpolation']])
            new_h, new_w = image.shape[:2]
            if new_h > pad_h or new_w > pad_w:
                raise ValueError(f'an image of {new_h} x {new_w} pixels (after resizing) does not fit in the frame '
                                 f'{pad_h} x {pad_w} of this export')
            chw = image.transpose(2, 0, 1)
            if spec['bgr_to_rgb']:
                chw = chw[::-1]
            chw = chw.astype(np.float32)
            if spec['normalize']:
                chw = (chw - mean) / std
            batch[index, :, :new_h, :new_w] = chw
            metas.append(ImageMeta((height, width), (new_h, new_w), (new_w / width, new_h / height)))
        return batch, metas

    @staticmethod
    def _as_list(images) -> list:
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError('no images given')
            return list(images)
        return [images]

    # --------------------------------------------------------------------------------------------- network
    def encode(self, batch: np.ndarray) -> EncoderOutputs:
        """(B, 3, H, W) float32 preprocessed batch -> the encoder's outputs in bound buffers (reused per batch
        size: valid until the next :meth:`encode` of the same batch size)."""
        pad_h, pad_w = self.meta['preprocess']['pad_size']
        if (not isinstance(batch, np.ndarray) or batch.dtype != np.float32 or batch.ndim != 4
                or batch.shape[1:] != (3, pad_h, pad_w)):
            raise ValueError(f'encode() takes a float32 (B, 3, {pad_h}, {pad_w}) array (see preprocess()), got '
                             f'{getattr(batch, "dtype", type(batch).__name__)} {getattr(batch, "shape", "")}')
        batch_size = batch.shape[0]
        if self.static_batch is not None and batch_size != self.static_batch:
            raise ValueError(f'this export has a fixed batch size of {self.static_batch}, got {batch_size} images '
                             f'(export with --dynamic-batch, or pass {self.static_batch} images at a time)')
        if batch_size not in self._encoder_outputs:
            self._encoder_outputs[batch_size] = EncoderOutputs(batch_size, self.geometry)
        outputs = self._encoder_outputs[batch_size]
        binding = self.encoder_session.io_binding()
        binding.bind_ortvalue_input('image', _bound(np.ascontiguousarray(batch)))
        for name, value in zip(self.meta['graphs']['encoder']['outputs'], outputs.values):
            binding.bind_ortvalue_output(name, value)
        self.encoder_session.run_with_iobinding(binding)
        return outputs

    def options(self, **overrides) -> DecodingOptions:
        """The exported decoding defaults with ``overrides`` (None values ignored)."""
        unknown = set(overrides) - set(DecodingOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f'unknown decoding options {sorted(unknown)}; known: '
                            f'{sorted(DecodingOptions.__dataclass_fields__)}')
        return DecodingOptions(**{**self.default_options,
                                  **{key: value for key, value in overrides.items() if value is not None}})

    def decode(self, encoded: EncoderOutputs, seed: Optional[int] = None,
               **overrides) -> Tuple[np.ndarray, np.ndarray]:
        """Decode every object slot: ``tokens`` (B, 5 K) int64 and ``class_probs`` (B, K, C) float32."""
        options = self.options(**overrides)
        self.decoder.start(encoded)
        return decode_tokens(self.decoder.step, encoded.batch_size, self.vocab, options,
                             np.random.default_rng(seed))

    # ------------------------------------------------------------------------------------- post-processing
    def postprocess(self, tokens: np.ndarray, class_probs: np.ndarray, meta: ImageMeta,
                    rescale: bool = True) -> Detections:
        """One image's tokens (L,) and class probabilities (K, C) -> :class:`Detections`, as
        ``Pix2SeqHead.tokens_to_instances``."""
        boxes_yxyx, valid = self.vocab.decode_slots(tokens)
        probs = class_probs[valid]
        k = self.classes_per_box
        labels = np.argsort(-probs, axis=-1, kind='stable')[:, :k]
        scores = np.take_along_axis(probs, labels, axis=-1).reshape(-1)
        labels = labels.reshape(-1)
        boxes_yxyx = np.repeat(boxes_yxyx[valid], k, axis=0)
        pad_h, pad_w = self.meta['preprocess']['pad_size']
        img_h, img_w = meta.img_shape
        bboxes = boxes_yxyx[:, [1, 0, 3, 2]] * np.asarray([pad_w, pad_h, pad_w, pad_h], np.float32)
        bboxes[:, 0::2] = np.clip(bboxes[:, 0::2], 0, img_w)
        bboxes[:, 1::2] = np.clip(bboxes[:, 1::2], 0, img_h)
        inside = (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])
        bboxes, scores, labels = bboxes[inside], scores[inside], labels[inside]
        if rescale:
            bboxes = bboxes / np.asarray(meta.scale_factor * 2, np.float32)
        order = np.argsort(-scores, kind='stable')[:self.max_per_img]
        return Detections(bboxes[order].astype(np.float32), scores[order].astype(np.float32),
                          labels[order].astype(np.int64))

    def __call__(self, images: Union[ImageLike, Sequence[ImageLike]], seed: Optional[int] = None,
                 **overrides) -> List[Detections]:
        """Detect objects in an image or a list of images (paths or BGR uint8 arrays); one :class:`Detections`
        per image, in its original pixels.  ``overrides``: :class:`DecodingOptions` fields; ``seed``: sampling."""
        batch, metas = self.preprocess(images)
        tokens, class_probs = self.decode(self.encode(batch), seed=seed, **overrides)
        return [self.postprocess(seq, probs, meta) for seq, probs, meta in zip(tokens, class_probs, metas)]

    predict = __call__
