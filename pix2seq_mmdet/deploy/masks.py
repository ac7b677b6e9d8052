"""Pix2Seq v2 instance segmentation in the ONNX runtime, in numpy and pycocotools (no torch): the masks from the
decoded responses to the box prompts (:mod:`.instances`), as ``pix2seq_mmdet.models.mask_prediction`` does them for
the PyTorch head.

Each box's ``num_samples`` polygons are rasterised at the original image's size and ensembled by
:func:`~pix2seq_mmdet.structures.polygons.sampled_polygons_to_masks`, the function ``responses_to_masks`` calls.
Detections of one box share its mask; boxes beyond ``max_instances`` get empty masks.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Sequence

import numpy as np

from ..structures.polygons import sampled_polygons_to_masks, samples_from_box_frames
from .instances import InstanceOptions
from .metadata import Vocabulary
from .processing import ImageMeta


@dataclass
class MaskOptions(InstanceOptions):
    """Instance segmentation settings of the runtime (defaults: the exported ``test_cfg.instance_segmentation``):
    :class:`~.instances.InstanceOptions` fields and those of ``MaskDecodingConfig``:

    Args:
        threshold (float): Fraction of the samples that must cover a pixel.
        constrained (bool): Restrict responses to coordinates, ``SEPARATOR`` and EOS.
    """
    task: ClassVar[str] = 'instance_segmentation'
    kind: ClassVar[str] = 'mask'
    meta_key: ClassVar[str] = 'mask_decoding'
    num_samples: int = 8
    top_p: float = 0.8
    threshold: float = 0.5
    constrained: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.threshold <= 1:
            raise ValueError(f'mask option threshold must be in (0, 1], got {self.threshold}')

    def response_len(self, vocab: Vocabulary) -> int:
        return vocab.response_len

    def constraint(self, vocab: Vocabulary) -> Optional[np.ndarray]:
        return vocab.coordinate_constraint(vocab.separator, vocab.eos) if self.constrained else None

    def outputs(self, responses: np.ndarray, token_probs: np.ndarray, boxes_yxyx: np.ndarray, slot: np.ndarray,
                meta: ImageMeta, vocab: Vocabulary, pad_size: Sequence[int]) -> Dict[str, np.ndarray]:
        """``masks`` (N, H, W) bool at the original image's size."""
        return dict(masks=responses_to_masks(responses, boxes_yxyx, slot, meta, vocab, pad_size, self))


def responses_to_masks(responses: np.ndarray, boxes_yxyx: np.ndarray, slot: np.ndarray, meta: ImageMeta,
                       vocab: Vocabulary, pad_size: Sequence[int], options: MaskOptions) -> np.ndarray:
    """One image's (K * S, L) responses of K boxes, S = ``num_samples`` each, the boxes (K, 4) normalised ``yxyx``,
    and every detection's box index ``slot`` (N,) (-1: not segmented) -> the detections' (N, H, W) bool masks at the
    original image's size."""
    samples = [vocab.decode_polygon(response) for response in responses]
    if vocab.polygon_frame == 'box':
        samples = samples_from_box_frames(samples, boxes_yxyx, options.num_samples, vocab.num_bins)
    masks = sampled_polygons_to_masks(samples, options.num_samples, options.threshold, meta.ori_shape, pad_size,
                                      meta.img_shape, None, meta.scale_factor)
    not_segmented = np.zeros((1, *meta.ori_shape), dtype=bool)  # slot -1
    return np.concatenate([masks, not_segmented])[slot]
