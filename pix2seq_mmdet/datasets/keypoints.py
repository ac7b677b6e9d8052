"""Keypoints through mmdet's data pipeline: the annotation's points follow the image's resize, flip and crop.

mmdet's geometric transforms move boxes and masks but not keypoints; each of them records the map it applied in
``results['homography_matrix']`` (mmdet's ``Resize``, ``RandomFlip``, ``RandomCrop``, ...), so
:class:`LoadKeypoints`, placed after them, maps the annotation's points through that matrix once.  A crop or filter
that drops instances (``RandomCrop``, ``FilterAnnotations``) keeps the others in order, so the kept boxes are matched
to the annotation's, mapped the same way, in that order.  A pipeline::

    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(640, 640), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='LoadKeypoints', flip_indices=[0, 2, 1, ...]),
    dict(type='PackKeypointDetInputs')

gives every data sample ``gt_instances.keypoints`` (N, K, 3) float32: ``x, y`` in the pipeline's image, and COCO's
visibility flag ``v`` (0: not labelled, 1: labelled but hidden, 2: visible; ``x = y = 0`` when ``v == 0``).
"""
from typing import Optional, Sequence

import numpy as np
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes
from mmcv.transforms import BaseTransform


def map_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 2) ``x, y`` through a (3, 3) homography."""
    mapped = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ matrix.T
    return mapped[:, :2] / mapped[:, 2:]


def kept_instances(annotated_xyxy: np.ndarray, kept_xyxy: np.ndarray, matrix: np.ndarray, img_hw, where: str,
                   min_iou: float = 0.5) -> np.ndarray:
    """The annotated instance (index) of each kept box: the annotated boxes (N, 4), mapped by ``matrix`` and
    clipped to the image, are matched in order to the kept boxes (M, 4), an ordered subset of them."""
    corners = annotated_xyxy[:, [[0, 1], [2, 1], [0, 3], [2, 3]]].reshape(-1, 2)
    corners = map_points(corners, matrix).reshape(-1, 4, 2)
    height, width = img_hw
    mapped = np.concatenate([corners.min(1), corners.max(1)], axis=1).clip(0, [width, height, width, height])
    kept, index = [], 0
    for box in kept_xyxy:
        while index < len(mapped) and box_iou(mapped[index], box) < min_iou:
            index += 1
        if index == len(mapped):
            raise ValueError(f'{where}: box {box.round(1).tolist()} matches no annotated instance (a transform '
                             'moved the boxes without recording its homography_matrix); keypoints cannot follow it')
        kept.append(index)
        index += 1
    return np.array(kept, dtype=np.int64)


def box_iou(box: np.ndarray, other: np.ndarray) -> float:
    """IoU of two ``xyxy`` boxes."""
    overlap = np.clip(np.minimum(box[2:], other[2:]) - np.maximum(box[:2], other[:2]), 0, None).prod()
    union = np.prod(box[2:] - box[:2]) + np.prod(other[2:] - other[:2]) - overlap
    return float(overlap / union) if union > 0 else 0.0


@TRANSFORMS.register_module()
class LoadKeypoints(BaseTransform):
    """Read each instance's COCO ``keypoints`` into ``results['gt_keypoints']`` (N, K, 3), moved by the geometric
    transforms before it.

    Points that leave the image (a crop) become not labelled.  A horizontal flip mirrors the points and exchanges
    the left and right ones (``flip_indices``: the keypoint each one becomes, COCO persons' ``[0, 2, 1, 4, 3, ...]``).

    Args:
        flip_indices (Sequence[int], optional): Needed when the pipeline flips horizontally.

    Raises:
        ValueError: naming the image: an instance without keypoints or with a malformed list, instances of
            different keypoint counts, boxes that match no annotated instance (a transform that moves boxes without
            recording its map), a vertical flip, or a horizontal flip without ``flip_indices`` (or with indices that
            do not fit).
    """

    def __init__(self, flip_indices: Optional[Sequence[int]] = None) -> None:
        self.flip_indices = None if flip_indices is None else [int(index) for index in flip_indices]

    def transform(self, results: dict) -> dict:
        where = f'image {results.get("img_path", "?")}'
        instances = results.get('instances', [])
        rows = []
        for index, instance in enumerate(instances):
            keypoints = np.asarray(instance.get('keypoints', ()), dtype=np.float64)
            if keypoints.size == 0 or keypoints.ndim != 1 or keypoints.size % 3 or not np.isfinite(keypoints).all():
                raise ValueError(f'{where}, instance {index}: keypoints must be a flat list of K (x, y, v) triples '
                                 f'of finite numbers, got {instance.get("keypoints")!r}')
            rows.append(keypoints.reshape(-1, 3))
        if len({len(row) for row in rows}) > 1:
            raise ValueError(f'{where}: instances have different keypoint counts {sorted({len(r) for r in rows})}')
        keypoints = np.stack(rows) if rows else np.zeros((0, len(self.flip_indices or ()), 3))
        matrix = results.get('homography_matrix')
        matrix = np.eye(3) if matrix is None else np.asarray(matrix, dtype=np.float64)
        keypoints[..., :2] = map_points(keypoints[..., :2].reshape(-1, 2), matrix).reshape(keypoints.shape[:-1] + (2, ))
        boxes = results.get('gt_bboxes')
        if boxes is not None and len(boxes) != len(rows):  # a crop or filter dropped instances
            boxes = boxes.tensor if isinstance(boxes, BaseBoxes) else boxes
            annotated = np.array([instance['bbox'] for instance in instances], dtype=np.float64).reshape(-1, 4)
            keypoints = keypoints[kept_instances(annotated, np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                                                 matrix, results['img_shape'][:2], where)]
        if results.get('flip', False):
            keypoints = self._exchange_sides(keypoints, results.get('flip_direction'), where)
        height, width = results['img_shape'][:2]
        outside = ((keypoints[..., 0] < 0) | (keypoints[..., 0] > width) | (keypoints[..., 1] < 0)
                   | (keypoints[..., 1] > height))
        keypoints[outside | (keypoints[..., 2] <= 0)] = 0
        results['gt_keypoints'] = keypoints.astype(np.float32)
        return results

    def _exchange_sides(self, keypoints: np.ndarray, direction: Optional[str], where: str) -> np.ndarray:
        """The flipped image's keypoints in their own order: point ``i`` is the flipped point ``flip_indices[i]``."""
        if direction != 'horizontal':
            raise ValueError(f'{where}: keypoints follow horizontal flips only, got flip_direction={direction!r}')
        num_keypoints = keypoints.shape[1]
        if self.flip_indices is None or sorted(self.flip_indices) != list(range(num_keypoints)):
            raise ValueError(f'{where}: a horizontal flip needs LoadKeypoints(flip_indices=...), a permutation of '
                             f'the {num_keypoints} keypoints, got {self.flip_indices!r}')
        return keypoints[:, self.flip_indices]

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(flip_indices={self.flip_indices})'


@TRANSFORMS.register_module()
class PackKeypointDetInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also packs ``gt_keypoints`` as ``gt_instances.keypoints``."""
    mapping_table = {**PackDetInputs.mapping_table, 'gt_keypoints': 'keypoints'}
