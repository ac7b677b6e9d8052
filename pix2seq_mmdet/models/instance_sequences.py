"""Pix2Seq v2 training sequences of the instance segmentation task, built from mmdet's polygon masks.

Per image, up to ``max_instances_per_image`` instances of ``gt_instances`` (chosen at random when there are more),
each as one sequence ``[task, ymin, xmin, ymax, xmax, class] -> polygon`` (:meth:`Pix2SeqTokenizer.encode_polygon`),
as the official ``tasks/instance_segmentation.py`` builds them.  The polygons are mmdet's ``PolygonMasks``
(``LoadAnnotations(with_mask=True, poly2mask=False)``), already moved by the pipeline's resize, flip and crop, and
normalised here to the padded frame as the boxes are.

Token weights (the official ones): 0 on the prompt's box and class, 1 on the polygon's coordinates and separators,
``eos_weight`` (official 1.0) on EOS; PAD 0, except in the official layout, where EOS is PAD and every trailing PAD
is weighted ``eos_weight`` as the official code does.

Polygons: a part with fewer than 3 points is skipped (it has no area); an instance without a usable part, or with no
box, is left out of the sequences (its detection sequence still holds it); points outside the frame are clipped to
it (the official ``handle_out_of_frame_points``); a point that is not finite raises ``ValueError`` naming the image.
``simplify_tolerance`` > 0 (in bins; off in the official task) drops the points that the Douglas-Peucker algorithm
(OpenCV's ``approxPolyDP``) finds within that distance of the simplified outline, then repeated points, so densely
sampled outlines fit in fewer points.  ``canonical_order`` (off in the official task, which keeps the annotation's
start point and direction) starts each part at its topmost point (the leftmost of those) and runs it clockwise on
the image, so the same outline always reads the same, whatever the annotation's start, direction or a flip (a flip
reverses a polygon's direction): the first point's y is then the prompt box's ymin for a single-part object.
"""
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import get_box_tensor
from mmdet.structures.mask import PolygonMasks
from torch import Tensor

from .tokenizer import PROMPT_LENGTH, Pix2SeqTokenizer


def canonical_points(points_yx: np.ndarray) -> np.ndarray:
    """(P, 2) ``(y, x)`` polygon -> the same polygon clockwise on the image (y down), from its topmost point (the
    leftmost of the topmost)."""
    y, x = points_yx[:, 0], points_yx[:, 1]
    # shoelace area in (x, y) with y down: positive for a clockwise outline on the image
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:
        points_yx = points_yx[::-1]
    start = np.lexsort((points_yx[:, 1], points_yx[:, 0]))[0]
    return np.roll(points_yx, -start, axis=0)


class InstanceSegmentationSequences:
    """Build the instance segmentation sequences of a batch.

    Args:
        tokenizer (Pix2SeqTokenizer): The head's vocabulary, with ``instance_segmentation`` in its tasks.
        max_instances_per_image (int): Most sequences per image (official: 10).
        eos_weight (float): Weight of the EOS target (official: 1.0).
        loss_weight (float): The task's weight in the summed loss (official: 1.0).
        simplify_tolerance (float): Douglas-Peucker tolerance in bins, 0 (default) to keep every point.
        canonical_order (bool): Start every part at its topmost point and run it clockwise (default False: the
            annotation's order, as the official task).
    """

    def __init__(self, tokenizer: Pix2SeqTokenizer, max_instances_per_image: int = 10, eos_weight: float = 1.0,
                 loss_weight: float = 1.0, simplify_tolerance: float = 0.0, canonical_order: bool = False) -> None:
        if 'instance_segmentation' not in tokenizer.tasks:
            raise ValueError('model.train_cfg.instance_segmentation needs \'instance_segmentation\' in '
                             'model.head.tokenizer.tasks')
        checks = [(isinstance(max_instances_per_image, int) and max_instances_per_image >= 1,
                   'max_instances_per_image must be an integer >= 1')]
        checks += [(value >= 0, f'{name} must be >= 0') for name, value in (
            ('eos_weight', eos_weight), ('loss_weight', loss_weight), ('simplify_tolerance', simplify_tolerance))]
        for ok, message in checks:
            if not ok:
                raise ValueError(f'model.train_cfg.instance_segmentation: {message}')
        self.tokenizer = tokenizer
        self.max_instances_per_image = max_instances_per_image
        self.eos_weight = eos_weight
        self.loss_weight = loss_weight
        self.simplify_tolerance = simplify_tolerance
        self.canonical_order = canonical_order

    def polygon_parts(self, polygon: List[np.ndarray], frame_hw: Tuple[int, int], where: str) -> List[Tensor]:
        """One instance's mmdet polygon (parts of flat ``x0, y0, x1, y1, ...`` pixels) -> its usable parts, each
        (P, 2) normalised ``(y, x)`` in [0, 1]."""
        frame = np.asarray(frame_hw, dtype=np.float64)
        bins = self.tokenizer.num_bins - 1
        parts = []
        for part in polygon:
            points = np.asarray(part, dtype=np.float64).reshape(-1, 2)[:, ::-1]
            if not np.isfinite(points).all():
                raise ValueError(f'{where}: a polygon point is not finite ({points[~np.isfinite(points).all(1)][0]}); '
                                 'fix the annotation\'s segmentation')
            points = np.clip(points / frame, 0, 1)
            if self.simplify_tolerance > 0 and len(points) > 3:
                scaled = (points * bins).astype(np.float32)[:, None, :]
                points = cv2.approxPolyDP(scaled, self.simplify_tolerance, True)[:, 0].astype(np.float64) / bins
                quantized = self.tokenizer.quantize(torch.from_numpy(points)).numpy()
                keep = np.any(quantized != np.roll(quantized, 1, axis=0), axis=1)
                points = points[keep] if keep.any() else points[:1]
            if len(points) >= 3:
                if self.canonical_order:
                    points = canonical_points(points)
                parts.append(torch.from_numpy(points).float())
        return parts

    def sample_sequences(self, sample: DetDataSample) -> List[Tuple[Tensor, Tensor]]:
        """One image's (sequence (L + 1,), per-token weight of the target (L,)) per chosen instance."""
        instances = sample.gt_instances
        where = f'image {sample.metainfo.get("img_path", "?")}'
        masks = instances.get('masks', None)
        if not isinstance(masks, PolygonMasks):
            raise ValueError(f'{where}: instance segmentation trains on polygons; the training pipeline must load '
                             'them with LoadAnnotations(with_bbox=True, with_mask=True, poly2mask=False), got '
                             f'{type(masks).__name__ if masks is not None else "no masks"}')
        frame_hw = sample.metainfo['pad_shape'][:2]
        boxes = self.tokenizer.normalize_boxes(get_box_tensor(instances.bboxes).float().reshape(-1, 4), frame_hw)
        labels = instances.labels.long()
        candidates = torch.randperm(len(labels))
        sequences = []
        for index in candidates.tolist():
            if len(sequences) == self.max_instances_per_image:
                break
            box = boxes[index]
            if not (box[2] > box[0] and box[3] > box[1]):
                continue
            parts = self.polygon_parts(masks.masks[index], frame_hw, f'{where}, instance {index}')
            if not parts:
                continue
            prompt = self.tokenizer.instance_prompts(box[None], labels[index:index + 1])[0].cpu()
            sequence = torch.cat([prompt, self.tokenizer.encode_polygon(parts)])
            sequences.append((sequence, self.token_weights(sequence[1:])))
        return sequences

    def token_weights(self, target_tokens: Tensor) -> Tensor:
        """(L,) float32 weights of an instance sequence's targets (the sequence less its first token)."""
        weights = torch.ones(target_tokens.shape, dtype=torch.float32)
        weights[:PROMPT_LENGTH - 1] = 0  # the prompt's box and class are given, not predicted
        response = weights[PROMPT_LENGTH - 1:]
        response_tokens = target_tokens[PROMPT_LENGTH - 1:]
        response[response_tokens == self.tokenizer.PAD] = 0
        response[response_tokens == self.tokenizer.EOS] = self.eos_weight
        return weights

    def __call__(self, batch_data_samples: List[DetDataSample],
                 device: Optional[torch.device] = None) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
        """The batch's ``input_tokens``, ``target_tokens``, ``token_weights`` (each (N, L')) and ``image_index``
        (N,), the image of each sequence; None when no image has a usable instance.  L' is the longest weighted
        extent of the batch's sequences (the trailing positions with weight 0 everywhere are cut: the decoder is
        causal, so the other positions' logits do not change)."""
        rows, image_index = [], []
        for index, sample in enumerate(batch_data_samples):
            sequences = self.sample_sequences(sample)
            rows += sequences
            image_index += [index] * len(sequences)
        if not rows:
            return None
        sequences, weights = (torch.stack(parts) for parts in zip(*rows))
        length = int((weights > 0).any(0).nonzero().max()) + 1
        sequences, weights = sequences.to(device), weights.to(device)
        return (sequences[:, :length], sequences[:, 1:length + 1], weights[:, :length],
                torch.tensor(image_index, device=device))
