"""What an export folder holds, read without torch: ``pix2seq.json`` (format, graph files and their sha256) and the
export's token layout (:class:`Vocabulary`), written by :mod:`pix2seq_mmdet.deploy.export` from the model."""
import hashlib
import json
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

FORMAT_VERSION = 1
META_FILE = 'pix2seq.json'
EXPORT_ID_KEY = 'pix2seq_export_id'
TOKENS_PER_OBJECT = 5


class ExportMismatchError(ValueError):
    """A graph file, or the graph's inputs and outputs, do not match the ``pix2seq.json`` beside them."""


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


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


class Vocabulary:
    """The token layout of an export (``pix2seq.json``'s ``vocabulary``, written from the model's tokenizer): special
    ids, class token ids, coordinate ids ``coord_offset .. coord_offset + num_bins - 1`` and the prompt token of each
    Pix2Seq v2 instance task of the model (``task_prompts``) with its tokens: ``SEPARATOR``, the polygon
    ``response_len`` and ``polygon_frame`` (``instance_segmentation``), ``INVISIBLE`` and ``num_keypoints``
    (``keypoints``)."""

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
        self.task_prompts = {}  # instance task -> its prompt token; a task's key is absent or null without it
        segmentation = spec.get('instance_segmentation')
        if segmentation is not None:
            self.task_prompts['instance_segmentation'] = int(segmentation['task_prompt'])
            self.separator = int(segmentation['separator'])
            self.response_len = int(segmentation['response_len'])
            self.polygon_frame = segmentation.get('polygon_frame', 'image')  # exports before the option: 'image'
        keypoints = spec.get('keypoints')
        if keypoints is not None:
            self.task_prompts['keypoints'] = int(keypoints['task_prompt'])
            self.invisible = int(keypoints['invisible'])
            self.num_keypoints = int(keypoints['num_keypoints'])
            self.keypoints_response_len = int(keypoints['response_len'])

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

    def quantize(self, coords: np.ndarray) -> np.ndarray:
        """Normalised float32 coordinates (any shape) -> coordinate tokens (int64), as ``Pix2SeqTokenizer.quantize``
        (clipped to [0, 1], rounded half to even)."""
        return np.round(np.clip(coords, 0, 1) * (self.num_bins - 1)).astype(np.int64) + self.coord_offset

    def dequantize(self, tokens: np.ndarray) -> np.ndarray:
        bins = np.clip(tokens - self.coord_offset, 0, self.num_bins - 1)
        return bins.astype(np.float32) / (self.num_bins - 1)

    def class_probabilities(self, logits: np.ndarray, renormalize: bool = False) -> np.ndarray:
        """(N, V) logits at a class position -> (N, C): the real classes' share of the whole-vocabulary softmax (the
        official score), or the softmax over the real classes alone when ``renormalize``."""
        if renormalize:
            return softmax(logits[:, self.class_ids])
        return softmax(logits)[:, self.class_ids]

    def coordinate_constraint(self, *tokens: int) -> np.ndarray:
        """(V,) additive logit mask of a response allowing the coordinates and ``tokens`` (0), nothing else
        (-inf)."""
        constraint = np.full(self.vocab_size, -np.inf, dtype=np.float32)
        constraint[self.coord_offset:self.coord_offset + self.num_bins] = 0
        constraint[list(tokens)] = 0
        return constraint

    def decode_slots(self, tokens: np.ndarray, coords: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """One image's (L,) tokens -> ``boxes_yxyx`` (K, 4) normalised, from ``coords`` (L,) when given (else the
        tokens' bins), and ``valid`` (K,), as ``Pix2SeqTokenizer.decode``."""
        num_slots = tokens.shape[-1] // TOKENS_PER_OBJECT
        slots = tokens[:num_slots * TOKENS_PER_OBJECT].reshape(num_slots, TOKENS_PER_OBJECT)
        coord_tokens, classes = slots[:, :4], slots[:, 4]
        boxes = (self.dequantize(coord_tokens) if coords is None
                 else coords[:num_slots * TOKENS_PER_OBJECT].reshape(num_slots, TOKENS_PER_OBJECT)[:, :4])
        ended = np.cumsum((slots == self.eos).any(-1)) > 0
        valid = (self.is_coord(coord_tokens).all(-1) & self.is_class(classes) & ~ended
                 & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        return boxes, valid

    def decode_polygon(self, response: np.ndarray) -> List[np.ndarray]:
        """A response (L,) -> the object's parts, each (P, 2) normalised ``(y, x)`` float32, as
        ``Pix2SeqTokenizer.decode_polygon``: read pair by pair up to the first EOS, a pair holding a ``SEPARATOR``
        starts a new part, a pair that is not two coordinates is skipped, parts of fewer than 3 points dropped."""
        ended = np.flatnonzero(response == self.eos)
        length = int(ended[0]) if len(ended) else len(response)
        pairs = response[:length - length % 2].reshape(-1, 2)
        is_point = self.is_coord(pairs).all(-1)
        part_index = np.cumsum((pairs == self.separator).any(-1))[is_point]
        points = self.dequantize(pairs[is_point])
        parts = [points[part_index == index] for index in np.unique(part_index)]
        return [part for part in parts if len(part) >= 3]

    def decode_keypoints(self, responses: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Responses (..., 2 P) -> ``points_yx`` (..., P, 2) normalised float32 and ``labelled`` (..., P) bool, as
        ``Pix2SeqTokenizer.decode_keypoints``: a point is labelled when both its tokens are coordinates."""
        pairs = responses[..., :self.keypoints_response_len].reshape(*responses.shape[:-1], self.num_keypoints, 2)
        return self.dequantize(pairs), self.is_coord(pairs).all(-1)
