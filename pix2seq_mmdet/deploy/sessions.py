"""ONNX Runtime sessions of an export and their IO binding: the encoder's outputs and the decoder step's
self-attention cache live in numpy buffers that the graphs read and write in place."""
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from .box_memory import bilinear_taps, grid_points, sample_rows
from .metadata import EXPORT_ID_KEY, TOKENS_PER_OBJECT, ExportMismatchError, sha256_file

# ONNX Runtime folds the attention's 1/sqrt(Dh) query scaling into its MatMul (MatMulScaleFusion, alpha != 1), which
# sends the single-query products off MLAS's matrix-vector kernels (they take alpha == 1) onto the packing GEMM path
DISABLED_OPTIMIZERS = ('MatMulScaleFusion', )


def check_graph(path: Path, spec: dict, meta: dict, meta_path: Path) -> None:
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


def open_session(path: Path, spec: dict, meta: dict, options: ort.SessionOptions,
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


def bound(array: np.ndarray) -> ort.OrtValue:
    """An OrtValue over ``array``'s memory (CPU): ONNX Runtime reads and writes the numpy buffer itself."""
    return ort.OrtValue.ortvalue_from_numpy(array)


class EncoderOutputs:
    """The encoder's outputs for one batch, in numpy buffers bound as OrtValues: ``memory`` (B, S, D),
    ``memory_key_value`` (per decoder layer, keys and values (B, H, S, Dh)) and, for an export with the head's box
    memory, ``fine_key_value`` (per layer, the fine level's keys and values (B, H, h * w, Dh); else empty)."""

    def __init__(self, batch_size: int, geometry: dict) -> None:
        self.batch_size = batch_size
        heads, length, dims = geometry['num_heads'], geometry['memory_len'], geometry['head_dims']
        self.memory = np.zeros((batch_size, length, geometry['embed_dims']), np.float32)
        self.memory_key_value = [np.zeros((batch_size, heads, length, dims), np.float32)
                                 for _ in range(2 * geometry['num_layers'])]
        box_memory = geometry.get('box_memory')
        fine_len = 0 if box_memory is None else int(np.prod(box_memory['fine_hw']))
        self.fine_key_value = [np.zeros((batch_size, heads, fine_len, dims), np.float32)
                               for _ in range(2 * geometry['num_layers'] if box_memory else 0)]
        self.values = [bound(array) for array in [self.memory] + self.memory_key_value + self.fine_key_value]


class GrowingBuffers:
    """Zeroed numpy buffers that share a leading row axis, reallocated only when more rows are asked for than ever
    before: :meth:`rows` gives the first ``count`` rows of each, C-contiguous views that ONNX Runtime reads and
    writes in place.  A dynamic-batch export decodes batches of many sizes (images, then instance prompts x
    samples); one set of buffers of the largest size serves them all.

    Args:
        shapes (Sequence[tuple]): Each buffer's shape without the row axis.
        dtypes (Sequence): Each buffer's dtype.
    """

    def __init__(self, shapes: Sequence[Tuple[int, ...]], dtypes: Sequence[type]) -> None:
        self.shapes, self.dtypes = list(shapes), list(dtypes)
        self.arrays: List[np.ndarray] = []

    def rows(self, count: int) -> List[np.ndarray]:
        if not self.arrays or len(self.arrays[0]) < count:
            self.arrays = [np.zeros((count, *shape), dtype) for shape, dtype in zip(self.shapes, self.dtypes)]
        return [array[:count] for array in self.arrays]


class DecoderStep:
    """``decoder_step.onnx`` (or its int8 version) in an ONNX Runtime session, driven through IO binding, and, for an
    export with parallel box decoding, ``decoder_block.onnx`` over the same buffers.

    :meth:`start` binds, for a batch, the encoder's key/value buffers as inputs (or, for sequences that read given
    images, those images' keys and values gathered into the step's own buffers, followed with the head's box memory
    by the fine level's sampled inside each row's box: :mod:`.box_memory`), a zeroed self-attention cache per
    layer as both input and output (updated in place by the graph), the token and position inputs and the logits
    output; :meth:`step` then writes the tokens and the position into their bound buffers and runs.  The buffers
    (:class:`GrowingBuffers`) are reused by later batches (entries of an earlier decode beyond the current position
    are masked out by the graph's causal mask, so the cache needs no clearing).  :meth:`block_step` runs the block
    step on the same cache, with one binding per token count.

    Args:
        session (ort.InferenceSession): The decoder-step session.
        geometry (dict): ``pix2seq.json``'s ``geometry``.
        vocab_size (int): Logits per row.
        static_batch (int, optional): The graph's fixed batch size (None: dynamic).
        block_session (ort.InferenceSession, optional): The block-step session (parallel box decoding).
    """

    def __init__(self, session: ort.InferenceSession, geometry: dict, vocab_size: int,
                 static_batch: Optional[int], block_session: Optional[ort.InferenceSession] = None) -> None:
        self.session = session
        self.block_session = block_session
        self.static_batch = static_batch
        self.num_layers = geometry['num_layers']
        self.vocab_size = vocab_size
        heads, dims = geometry['num_heads'], geometry['head_dims']
        self.box_memory = geometry.get('box_memory')
        row_memory_len = geometry['memory_len'] + (self.box_memory['size']**2 if self.box_memory else 0)
        cache_shape, memory_shape = (heads, geometry['cache_len'], dims), (heads, row_memory_len, dims)
        num_caches = 2 * self.num_layers
        # per row: every layer's cache key and value, the input token, the logits
        self._step_buffers = GrowingBuffers([cache_shape] * num_caches + [(1, ), (vocab_size, )],
                                            [np.float32] * num_caches + [np.int64, np.float32])
        # per row of sequences that read given images: every layer's memory key and value
        self._memory_buffers = GrowingBuffers([memory_shape] * num_caches, [np.float32] * num_caches)
        self._position = np.zeros(1, np.int64)
        self.binding: Optional[ort.IOBinding] = None
        self.buffers: Optional[dict] = None
        self._bound: Optional[Tuple[list, list]] = None  # the memory and cache values of the current batch
        self._block_bindings: dict = {}

    def _bind(self, session: ort.InferenceSession, tokens: np.ndarray, logits: np.ndarray,
              query_mask: Optional[np.ndarray] = None) -> ort.IOBinding:
        """A binding of ``session`` over the current batch's memory and cache and the given token, query-mask (the
        block step) and logits buffers."""
        memory_values, cache_values = self._bound
        binding = session.io_binding()
        binding.bind_ortvalue_input('tokens', bound(tokens))
        binding.bind_ortvalue_input('position', bound(self._position))
        if query_mask is not None:
            binding.bind_ortvalue_input('query_mask', bound(query_mask))
        for layer in range(self.num_layers):
            for offset, kind in enumerate(('key', 'value')):
                binding.bind_ortvalue_input(f'memory_{kind}_{layer}', memory_values[2 * layer + offset])
                binding.bind_ortvalue_input(f'cache_{kind}_{layer}', cache_values[2 * layer + offset])
                binding.bind_ortvalue_output(f'new_cache_{kind}_{layer}', cache_values[2 * layer + offset])
        binding.bind_ortvalue_output('logits', bound(logits))
        return binding

    def start(self, encoded: EncoderOutputs, image_index: Optional[np.ndarray] = None,
              boxes_yxyx: Optional[np.ndarray] = None) -> None:
        """Bind everything for decoding one sequence per image of ``encoded`` or, with ``image_index`` (N,) int64,
        N sequences, sequence ``i`` reading image ``image_index[i]`` (its keys and values copied into the step's
        buffers: the instance prompts' rows), with the head's box memory also the fine level inside its prompt's
        box ``boxes_yxyx[i]`` (normalised ``yxyx``, the prompt's dequantised box)."""
        batch_size = encoded.batch_size if image_index is None else len(image_index)
        if self.static_batch is not None and batch_size != self.static_batch:
            raise ValueError(f'the decoder graph was exported for batch size {self.static_batch}, got {batch_size} '
                             f'sequences (export with --dynamic-batch, or --batch-size {batch_size})')
        *cache, tokens, logits = self._step_buffers.rows(batch_size)
        if image_index is None:
            memory_values = encoded.values[1:]
        else:
            memory = self._memory_buffers.rows(batch_size)
            length = encoded.memory_key_value[0].shape[2]
            for target, source in zip(memory, encoded.memory_key_value):
                np.take(source, image_index, axis=0, out=target[:, :, :length])
            if self.box_memory is not None:
                self._fill_box_memory(memory, length, encoded, image_index, boxes_yxyx)
            memory_values = [bound(array) for array in memory]
        self._bound = (memory_values, [bound(array) for array in cache])  # the graph updates the cache in place
        self.binding = self._bind(self.session, tokens, logits)
        self._block_bindings = {}
        self.buffers = dict(cache=cache, tokens=tokens, position=self._position, logits=logits)

    def _fill_box_memory(self, memory: List[np.ndarray], length: int, encoded: EncoderOutputs,
                         image_index: np.ndarray, boxes_yxyx: Optional[np.ndarray]) -> None:
        """After each row's ``length`` image memory positions, its box's samples of the fine level's keys and
        values."""
        if boxes_yxyx is None or len(boxes_yxyx) != len(image_index):
            raise ValueError('this export has a box memory (the head\'s box_memory): instance rows need their prompt '
                             f'boxes, one per row ({len(image_index)}), got '
                             f'{None if boxes_yxyx is None else len(boxes_yxyx)}')
        spec = self.box_memory
        indices, weights = bilinear_taps(grid_points(boxes_yxyx.astype(np.float32), spec['size']),
                                         tuple(spec['extent']), tuple(spec['fine_hw']))
        for target, fine in zip(memory, encoded.fine_key_value):
            target[:, :, length:] = sample_rows(fine, image_index, indices, weights)

    def step(self, tokens: np.ndarray, position: int) -> np.ndarray:
        """(B,) int64 tokens at ``position`` -> (B, V) float32 logits of the next token (the bound output buffer,
        overwritten by the next step)."""
        self.buffers['tokens'][:, 0] = tokens
        self.buffers['position'][0] = position
        self.session.run_with_iobinding(self.binding)
        return self.buffers['logits']

    def block_step(self, tokens: np.ndarray, position: int, with_queries: bool = True) -> np.ndarray:
        """A block step of parallel box decoding: (B, T) int64 real tokens at ``position ..``, followed by the
        ``TOKENS_PER_OBJECT - 1`` block queries when ``with_queries`` -> (B, T (+ 4), V) float32 logits at every
        position (a bound buffer, overwritten by the next block step of as many tokens)."""
        num_rows, num_real = tokens.shape
        num_tokens = num_real + (TOKENS_PER_OBJECT - 1 if with_queries else 0)
        key = (num_real, num_tokens)
        if key not in self._block_bindings:
            buffers = (np.zeros((num_rows, num_tokens), np.int64),
                       np.zeros((num_rows, num_tokens, self.vocab_size), np.float32),
                       np.arange(num_tokens) >= num_real)
            self._block_bindings[key] = (self._bind(self.block_session, *buffers), *buffers)
        binding, token_buffer, logits, _ = self._block_bindings[key]
        token_buffer[:, :num_real] = tokens
        self._position[0] = position
        self.block_session.run_with_iobinding(binding)
        return logits
