"""ONNX export of a Pix2Seq detector: the encoder graph, the cached decoder-step graph and ``pix2seq.json``.

Files written into the output folder (``tools/deployment/pytorch2onnx.py`` is the command line):

* ``encoder.onnx``: ``image`` (B, 3, H, W) float32, preprocessed and padded to the frame ``pad_size`` ->
  ``memory`` (B, S, D) and, for every decoder layer ``i``, ``memory_key_i`` / ``memory_value_i`` (B, H, S, Dh), the
  cross-attention keys and values projected once per image (``Pix2SeqHead._project_memory``).
* ``decoder_step.onnx``: ``tokens`` (B, 1) int64 at ``position`` (1,) int64, the ``memory_key_i`` /
  ``memory_value_i`` and the self-attention cache ``cache_key_i`` / ``cache_value_i`` (B, H, L, Dh), L =
  ``tokenizer.seq_len`` -> ``logits`` (B, V) and ``new_cache_key_i`` / ``new_cache_value_i``, the cache with this
  step's keys and values written at ``position``.  Static shapes, as the package's static-shape step
  (``DecodingCache`` driven with a tensor position, the path of CUDA graphs).  Self-attention (``attention``):
  ``'gqa'`` (default) ONNX Runtime's ``com.microsoft.GroupQueryAttention``, which writes the new position into the
  cache in place when the runtime binds the same buffer as input and output and attends over positions
  ``0 .. position`` only; ``'onnx'`` standard operators, traced from ``Pix2SeqHead.forward_step`` itself with a
  :class:`DecodingCache` whose ``extend`` writes functionally (``ScatterElements``; attention over the whole cache
  under the causal mask), for ONNX runtimes without Microsoft's operators.
* ``decoder_step_int8.onnx`` (``int8``): ``onnxruntime.quantization.quantize_dynamic`` of the decoder step, int8
  weights of every MatMul with a constant weight (activations quantised per call); ``encoder_int8.onnx``
  (``int8_encoder``) the same for the encoder's MatMuls (its convolutions stay fp32).
* ``pix2seq.json``: format version, a random ``export_id`` (also stamped into every graph's metadata) and each
  graph's sha256, inputs and outputs; the vocabulary layout (special ids, class token ids, coordinate offset,
  ``num_bins``, ``max_objects``, the constrained-decoding table), the preprocessing (test pipeline ``Resize``,
  mean/std, channel order, ``pad_size``, ``pad_value``), the decoder geometry, class names, decoding defaults and
  the opset.

:func:`check_export` checks the graphs with ``onnx.checker`` and runs them with ONNX Runtime against PyTorch on a
random image.  The export uses PyTorch's TorchScript-based exporter (``dynamo=False``).
"""
import copy
import json
import logging
import uuid
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from ..models.decoding import DecodingCache
from ..models.transformer import single_query_attention
from . import runtime as ort_runtime

DEFAULT_OPSET = 17
ATTENTION_KINDS = ('gqa', 'onnx')
GRAPH_FILES = dict(encoder='encoder.onnx', decoder_step='decoder_step.onnx',
                   decoder_step_int8='decoder_step_int8.onnx', encoder_int8='encoder_int8.onnx')


# --------------------------------------------------------------------------------------------- traced modules
class FunctionalCache(DecodingCache):
    """A :class:`DecodingCache` over given tensors whose ``extend`` returns new tensors instead of writing in place
    (``scatter`` along the position axis, exported as ``ScatterElements``), for tracing; the updated per-layer
    keys/values are collected in ``updated``."""

    def __init__(self, memory_key_value: List[Tuple[Tensor, Tensor]], self_key_value: List[Tuple[Tensor, Tensor]],
                 max_len: int) -> None:
        self.memory_key_value = memory_key_value
        self.memory_attn_mask = None
        self.self_key_value = list(self_key_value)
        self.key_positions = torch.arange(max_len, device=memory_key_value[0][0].device)
        self.positions = self.key_positions[:1]
        self.window = 1
        self.attn_mask = None
        self.updated: List[Optional[Tuple[Tensor, Tensor]]] = [None] * len(self_key_value)

    def extend(self, layer_index: int, key: Tensor, value: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        key_buffer, value_buffer = self.self_key_value[layer_index]
        index = self.positions.view(1, 1, -1, 1).expand_as(key)
        key_buffer = key_buffer.scatter(2, index, key)
        value_buffer = value_buffer.scatter(2, index, value)
        self.updated[layer_index] = (key_buffer, value_buffer)
        return key_buffer, value_buffer, self.attn_mask  # static shapes: the window is the whole buffer


class CachedSelfAttention(torch.autograd.Function):
    """One token's self-attention with the static cache: write its key/value at ``position`` and attend over
    positions ``0 .. position``.  Computed in PyTorch as the package's static-shape step does (scatter, causal mask
    over the whole buffer); exported as ONNX Runtime's ``com.microsoft.GroupQueryAttention`` (as many key/value heads
    as query heads, i.e. plain multi-head attention), which appends to a cache bound as both its past and present
    input/output in place and reads only the filled positions.

    Args (of ``apply``): ``query``, ``key``, ``value`` (B, 1, D) projected, ``past_key``, ``past_value``
    (B, H, L, Dh), ``position`` (1,) int64, ``num_heads``.  Returns the (B, 1, D) attention output (before the
    output projection) and the new keys and values (B, H, L, Dh).
    """

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, past_key: Tensor, past_value: Tensor,
                position: Tensor, num_heads: int) -> Tuple[Tensor, Tensor, Tensor]:
        def split_heads(x: Tensor) -> Tensor:
            return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)

        key, value = split_heads(key), split_heads(value)
        index = position.view(1, 1, 1, 1).expand_as(key)
        new_key, new_value = past_key.scatter(2, index, key), past_value.scatter(2, index, value)
        attend = torch.arange(past_key.shape[2], device=position.device) <= position
        out = single_query_attention(split_heads(query), new_key, new_value, attend)
        return out.transpose(1, 2).flatten(2), new_key, new_value

    @staticmethod
    def symbolic(g, query, key, value, past_key, past_value, position, num_heads):
        position32 = g.op('Cast', position, to_i=6)  # int32
        seqlens_k = g.op('Expand', position32, g.op('Shape', query, start_i=0, end_i=1))  # (B,): total length - 1
        one = g.op('Constant', value_t=torch.tensor([1], dtype=torch.int32))
        total_length = g.op('Squeeze', g.op('Add', position32, one))  # scalar: total length
        outputs = g.op('com.microsoft::GroupQueryAttention', query, key, value, past_key, past_value, seqlens_k,
                       total_length, num_heads_i=num_heads, kv_num_heads_i=num_heads, outputs=3)
        for output, like in zip(outputs, (query, past_key, past_value)):
            output.setType(like.type())  # the exporter's shape inference does not know the operator
        return outputs


class MemoryAttention(torch.autograd.Function):
    """One query's cross-attention to the projected memory: ``query`` (B, 1, D), ``key`` / ``value`` (B, H, S, Dh),
    ``num_heads`` -> (B, 1, D) (before the output projection).  Computed as ``single_query_attention``; exported as
    ONNX Runtime's ``com.microsoft.MultiHeadAttention`` (one fused operator instead of seven)."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, num_heads: int) -> Tensor:
        query = query.unflatten(-1, (num_heads, -1)).transpose(1, 2)
        return single_query_attention(query, key, value).transpose(1, 2).flatten(2)

    @staticmethod
    def symbolic(g, query, key, value, num_heads):
        output = g.op('com.microsoft::MultiHeadAttention', query, key, value, num_heads_i=num_heads)
        output.setType(query.type())
        return output


class DecoderStepModule(nn.Module):
    """``(tokens (B, 1), position (1,), memory keys/values, cache keys/values) -> (logits (B, V), new cache)`` (the
    argument order of :func:`decoder_step_names`).

    ``attention='onnx'``: ``head.forward_step`` itself, traced with a :class:`FunctionalCache` (standard ONNX
    operators only: ``ScatterElements`` into the cache, masked attention over the whole buffer).  ``'gqa'`` (the
    default of :func:`export_onnx`): each layer's step as ``TransformerLayer.forward`` computes it for one token, the
    self-attention through :class:`CachedSelfAttention` (ONNX Runtime's ``GroupQueryAttention``), the
    cross-attention through :class:`MemoryAttention` (``MultiHeadAttention``), the projections, norms and
    feed-forward block through the layer's own modules and weights; :func:`check_export` compares it with
    ``head.forward_step``.
    """

    def __init__(self, head: nn.Module, attention: str = 'gqa') -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f'attention must be one of {ATTENTION_KINDS}, got {attention!r}')
        self.head = head
        self.attention = attention
        self.num_layers = len(head.layers)

    def forward(self, tokens: Tensor, position: Tensor, *key_values: Tensor) -> Tuple[Tensor, ...]:
        count = 2 * self.num_layers
        memory, cache = key_values[:count], key_values[count:]
        pairs = [(memory[2 * i], memory[2 * i + 1]) for i in range(self.num_layers)]
        self_pairs = [(cache[2 * i], cache[2 * i + 1]) for i in range(self.num_layers)]
        if self.attention == 'onnx':
            functional_cache = FunctionalCache(pairs, self_pairs, self.head.tokenizer.seq_len)
            logits = self.head.forward_step(tokens, position, functional_cache)[:, -1]
            return (logits, *[tensor for pair in functional_cache.updated for tensor in pair])
        hidden = self.head._embed(tokens, position)
        updated = []
        for layer, memory_key_value, (past_key, past_value) in zip(self.head.layers, pairs, self_pairs):
            attn = layer.self_attn
            query, key, value = F.linear(layer.self_attn_norm(hidden), attn.in_proj.weight,
                                         attn.in_proj.bias).split(attn.embed_dims, dim=-1)
            out, new_key, new_value = CachedSelfAttention.apply(query, key, value, past_key, past_value, position,
                                                                attn.num_heads)
            hidden = layer._residual(hidden, attn.out_proj(out))
            cross = layer.cross_attn
            query = F.linear(layer.cross_attn_norm(hidden), cross.in_proj.weight[:cross.embed_dims],
                             cross.in_proj.bias[:cross.embed_dims])  # Attention.project_query before the head split
            out = MemoryAttention.apply(query, *memory_key_value, cross.num_heads)
            hidden = layer.ffn(layer._residual(hidden, cross.out_proj(out)))
            updated += [new_key, new_value]
        return (self.head._logits(hidden)[:, -1], *updated)


class EncoderModule(nn.Module):
    """``image (B, 3, H, W) -> (memory (B, S, D), memory_key_0, memory_value_0, ...)``: backbone, neck, encoder and
    memory projection of the detector, then every decoder layer's cross-attention key/value projection."""

    def __init__(self, model: nn.Module, pad_size: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.pad_size = tuple(pad_size)

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        sample = DetDataSample(metainfo=dict(batch_input_shape=self.pad_size, img_shape=self.pad_size,
                                             pad_shape=self.pad_size))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)  # bool(mask.any()): no padding mask, as traced
            memory, _ = self.model.forward_encoder(self.model.extract_feat(image), [sample])
        memory_key_value, _ = self.model.head._project_memory(memory, None)
        return (memory, *[tensor for pair in memory_key_value for tensor in pair])


def encoder_names(num_layers: int) -> Tuple[List[str], List[str]]:
    return ['image'], ['memory'] + [f'memory_{kind}_{i}' for i in range(num_layers) for kind in ('key', 'value')]


def decoder_step_names(num_layers: int) -> Tuple[List[str], List[str]]:
    pairs = [(i, kind) for i in range(num_layers) for kind in ('key', 'value')]
    inputs = (['tokens', 'position'] + [f'memory_{kind}_{i}' for i, kind in pairs]
              + [f'cache_{kind}_{i}' for i, kind in pairs])
    outputs = ['logits'] + [f'new_cache_{kind}_{i}' for i, kind in pairs]
    return inputs, outputs


# --------------------------------------------------------------------------------------------------- export
def _geometry(model: nn.Module, memory_len: int) -> dict:
    head = model.head
    return dict(num_layers=len(head.layers), num_heads=head.num_heads, head_dims=head.embed_dims // head.num_heads,
                embed_dims=head.embed_dims, cache_len=head.tokenizer.seq_len, memory_len=int(memory_len))


def _torch_export(module: nn.Module, args: tuple, path: Path, input_names: List[str], output_names: List[str],
                  opset: int, dynamic_batch: bool, custom_opsets: Optional[Dict[str, int]] = None) -> None:
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'} for name in input_names + output_names if name != 'position'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, do_constant_folding=True, dynamic_axes=dynamic_axes,
                          custom_opsets=custom_opsets)


def export_decoder_step(head: nn.Module, path: Union[str, Path], batch_size: int, memory_len: int,
                        opset: int = DEFAULT_OPSET, dynamic_batch: bool = False, attention: str = 'gqa') -> None:
    """Write ``head``'s decoder step (eval mode) as ONNX for ``batch_size`` rows and ``memory_len`` memory
    positions (the batch axis dynamic when ``dynamic_batch``); ``attention``: see :class:`DecoderStepModule`."""
    head.eval()
    num_layers = len(head.layers)
    head_dims = head.embed_dims // head.num_heads
    memory = torch.zeros(batch_size, head.num_heads, memory_len, head_dims)
    cache = torch.zeros(batch_size, head.num_heads, head.tokenizer.seq_len, head_dims)
    args = (torch.full((batch_size, 1), head.tokenizer.BOS, dtype=torch.long), torch.zeros(1, dtype=torch.long),
            *[memory.clone() for _ in range(2 * num_layers)], *[cache.clone() for _ in range(2 * num_layers)])
    with torch.no_grad():
        _torch_export(DecoderStepModule(head, attention).eval(), args, Path(path), *decoder_step_names(num_layers),
                      opset, dynamic_batch, {'com.microsoft': 1} if attention == 'gqa' else None)


def export_encoder(model: nn.Module, path: Union[str, Path], batch_size: int, opset: int = DEFAULT_OPSET,
                   dynamic_batch: bool = False) -> int:
    """Write the detector's encoder (eval mode) as ONNX for ``batch_size`` images of the frame; returns the memory
    length S."""
    if getattr(model, 'mask_padding', False):
        raise NotImplementedError('ONNX export of a model with mask_padding=True is not supported: the encoder would '
                                  'need every image\'s size as an input; export a model that attends to the whole '
                                  'frame (mask_padding=False, the default and the official setting)')
    model.eval()
    pad_size = model.data_preprocessor.pad_size
    module = EncoderModule(model, pad_size).eval()  # the exporter restores the wrapper's mode on the model
    image = torch.zeros(batch_size, 3, *pad_size)
    with torch.no_grad():
        memory_len = module(image)[0].shape[1]
        _torch_export(module, (image, ), Path(path), *encoder_names(len(model.head.layers)), opset, dynamic_batch)
    return int(memory_len)


def quantize_int8(source: Union[str, Path], target: Union[str, Path], keep_fp32_widths: Sequence[int] = ()) -> None:
    """Dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``): int8 weights of the MatMuls with a
    constant weight, activations quantised to uint8 per call.  MatMuls whose weight has an output width in
    ``keep_fp32_widths`` stay fp32, e.g. ``[vocab_size]`` for the decoder's tied output layer, whose logits are the
    class scores: on the synthetic model that kept more greedy tokens equal to fp32's (97.5 % against 96.9 %) but not
    a better mAP (0.565 against 0.567, fp32 0.570), for about 0.15 ms more per token (docs/deployment.md)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    graph = onnx.load(str(source), load_external_data=False).graph
    widths = {initializer.name: initializer.dims[-1] for initializer in graph.initializer if initializer.dims}
    excluded = [node.name for node in graph.node
                if node.op_type == 'MatMul' and widths.get(node.input[1]) in set(keep_fp32_widths)]
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # the quantiser's advice to pre-process (shape inference) the model first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=['MatMul'],
                             nodes_to_exclude=excluded)
    finally:
        root_logger.setLevel(level)


def _stamp(path: Path, export_id: str) -> None:
    """Write the export id into the graph's metadata (read back by the runtime)."""
    import onnx
    model = onnx.load(str(path))
    del model.metadata_props[:]
    model.metadata_props.add(key=ort_runtime.EXPORT_ID_KEY, value=export_id)
    model.producer_name = 'pix2seq_mmdet'
    onnx.save(model, str(path))


def _runs(mask: Tensor) -> List[List[int]]:
    """(V,) bool -> ``[start, end)`` runs of True."""
    runs, start = [], None
    for index, value in enumerate(mask.tolist() + [False]):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append([start, index])
            start = None
    return runs


def vocabulary_spec(tokenizer) -> dict:
    """Everything the runtime needs of the tokenizer, asked of the tokenizer (never assumed)."""
    ids = torch.arange(tokenizer.vocab_size)
    coords = ids[tokenizer.coordinates]
    expected = torch.arange(tokenizer.coord_offset, tokenizer.coord_offset + tokenizer.num_bins)
    if coords.shape != expected.shape or not bool((coords == expected).all()):
        raise NotImplementedError('the runtime expects coordinate tokens coord_offset .. coord_offset + num_bins - 1')
    return dict(vocab_size=tokenizer.vocab_size, pad=int(tokenizer.PAD), eos=int(tokenizer.EOS),
                bos=int(tokenizer.BOS), fake=int(tokenizer.FAKE),
                class_token_ids=ids[tokenizer.real_classes].tolist(), coord_offset=int(tokenizer.coord_offset),
                num_bins=tokenizer.num_bins, num_classes=tokenizer.num_classes, max_objects=tokenizer.max_objects,
                seq_len=tokenizer.seq_len, tokens_per_object=ort_runtime.TOKENS_PER_OBJECT,
                allowed_token_runs=[_runs(row) for row in tokenizer.allowed_tokens()])


def preprocess_spec(model: nn.Module, test_pipeline: Optional[Sequence[dict]] = None) -> dict:
    """The data preprocessor's normalisation and frame and the test pipeline's ``Resize`` (default: keep-ratio
    resize into the frame)."""
    preprocessor = model.data_preprocessor
    pad_h, pad_w = preprocessor.pad_size
    resize = dict(scale=[pad_w, pad_h], keep_ratio=True, interpolation='bilinear')
    if test_pipeline is not None:
        steps = [step for step in test_pipeline if 'Resize' in str(step.get('type', ''))]
        if not steps:
            resize = None
        else:
            step = steps[0]
            if step['type'] != 'Resize' or 'scale' not in step or step.get('scale_factor') is not None:
                raise NotImplementedError(f'the runtime reproduces mmdet\'s Resize with a scale, got {step}')
            scale = step['scale']
            scale = [int(scale), int(scale)] if isinstance(scale, (int, float)) else [int(side) for side in scale]
            resize = dict(scale=scale, keep_ratio=bool(step.get('keep_ratio', False)),
                          interpolation=step.get('interpolation', 'bilinear'))
            largest = (max(scale), max(scale)) if resize['keep_ratio'] else (scale[1], scale[0])
            if largest[0] > pad_h or largest[1] > pad_w:
                raise ValueError(f'the test pipeline resizes images to {step["scale"]} (keep_ratio='
                                 f'{resize["keep_ratio"]}), which does not fit in the frame pad_size {pad_h} x '
                                 f'{pad_w}: change both together (e.g. --cfg-options model.data_preprocessor.pad_size='
                                 f'"({pad_h},{pad_w})" test_dataloader.dataset.pipeline.1.scale="({pad_w},{pad_h})")')
    normalize = bool(getattr(preprocessor, '_enable_normalize', False))
    mean = preprocessor.mean.flatten().tolist() if normalize else [0.0]
    std = preprocessor.std.flatten().tolist() if normalize else [1.0]
    return dict(pad_size=[int(pad_h), int(pad_w)], resize=resize, normalize=normalize, mean=mean, std=std,
                bgr_to_rgb=bool(preprocessor._channel_conversion), pad_value=float(preprocessor.pad_value))


def decoding_spec(head: nn.Module) -> dict:
    return dict(asdict(head.decoding_cfg), classes_per_box=int(head.classes_per_box),
                max_per_img=int(head.max_per_img))


def export_onnx(model: nn.Module, out_dir: Union[str, Path], opset: int = DEFAULT_OPSET, batch_size: int = 1,
                dynamic_batch: bool = False, int8: bool = False, int8_encoder: bool = False,
                class_names: Optional[Sequence[str]] = None, test_pipeline: Optional[Sequence[dict]] = None,
                check: bool = True, source: Optional[dict] = None, attention: str = 'gqa') -> dict:
    """Export ``model`` (a built ``Pix2Seq``, weights loaded) into ``out_dir``; returns the metadata written to
    ``pix2seq.json`` (with ``check`` results under ``check``).

    Args:
        model (nn.Module): The detector; exported in eval mode on the CPU (a deep copy, the model is left as it is).
        out_dir (str | Path): Output folder (created).
        opset (int): ONNX opset.
        batch_size (int): Batch size of the traced graphs (the only one they take unless ``dynamic_batch``).
        dynamic_batch (bool): Make the batch axis dynamic.
        int8 (bool): Also write ``decoder_step_int8.onnx``; ``int8_encoder``: ``encoder_int8.onnx``.
        class_names (list[str], optional): Default: ``model.dataset_meta['classes']`` or ``class_0``, ...
        test_pipeline (list[dict], optional): The config's test pipeline, for its ``Resize``.
        check (bool): :func:`check_export` after writing.
        source (dict, optional): Recorded as is (e.g. config and checkpoint paths).
        attention (str): The decoder step's self-attention: ``'gqa'`` (ONNX Runtime's ``GroupQueryAttention``, the
            fastest there) or ``'onnx'`` (standard operators only, for other ONNX runtimes); see
            :class:`DecoderStepModule`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()
    head = model.head
    preprocess = preprocess_spec(model, test_pipeline)  # before the export: the pipeline must fit in the frame
    if class_names is None:
        class_names = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    if class_names is None:
        class_names = [f'class_{index}' for index in range(head.tokenizer.num_classes)]
    if len(class_names) != head.tokenizer.num_classes:
        raise ValueError(f'{len(class_names)} class names for a model of {head.tokenizer.num_classes} classes')
    (out_dir / ort_runtime.META_FILE).unlink(missing_ok=True)  # an earlier export's, until this one is complete
    paths = {key: out_dir / name for key, name in GRAPH_FILES.items()}
    memory_len = export_encoder(model, paths['encoder'], batch_size, opset, dynamic_batch)
    export_decoder_step(head, paths['decoder_step'], batch_size, memory_len, opset, dynamic_batch, attention)
    written = ['encoder', 'decoder_step']
    if int8:
        quantize_int8(paths['decoder_step'], paths['decoder_step_int8'])
        written.append('decoder_step_int8')
    if int8_encoder:
        quantize_int8(paths['encoder'], paths['encoder_int8'])
        written.append('encoder_int8')
    for key in set(GRAPH_FILES) - set(written):
        paths[key].unlink(missing_ok=True)  # a stale graph of an earlier export in the same folder
    export_id = uuid.uuid4().hex
    num_layers = len(head.layers)
    graphs = {}
    for key in written:
        _stamp(paths[key], export_id)
        names = encoder_names(num_layers) if key.startswith('encoder') else decoder_step_names(num_layers)
        graphs[key] = dict(file=GRAPH_FILES[key], sha256=ort_runtime.sha256_file(paths[key]), inputs=names[0],
                           outputs=names[1])
    from .. import __version__
    meta = dict(format='pix2seq-onnx', format_version=ort_runtime.FORMAT_VERSION, export_id=export_id,
                exporter=f'pix2seq_mmdet {__version__}, torch {torch.__version__}', opset=opset,
                batch_size=batch_size, dynamic_batch=dynamic_batch, decoder_attention=attention, graphs=graphs,
                vocabulary=vocabulary_spec(head.tokenizer), preprocess=preprocess,
                geometry=_geometry(model, memory_len), classes=list(class_names), decoding=decoding_spec(head),
                source=source or {})
    meta_path = out_dir / ort_runtime.META_FILE
    meta_path.write_text(json.dumps(meta, indent=2))
    if check:
        meta['check'] = check_export(model, out_dir)
        meta_path.write_text(json.dumps(meta, indent=2))
    return meta


# ---------------------------------------------------------------------------------------------------- check
def torch_decoder_logits(head: nn.Module, memory: Tensor, tokens: Tensor) -> Tensor:
    """Teacher-forced incremental logits of the PyTorch head's static-shape step: (B, S, D) memory and (B, T) input
    tokens -> (B, T, V), one ``forward_step`` per position with a tensor position."""
    with torch.no_grad():
        cache = head.init_cache(memory, None)
        steps = [head.forward_step(tokens[:, t:t + 1], torch.tensor([t]), cache)[:, -1] for t in
                 range(tokens.shape[1])]
    return torch.stack(steps, dim=1)


def check_export(model: nn.Module, out_dir: Union[str, Path], steps: int = 6, seed: int = 0,
                 atol: float = 1e-4) -> Dict[str, float]:
    """``onnx.checker`` on every graph, then ONNX Runtime against PyTorch on a random frame: the encoder's outputs
    and ``steps`` decoder steps (teacher-forced on random tokens, the cache carried by the runtime's bound buffers);
    raises ``AssertionError`` when the fp32 logits differ by more than ``atol``.  Returns the largest absolute
    differences (the int8 decoder's against PyTorch too, for information)."""
    import onnx
    out_dir = Path(out_dir)
    meta = ort_runtime.load_metadata(out_dir)
    for graph in meta['graphs'].values():
        onnx.checker.check_model(str(out_dir / graph['file']))
    model = model.cpu().eval()
    head = model.head
    batch = meta['batch_size']
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, *meta['preprocess']['pad_size'], generator=generator)
    runtime = ort_runtime.Pix2SeqRuntime(out_dir)
    with torch.no_grad():
        expected = EncoderModule(model, meta['preprocess']['pad_size'])(image)
    encoded = runtime.encode(image.numpy())
    got = [encoded.memory] + encoded.memory_key_value
    result = dict(encoder_max_abs_diff=max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, expected)))
    steps = min(steps, head.tokenizer.seq_len)
    tokens = torch.randint(0, head.tokenizer.vocab_size, (batch, steps), generator=generator)
    tokens[:, 0] = head.tokenizer.BOS
    reference = torch_decoder_logits(head, expected[0], tokens).numpy()
    decoders = ['fp32'] + (['int8'] if 'decoder_step_int8' in meta['graphs'] else [])
    for decoder in decoders:
        step_runtime = runtime if decoder == 'fp32' else ort_runtime.Pix2SeqRuntime(out_dir, decoder=decoder)
        step_runtime.decoder.start(encoded)
        logits = np.stack([step_runtime.decoder.step(tokens[:, t].numpy(), t).copy() for t in range(steps)], 1)
        result[f'{decoder}_logits_max_abs_diff'] = float(np.abs(logits - reference).max())
    if result['encoder_max_abs_diff'] > 1e-3 * max(1.0, float(np.abs(expected[0].numpy()).max())):
        raise AssertionError(f'encoder.onnx differs from PyTorch: {result}')
    if result['fp32_logits_max_abs_diff'] > atol:
        raise AssertionError(f'decoder_step.onnx logits differ from PyTorch by more than {atol}: {result}')
    return result
