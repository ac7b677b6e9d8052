"""An auxiliary dense mask head for training the instance segmentation task: every memory token learns which pixels
of its cell the objects' masks cover.

The auxiliary detection head (``Pix2Seq.aux_head``) teaches every memory token the class and box of the objects
around it, which a box needs; a polygon needs more: where an outline runs inside a cell of ``stride x stride``
pixels, finer than the feature map.  This head asks it of the same tokens: a linear layer maps each encoder output
token to ``stride * stride`` logits, one per pixel of its cell, trained with binary cross-entropy against the union
of the image's instance masks (mmdet's ``PolygonMasks`` or ``BitmapMasks`` of ``gt_instances``, as the pipeline
resized, flipped and cropped them), padded to the frame as the image is.  The decoder's cross-attention reads the
tokens through the memory projection, so what they encode of the outlines is there for the polygon's points.
Training only: prediction and export ignore it.
"""
import math
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.model import BaseModule
from torch import Tensor, nn


@MODELS.register_module()
class CellMaskHead(BaseModule):
    """Per-token prediction of the foreground pixels of the token's cell (training only).

    ``encoded`` (B, h * w, C) -> Linear(C, s * s) -> (B, h * w, s * s) logits, laid out as (B, h * s, w * s) pixels
    of the frame, against the union of the instance masks; ``loss_mask`` is ``loss_weight`` times their mean binary
    cross-entropy.

    Args:
        in_channels (int): Width ``C`` of the encoder output.
        stride (int): Pixels per token along each side, ``s`` (the feature map's stride).
        loss_weight (float): Weight of ``loss_mask`` in the summed loss.
    """

    def __init__(self, in_channels: int, stride: int, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(stride, int) and stride >= 1):
            raise ValueError(f'CellMaskHead: stride must be an integer >= 1, got {stride!r}')
        if loss_weight < 0:
            raise ValueError(f'CellMaskHead: loss_weight must be >= 0, got {loss_weight}')
        self.stride = stride
        self.loss_weight = loss_weight
        self.proj = nn.Linear(in_channels, stride * stride)

    def forward(self, encoded: Tensor, feat_hw: Tuple[int, int]) -> Tensor:
        """(B, h * w, C) encoder output -> (B, h * s, w * s) logits of the frame's pixels."""
        batch_size = encoded.shape[0]
        feat_h, feat_w = feat_hw
        logits = self.proj(encoded).view(batch_size, feat_h, feat_w, self.stride, self.stride)
        return logits.permute(0, 1, 3, 2, 4).reshape(batch_size, feat_h * self.stride, feat_w * self.stride)

    def targets(self, batch_data_samples: SampleList, out_hw: Tuple[int, int]) -> Tensor:
        """(B, H', W') float32 union of each image's instance masks, top-left in a zero frame of ``out_hw``."""
        targets = np.zeros((len(batch_data_samples), *out_hw), dtype=np.float32)
        for index, sample in enumerate(batch_data_samples):
            masks = sample.gt_instances.get('masks', None)
            if not isinstance(masks, (PolygonMasks, BitmapMasks)):
                raise ValueError(f'image {sample.metainfo.get("img_path", "?")}: CellMaskHead trains on instance '
                                 'masks; load them with LoadAnnotations(with_mask=True), got '
                                 f'{type(masks).__name__ if masks is not None else "no masks"}')
            if len(masks):
                union = masks.to_ndarray().any(axis=0)[:out_hw[0], :out_hw[1]]
                targets[index, :union.shape[0], :union.shape[1]] = union
        return torch.from_numpy(targets)

    def loss(self, encoded: Tensor, feat_hw: Tuple[int, int], batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_mask`` of the encoder output (B, h * w, C) of an ``h x w`` feature map."""
        batch_h, batch_w = batch_data_samples[0].metainfo['batch_input_shape']
        if tuple(feat_hw) != (math.ceil(batch_h / self.stride), math.ceil(batch_w / self.stride)):
            raise ValueError(f'CellMaskHead stride {self.stride} does not fit the feature map: {feat_hw[0]} x '
                             f'{feat_hw[1]} features of a {batch_h} x {batch_w} input')
        logits = self(encoded, feat_hw)
        targets = self.targets(batch_data_samples, logits.shape[1:]).to(logits.device)
        return dict(loss_mask=self.loss_weight * F.binary_cross_entropy_with_logits(logits, targets))
