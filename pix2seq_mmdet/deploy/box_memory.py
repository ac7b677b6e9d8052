"""The head's box memory in the ONNX runtime, in numpy: each instance row's keys and values of the fine level
sampled inside its prompt's box, after its image's memory, as ``Pix2SeqHead.prompt_memory`` gives the PyTorch rows.

PyTorch samples the projected fine level (``models.box_memory.BoxMemory``: bilinear, ``grid_sample`` with
``align_corners=False`` and border padding) and the decoder projects the samples to keys and values.  The encoder
graph instead writes the whole level's keys and values once per image (``fine_key_i`` / ``fine_value_i``) and the
runtime samples those: the projection is affine and a bilinear sample's weights sum to 1, so both orders give the
same keys and values.
"""
from typing import Tuple

import numpy as np


def grid_points(boxes_yxyx: np.ndarray, size: int) -> np.ndarray:
    """(N, 4) normalised ``yxyx`` boxes -> (N, size * size, 2) normalised ``(y, x)`` centres of each box's
    ``size`` x ``size`` grid cells, row by row (``BoxMemory.sample_points``)."""
    steps = (np.arange(size, dtype=np.float32) + 0.5) / size
    y = boxes_yxyx[:, 0, None] + steps * (boxes_yxyx[:, 2, None] - boxes_yxyx[:, 0, None])  # (N, size)
    x = boxes_yxyx[:, 1, None] + steps * (boxes_yxyx[:, 3, None] - boxes_yxyx[:, 1, None])
    points = np.stack(np.broadcast_arrays(y[:, :, None], x[:, None, :]), axis=-1)
    return points.reshape(len(boxes_yxyx), size * size, 2)


def bilinear_taps(points_yx: np.ndarray, extent: Tuple[float, float],
                  map_hw: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(N, P, 2) normalised frame points -> the flat indices (N, P, 4) of the four map cells each reads and their
    bilinear weights (N, P, 4), as ``grid_sample(align_corners=False, padding_mode='border')``: the map of
    ``map_hw`` cells covers ``extent`` of the frame, a cell's value sits at its centre, and a point beyond the outer
    centres reads the border cells."""
    corners, weights = [], []
    for axis, (cells, covered) in enumerate(zip(map_hw, extent)):
        position = np.clip(points_yx[..., axis] / covered * cells - 0.5, 0, cells - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, cells - 1)
        corners.append((low, high))
        fraction = position - low
        weights.append((1 - fraction, fraction))
    (y0, y1), (x0, x1) = corners
    (wy0, wy1), (wx0, wx1) = weights
    width = map_hw[1]
    indices = np.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1], axis=-1)
    return indices, np.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1], axis=-1).astype(np.float32)


def sample_rows(fine: np.ndarray, image_index: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One layer's fine keys or values (B, H, h * w, Dh), the rows' images (N,) and their taps
    (:func:`bilinear_taps`, (N, P, 4) each) -> (N, H, P, Dh)."""
    taps = fine[image_index[:, None, None], :, indices]  # (N, P, 4, H, Dh)
    return np.einsum('npc,npchd->nhpd', weights, taps)
