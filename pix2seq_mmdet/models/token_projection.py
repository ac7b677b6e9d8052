"""The official stem between backbone and encoder: feature dropout, then a per-position Linear + LayerNorm."""
from typing import Sequence, Tuple

from mmdet.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class TokenProjection(nn.Module):
    """A neck that projects every position of the last feature map on its own, as the official ResNet encoder does
    (``architectures/transformers.py``, ``ResNetTransformer.call``: ``stem_ln(stem_projection(dropout(tokens)))``).

    (B, C_in, h, w) -> dropout -> per-position Linear(C_in, C) -> LayerNorm(C) -> (B, C, h, w); the alternative is
    mmdet's ``ChannelMapper`` (a 1x1 convolution with GroupNorm, DETR's stem).

    Args:
        in_channels (Sequence[int]): Channels of the backbone outputs; the last is projected.
        out_channels (int): Encoder width ``C``.
        dropout (float): Dropout of the features before the projection (official: ``drop_units``, 0.1).
        norm_eps (float): LayerNorm epsilon (official: 1e-6).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, dropout: float = 0.1,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_channels[-1], out_channels)
        self.norm = nn.LayerNorm(out_channels, eps=norm_eps)

    def forward(self, features: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        """Backbone outputs, the last (B, C_in, h, w) -> a one-level tuple (B, C, h, w)."""
        tokens = features[-1].permute(0, 2, 3, 1)  # (B, h, w, C_in)
        return (self.norm(self.proj(self.dropout(tokens))).permute(0, 3, 1, 2), )
