"""ONNX Runtime sessions of an export and their IO binding: the encoder's outputs and the decoder step's
self-attention cache live in numpy buffers that the graphs read and write in place."""
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import onnxruntime as ort

from .metadata import EXPORT_ID_KEY, ExportMismatchError, sha256_file

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
    """The encoder's outputs for one batch, in numpy buffers bound as OrtValues: ``memory`` (B, S, D) and
    ``memory_key_value`` (per decoder layer, keys and values (B, H, S, Dh))."""

    def __init__(self, batch_size: int, geometry: dict) -> None:
        self.batch_size = batch_size
        heads, length, dims = geometry['num_heads'], geometry['memory_len'], geometry['head_dims']
        self.memory = np.zeros((batch_size, length, geometry['embed_dims']), np.float32)
        self.memory_key_value = [np.zeros((batch_size, heads, length, dims), np.float32)
                                 for _ in range(2 * geometry['num_layers'])]
        self.values = [bound(array) for array in [self.memory] + self.memory_key_value]


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
            self._buffers[batch_size] = dict(cache=cache, cache_values=[bound(array) for array in cache],
                                             tokens=tokens, position=position, logits=logits,
                                             tokens_value=bound(tokens), position_value=bound(position),
                                             logits_value=bound(logits))
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
