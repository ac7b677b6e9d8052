"""The official Pix2Seq Vision Transformer encoder as an mmdet backbone."""
from typing import Tuple

from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from .positional_encoding import official_position_codes
from .transformer import Pix2SeqEncoder


@MODELS.register_module()
class Pix2SeqViT(BaseModule):
    """The Vision Transformer of the official Pix2Seq ViT models (google-research/pix2seq
    ``architectures/transformers.py``: ``VisionTransformer``, chosen by ``resnet_variant='c1'``; ViT-B and ViT-L in
    ``configs/config_base.py``).

    Data flow (B images of H x W, patch P, h = H // P, w = W // P, S = h * w, width D)::

        (B, 3, H, W) -> patch_embed (Conv P x P, stride P, no padding) -> (B, D, h, w) -> flatten (B, S, D)
        -> stem_norm (LayerNorm) -> + positions (S, D) -> encoder (pre-norm layers, final LayerNorm) -> (B, S, D)
        -> (B, D, h, w), returned as a one-level tuple (mmdet's backbone convention)

    The positions are added after the LayerNorm, as the official code does: the official 2-D sine-cosine code of the
    ``h x w`` grid (``pos_encoding='sin_cos'``, every released ViT checkpoint), computed for the grid of each input,
    so the encoder runs at any frame.  A side that is not a multiple of the patch loses its last ``side % P`` pixels,
    as the official stem (a ``'VALID'`` convolution) does: the official 1333-px models see 83 x 83 patches of their
    frame.  Two official options that no released checkpoint uses are not implemented (the converter names them):
    learned positions (a table tied to one frame) and ``use_cls_token`` (a class token has no place in a feature
    map).

    In a :class:`~.pix2seq.Pix2Seq` detector this backbone is the whole image encoder: use it with ``neck=None``,
    ``encoder=None`` and ``positional_encoding=None``, and give ``memory_positional_encoding`` (the official model
    adds a code of the decoder width before its memory MLP).  Its output is one feature level of stride
    ``patch_size`` and ``embed_dims`` channels, in mmdet's backbone convention.

    Args:
        patch_size (int): Patch side ``P`` (official: 16).
        embed_dims (int): Width ``D`` (ViT-B 768, ViT-L 1024).
        num_layers (int): Encoder layers (ViT-B 12, ViT-L 24).
        num_heads (int): Attention heads (ViT-B 12, ViT-L 16).
        ffn_dims (int): Feed-forward hidden width (official: ``dim_mlp``, 4 x ``embed_dims``).
        in_channels (int): Input channels.
        dropout (float): Dropout of the FFN hidden units (official ``drop_units``: 0.1).
        drop_path (float): Stochastic depth rate (official: 0.1).
        attn_dropout (float): Dropout of the attention weights (official: 0).
        norm_eps (float): Epsilon of every LayerNorm (official: 1e-6).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, patch_size: int = 16, embed_dims: int = 768, num_layers: int = 12, num_heads: int = 12,
                 ffn_dims: int = 3072, in_channels: int = 3, dropout: float = 0.1, drop_path: float = 0.1,
                 attn_dropout: float = 0.0, norm_eps: float = 1e-6, init_cfg=None) -> None:
        super().__init__(init_cfg)
        if embed_dims % 2:
            raise ValueError(f'Pix2SeqViT: embed_dims must be even (sine-cosine positions), got {embed_dims}')
        self.patch_size = patch_size
        self.embed_dims = embed_dims
        self.patch_embed = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.stem_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.encoder = Pix2SeqEncoder(num_layers, embed_dims, num_heads, ffn_dims, dropout, drop_path,
                                      attn_dropout, norm_eps)

    def positions(self, rows: int, cols: int) -> Tensor:
        """(rows * cols, D) positions of a ``rows x cols`` patch grid (row-major)."""
        code = official_position_codes(rows, cols, self.embed_dims, device=self.patch_embed.weight.device)
        return code.flatten(1).t()

    def forward(self, images: Tensor) -> Tuple[Tensor]:
        """(B, C_in, H, W) images -> a one-level tuple (B, D, H // P, W // P)."""
        patches = self.patch_embed(images)  # (B, D, h, w)
        batch_size, _, rows, cols = patches.shape
        tokens = self.stem_norm(patches.flatten(2).transpose(1, 2))  # (B, S, D)
        tokens = self.encoder(tokens + self.positions(rows, cols).to(tokens.dtype)[None])
        return (tokens.transpose(1, 2).reshape(batch_size, self.embed_dims, rows, cols), )
