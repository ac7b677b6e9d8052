"""Pix2Seq inference with ONNX Runtime: numpy, onnxruntime and OpenCV, no torch, mmcv or mmdet.

Reads a folder written by ``tools/deployment/pytorch2onnx.py`` (``pix2seq.json``, ``encoder.onnx``,
``decoder_step.onnx``, optionally ``decoder_step_int8.onnx`` and, for parallel box decoding, ``decoder_block.onnx``)::

    from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
    detector = Pix2SeqRuntime('work_dirs/onnx')            # decoder='int8' for the quantised decoder step
    result = detector('demo.jpg')[0]                       # or a BGR uint8 array, or a list of either
    result.bboxes, result.scores, result.labels            # xyxy in the original image's pixels
    result.masks                                           # (N, H, W) bool with the instance segmentation task
    result.keypoints, result.keypoint_scores               # (N, P, 2) x, y and (N, P) with the keypoints task

Importing it imports neither torch nor mmdet (the package's ``__init__`` files load their submodules lazily), so
``tools/deployment/onnx_demo.py`` runs where only numpy, onnxruntime and OpenCV are installed.  The parts:
:mod:`.metadata` (``pix2seq.json`` and the vocabulary), :mod:`.sessions` (ONNX Runtime sessions and IO binding),
:mod:`.sampling` (token selection and the decoding loop), :mod:`.processing` (pre- and post-processing).

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
* with ``parallel=True`` (an export of a model trained with ``block_decoding``), greedy decoding of one object per
  call of the block-step graph, on the same bound cache, as ``decoding.decode_in_blocks``: each drafted object is
  checked by the next block step and, where it differs from token-by-token decoding, corrected with the decoder
  step (``parallel_verify``, default; ``sampling.decode_in_blocks``);
* post-processing as ``Pix2SeqHead.tokens_to_instances``: malformed slots dropped, ``classes_per_box`` detections
  per box, boxes normalised to the frame, clipped to the resized image, empty ones dropped, divided by the scale
  factor, sorted by score, at most ``max_per_img``;
* with the Pix2Seq v2 instance tasks (:meth:`Pix2SeqRuntime.answer`), as ``Pix2SeqHead.predict_instance_tasks``
  with ``prompt_boxes='predicted'``: one prompt per distinct detected box (:mod:`.instances`), ``num_samples`` rows
  each, every row reading its image's cross-attention keys/values (gathered into the decoder step's own buffers),
  decoded through the same decoder-step graph (the prompt one token per step, then the response with the same token
  selection and each token's probability, ``sampling.decode_responses``) in chunks of the export's fixed batch or of
  ``max_rows``; then each task's own step: instance segmentation's polygons rasterised at the original image's size
  and ensembled (:mod:`.masks`, ``structures.polygons``, shared with the head), the keypoints averaged over the
  samples that place them, mapped to the original image's pixels and scored (:mod:`.keypoints`).

Errors: a missing file is a ``FileNotFoundError``; a graph that is not the one ``pix2seq.json`` describes (another
export, a modified file, other inputs) an :class:`ExportMismatchError`; an image of the wrong type a ``TypeError``,
of the wrong dtype or shape a ``ValueError``.
"""
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from .instances import InstanceOptions, boxes_in_frame, distinct_boxes, instance_prompts, prompt_boxes
from .keypoints import KeypointOptions
from .masks import MaskOptions
from .metadata import META_FILE, Vocabulary, load_metadata
from .processing import Detections, ImageLike, ImageMeta, as_image_list, postprocess, preprocess
from .sampling import DecodingOptions, decode_in_blocks, decode_responses, decode_tokens
from .sessions import DecoderStep, EncoderOutputs, bound, check_graph, make_session_options, open_session

DECODERS = {'fp32': 'decoder_step', 'int8': 'decoder_step_int8'}
BLOCK_STEPS = {'decoder_step': 'decoder_block', 'decoder_step_int8': 'decoder_block_int8'}  # parallel decoding
INSTANCE_TASKS = {options.task: options for options in (MaskOptions, KeypointOptions)}  # in the tokenizer's order


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
                check_graph(self.model_dir / graphs[key]['file'], graphs[key], meta, meta_path)
        session_options = session_options or make_session_options(num_threads)
        providers = providers or ['CPUExecutionProvider']
        self.encoder_session = open_session(self.model_dir / graphs[encoder_key]['file'], graphs[encoder_key],
                                            meta, session_options, providers)
        decoder_session = open_session(self.model_dir / graphs[decoder_key]['file'], graphs[decoder_key], meta,
                                       session_options, providers)
        block_key = BLOCK_STEPS[decoder_key]
        block_session = None
        if block_key in graphs:  # a model trained for parallel box decoding
            if verify:
                check_graph(self.model_dir / graphs[block_key]['file'], graphs[block_key], meta, meta_path)
            block_session = open_session(self.model_dir / graphs[block_key]['file'], graphs[block_key], meta,
                                         session_options, providers)
        self.vocab = Vocabulary(meta['vocabulary'])
        self.geometry = meta['geometry']
        self.static_batch = None if meta['dynamic_batch'] else int(meta['batch_size'])
        self.decoder = DecoderStep(decoder_session, self.geometry, self.vocab.vocab_size, self.static_batch,
                                   block_session)
        self.class_names = list(meta['classes'])
        defaults = meta['decoding']
        self.default_options = {key: defaults[key] for key in DecodingOptions.__dataclass_fields__ if key in defaults}
        self.classes_per_box = int(defaults['classes_per_box'])
        self.max_per_img = int(defaults['max_per_img'])
        self._encoder_outputs: Dict[int, EncoderOutputs] = {}

    def preprocess(self, images: Union[ImageLike, Sequence[ImageLike]]) -> Tuple[np.ndarray, List[ImageMeta]]:
        """Images -> (B, 3, H, W) float32 batch in the frame and each image's :class:`ImageMeta`."""
        return preprocess(as_image_list(images), self.meta['preprocess'])

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
        binding.bind_ortvalue_input('image', bound(np.ascontiguousarray(batch)))
        for name, value in zip(self.meta['graphs']['encoder']['outputs'], outputs.values):
            binding.bind_ortvalue_output(name, value)
        self.encoder_session.run_with_iobinding(binding)
        return outputs

    def options(self, **overrides) -> DecodingOptions:
        """The exported decoding defaults with ``overrides`` (None values ignored); ``parallel=True`` without a
        ``strategy`` decodes greedily (parallel decoding's only strategy)."""
        unknown = set(overrides) - set(DecodingOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f'unknown decoding options {sorted(unknown)}; known: '
                            f'{sorted(DecodingOptions.__dataclass_fields__)}')
        if overrides.get('parallel') and overrides.get('strategy') is None:
            overrides['strategy'] = 'greedy'
        return DecodingOptions(**{**self.default_options,
                                  **{key: value for key, value in overrides.items() if value is not None}})

    def decode(self, encoded: EncoderOutputs, seed: Optional[int] = None,
               **overrides) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode every object slot: ``tokens`` (B, 5 K) int64, ``class_probs`` (B, K, C) float32 and ``coords``
        (B, 5 K) float32, the coordinates read at the coordinate positions (``coord_window``); with
        ``parallel=True`` one object per block step (an export of a model trained with ``block_decoding``)."""
        parallel = overrides.get('parallel')
        if parallel is None:
            parallel = self.default_options.get('parallel', False)
        if parallel and self.decoder.block_session is None:  # checked before the other options
            raise ValueError(f'{self.model_dir} has no block step (decoder_block.onnx): parallel decoding needs a '
                             'model trained with model.head.block_decoding; decode with parallel=False')
        options = self.options(**overrides)
        self.decoder.start(encoded)
        if options.parallel:
            return decode_in_blocks(self.decoder.step, self.decoder.block_step, encoded.batch_size, self.vocab,
                                    options)
        return decode_tokens(self.decoder.step, encoded.batch_size, self.vocab, options,
                             np.random.default_rng(seed))

    def postprocess(self, tokens: np.ndarray, class_probs: np.ndarray, meta: ImageMeta,
                    rescale: bool = True, coords: Optional[np.ndarray] = None) -> Detections:
        """One image's tokens (L,), class probabilities (K, C) and coordinates (L,) (default: the tokens' bins) ->
        :class:`Detections`, as ``Pix2SeqHead.tokens_to_instances``."""
        return postprocess(tokens, class_probs, meta, self.vocab, self.meta['preprocess']['pad_size'],
                           self.classes_per_box, self.max_per_img, rescale, coords)

    def instance_options(self, task: str, **overrides) -> InstanceOptions:
        """The options of instance task ``task`` (:class:`MaskOptions`, :class:`KeypointOptions`): the exported
        ``test_cfg.<task>`` defaults with ``overrides`` (None values ignored)."""
        options_cls = INSTANCE_TASKS[task]
        if task not in self.vocab.task_prompts:
            raise ValueError(f'{self.model_dir} is an export of a model without the {task} task '
                             f'(model.head.tokenizer.tasks): it predicts no {options_cls.kind}s; export a Pix2Seq v2 '
                             f'model with the task, or decode without {options_cls.kind}s')
        names = {field.name for field in fields(options_cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f'unknown {options_cls.kind} options {sorted(unknown)}; known: {sorted(names)}')
        defaults = {key: value for key, value in (self.meta.get(options_cls.meta_key) or {}).items() if key in names}
        return options_cls(**{**defaults, **{key: value for key, value in overrides.items() if value is not None}})

    def decode_responses(self, encoded: EncoderOutputs, prompts: np.ndarray, image_index: np.ndarray,
                         options: InstanceOptions, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """An instance task's responses: (N, 6) prompts, row ``i`` reading image ``image_index[i]`` of ``encoded``
        -> ``responses`` (N, L) int64 and their ``token_probs`` (N, L) float32, L = ``options.response_len``.  Decoded
        in chunks of the export's fixed batch size (the last one padded with repeats of its last row, whose responses
        are dropped) or of ``options.max_rows`` rows (default: all at once)."""
        chunk = self.static_batch or options.max_rows or max(len(prompts), 1)
        response_len, constraint = options.response_len(self.vocab), options.constraint(self.vocab)
        answered = [(np.zeros((0, response_len), np.int64), np.zeros((0, response_len), np.float32))]
        for start in range(0, len(prompts), chunk):
            rows = np.arange(start, min(start + chunk, len(prompts)))
            count = len(rows)
            if self.static_batch is not None:
                rows = np.concatenate([rows, np.full(chunk - count, rows[-1])])
            boxes = prompt_boxes(prompts[rows], self.vocab) if self.geometry.get('box_memory') else None
            self.decoder.start(encoded, image_index[rows], boxes)
            answered.append(tuple(part[:count] for part in decode_responses(
                self.decoder.step, prompts[rows], response_len, self.vocab.eos, self.vocab.pad, options.sampling,
                constraint, rng)))
        responses, token_probs = (np.concatenate(parts) for parts in zip(*answered))
        return responses, token_probs

    def answer(self, task: str, encoded: EncoderOutputs, detections: Sequence[Detections],
               metas: Sequence[ImageMeta], seed: Optional[int] = None, **overrides) -> List[Detections]:
        """Each image's detections (in its original pixels, the images of ``encoded`` in order) with the outputs of
        instance task ``task``, as ``Pix2SeqHead.predict_instance_tasks`` with ``prompt_boxes='predicted'``:
        ``masks`` (N, H, W) bool at the original image's size (``instance_segmentation``), or ``keypoints`` (N, P, 2)
        float32 ``(x, y)`` in its pixels and ``keypoint_scores`` (N, P) (``keypoints``).  ``overrides``: the task's
        :meth:`instance_options`; ``seed``: the responses' sampling (a stream per task, not the detection's)."""
        options = self.instance_options(task, **overrides)
        pad_size = self.meta['preprocess']['pad_size']
        boxes, prompts, image_index, slots = [], [], [], []
        for index, (found, meta) in enumerate(zip(detections, metas)):
            rows, slot = distinct_boxes(found.bboxes, options.max_instances)
            boxes.append(boxes_in_frame(found.bboxes[rows], meta, pad_size))
            prompts.append(instance_prompts(boxes[-1], found.labels[rows], task, self.vocab))
            image_index.append(np.full(len(rows), index, dtype=np.int64))
            slots.append(slot)
        samples = options.num_samples
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1 + list(INSTANCE_TASKS).index(task), )))
        responses, token_probs = self.decode_responses(encoded, np.concatenate(prompts).repeat(samples, axis=0),
                                                       np.concatenate(image_index).repeat(samples), options, rng)
        split = np.cumsum([len(image_boxes) * samples for image_boxes in boxes])[:-1]
        return [replace(found, **options.outputs(image_responses, image_probs, image_boxes, slot, meta, self.vocab,
                                                 pad_size))
                for found, meta, image_boxes, slot, image_responses, image_probs
                in zip(detections, metas, boxes, slots, np.split(responses, split), np.split(token_probs, split))]

    def __call__(self, images: Union[ImageLike, Sequence[ImageLike]], seed: Optional[int] = None,
                 masks: Optional[bool] = None, mask_options: Optional[dict] = None, keypoints: Optional[bool] = None,
                 keypoint_options: Optional[dict] = None, **overrides) -> List[Detections]:
        """Detect objects in an image or a list of images (paths or BGR uint8 arrays); one :class:`Detections`
        per image, in its original pixels.  ``overrides``: :class:`DecodingOptions` fields; ``seed``: sampling.

        ``masks``: also predict instance masks (:meth:`answer`, ``mask_options``: :class:`MaskOptions` fields);
        default: when the export has the instance segmentation task or ``mask_options`` are given.  ``keypoints``
        and ``keypoint_options`` (:class:`KeypointOptions` fields) likewise for the keypoints task."""
        batch, metas = self.preprocess(images)
        encoded = self.encode(batch)
        tokens, class_probs, coords = self.decode(encoded, seed=seed, **overrides)
        results = [self.postprocess(seq, probs, meta, coords=seq_coords)
                   for seq, probs, seq_coords, meta in zip(tokens, class_probs, coords, metas)]
        for task, wanted, options in (('instance_segmentation', masks, mask_options),
                                      ('keypoints', keypoints, keypoint_options)):
            if wanted is None:
                wanted = task in self.vocab.task_prompts or bool(options)
            if wanted:
                results = self.answer(task, encoded, results, metas, seed=seed, **(options or {}))
        return results

    predict = __call__
