"""Pix2Seq v2 training sequences of the instance tasks: polygons from mmdet's masks, keypoints.

Per image, up to ``max_instances_per_image`` instances of ``gt_instances`` (chosen at random when there are more),
each as one sequence ``[task, ymin, xmin, ymax, xmax, class] -> response``, as the official
``tasks/instance_segmentation.py`` and ``tasks/keypoint_detection.py`` build them: :class:`InstanceSequences` holds
what the tasks share (the choice of instances, the prompt, the batch and its weights), its subclasses the response.

Instance segmentation (:class:`InstanceSegmentationSequences`): the response is the polygon
(:meth:`Pix2SeqTokenizer.encode_polygon`).  The polygons are mmdet's ``PolygonMasks``
(``LoadAnnotations(with_mask=True, poly2mask=False)``), already moved by the pipeline's resize, flip and crop, and
normalised here to the padded frame as the boxes are, or to the instance's box with the tokenizer's
``polygon_frame='box'``.

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

Keypoints (:class:`KeypointSequences`): the response is the ``num_keypoints`` points of ``gt_instances.keypoints``
(:class:`~pix2seq_mmdet.datasets.keypoints.LoadKeypoints`), an unlabelled one (``v == 0``) as an ``INVISIBLE`` pair
weighted ``invisible_weight`` (official 0.1); an instance without a labelled point is left out (the official task
drops them in training).  As the official task, the response's input tokens are replaced by ``INVISIBLE`` at a rate
drawn uniformly in [0, 1) per batch (``mask_inputs``), so the model learns to place a point without relying on the
points before it.  Unlike the official task, which crops the image around each person (``crop_to_bbox``, half the
box's size added around it) and encodes every crop, the sequences read the whole image's memory, as the other
tasks do.
"""
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import get_box_tensor
from mmdet.structures.mask import PolygonMasks
from torch import Tensor

from ..structures.polygons import points_to_box_frame
from .tokenizer import PROMPT_LENGTH, Pix2SeqTokenizer

Responses = List[Tuple[Tensor, Tensor]]


def canonical_points(points_yx: np.ndarray) -> np.ndarray:
    """(P, 2) ``(y, x)`` polygon -> the same polygon clockwise on the image (y down), from its topmost point (the
    leftmost of the topmost)."""
    y, x = points_yx[:, 0], points_yx[:, 1]
    # shoelace area in (x, y) with y down: positive for a clockwise outline on the image
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:
        points_yx = points_yx[::-1]
    start = np.lexsort((points_yx[:, 1], points_yx[:, 0]))[0]
    return np.roll(points_yx, -start, axis=0)


class InstanceSequences:
    """Build the sequences of one instance task for a batch; subclasses write :meth:`response`.

    Args:
        tokenizer (Pix2SeqTokenizer): The head's vocabulary, with the task in its tasks.
        max_instances_per_image (int): Most sequences per image (official segmentation: 10).
        eos_weight (float): Weight of the EOS target (official: 1.0).
        loss_weight (float): The task's weight in the summed loss (official: 1.0).
    """
    task = ''
    loss_name = ''

    def __init__(self, tokenizer: Pix2SeqTokenizer, max_instances_per_image: int = 10, eos_weight: float = 1.0,
                 loss_weight: float = 1.0, **nonnegative: float) -> None:
        if self.task not in tokenizer.tasks:
            raise ValueError(f'model.train_cfg.{self.task} needs \'{self.task}\' in model.head.tokenizer.tasks')
        checks = [(isinstance(max_instances_per_image, int) and max_instances_per_image >= 1,
                   'max_instances_per_image must be an integer >= 1')]
        checks += [(value >= 0, f'{name} must be >= 0') for name, value in dict(
            eos_weight=eos_weight, loss_weight=loss_weight, **nonnegative).items()]
        for ok, message in checks:
            if not ok:
                raise ValueError(f'model.train_cfg.{self.task}: {message}')
        self.tokenizer = tokenizer
        self.max_instances_per_image = max_instances_per_image
        self.eos_weight = eos_weight
        self.loss_weight = loss_weight

    def response(self, sample: DetDataSample, index: int, box_yxyx: Tensor, where: str) -> Optional[Tensor]:
        """Instance ``index`` of ``sample``, its (4,) normalised box of the prompt -> its response tokens, or None to
        leave it out."""
        raise NotImplementedError

    def sample_sequences(self, sample: DetDataSample) -> Responses:
        """One image's (sequence (L + 1,), per-token weight of the target (L,)) per chosen instance."""
        instances = sample.gt_instances
        where = f'image {sample.metainfo.get("img_path", "?")}'
        frame_hw = sample.metainfo['pad_shape'][:2]
        boxes = self.tokenizer.normalize_boxes(get_box_tensor(instances.bboxes).float().reshape(-1, 4), frame_hw)
        labels = instances.labels.long()
        sequences = []
        for index in torch.randperm(len(labels)).tolist():
            if len(sequences) == self.max_instances_per_image:
                break
            box = boxes[index]
            if not (box[2] > box[0] and box[3] > box[1]):
                continue
            response = self.response(sample, index, box, f'{where}, instance {index}')
            if response is None:
                continue
            prompt = self.tokenizer.instance_prompts(box[None], labels[index:index + 1], self.task)[0].cpu()
            sequence = torch.cat([prompt, response])
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

    def corrupt_inputs(self, input_tokens: Tensor) -> Tensor:
        """(N, L) input tokens of the batch -> the tokens the decoder reads (default: unchanged)."""
        return input_tokens

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
        return (self.corrupt_inputs(sequences[:, :length]), sequences[:, 1:length + 1], weights[:, :length],
                torch.tensor(image_index, device=device))


class InstanceSegmentationSequences(InstanceSequences):
    """The instance segmentation task's sequences (:class:`InstanceSequences`), from ``gt_instances.masks``
    (mmdet ``PolygonMasks``).

    Args:
        simplify_tolerance (float): Douglas-Peucker tolerance in bins, 0 (default) to keep every point.
        canonical_order (bool): Start every part at its topmost point and run it clockwise (default False: the
            annotation's order, as the official task).
        **kwargs: :class:`InstanceSequences` options.
    """
    task = 'instance_segmentation'
    loss_name = 'loss_segm'

    def __init__(self, tokenizer: Pix2SeqTokenizer, simplify_tolerance: float = 0.0, canonical_order: bool = False,
                 **kwargs) -> None:
        super().__init__(tokenizer, simplify_tolerance=simplify_tolerance, **kwargs)
        self.simplify_tolerance = simplify_tolerance
        self.canonical_order = canonical_order

    def polygon_parts(self, polygon: List[np.ndarray], frame_hw: Tuple[int, int], box_yxyx: Tensor,
                      where: str) -> List[Tensor]:
        """One instance's mmdet polygon (parts of flat ``x0, y0, x1, y1, ...`` pixels) and its (4,) normalised box
        -> its usable parts, each (P, 2) ``(y, x)`` in [0, 1], normalised to the tokenizer's ``polygon_frame``.

        The outline is simplified in the padded frame's bins (``simplify_tolerance``), then normalised to the box
        with ``polygon_frame='box'``; points that fall in the bin of the point before them are dropped there."""
        frame = np.asarray(frame_hw, dtype=np.float64)
        bins = self.tokenizer.num_bins - 1
        parts = []
        for part in polygon:
            points = np.asarray(part, dtype=np.float64).reshape(-1, 2)[:, ::-1]
            if not np.isfinite(points).all():
                raise ValueError(f'{where}: a polygon point is not finite ({points[~np.isfinite(points).all(1)][0]}); '
                                 'fix the annotation\'s segmentation')
            points = np.clip(points / frame, 0, 1)
            simplified = self.simplify_tolerance > 0 and len(points) > 3
            if simplified:
                scaled = (points * bins).astype(np.float32)[:, None, :]
                points = cv2.approxPolyDP(scaled, self.simplify_tolerance, True)[:, 0].astype(np.float64) / bins
            if self.tokenizer.polygon_frame == 'box':
                points = points_to_box_frame(points, box_yxyx.cpu().numpy(), self.tokenizer.num_bins)
            if simplified:
                quantized = self.tokenizer.quantize(torch.from_numpy(points)).numpy()
                keep = np.any(quantized != np.roll(quantized, 1, axis=0), axis=1)
                points = points[keep] if keep.any() else points[:1]
            if len(points) >= 3:
                if self.canonical_order:
                    points = canonical_points(points)
                parts.append(torch.from_numpy(points).float())
        return parts

    def response(self, sample: DetDataSample, index: int, box_yxyx: Tensor, where: str) -> Optional[Tensor]:
        masks = sample.gt_instances.get('masks', None)
        if not isinstance(masks, PolygonMasks):
            raise ValueError(f'{where}: instance segmentation trains on polygons; the training pipeline must load '
                             'them with LoadAnnotations(with_bbox=True, with_mask=True, poly2mask=False), got '
                             f'{type(masks).__name__ if masks is not None else "no masks"}')
        parts = self.polygon_parts(masks.masks[index], sample.metainfo['pad_shape'][:2], box_yxyx, where)
        return self.tokenizer.encode_polygon(parts) if parts else None


class KeypointSequences(InstanceSequences):
    """The keypoint task's sequences (:class:`InstanceSequences`), from ``gt_instances.keypoints`` (N, K, 3).

    Args:
        invisible_weight (float): Weight of an ``INVISIBLE`` target (official: 0.1).
        mask_inputs (bool): Replace response input tokens by ``INVISIBLE`` at a random rate (official: True).
        **kwargs: :class:`InstanceSequences` options (official keypoints: ``max_instances_per_image`` 1 per person
            crop; here the instances share one image, default 10).
    """
    task = 'keypoints'
    loss_name = 'loss_keypoints'

    def __init__(self, tokenizer: Pix2SeqTokenizer, invisible_weight: float = 0.1, mask_inputs: bool = True,
                 **kwargs) -> None:
        super().__init__(tokenizer, invisible_weight=invisible_weight, **kwargs)
        self.invisible_weight = invisible_weight
        self.mask_inputs = mask_inputs

    def response(self, sample: DetDataSample, index: int, box_yxyx: Tensor, where: str) -> Optional[Tensor]:
        keypoints = sample.gt_instances.get('keypoints', None)
        if keypoints is None:
            raise ValueError(f'{where}: the keypoint task needs gt_instances.keypoints: add LoadKeypoints after the '
                             'geometric transforms and pack with PackKeypointDetInputs')
        if keypoints.shape[1:] != (self.tokenizer.num_keypoints, 3):
            raise ValueError(f'{where}: keypoints of shape {tuple(keypoints.shape[1:])}, the tokenizer expects '
                             f'({self.tokenizer.num_keypoints}, 3) (model.head.tokenizer.num_keypoints)')
        points = keypoints[index].float().cpu()
        labelled = points[:, 2] > 0
        if not labelled.any():
            return None
        frame_h, frame_w = sample.metainfo['pad_shape'][:2]
        points_yx = (points[:, [1, 0]] / points.new_tensor([frame_h, frame_w])).clamp(0, 1)
        return self.tokenizer.encode_keypoints(points_yx, labelled)

    def token_weights(self, target_tokens: Tensor) -> Tensor:
        weights = super().token_weights(target_tokens)
        weights[(target_tokens == self.tokenizer.INVISIBLE) & (weights > 0)] = self.invisible_weight
        return weights

    def corrupt_inputs(self, input_tokens: Tensor) -> Tensor:
        if not self.mask_inputs:
            return input_tokens
        rate = torch.rand(()).item()
        masked = torch.rand(input_tokens.shape, device=input_tokens.device) < rate
        masked[:, :PROMPT_LENGTH] = False
        return torch.where(masked, self.tokenizer.INVISIBLE, input_tokens)
