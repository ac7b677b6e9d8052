"""Pix2Seq v2 instance segmentation in the ONNX runtime, in numpy and pycocotools (no torch): the prompts from the
runtime's detections and the masks from the decoded responses, as ``pix2seq_mmdet.models.mask_prediction`` does them
for the PyTorch head.

Per image, every distinct detected box (best first, at most ``max_instances``) becomes the prompt ``[task, ymin,
xmin, ymax, xmax, class]`` with the label of its best detection, the box normalised to the frame and quantised as the
head reads it (``boxes_in_frame``, ``Pix2SeqTokenizer.instance_prompts``); the runtime decodes ``num_samples``
responses per prompt, and each box's samples are rasterised at the original image's size and ensembled by
:func:`~pix2seq_mmdet.structures.polygons.sampled_polygons_to_masks`, the function ``responses_to_masks`` calls.
Detections of one box share its mask; boxes beyond ``max_instances`` get empty masks.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..structures.polygons import sampled_polygons_to_masks
from .metadata import Vocabulary
from .processing import ImageMeta
from .sampling import DecodingOptions


@dataclass
class MaskOptions:
    """Instance segmentation settings of the runtime (defaults: the exported ``test_cfg.instance_segmentation``); the
    fields of ``MaskDecodingConfig`` but ``prompt_boxes``: the runtime prompts with its own detections.

    Args:
        num_samples (int): Responses sampled per box.
        strategy (str): ``greedy``, ``top_k`` or ``nucleus`` (:class:`DecodingOptions`).
        top_p (float): Nucleus mass.
        temperature (float): Sampling temperature.
        threshold (float): Fraction of the samples that must cover a pixel.
        max_instances (int): Most boxes per image to segment, best first.
        constrained (bool): Restrict responses to coordinates, ``SEPARATOR`` and EOS.
        max_rows (int, optional): Most prompt samples (boxes x samples) per decoder call with a dynamic-batch export
            (default None: all of a batch's at once); a fixed-batch export decodes its batch size at a time.
    """
    num_samples: int = 8
    strategy: str = 'nucleus'
    top_p: float = 0.8
    temperature: float = 1.0
    threshold: float = 0.5
    max_instances: int = 100
    constrained: bool = True
    max_rows: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ('num_samples', 'max_instances') + (('max_rows', ) if self.max_rows is not None else ()):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f'mask option {name} must be an integer >= 1, got {getattr(self, name)!r}')
        if not 0 < self.threshold <= 1:
            raise ValueError(f'mask option threshold must be in (0, 1], got {self.threshold}')
        self.sampling = DecodingOptions(strategy=self.strategy, temperature=self.temperature, top_p=self.top_p)


def distinct_boxes(bboxes: np.ndarray, max_boxes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) detections sorted by score -> the rows of their distinct boxes to segment, best first (at most
    ``max_boxes``), and for every detection the index of its box among those rows (-1: not segmented), as
    ``mask_prediction.distinct_boxes``."""
    if len(bboxes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, first, inverse = np.unique(bboxes, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    rows = np.sort(first)[:max_boxes]  # the best detection of each distinct box, best first
    slot = np.full(len(first), -1, dtype=np.int64)
    slot[inverse[rows]] = np.arange(len(rows))
    return rows, slot[inverse]


def instance_prompts(bboxes: np.ndarray, labels: np.ndarray, meta: ImageMeta, vocab: Vocabulary,
                     pad_size: Sequence[int]) -> np.ndarray:
    """(K, 4) float32 ``xyxy`` boxes in the original image's pixels and (K,) labels -> (K, 6) int64 prompts
    ``[task, ymin, xmin, ymax, xmax, class]``: the boxes scaled into the frame ``pad_size``, normalised, clipped and
    quantised, as ``boxes_in_frame`` and ``Pix2SeqTokenizer.instance_prompts``."""
    pad_h, pad_w = pad_size
    in_frame = bboxes * np.asarray(meta.scale_factor * 2, np.float32)
    boxes_yxyx = np.clip(in_frame[:, [1, 0, 3, 2]] / np.asarray([pad_h, pad_w, pad_h, pad_w], np.float32), 0, 1)
    task = np.full((len(bboxes), 1), vocab.segmentation_prompt, dtype=np.int64)
    return np.concatenate([task, vocab.quantize(boxes_yxyx), vocab.class_ids[labels][:, None]], axis=1)


def responses_to_masks(responses: np.ndarray, slot: np.ndarray, meta: ImageMeta, vocab: Vocabulary,
                       pad_size: Sequence[int], options: MaskOptions) -> np.ndarray:
    """One image's (K * S, L) responses of K boxes, S = ``num_samples`` each, and every detection's box index
    ``slot`` (N,) (-1: not segmented) -> the detections' (N, H, W) bool masks at the original image's size."""
    samples = [vocab.decode_polygon(response) for response in responses]
    masks = sampled_polygons_to_masks(samples, options.num_samples, options.threshold, meta.ori_shape, pad_size,
                                      meta.img_shape, None, meta.scale_factor)
    not_segmented = np.zeros((1, *meta.ori_shape), dtype=bool)  # slot -1
    return np.concatenate([masks, not_segmented])[slot]
