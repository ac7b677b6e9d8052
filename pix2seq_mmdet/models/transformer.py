"""Pre-norm Transformer layers shared by the Pix2Seq encoder and the sequence decoder.

Attention exposes its projections separately, so the decoder can project the encoder memory once and cache
self-attention keys/values while decoding, and computes the attention itself through a pluggable *kernel*
(``Attention.kernel``, default :func:`dot_product_attention`): the ONNX export swaps the kernel for ONNX Runtime's
fused operators and traces the same layers, so there is one implementation of a decoder step.

Shapes: ``B`` batch, ``T`` query length, ``S`` key length, ``D`` embedding width, ``H`` heads, ``Dh = D / H``.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import build_dropout
from torch import Tensor, nn

KeyValue = Tuple[Tensor, Tensor]
# kernel(query (B, H, T, Dh), key (B, H, S, Dh), value (B, H, S, Dh), attn_mask, is_causal, dropout_p)
#     -> (B, H, T, Dh), or (B, T, D) with the heads already merged (the layout of ONNX Runtime's fused operators)
AttentionKernel = Callable[[Tensor, Tensor, Tensor, Optional[Tensor], bool, float], Tensor]
CacheExtender = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor, Optional[Tensor]]]


def stochastic_depth(drop_path: float) -> nn.Module:
    """Stochastic depth (mmcv's ``DropPath``) of a residual branch, the official code's only regularisation of
    residual branches (no plain dropout there)."""
    return build_dropout(dict(type='DropPath', drop_prob=drop_path)) if drop_path > 0 else nn.Identity()


class FeedForwardBlock(nn.Module):
    """Pre-norm residual feed-forward block: (..., D) -> x + drop_path(Linear(dropout(GELU(Linear(norm(x)))))).

    Args:
        embed_dims (int): Width ``D``.
        ffn_dims (int): Hidden width.
        dropout (float): Dropout of the hidden units (the official ``drop_units``).
        drop_path (float): Stochastic depth of the residual branch.
        norm_eps (float): LayerNorm epsilon (official: 1e-6).
    """

    def __init__(self, embed_dims: int, ffn_dims: int, dropout: float, drop_path: float,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.layers = nn.Sequential(
            nn.Linear(embed_dims, ffn_dims), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dims, embed_dims))
        self.drop_path = stochastic_depth(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.layers(self.norm(x)))


def single_query_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
    """Attention of one query per row, as plain matrix products: (B, H, 1, Dh) query, (B, H, S, Dh) keys and values,
    optional bool mask broadcastable to (B, H, 1, S) (True: attend) -> (B, H, 1, Dh).

    Incremental decoding's case: SDPA's fused CPU kernel costs more than this for a single query.
    """
    scores = torch.matmul(query * query.shape[-1]**-0.5, key.transpose(-2, -1))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf'))
    return torch.matmul(scores.softmax(-1), value)


def dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                          is_causal: bool = False, dropout_p: float = 0.0) -> Tensor:
    """The default attention kernel: (B, H, T, Dh) queries, (B, H, S, Dh) keys and values, optional bool mask
    broadcastable to (B, H, T, S) (True: attend) -> (B, H, T, Dh).

    One query without dropout (incremental decoding) takes :func:`single_query_attention`, anything else
    ``torch.nn.functional.scaled_dot_product_attention`` (``is_causal``: causal mask, T == S; ``dropout_p``: dropout
    of the attention weights).
    """
    if query.shape[2] == 1 and dropout_p == 0.0:
        return single_query_attention(query, key, value, attn_mask)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal)


class Attention(nn.Module):
    """Multi-head attention whose query, key and value projections are one ``(3 D, D)`` linear layer.

    Self-attention projects its input through all of it at once (one matrix product per step when decoding);
    cross-attention projects the query with the first ``D`` rows and the memory with the last ``2 D``, once per image.
    The attention of the projected heads is ``kernel`` (an :data:`AttentionKernel`, default
    :func:`dot_product_attention`), an attribute that a caller may replace (the ONNX export does).

    Args:
        embed_dims (int): Width ``D`` of queries, keys and values.
        num_heads (int): Number of heads ``H``; must divide ``embed_dims``.
        dropout (float): Dropout on the attention weights (training only).
    """

    def __init__(self, embed_dims: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.dropout = dropout
        self.kernel: AttentionKernel = dot_product_attention
        self.in_proj = nn.Linear(embed_dims, 3 * embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)

    def _split_heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh); for one position a reshape (a decoder step: no transpose in its graph)."""
        if x.shape[1] == 1:
            return x.reshape(-1, self.num_heads, 1, self.embed_dims // self.num_heads)
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    @staticmethod
    def _merge_heads(x: Tensor) -> Tensor:
        """(B, H, T, Dh) -> (B, T, D)."""
        return x.transpose(1, 2).flatten(2)

    def _project(self, x: Tensor, rows: slice) -> Tuple[Tensor, ...]:
        """(B, T, D) through ``rows`` of the input projection -> one (B, H, T, Dh) tensor per ``D`` rows."""
        projected = F.linear(x, self.in_proj.weight[rows], self.in_proj.bias[rows])
        parts = projected.split(self.embed_dims, dim=-1) if projected.shape[-1] > self.embed_dims else (projected, )
        return tuple(self._split_heads(part) for part in parts)

    def project_query(self, x: Tensor) -> Tensor:
        """(B, T, D) -> queries (B, H, T, Dh)."""
        return self._project(x, slice(0, self.embed_dims))[0]

    def project_key_value(self, x: Tensor) -> KeyValue:
        """(B, S, D) -> keys and values, each (B, H, S, Dh)."""
        return self._project(x, slice(self.embed_dims, None))

    def project_query_key_value(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(B, T, D) -> queries, keys and values, each (B, H, T, Dh), by one matrix product (self-attention)."""
        return self._project(x, slice(None))

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                is_causal: bool = False) -> Tensor:
        """Attend.

        Args:
            query (Tensor): (B, H, T, Dh) projected queries.
            key, value (Tensor): (B, H, S, Dh) projected keys and values.
            attn_mask (Tensor, optional): bool, broadcastable to (B, H, T, S); True where attention is allowed.
            is_causal (bool): Causal mask for self-attention over the full sequence (T == S).

        Returns:
            Tensor: (B, T, D).
        """
        out = self.kernel(query, key, value, attn_mask, is_causal, self.dropout if self.training else 0.0)
        return self.out_proj(self._merge_heads(out) if out.dim() == 4 else out)


class TransformerLayer(nn.Module):
    """Pre-norm layer: self-attention, optional cross-attention to a memory, feed-forward network.

    Regularisation as the official code: dropout of the FFN hidden units (``drop_units``), dropout of the attention
    weights (``drop_att``, 0 in the official detection configs) and stochastic depth (mmcv's ``DropPath``) of each
    residual branch.

    Args:
        embed_dims (int): Width ``D``.
        num_heads (int): Attention heads.
        ffn_dims (int): Hidden width of the feed-forward network.
        dropout (float): Dropout of the FFN hidden units.
        drop_path (float): Stochastic depth rate of each residual branch.
        attn_dropout (float): Dropout of the attention weights.
        cross_attention (bool): Whether the layer attends to a memory (decoder) or not (encoder).
        norm_eps (float): Epsilon of the layer's LayerNorms (official: 1e-6).
    """

    def __init__(self, embed_dims: int, num_heads: int, ffn_dims: int, dropout: float = 0.1,
                 drop_path: float = 0.1, attn_dropout: float = 0.0, cross_attention: bool = False,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.self_attn = Attention(embed_dims, num_heads, attn_dropout)
        if cross_attention:
            self.cross_attn_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
            self.cross_attn = Attention(embed_dims, num_heads, attn_dropout)
        self.ffn = FeedForwardBlock(embed_dims, ffn_dims, dropout, drop_path, norm_eps)
        self.drop_path = stochastic_depth(drop_path)

    def _residual(self, x: Tensor, branch: Tensor) -> Tensor:
        return x + self.drop_path(branch)

    def forward(self, x: Tensor, self_attn_mask: Optional[Tensor] = None, is_causal: bool = False,
                memory_key_value: Optional[KeyValue] = None, memory_attn_mask: Optional[Tensor] = None,
                extend_cache: Optional[CacheExtender] = None) -> Tensor:
        """Run the layer.

        Args:
            x (Tensor): (B, T, D) inputs.
            self_attn_mask (Tensor, optional): bool (B, 1, 1, T) key-padding mask for self-attention.
            is_causal (bool): Causal self-attention (teacher-forced decoder).
            memory_key_value (tuple, optional): Projected memory keys/values, each (B, H, S, Dh).
            memory_attn_mask (Tensor, optional): bool (B, 1, 1, S), True for valid memory positions.
            extend_cache (callable, optional): Incremental decoding: ``extend_cache(key, value)`` stores this step's
                (B, H, T, Dh) self-attention keys/values and returns the keys, values and mask (True: attend) that
                the queries attend to (``DecodingCache.extend`` of this layer); replaces ``self_attn_mask`` and
                ``is_causal``.

        Returns:
            Tensor: (B, T, D).
        """
        query, key, value = self.self_attn.project_query_key_value(self.self_attn_norm(x))
        if extend_cache is not None:
            key, value, self_attn_mask = extend_cache(key, value)
            is_causal = False
        x = self._residual(x, self.self_attn(query, key, value, self_attn_mask, is_causal))
        if memory_key_value is not None:
            query = self.cross_attn.project_query(self.cross_attn_norm(x))
            x = self._residual(x, self.cross_attn(query, *memory_key_value, memory_attn_mask))
        return self.ffn(x)


class Pix2SeqEncoder(nn.Module):
    """A stack of pre-norm self-attention layers over the flattened image features, with a final LayerNorm.

    Args:
        num_layers (int): Number of layers (paper: 6).
        embed_dims (int): Width ``D`` (paper: 256).
        num_heads (int): Attention heads (paper: 8).
        ffn_dims (int): Feed-forward hidden width (paper: 1024).
        dropout (float): Dropout of the FFN hidden units (official: 0.1).
        drop_path (float): Stochastic depth rate (official: 0.1).
        attn_dropout (float): Dropout of the attention weights (official: 0).
        norm_eps (float): Epsilon of every LayerNorm, the final one included (official: 1e-6).
    """

    def __init__(self, num_layers: int = 6, embed_dims: int = 256, num_heads: int = 8, ffn_dims: int = 1024,
                 dropout: float = 0.1, drop_path: float = 0.1, attn_dropout: float = 0.0,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.layers = nn.ModuleList(
            TransformerLayer(embed_dims, num_heads, ffn_dims, dropout, drop_path, attn_dropout, norm_eps=norm_eps)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """(B, S, D) features (positions already added), optional (B, S) bool padding mask -> (B, S, D)."""
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, self_attn_mask=attn_mask)
        return self.norm(x)


class MemoryProjection(nn.Module):
    """Maps the encoder output to the decoder's width, as the official code's ``dec_proj_mode``.

    ``linear``: Linear + LayerNorm.  ``linear_p``: then add the 2-D positions of the feature map, so that the
    decoder's cross-attention keys carry where each feature sits.  ``mlp`` (the official detection default): then a
    pre-norm residual feed-forward block mixes content and position.

    Args:
        in_dims (int): Encoder width ``C``.
        embed_dims (int): Decoder width ``D``.
        mode (str): ``'linear'``, ``'linear_p'`` or ``'mlp'``.
        ffn_dims (int): Hidden width of the ``mlp`` block.
        dropout (float): Dropout of the ``mlp`` block.
        drop_path (float): Stochastic depth of the ``mlp`` block.
        norm_eps (float): Epsilon of the LayerNorms (official: 1e-6).
    """

    MODES = ('linear', 'linear_p', 'mlp')

    def __init__(self, in_dims: int, embed_dims: int, mode: str = 'mlp', ffn_dims: int = 1024, dropout: float = 0.0,
                 drop_path: float = 0.0, norm_eps: float = 1e-5) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f'memory projection mode must be one of {self.MODES}, got {mode!r}')
        self.mode = mode
        self.proj = nn.Sequential(nn.Linear(in_dims, embed_dims), nn.LayerNorm(embed_dims, eps=norm_eps))
        if mode == 'mlp':
            self.mlp = FeedForwardBlock(embed_dims, ffn_dims, dropout, drop_path, norm_eps)

    @property
    def uses_positions(self) -> bool:
        return self.mode != 'linear'

    def forward(self, memory: Tensor, positions: Tensor) -> Tensor:
        """(B, S, C) memory and (B, S, D) positions -> (B, S, D)."""
        memory = self.proj(memory)
        if self.uses_positions:
            memory = memory + positions
        if self.mode == 'mlp':
            memory = self.mlp(memory)
        return memory
