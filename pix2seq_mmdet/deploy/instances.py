"""What the Pix2Seq v2 instance tasks share in the ONNX runtime, in numpy (no torch): their options, the boxes to
prompt with and the prompts, as ``pix2seq_mmdet.models.instance_prediction`` does them for the PyTorch head.

Per image, every distinct detected box (best first, at most ``max_instances``) becomes the prompt ``[task, ymin,
xmin, ymax, xmax, class]`` with the label of its best detection, the box normalised to the frame and quantised as the
head reads it (``boxes_in_frame``, ``Pix2SeqTokenizer.instance_prompts``); the runtime decodes ``num_samples``
responses per prompt (``Pix2SeqRuntime.answer``) and each task turns a box's samples into its outputs
(:mod:`.masks`, :mod:`.keypoints`).  Detections of one box share them.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Sequence, Tuple

import numpy as np

from .metadata import Vocabulary
from .processing import ImageMeta
from .sampling import DecodingOptions


@dataclass
class InstanceOptions:
    """An instance task's settings in the runtime (defaults: the exported ``test_cfg.<task>``): the fields of
    ``InstanceDecodingConfig`` but ``prompt_boxes`` (the runtime prompts with its own detections).

    Args:
        num_samples (int): Responses sampled per box.
        strategy (str): ``greedy``, ``top_k`` or ``nucleus`` (:class:`DecodingOptions`).
        top_p (float): Nucleus mass.
        temperature (float): Sampling temperature.
        max_instances (int): Most boxes per image to answer, best first.
        max_rows (int, optional): Most prompt samples (boxes x samples) per decoder call with a dynamic-batch export
            (default None: all of a batch's at once); a fixed-batch export decodes its batch size at a time.

    Each task sets ``task`` (the tokenizer's name), ``kind`` (its outputs, in messages) and ``meta_key`` (its defaults
    in ``pix2seq.json``) and defines its responses (:meth:`response_len`, :meth:`constraint`) and :meth:`outputs`.
    """
    task: ClassVar[str] = ''
    kind: ClassVar[str] = ''
    meta_key: ClassVar[str] = ''
    num_samples: int = 1
    strategy: str = 'nucleus'
    top_p: float = 1.0
    temperature: float = 1.0
    max_instances: int = 100
    max_rows: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ('num_samples', 'max_instances') + (('max_rows', ) if self.max_rows is not None else ()):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f'{self.kind} option {name} must be an integer >= 1, got {getattr(self, name)!r}')
        self.sampling = DecodingOptions(strategy=self.strategy, temperature=self.temperature, top_p=self.top_p)

    def response_len(self, vocab: Vocabulary) -> int:
        """Most tokens of a response."""
        raise NotImplementedError

    def constraint(self, vocab: Vocabulary) -> Optional[np.ndarray]:
        """(V,) additive logit mask of the response's tokens, or None."""
        raise NotImplementedError

    def outputs(self, responses: np.ndarray, token_probs: np.ndarray, boxes_yxyx: np.ndarray, slot: np.ndarray,
                meta: ImageMeta, vocab: Vocabulary, pad_size: Sequence[int]) -> Dict[str, np.ndarray]:
        """One image's (K * S, L) responses of its K prompt boxes ``boxes_yxyx`` (K, 4), S = ``num_samples``
        consecutive rows each, their tokens' probabilities (K * S, L), and every detection's box index ``slot`` (N,)
        (-1: not answered) -> the detections' :class:`Detections` fields."""
        raise NotImplementedError


def distinct_boxes(bboxes: np.ndarray, max_boxes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) detections sorted by score -> the rows of their distinct boxes to answer, best first (at most
    ``max_boxes``), and for every detection the index of its box among those rows (-1: not answered), as
    ``instance_prediction.distinct_boxes``."""
    if len(bboxes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, first, inverse = np.unique(bboxes, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    rows = np.sort(first)[:max_boxes]  # the best detection of each distinct box, best first
    slot = np.full(len(first), -1, dtype=np.int64)
    slot[inverse[rows]] = np.arange(len(rows))
    return rows, slot[inverse]


def boxes_in_frame(bboxes: np.ndarray, meta: ImageMeta, pad_size: Sequence[int]) -> np.ndarray:
    """(K, 4) float32 ``xyxy`` boxes in the original image's pixels -> (K, 4) ``yxyx`` normalised to the frame
    ``pad_size`` and clipped, as ``boxes_in_frame`` and ``Pix2SeqTokenizer.normalize_boxes``."""
    pad_h, pad_w = pad_size
    in_frame = bboxes * np.asarray(meta.scale_factor * 2, np.float32)
    return np.clip(in_frame[:, [1, 0, 3, 2]] / np.asarray([pad_h, pad_w, pad_h, pad_w], np.float32), 0, 1)


def instance_prompts(boxes_yxyx: np.ndarray, labels: np.ndarray, task: str, vocab: Vocabulary) -> np.ndarray:
    """(K, 4) normalised boxes and (K,) labels -> (K, 6) int64 prompts ``[task, ymin, xmin, ymax, xmax, class]``,
    as ``Pix2SeqTokenizer.instance_prompts``."""
    task_tokens = np.full((len(boxes_yxyx), 1), vocab.task_prompts[task], dtype=np.int64)
    return np.concatenate([task_tokens, vocab.quantize(boxes_yxyx), vocab.class_ids[labels][:, None]], axis=1)


def prompt_boxes(prompts: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """(N, T) int64 rows that start with an instance prompt -> (N, 4) float32 the prompts' normalised ``yxyx`` boxes
    as their tokens read them (:func:`instance_prompts`, dequantised), as ``Pix2SeqTokenizer.prompt_boxes``."""
    return vocab.dequantize(prompts[:, 1:5])
