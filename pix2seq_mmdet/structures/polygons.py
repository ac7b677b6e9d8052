"""Polygons to masks, with numpy and pycocotools only (no torch), for the model and the ONNX runtime alike.

Coordinates follow COCO's convention: pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so a polygon
in pixel units rasterises with pycocotools exactly as its annotation does.
"""
from typing import Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils


def frame_points_to_pixels(parts_yx: Sequence[np.ndarray], frame_hw: Sequence[float], img_hw: Sequence[float],
                           flip_direction: Optional[str] = None, scale_factor: Sequence[float] = (1.0, 1.0)) -> list:
    """Normalised ``(y, x)`` points of the padded frame -> ``(x, y)`` pixels of the image the boxes are reported in.

    Args:
        parts_yx (Sequence[np.ndarray]): Each (P, 2) normalised to the ``frame_hw`` frame (``pad_shape``).
        frame_hw (Sequence[float]): The frame's height and width.
        img_hw (Sequence[float]): The image's height and width inside the frame (``img_shape``), what a flip
            mirrors across.
        flip_direction (str, optional): mmdet's ``flip_direction`` when the pipeline flipped the image
            (``horizontal``, ``vertical`` or ``diagonal``), undone here.
        scale_factor (Sequence[float]): mmdet's ``(w_scale, h_scale)`` of the resize, divided out.

    Returns:
        list[np.ndarray]: Each (P, 2) float64 ``(x, y)``.
    """
    frame_h, frame_w = frame_hw
    img_h, img_w = img_hw
    pixels = []
    for part in parts_yx:
        x = np.asarray(part[:, 1], dtype=np.float64) * frame_w
        y = np.asarray(part[:, 0], dtype=np.float64) * frame_h
        if flip_direction in ('horizontal', 'diagonal'):
            x = img_w - x
        if flip_direction in ('vertical', 'diagonal'):
            y = img_h - y
        pixels.append(np.stack([x / scale_factor[0], y / scale_factor[1]], axis=1))
    return pixels


def box_frames(boxes_yxyx: np.ndarray, num_bins: int) -> tuple:
    """(K, 4) normalised ``yxyx`` prompt boxes -> the frames of box-relative polygons (``polygon_frame='box'``): each
    box as its prompt tokens read it (its coordinates on the ``num_bins`` bins), ``origin`` (K, 2) its top-left
    ``(y, x)`` and ``extent`` (K, 2) its height and width, at least one bin."""
    bins = num_bins - 1
    boxes = np.round(np.clip(np.asarray(boxes_yxyx, dtype=np.float64).reshape(-1, 4), 0, 1) * bins) / bins
    return boxes[:, :2], np.maximum(boxes[:, 2:] - boxes[:, :2], 1 / bins)


def points_to_box_frame(points_yx: np.ndarray, box_yxyx: np.ndarray, num_bins: int) -> np.ndarray:
    """(P, 2) normalised ``(y, x)`` of the padded frame -> the same points in the frame of the prompt box
    ``box_yxyx`` (4,): ``(0, 0)`` its top-left corner, ``(1, 1)`` its bottom-right one (:func:`box_frames`); points
    outside the box are clipped to it."""
    (origin, ), (extent, ) = box_frames(box_yxyx, num_bins)
    return np.clip((np.asarray(points_yx, dtype=np.float64) - origin) / extent, 0, 1)


def samples_from_box_frames(samples_yx: Sequence[Sequence[np.ndarray]], boxes_yxyx: np.ndarray, num_samples: int,
                            num_bins: int) -> list:
    """K * S sampled polygons of K objects, S = ``num_samples`` consecutive samples each, their parts' points in
    the frames of the objects' prompt boxes (K, 4) -> the same parts normalised to the padded frame (the inverse
    of :func:`points_to_box_frame`)."""
    origins, extents = box_frames(boxes_yxyx, num_bins)
    return [[origins[index // num_samples] + np.asarray(part, dtype=np.float64) * extents[index // num_samples]
             for part in parts] for index, parts in enumerate(samples_yx)]


def rasterize_polygon(parts_xy: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """One object's parts, each (P, 2) ``(x, y)`` pixels with P >= 3, -> its (height, width) bool mask (the union
    of the parts, as COCO's ``annToMask``); no parts give an empty mask."""
    polygons = [np.asarray(part, dtype=np.float64).reshape(-1).tolist() for part in parts_xy if len(part) >= 3]
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    return mask_utils.decode(rle).astype(bool)


def ensemble_masks(masks: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(S, H, W) masks of S sampled polygons of one object -> (H, W) bool: pixels covered by at least a
    ``threshold`` fraction of the samples (the official ``ensemble_mask_np``)."""
    return masks.mean(axis=0, dtype=np.float32) >= threshold


def sampled_polygons_to_masks(samples_yx: Sequence[Sequence[np.ndarray]], num_samples: int, threshold: float,
                              out_hw: Sequence[int], frame_hw: Sequence[float], img_hw: Sequence[float],
                              flip_direction: Optional[str] = None,
                              scale_factor: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
    """K * S sampled polygons of K objects, S = ``num_samples`` consecutive samples each, -> (K, H, W) bool masks.

    Each sample (a list of (P, 2) normalised ``(y, x)`` parts of the frame, as ``decode_polygon`` reads them) is
    mapped to pixels (:func:`frame_points_to_pixels` with ``frame_hw``, ``img_hw``, ``flip_direction``,
    ``scale_factor``), rasterised at ``out_hw`` (:func:`rasterize_polygon`), and each object's samples are ensembled
    at ``threshold`` (:func:`ensemble_masks`).
    """
    height, width = out_hw
    samples = np.zeros((len(samples_yx), height, width), dtype=bool)
    for index, parts in enumerate(samples_yx):
        pixels = frame_points_to_pixels(parts, frame_hw, img_hw, flip_direction, scale_factor)
        samples[index] = rasterize_polygon(pixels, height, width)
    samples = samples.reshape(-1, num_samples, height, width)
    if not len(samples):
        return np.zeros((0, height, width), dtype=bool)
    return np.stack([ensemble_masks(object_samples, threshold) for object_samples in samples])
