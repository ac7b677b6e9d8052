"""The official Pix2Seq 2-D sine-cosine position code of a feature map (google-research/pix2seq
``architectures/transformers.py``: ``get_2d_position_codes``, ``get_1d_position_codes``, ``positional_encoding``)."""
import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

OFFICIAL_NORMALIZATION_MAX = 6.2831852


def sincos_code(coords: Tensor, dims: int) -> Tensor:
    """(n,) float32 coordinates -> (n, dims) official 1-D code: with ``angle_i = c / 10000^(2 (i // 2) / dims)``,
    ``[sin(angle_0), sin(angle_2), ..., cos(angle_1), cos(angle_3), ...]`` (a sine block then a cosine block, not
    interleaved), computed in float32 as the official code does."""
    index = torch.arange(dims, device=coords.device)
    rates = 1.0 / torch.pow(torch.tensor(10000.0, device=coords.device), (2 * (index // 2)).float() / dims)
    angles = coords[:, None].float() * rates[None]
    return torch.cat([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=-1)


def normalized_coords(length: int, normalization_max: float, device: torch.device) -> Tensor:
    """``0 .. length - 1`` scaled to ``[0, normalization_max]`` (float32; a single position is 0, where the official
    code would divide by zero)."""
    coords = torch.arange(length, dtype=torch.float32, device=device)
    if length > 1:
        coords = coords / float(length - 1) * normalization_max
    return coords


def official_position_codes(height: int, width: int, embed_dims: int,
                            normalization_max: float = OFFICIAL_NORMALIZATION_MAX,
                            device: torch.device = None) -> Tensor:
    """(embed_dims, height, width) float32 official code of a ``height x width`` grid: the first ``embed_dims / 2``
    channels encode the row, the last ``embed_dims / 2`` the column; a grid of one row or one column gets the 1-D
    code of its ``height * width`` positions instead, as the official ``add_vis_pos_emb``."""
    if height == 1 or width == 1:
        code = sincos_code(normalized_coords(height * width, normalization_max, device), embed_dims)
        return code.t().reshape(embed_dims, height, width)
    half = embed_dims // 2
    rows = sincos_code(normalized_coords(height, normalization_max, device), half)  # (h, D/2)
    cols = sincos_code(normalized_coords(width, normalization_max, device), half)  # (w, D/2)
    return torch.cat([rows.t()[:, :, None].expand(half, height, width),
                      cols.t()[:, None, :].expand(half, height, width)], dim=0)


@MODELS.register_module()
class Pix2SeqSinCosPositionalEncoding(BaseModule):
    """Fixed 2-D sine-cosine positions of a feature map, the official Pix2Seq layout (``pos_encoding='sin_cos'``).

    Row ``r`` and column ``c`` of an ``h x w`` map are the coordinates ``r / (h - 1) * 2 pi`` and ``c / (w - 1) * 2 pi``
    (the whole padded frame: the mask only gives the shape, as the official code attends to the padding too); the
    first half of the channels is the code of the row, the second half the code of the column, each a block of sines
    followed by a block of cosines of ``coordinate / 10000^(2 k / (D / 2))``.  A map of one row or column gets the 1-D
    code of its positions.  mmdet's ``SinePositionalEncoding`` (``normalize=True``) has the same frequencies and also
    puts the row first, but takes the coordinates ``(1 .. n) / n * 2 pi`` of the unpadded extent and interleaves sine
    and cosine.

    Drop-in for ``model.positional_encoding`` (and ``model.memory_positional_encoding``).

    Args:
        embed_dims (int): Output channels ``D`` (even).
        normalization_max (float): The largest coordinate (official: 6.2831852).
        init_cfg (dict, optional): Unused (no parameters).
    """

    def __init__(self, embed_dims: int, normalization_max: float = OFFICIAL_NORMALIZATION_MAX,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        if embed_dims < 2 or embed_dims % 2:
            raise ValueError(f'Pix2SeqSinCosPositionalEncoding: embed_dims must be even, got {embed_dims}')
        self.embed_dims = embed_dims
        self.normalization_max = normalization_max

    def forward(self, mask: Tensor, input: Tensor = None) -> Tensor:  # noqa: A002 (mmdet's signature)
        """(B, h, w) mask (only its shape is used) -> (B, D, h, w) float32 positions."""
        batch_size, height, width = mask.shape
        code = official_position_codes(height, width, self.embed_dims, self.normalization_max, mask.device)
        return code[None].expand(batch_size, -1, -1, -1)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(embed_dims={self.embed_dims}, normalization_max={self.normalization_max})'


@MODELS.register_module()
class SumPositionalEncoding(BaseModule):
    """The sum of several 2-D positional encodings of the same width, e.g. fixed sine positions plus a learned
    correction (``SinePositionalEncoding`` + ``LearnedPositionalEncoding``), a convergence option of the synthetic
    recipes.  Drop-in for ``model.positional_encoding``.

    Args:
        encodings (list[dict]): Configs of the registered encodings to add; each maps a (B, h, w) mask to
            (B, D, h, w) with the same ``D``.  A learned one may set its own ``init_cfg`` (e.g. ``dict(type='Normal',
            layer='Embedding', std=0.02)`` so that training starts close to the fixed code).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, encodings: list, init_cfg=None) -> None:
        super().__init__(init_cfg)
        if len(encodings) < 2:
            raise ValueError(f'SumPositionalEncoding: give at least two encodings, got {len(encodings)}')
        self.encodings = torch.nn.ModuleList(MODELS.build(encoding) for encoding in encodings)

    def forward(self, mask: Tensor, input: Tensor = None) -> Tensor:  # noqa: A002 (mmdet's signature)
        """(B, h, w) mask -> (B, D, h, w) sum of the encodings."""
        height, width = mask.shape[-2:]
        for encoding in self.encodings:
            # mmdet's LearnedPositionalEncoding has a table of row_num_embed x col_num_embed positions and fails
            # with an IndexError on a larger feature map
            rows, cols = getattr(encoding, 'row_num_embed', None), getattr(encoding, 'col_num_embed', None)
            if rows is not None and not torch.jit.is_tracing() and (height > rows or width > cols):
                raise ValueError(
                    f'SumPositionalEncoding: the feature map is {height} x {width} but {type(encoding).__name__} '
                    f'has row_num_embed={rows}, col_num_embed={cols}; raise them to at least the feature map '
                    '(frame size / backbone stride)')
        codes = [encoding(mask) for encoding in self.encodings]
        shapes = {tuple(code.shape) for code in codes}
        if len(shapes) > 1 and not torch.jit.is_tracing():  # traced (ONNX export) shapes are tensors
            raise ValueError(f'SumPositionalEncoding: the encodings give different shapes {sorted(shapes)}; '
                             'give them the same width')
        return torch.stack(codes).sum(0)
