"""ONNX export of a Pix2Seq detector: the encoder graph, the cached decoder-step graph and ``pix2seq.json``.

Files written into the output folder (``tools/deployment/pytorch2onnx.py`` is the command line):

* ``encoder.onnx``: ``image`` (B, 3, H, W) float32, preprocessed and padded to the frame ``pad_size`` ->
  ``memory`` (B, S, D) and, for every decoder layer ``i``, ``memory_key_i`` / ``memory_value_i`` (B, H, S, Dh), the
  cross-attention keys and values projected once per image (``Pix2SeqHead.project_memory``).
* ``decoder_step.onnx``: ``tokens`` (B, 1) int64 at ``position`` (1,) int64, the ``memory_key_i`` /
  ``memory_value_i`` and the self-attention cache ``cache_key_i`` / ``cache_value_i`` (B, H, L, Dh), L =
  ``tokenizer.num_positions`` (the longest of the model's tasks' sequences: detection's ``seq_len``, an instance
  task's prompt and response) -> ``logits`` (B, V) and ``new_cache_key_i`` / ``new_cache_value_i``, the cache
  with this step's keys and values written at ``position``.  The same graph decodes the detection sequence (from
  BOS) and the instance tasks' prompts and responses.  Static shapes, as the package's static-shape step
  (``DecodingCache`` driven with a tensor position, the path of CUDA graphs), traced from
  ``Pix2SeqHead.forward_step`` itself (:mod:`.traced`).  Self-attention (``attention``): ``'gqa'`` (default) ONNX
  Runtime's ``com.microsoft.GroupQueryAttention``, which writes the new position into the cache in place when the
  runtime binds the same buffer as input and output and attends over positions ``0 .. position`` only; ``'onnx'``
  standard operators (``ScatterElements`` into the cache, attention over the whole cache under the causal mask), for
  ONNX runtimes without Microsoft's operators.
* ``decoder_block.onnx``, for a head trained for parallel box decoding (``block_decoding`` with blocks of one
  object): the block step of ``decoding.decode_in_blocks``, ``tokens`` (B, T) with T dynamic (the real tokens the
  cache lacks, then the positions that read the learned block query, where ``query_mask`` (T,) bool is True) at
  ``position`` -> ``logits`` (B, T, V) at every position, and the cache, the same inputs and outputs otherwise.
  Its self-attention is ``attention``'s for a fixed batch of 1 and standard operators otherwise
  (:func:`block_attention`).
* ``decoder_step_int8.onnx`` (``int8``): ``onnxruntime.quantization.quantize_dynamic`` of the decoder step, int8
  weights of every MatMul with a constant weight (activations quantised per call), and ``decoder_block_int8.onnx``
  of the block step; ``encoder_int8.onnx`` (``int8_encoder``) the same for the encoder's MatMuls (its convolutions
  stay fp32).
* ``pix2seq.json``: format version, a random ``export_id`` (also stamped into every graph's metadata) and each
  graph's sha256, inputs and outputs; the vocabulary layout (special ids, class token ids, coordinate offset,
  ``num_bins``, ``max_objects``, the constrained-decoding table; with the ``instance_segmentation`` task the task's
  prompt token, ``SEPARATOR``, ``response_len`` and ``instance_seq_len``, with the ``keypoints`` task under
  ``keypoints`` the task's prompt token, ``INVISIBLE``, ``num_keypoints`` and the response length), the preprocessing
  (test pipeline ``Resize``, mean/std, channel order, ``pad_size``, ``pad_value``), the decoder geometry, class
  names, decoding defaults and the opset; ``mask_decoding`` and ``keypoint_decoding``, the
  ``test_cfg.instance_segmentation`` and ``test_cfg.keypoints`` defaults (``MaskDecodingConfig``,
  ``KeypointDecodingConfig``), each null for a model without its task, whose export is otherwise the same as before
  the task existed.

:func:`~.check.check_export` checks the graphs with ``onnx.checker`` and runs them with ONNX Runtime against PyTorch
on a random image.  The export uses PyTorch's TorchScript-based exporter (``dynamo=False``).
"""
import copy
import json
import logging
import uuid
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .check import check_export
from .metadata import EXPORT_ID_KEY, FORMAT_VERSION, META_FILE, TOKENS_PER_OBJECT, sha256_file
from .traced import DecoderStepModule, EncoderModule, decoder_step_names, encoder_names

DEFAULT_OPSET = 17
GRAPH_FILES = dict(encoder='encoder.onnx', decoder_step='decoder_step.onnx',
                   decoder_step_int8='decoder_step_int8.onnx', encoder_int8='encoder_int8.onnx',
                   decoder_block='decoder_block.onnx', decoder_block_int8='decoder_block_int8.onnx')


def block_attention(attention: str, batch_size: int, dynamic_batch: bool) -> str:
    """The block step's self-attention: ONNX Runtime's CPU ``GroupQueryAttention`` writes several new tokens into a
    filled cache at batch 1 only, so the block step of a larger or dynamic batch uses standard operators."""
    return attention if batch_size == 1 and not dynamic_batch else 'onnx'


# --------------------------------------------------------------------------------------------------- export
def _geometry(model: nn.Module, memory_len: int, fine_hw: Optional[Sequence[int]]) -> dict:
    """The decoder's sizes; ``box_memory`` (the head's, else None): its ``size``, the fine level's ``fine_hw`` and the
    ``extent`` of the frame it covers (``BoxMemory.map_extent``), which the runtime's sampling needs."""
    head = model.head
    box_memory = None
    if head.box_memory is not None:
        box_memory = dict(size=head.box_memory.size, fine_hw=list(fine_hw),
                          extent=list(head.box_memory.map_extent(fine_hw, model.data_preprocessor.pad_size)))
    return dict(num_layers=len(head.layers), num_heads=head.num_heads, head_dims=head.embed_dims // head.num_heads,
                embed_dims=head.embed_dims, cache_len=head.tokenizer.num_positions, memory_len=int(memory_len),
                box_memory=box_memory)


def _torch_export(module: nn.Module, args: tuple, path: Path, input_names: List[str], output_names: List[str],
                  opset: int, dynamic_batch: bool, custom_opsets: Optional[Dict[str, int]] = None,
                  dynamic_tokens: bool = False, dynamic_memory: bool = False) -> None:
    dynamic_axes = {}
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'} for name in input_names + output_names if name != 'position'}
    if dynamic_memory:  # instance rows read their box memory after the image's
        for name in input_names:
            if name.startswith('memory_'):
                dynamic_axes.setdefault(name, {})[2] = 'memory'
    if dynamic_tokens:
        dynamic_axes.setdefault('tokens', {})[1] = 'tokens'
        dynamic_axes.setdefault('query_mask', {})[0] = 'tokens'
        dynamic_axes.setdefault('logits', {})[1] = 'tokens'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, do_constant_folding=True,
                          dynamic_axes=dynamic_axes or None, custom_opsets=custom_opsets)


def export_decoder_step(head: nn.Module, path: Union[str, Path], batch_size: int, memory_len: int,
                        opset: int = DEFAULT_OPSET, dynamic_batch: bool = False, attention: str = 'gqa',
                        block: bool = False) -> None:
    """Write ``head``'s decoder step (eval mode) as ONNX for ``batch_size`` rows and ``memory_len`` memory
    positions (the batch axis dynamic when ``dynamic_batch``, the memory axis with the head's box memory);
    ``attention`` and ``block`` (the block step of parallel decoding, whose token axis is dynamic): see
    :class:`DecoderStepModule`."""
    head.eval()
    num_layers = len(head.layers)
    head_dims = head.embed_dims // head.num_heads
    memory = torch.zeros(batch_size, head.num_heads, memory_len, head_dims)
    cache = torch.zeros(batch_size, head.num_heads, head.tokenizer.num_positions, head_dims)
    num_tokens = 2 * TOKENS_PER_OBJECT - 1 if block else 1  # the block step's longest: an object, then the queries
    query_mask = [torch.arange(num_tokens) >= TOKENS_PER_OBJECT] if block else []
    args = (torch.full((batch_size, num_tokens), head.tokenizer.BOS, dtype=torch.long),
            torch.zeros(1, dtype=torch.long), *query_mask,
            *[memory.clone() for _ in range(2 * num_layers)], *[cache.clone() for _ in range(2 * num_layers)])
    with torch.no_grad():
        _torch_export(DecoderStepModule(head, attention, block).eval(), args, Path(path),
                      *decoder_step_names(num_layers, block), opset, dynamic_batch,
                      {'com.microsoft': 1} if attention == 'gqa' else None, dynamic_tokens=block,
                      dynamic_memory=head.box_memory is not None)


def export_encoder(model: nn.Module, path: Union[str, Path], batch_size: int, opset: int = DEFAULT_OPSET,
                   dynamic_batch: bool = False) -> Tuple[int, Optional[Tuple[int, int]]]:
    """Write the detector's encoder (eval mode) as ONNX for ``batch_size`` images of the frame; returns the memory
    length S and, with the head's box memory, the fine level's ``(h, w)`` (else None)."""
    if getattr(model, 'mask_padding', False):
        raise NotImplementedError('ONNX export of a model with mask_padding=True is not supported: the encoder would '
                                  'need every image\'s size as an input; export a model that attends to the whole '
                                  'frame (mask_padding=False, the default and the official setting)')
    model.eval()
    pad_size = model.data_preprocessor.pad_size
    module = EncoderModule(model, pad_size).eval()  # the exporter restores the wrapper's mode on the model
    image = torch.zeros(batch_size, 3, *pad_size)
    box_memory = model.head.box_memory is not None
    with torch.no_grad():
        memory_len = module(image)[0].shape[1]
        fine_hw = tuple(model.fine_map(model.extract_feats(image)).shape[-2:]) if box_memory else None
        _torch_export(module, (image, ), Path(path), *encoder_names(len(model.head.layers), box_memory), opset,
                      dynamic_batch)
    return int(memory_len), fine_hw


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
    model.metadata_props.add(key=EXPORT_ID_KEY, value=export_id)
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


def instance_segmentation_spec(tokenizer) -> Optional[dict]:
    """The instance segmentation task's tokens and lengths (None without the task)."""
    if 'instance_segmentation' not in tokenizer.tasks:
        return None
    return dict(task_prompt=int(tokenizer.task_prompts['instance_segmentation']), separator=int(tokenizer.SEPARATOR),
                max_points_per_object=tokenizer.max_points_per_object, response_len=tokenizer.response_len,
                instance_seq_len=tokenizer.instance_seq_len, polygon_frame=tokenizer.polygon_frame)


def keypoints_spec(tokenizer) -> Optional[dict]:
    """The keypoints task's tokens and response length (None without the task)."""
    if 'keypoints' not in tokenizer.tasks:
        return None
    return dict(task_prompt=int(tokenizer.task_prompts['keypoints']), invisible=int(tokenizer.INVISIBLE),
                num_keypoints=tokenizer.num_keypoints, response_len=tokenizer.keypoints_response_len)


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
                seq_len=tokenizer.seq_len, tokens_per_object=TOKENS_PER_OBJECT,
                allowed_token_runs=[_runs(row) for row in tokenizer.allowed_tokens()],
                instance_segmentation=instance_segmentation_spec(tokenizer), keypoints=keypoints_spec(tokenizer))


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


def instance_decoding_spec(head: nn.Module, task: str) -> Optional[dict]:
    """``test_cfg.<task>`` (``MaskDecodingConfig`` or ``KeypointDecodingConfig`` fields; None without the task)."""
    cfg = head.instance_decoding_cfgs.get(task)
    return None if cfg is None else asdict(cfg)


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
    (out_dir / META_FILE).unlink(missing_ok=True)  # an earlier export's, until this one is complete
    paths = {key: out_dir / name for key, name in GRAPH_FILES.items()}
    memory_len, fine_hw = export_encoder(model, paths['encoder'], batch_size, opset, dynamic_batch)
    export_decoder_step(head, paths['decoder_step'], batch_size, memory_len, opset, dynamic_batch, attention)
    written = ['encoder', 'decoder_step']
    parallel = head.block_size == TOKENS_PER_OBJECT  # trained for parallel decoding: the block step too
    block_attn = block_attention(attention, batch_size, dynamic_batch) if parallel else None
    if parallel:
        export_decoder_step(head, paths['decoder_block'], batch_size, memory_len, opset, dynamic_batch, block_attn,
                            block=True)
        written.append('decoder_block')
    if int8:
        for step in ['decoder_step'] + (['decoder_block'] if parallel else []):
            quantize_int8(paths[step], paths[f'{step}_int8'])
            written.append(f'{step}_int8')
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
        names = (encoder_names(num_layers, head.box_memory is not None) if key.startswith('encoder')
                 else decoder_step_names(num_layers, block=key.startswith('decoder_block')))
        graphs[key] = dict(file=GRAPH_FILES[key], sha256=sha256_file(paths[key]), inputs=names[0],
                           outputs=names[1])
    from .. import __version__
    meta = dict(format='pix2seq-onnx', format_version=FORMAT_VERSION, export_id=export_id,
                exporter=f'pix2seq_mmdet {__version__}, torch {torch.__version__}', opset=opset,
                batch_size=batch_size, dynamic_batch=dynamic_batch, decoder_attention=attention,
                block_attention=block_attn, graphs=graphs,
                vocabulary=vocabulary_spec(head.tokenizer), preprocess=preprocess,
                geometry=_geometry(model, memory_len, fine_hw), classes=list(class_names), decoding=decoding_spec(head),
                mask_decoding=instance_decoding_spec(head, 'instance_segmentation'),
                keypoint_decoding=instance_decoding_spec(head, 'keypoints'), source=source or {})
    meta_path = out_dir / META_FILE
    meta_path.write_text(json.dumps(meta, indent=2))
    if check:
        meta['check'] = check_export(model, out_dir)
        meta_path.write_text(json.dumps(meta, indent=2))
    return meta
