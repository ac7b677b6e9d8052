"""Pix2Seq v2 instance segmentation at inference: prompts from boxes, sampled polygons to masks.

Per image, every distinct detected box (or every ground-truth box, to evaluate the mask task alone) up to
``max_instances`` becomes a prompt ``[task, box, class]`` with the class of its best detection; each prompt is
answered ``num_samples`` times by nucleus sampling (official: 8 samples at top-p 0.8), all images' prompts and samples
decoding as one batch through the head's key/value cache; each sampled polygon is rasterised with pycocotools at the
size the boxes are reported in (the original image's with ``rescale``), and the pixels covered by at least
``threshold`` of the samples (official 0.5) form the mask.  Detections of one box (``classes_per_box`` > 1) share its
mask; boxes beyond ``max_instances`` get empty masks.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from mmdet.structures.bbox import bbox_flip
from torch import Tensor

from ..structures.polygons import sampled_polygons_to_masks
from .decoding import DecodingConfig
from .tokenizer import Pix2SeqTokenizer

PROMPT_BOXES = ('predicted', 'ground_truth')


@dataclass
class MaskDecodingConfig:
    """Options of the instance segmentation prediction, the head's ``test_cfg.instance_segmentation``.

    Args:
        num_samples (int): Polygons sampled per box (official ``ensemble_num_samples``: 8).
        strategy (str): ``nucleus`` (official) or another :class:`DecodingConfig` strategy but beam.
        top_p (float): Nucleus mass (official 0.8).
        temperature (float): Sampling temperature (official 1.0).
        threshold (float): Fraction of the samples that must cover a pixel (official 0.5).
        prompt_boxes (str): ``predicted`` (the detections) or ``ground_truth`` (the data sample's boxes and labels,
            scored 1; the official ``use_gt_box_at_test``).
        max_instances (int): Most boxes per image to segment, best first.
        constrained (bool): Restrict responses to coordinates, separators and EOS (the official decoder does not;
            a model that has learnt the task puts almost no mass elsewhere).
        max_rows (int, optional): Most prompt samples (boxes x samples) decoded at once; the key/value cache holds
            this many rows, so it bounds the memory (default None: the whole batch at once).
    """
    num_samples: int = 8
    strategy: str = 'nucleus'
    top_p: float = 0.8
    temperature: float = 1.0
    threshold: float = 0.5
    prompt_boxes: str = 'predicted'
    max_instances: int = 100
    constrained: bool = True
    max_rows: Optional[int] = None

    def __post_init__(self) -> None:
        if self.prompt_boxes not in PROMPT_BOXES:
            raise ValueError(f'test_cfg.instance_segmentation.prompt_boxes must be one of {PROMPT_BOXES}, got '
                             f'{self.prompt_boxes!r}')
        for name in ('num_samples', 'max_instances') + (('max_rows', ) if self.max_rows is not None else ()):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f'test_cfg.instance_segmentation.{name} must be an integer >= 1, got '
                                 f'{getattr(self, name)!r}')
        if not 0 < self.threshold <= 1:
            raise ValueError(f'test_cfg.instance_segmentation.threshold must be in (0, 1], got {self.threshold}')
        if self.strategy == 'beam':
            raise ValueError('test_cfg.instance_segmentation.strategy: beam search does not apply to polygons')
        self.decoding = DecodingConfig(strategy=self.strategy, top_p=self.top_p, temperature=self.temperature)


def boxes_in_frame(bboxes: Tensor, img_meta: dict, rescaled: bool, tokenizer: Pix2SeqTokenizer) -> Tensor:
    """(N, 4) pixel ``xyxy`` boxes as the head reports them (in the original image when ``rescaled``, else in the
    resized image) -> (N, 4) normalised ``yxyx`` of the padded frame, as the model reads them: the inverse of
    :meth:`Pix2SeqHead.tokens_to_instances`."""
    if rescaled and 'scale_factor' in img_meta:
        bboxes = bboxes * bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
    if img_meta.get('flip', False):
        bboxes = bbox_flip(bboxes, img_meta['img_shape'][:2], img_meta['flip_direction'])
    return tokenizer.normalize_boxes(bboxes, img_meta.get('pad_shape', img_meta['img_shape'])[:2])


def distinct_boxes(bboxes: Tensor, max_boxes: int) -> Tuple[Tensor, Tensor]:
    """Detections sorted by score -> the rows of their distinct boxes to segment, best first (at most
    ``max_boxes``), and for every detection the index of its box among those rows (-1: not segmented)."""
    if len(bboxes) == 0:
        return bboxes.new_zeros(0, dtype=torch.long), bboxes.new_zeros(0, dtype=torch.long)
    unique, inverse = torch.unique(bboxes, dim=0, return_inverse=True)
    order = torch.arange(len(bboxes), device=bboxes.device)
    first = torch.full((len(unique), ), len(bboxes), dtype=torch.long, device=bboxes.device)
    first = first.scatter_reduce(0, inverse, order, 'amin')  # the best detection of each distinct box
    rows = first.sort().values[:max_boxes]
    slot = torch.full((len(unique), ), -1, dtype=torch.long, device=bboxes.device)
    slot[inverse[rows]] = torch.arange(len(rows), device=bboxes.device)
    return rows, slot[inverse]


def responses_to_masks(responses: Tensor, tokenizer: Pix2SeqTokenizer, img_meta: dict, rescale: bool,
                       cfg: MaskDecodingConfig) -> np.ndarray:
    """(K * S, L) sampled responses of K boxes of one image, S samples each -> (K, H, W) bool masks at the size the
    boxes are reported in (``ori_shape`` when ``rescale``, else ``img_shape``)."""
    out_hw = img_meta['ori_shape'][:2] if rescale else img_meta['img_shape'][:2]
    scale_factor = img_meta.get('scale_factor', (1.0, 1.0)) if rescale else (1.0, 1.0)
    frame_hw = img_meta.get('pad_shape', img_meta['img_shape'])[:2]
    flip_direction = img_meta['flip_direction'] if img_meta.get('flip', False) else None
    samples = [[part.numpy() for part in tokenizer.decode_polygon(response)] for response in responses]
    return sampled_polygons_to_masks(samples, cfg.num_samples, cfg.threshold, out_hw, frame_hw,
                                     img_meta['img_shape'][:2], flip_direction, scale_factor)


def polygon_constraint(tokenizer: Pix2SeqTokenizer, device: torch.device) -> Tensor:
    """(V,) additive logit mask allowing a polygon response's tokens: coordinates, SEPARATOR and EOS."""
    constraint = torch.full((tokenizer.vocab_size, ), float('-inf'), device=device)
    constraint[tokenizer.coordinates] = 0
    constraint[[tokenizer.SEPARATOR, tokenizer.EOS]] = 0
    return constraint
