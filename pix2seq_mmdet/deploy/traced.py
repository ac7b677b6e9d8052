"""The modules that the ONNX export traces: the encoder, and the decoder step as ``Pix2SeqHead.forward_step`` runs
it, with a cache whose buffers are graph inputs and outputs.

The decoder step is not re-implemented here: :class:`DecoderStepModule` calls the head's own ``forward_step``, and
only the cache and (for ONNX Runtime's fused operators) the attention kernels of the layers differ from PyTorch's
decoding:

* ``attention='onnx'``: a :class:`FunctionalCache`, whose ``extend`` writes the step's keys/values with ``scatter``
  (``ScatterElements``) and returns the whole buffer, attended under the causal mask; standard operators only.
* ``attention='gqa'``: a :class:`GroupQueryAttentionCache`, whose self-attention kernel writes and attends in one
  ``com.microsoft.GroupQueryAttention`` (:class:`CachedSelfAttention`), and cross-attention through
  ``com.microsoft.MultiHeadAttention`` (:class:`MemoryAttention`); the kernels are swapped into the layers' attention
  modules (``Attention.kernel``) for the trace only.
"""
import warnings
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from ..models.decoding import DecodingCache
from ..models.transformer import AttentionKernel, single_query_attention

ATTENTION_KINDS = ('gqa', 'onnx')


def merge_heads(g, split):
    """In a symbolic function: (B, H, T, Dh) -> (B, T, H * Dh), the layout of ONNX Runtime's attention operators;
    the input of the reshape that split the heads (``Attention._split_heads``) when there is one."""
    node = split.node()
    if node.kind() == 'onnx::Reshape':
        return node.inputsAt(0)
    tokens_first = g.op('Transpose', split, perm_i=[0, 2, 1, 3])
    return g.op('Reshape', tokens_first, g.op('Constant', value_t=torch.tensor([0, 0, -1])))


def with_any_length(tensor_type):
    """A traced (B, T, D) tensor type with T left open: a graph whose token axis is dynamic (the block step) must
    not carry the traced length into ONNX Runtime's shape inference."""
    sizes = tensor_type.varyingSizes()
    return tensor_type.with_sizes([sizes[0], None, sizes[2]]) if sizes and len(sizes) == 3 else tensor_type


def merged(out: Tensor) -> Tensor:
    """(B, H, T, Dh) -> (B, T, H * Dh)."""
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


class CachedSelfAttention(torch.autograd.Function):
    """The self-attention of T tokens with the static cache: write their keys/values at ``position .. position + T
    - 1`` and let token ``t`` attend over positions ``0 .. position + t``.  Computed in PyTorch as the package's
    static-shape step does (scatter, causal mask over the whole buffer); exported as ONNX Runtime's
    ``com.microsoft.GroupQueryAttention`` (as many key/value heads as query heads, i.e. plain multi-head attention),
    which writes into a cache bound as both its past and present input/output in place and reads only the filled
    positions.

    Args (of ``apply``): ``query``, ``key``, ``value`` (B, H, T, Dh) projected heads, ``past_key``, ``past_value``
    (B, H, L, Dh), ``position`` (1,) int64, ``num_heads`` ``H``.  Returns the (B, T, D) attention output, heads
    merged, and the new keys and values (B, H, L, Dh).
    """

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, past_key: Tensor, past_value: Tensor,
                position: Tensor, num_heads: int) -> Tuple[Tensor, Tensor, Tensor]:
        positions = position + torch.arange(key.shape[2], device=position.device)
        index = positions.view(1, 1, -1, 1).expand_as(key)
        new_key, new_value = past_key.scatter(2, index, key), past_value.scatter(2, index, value)
        attend = torch.arange(past_key.shape[2], device=position.device) <= positions[:, None]
        return merged(single_query_attention(query, new_key, new_value, attend)), new_key, new_value

    @staticmethod
    def symbolic(g, query, key, value, past_key, past_value, position, num_heads):
        query, key, value = (merge_heads(g, x) for x in (query, key, value))  # (B, T, D)
        num_tokens = g.op('Cast', g.op('Shape', query, start_i=1, end_i=2), to_i=6)  # (1,) int32: T
        total_length = g.op('Add', g.op('Cast', position, to_i=6), num_tokens)  # (1,) int32
        one = g.op('Constant', value_t=torch.tensor([1], dtype=torch.int32))
        zeros = g.op('ConstantOfShape', g.op('Shape', query, start_i=0, end_i=1),
                     value_t=torch.tensor([0], dtype=torch.int32))  # (B,)
        seqlens_k = g.op('Add', zeros, g.op('Sub', total_length, one))  # (B,): total length - 1
        total_length = g.op('Squeeze', total_length)  # scalar
        out, new_key, new_value = g.op('com.microsoft::GroupQueryAttention', query, key, value, past_key, past_value,
                                       seqlens_k, total_length, num_heads_i=num_heads, kv_num_heads_i=num_heads,
                                       outputs=3)
        out.setType(with_any_length(query.type()))  # the exporter's shape inference does not know the operator
        new_key.setType(past_key.type())
        new_value.setType(past_value.type())
        return out, new_key, new_value


class MemoryAttention(torch.autograd.Function):
    """The cross-attention of T queries to the projected memory: ``query`` (B, H, T, Dh), ``key`` / ``value``
    (B, H, S, Dh), ``num_heads`` -> (B, T, D), heads merged.  Computed as ``single_query_attention``; exported as ONNX
    Runtime's ``com.microsoft.MultiHeadAttention`` (one fused operator instead of seven)."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, num_heads: int) -> Tensor:
        return merged(single_query_attention(query, key, value))

    @staticmethod
    def symbolic(g, query, key, value, num_heads):
        merged = merge_heads(g, query)
        out = g.op('com.microsoft::MultiHeadAttention', merged, key, value, num_heads_i=num_heads)
        out.setType(with_any_length(merged.type()))
        return out


def memory_attention_kernel(num_heads: int) -> AttentionKernel:
    """The cross-attention kernel of the ``gqa`` export (the memory is never masked there)."""
    def kernel(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None, is_causal: bool = False,
               dropout_p: float = 0.0) -> Tensor:
        return MemoryAttention.apply(query, key, value, num_heads)

    return kernel


class FunctionalCache(DecodingCache):
    """A :class:`DecodingCache` over given tensors whose ``extend`` returns new tensors instead of writing in place
    (``scatter`` along the position axis, exported as ``ScatterElements``), for tracing; the updated per-layer
    keys/values are collected in ``updated``."""

    def __init__(self, memory_key_value: List[Tuple[Tensor, Tensor]],
                 self_key_value: List[Tuple[Tensor, Tensor]]) -> None:
        super().__init__(memory_key_value, None, self_key_value)
        self.updated: List[Optional[Tuple[Tensor, Tensor]]] = [None] * len(self_key_value)

    def extend(self, layer_index: int, key: Tensor, value: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        key_buffer, value_buffer = self.self_key_value[layer_index]
        index = self.positions.view(1, 1, -1, 1).expand_as(key)
        self.updated[layer_index] = (key_buffer.scatter(2, index, key), value_buffer.scatter(2, index, value))
        return (*self.updated[layer_index], self.attn_mask)  # static shapes: the window is the whole buffer

    def kernels(self, layers: Sequence[nn.Module]) -> List[Tuple[AttentionKernel, AttentionKernel]]:
        """Per decoder layer, the self- and cross-attention kernels to trace with: the layer's own."""
        return [(layer.self_attn.kernel, layer.cross_attn.kernel) for layer in layers]


class GroupQueryAttentionCache(FunctionalCache):
    """The cache of the ``gqa`` export: ``extend`` passes the step's keys/values through, and each layer's
    self-attention kernel writes them into the buffers and attends in one :class:`CachedSelfAttention`."""

    def extend(self, layer_index: int, key: Tensor, value: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        return key, value, None

    def self_attention_kernel(self, layer_index: int, num_heads: int) -> AttentionKernel:
        def kernel(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                   is_causal: bool = False, dropout_p: float = 0.0) -> Tensor:
            out, *self.updated[layer_index] = CachedSelfAttention.apply(query, key, value,
                                                                        *self.self_key_value[layer_index],
                                                                        self.positions[:1], num_heads)
            return out

        return kernel

    def kernels(self, layers: Sequence[nn.Module]) -> List[Tuple[AttentionKernel, AttentionKernel]]:
        return [(self.self_attention_kernel(index, layer.self_attn.num_heads),
                 memory_attention_kernel(layer.cross_attn.num_heads)) for index, layer in enumerate(layers)]


@contextmanager
def swapped_kernels(layers: Sequence[nn.Module],
                    kernels: Sequence[Tuple[AttentionKernel, AttentionKernel]]) -> Iterator[None]:
    """Set each decoder layer's self- and cross-attention kernels and restore them afterwards."""
    saved = [(layer.self_attn.kernel, layer.cross_attn.kernel) for layer in layers]
    try:
        for layer, (self_kernel, cross_kernel) in zip(layers, kernels):
            layer.self_attn.kernel, layer.cross_attn.kernel = self_kernel, cross_kernel
        yield
    finally:
        for layer, (self_kernel, cross_kernel) in zip(layers, saved):
            layer.self_attn.kernel, layer.cross_attn.kernel = self_kernel, cross_kernel


class DecoderStepModule(nn.Module):
    """``(tokens (B, T), position (1,), [query_mask (T,),] memory keys/values, cache keys/values) -> (logits, new
    cache)`` (the argument order of :func:`decoder_step_names`): ``head.forward_step`` with a
    :class:`FunctionalCache` (``attention='onnx'``) or a :class:`GroupQueryAttentionCache` (``'gqa'``) over the
    graph's inputs.

    The token step (``block=False``) reads one token (T = 1) and returns the (B, V) logits of the next.  The block
    step (``block=True``, parallel decoding of a head trained with ``block_decoding``) is a step of
    ``decoding.decode_in_blocks``: T tokens, those where ``query_mask`` is True reading the learned block query, ->
    the (B, T, V) logits at every position.
    """

    def __init__(self, head: nn.Module, attention: str = 'gqa', block: bool = False) -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f'attention must be one of {ATTENTION_KINDS}, got {attention!r}')
        self.head = head
        self.attention = attention
        self.block = block
        self.num_layers = len(head.layers)

    def forward(self, tokens: Tensor, position: Tensor, *inputs: Tensor) -> Tuple[Tensor, ...]:
        query_mask, key_values = (inputs[0], inputs[1:]) if self.block else (None, inputs)
        pairs = list(zip(key_values[0::2], key_values[1::2]))  # per layer (key, value): memory first, then cache
        cache_type = GroupQueryAttentionCache if self.attention == 'gqa' else FunctionalCache
        cache = cache_type(pairs[:self.num_layers], pairs[self.num_layers:])
        with swapped_kernels(self.head.layers, cache.kernels(self.head.layers)):
            logits = self.head.forward_step(tokens, position, cache, query_mask)
        return (logits if self.block else logits[:, -1], *[tensor for pair in cache.updated for tensor in pair])


class EncoderModule(nn.Module):
    """``image (B, 3, H, W) -> (memory (B, S, D), memory_key_0, memory_value_0, ...)``: ``Pix2Seq.encode_levels``
    on the frame, then every decoder layer's cross-attention key/value projection (``Pix2SeqHead.project_memory``);
    with the head's box memory then also ``fine_key_0, fine_value_0, ...`` (B, H, h * w, Dh), the same projection
    of the fine level's tokens, which the runtime samples inside each instance prompt's box
    (:mod:`.box_memory`)."""

    def __init__(self, model: nn.Module, pad_size: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.pad_size = tuple(pad_size)

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        sample = DetDataSample(metainfo=dict(batch_input_shape=self.pad_size, img_shape=self.pad_size,
                                             pad_shape=self.pad_size))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)  # bool(mask.any()): no padding mask, as traced
            memory, _, _, _, fine_map = self.model.encode_levels(image, [sample])
        memory_key_value, _ = self.model.head.project_memory(memory, None)
        if fine_map is not None:
            fine_key_value, _ = self.model.head.project_memory(fine_map.flatten(2).transpose(1, 2), None)
            memory_key_value = memory_key_value + fine_key_value
        return (memory, *[tensor for pair in memory_key_value for tensor in pair])


def encoder_names(num_layers: int, box_memory: bool = False) -> Tuple[List[str], List[str]]:
    pairs = [(i, kind) for i in range(num_layers) for kind in ('key', 'value')]
    return ['image'], (['memory'] + [f'memory_{kind}_{i}' for i, kind in pairs]
                       + ([f'fine_{kind}_{i}' for i, kind in pairs] if box_memory else []))


def decoder_step_names(num_layers: int, block: bool = False) -> Tuple[List[str], List[str]]:
    pairs = [(i, kind) for i in range(num_layers) for kind in ('key', 'value')]
    inputs = (['tokens', 'position'] + (['query_mask'] if block else []) + [f'memory_{kind}_{i}' for i, kind in pairs]
              + [f'cache_{kind}_{i}' for i, kind in pairs])
    outputs = ['logits'] + [f'new_cache_{kind}_{i}' for i, kind in pairs]
    return inputs, outputs
