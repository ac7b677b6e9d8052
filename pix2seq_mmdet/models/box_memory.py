"""Box memory: a fine feature map sampled inside each instance prompt's box, for that prompt's sequence alone.

An instance task's response (a polygon, keypoints) depends on detail inside its prompt's box that the encoder's
coarse tokens blur (a 16-px cell holds most of a small object).  With the head's ``box_memory``, every instance
sequence's cross-attention reads, after the image's memory, ``size`` x ``size`` tokens sampled bilinearly at the
centres of a regular grid over its prompt's box from the detector's projected fine level (which carries its
positions), as Mask R-CNN's RoIAlign reads a box's features.  Detection sequences do not read them, so detection
and its cost are unchanged; an instance sequence attends to ``size ** 2`` more tokens.
"""
import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BoxMemory(nn.Module):
    """Sample ``size`` x ``size`` tokens of a feature map inside each box.

    Args:
        size (int): Samples per side of the box's grid (default 7, as RoIAlign's mask heads use 14).
    """

    def __init__(self, size: int = 7) -> None:
        super().__init__()
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f'box_memory.size must be an integer >= 1, got {size!r}')
        self.size = size

    def sample_points(self, boxes_yxyx: Tensor) -> Tensor:
        """(N, 4) normalised ``yxyx`` boxes -> (N, size, size, 2) normalised ``(y, x)`` centres of the box's grid
        cells, row by row."""
        steps = (torch.arange(self.size, device=boxes_yxyx.device, dtype=boxes_yxyx.dtype) + 0.5) / self.size
        y = boxes_yxyx[:, 0, None] + steps * (boxes_yxyx[:, 2, None] - boxes_yxyx[:, 0, None])  # (N, size)
        x = boxes_yxyx[:, 1, None] + steps * (boxes_yxyx[:, 3, None] - boxes_yxyx[:, 1, None])
        return torch.stack(torch.broadcast_tensors(y[:, :, None], x[:, None, :]), dim=-1)

    @staticmethod
    def map_extent(map_hw: Sequence[int], frame_hw: Sequence[int]) -> Tuple[float, float]:
        """The ``(y, x)`` extent of an ``h x w`` map of the frame ``(H, W)`` at a power-of-two stride ``s``, ``h =
        ceil(H / s)``, in frame units: ``h * s / H`` (1 when the stride divides the frame)."""
        return tuple(cells * 2**round(math.log2(frame / cells)) / frame for frame, cells in zip(frame_hw, map_hw))

    def forward(self, feature_map: Tensor, image_index: Tensor, boxes_yxyx: Tensor,
                frame_hw: Sequence[int]) -> Tensor:
        """Sample each box's grid.

        Args:
            feature_map (Tensor): (B, D, h, w) of the padded frame at a power-of-two stride ``s``: ``h = ceil(H /
                s)``, as a ResNet's strided convolutions round, so the map covers ``h * s >= H`` pixels.
            image_index (Tensor): (N,) int64, the image of each box.
            boxes_yxyx (Tensor): (N, 4) boxes normalised ``yxyx`` of the frame (the prompts' dequantised boxes).
            frame_hw (Sequence[int]): The padded frame ``(H, W)`` the boxes are normalised to.

        Returns:
            Tensor: (N, size * size, D), the grid's samples row by row.
        """
        extent = self.map_extent(feature_map.shape[-2:], frame_hw)
        points = self.sample_points(boxes_yxyx) / boxes_yxyx.new_tensor(extent)  # in [0, 1] of the map
        grid = points.flip(-1) * 2 - 1  # grid_sample's (x, y) in [-1, 1], pixel centres (align_corners=False)
        sampled = F.grid_sample(feature_map.index_select(0, image_index), grid, mode='bilinear',
                                padding_mode='border', align_corners=False)  # (N, D, size, size)
        return sampled.flatten(2).transpose(1, 2)
