"""Pix2Seq v2 instance segmentation at inference: sampled polygons to masks.

Each box's prompt (:mod:`.instance_prediction`) is answered ``num_samples`` times by nucleus sampling (official: 8
samples at top-p 0.8); each sampled polygon is rasterised with pycocotools at the size the boxes are reported in
(the original image's with ``rescale``), and the pixels covered by at least ``threshold`` of the samples (official
0.5) form the mask.  Detections of one box (``classes_per_box`` > 1) share its
mask; boxes beyond ``max_instances`` get empty masks.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional

import numpy as np
import torch
from torch import Tensor

from ..structures.polygons import sampled_polygons_to_masks, samples_from_box_frames
from .instance_prediction import InstanceDecodingConfig, coordinate_constraint
from .tokenizer import Pix2SeqTokenizer


@dataclass
class MaskDecodingConfig(InstanceDecodingConfig):
    """Options of the instance segmentation prediction, the head's ``test_cfg.instance_segmentation``:
    :class:`~.instance_prediction.InstanceDecodingConfig` fields (official: ``num_samples`` 8, the
    ``ensemble_num_samples``, at ``top_p`` 0.8) and

    Args:
        threshold (float): Fraction of the samples that must cover a pixel (official 0.5).
        constrained (bool): Restrict responses to coordinates, separators and EOS (the official decoder does not;
            a model that has learnt the task puts almost no mass elsewhere).
    """
    task: ClassVar[str] = 'instance_segmentation'
    num_samples: int = 8
    top_p: float = 0.8
    threshold: float = 0.5
    constrained: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.threshold <= 1:
            raise ValueError(f'test_cfg.instance_segmentation.threshold must be in (0, 1], got {self.threshold}')

    def response_len(self, tokenizer: Pix2SeqTokenizer) -> int:
        return tokenizer.response_len

    def constraint(self, tokenizer: Pix2SeqTokenizer, device: torch.device) -> Optional[Tensor]:
        """Coordinates, SEPARATOR and EOS when ``constrained``."""
        return coordinate_constraint(tokenizer, device, tokenizer.SEPARATOR, tokenizer.EOS) if self.constrained \
            else None

    def outputs(self, responses: Tensor, token_probs: Tensor, boxes_yxyx: Tensor, tokenizer: Pix2SeqTokenizer,
                img_meta: dict, rescale: bool) -> Dict[str, Tensor]:
        """``masks`` (K, H, W) bool (:func:`responses_to_masks`)."""
        return dict(masks=torch.from_numpy(responses_to_masks(responses, boxes_yxyx, tokenizer, img_meta, rescale,
                                                              self)))


def responses_to_masks(responses: Tensor, boxes_yxyx: Tensor, tokenizer: Pix2SeqTokenizer, img_meta: dict,
                       rescale: bool, cfg: MaskDecodingConfig) -> np.ndarray:
    """(K * S, L) sampled responses of K boxes of one image, S samples each, and the (K, 4) normalised prompt boxes
    -> (K, H, W) bool masks at the size the boxes are reported in (``ori_shape`` when ``rescale``, else
    ``img_shape``)."""
    out_hw = img_meta['ori_shape'][:2] if rescale else img_meta['img_shape'][:2]
    scale_factor = img_meta.get('scale_factor', (1.0, 1.0)) if rescale else (1.0, 1.0)
    frame_hw = img_meta.get('pad_shape', img_meta['img_shape'])[:2]
    flip_direction = img_meta['flip_direction'] if img_meta.get('flip', False) else None
    samples = [[part.numpy() for part in tokenizer.decode_polygon(response)] for response in responses]
    if tokenizer.polygon_frame == 'box':
        samples = samples_from_box_frames(samples, boxes_yxyx.cpu().numpy(), cfg.num_samples, tokenizer.num_bins)
    return sampled_polygons_to_masks(samples, cfg.num_samples, cfg.threshold, out_hw, frame_hw,
                                     img_meta['img_shape'][:2], flip_direction, scale_factor)
