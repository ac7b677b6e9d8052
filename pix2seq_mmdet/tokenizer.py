"""Pix2Seq vocabulary and box/class tokenizer (pure torch, no mmdet inside).

Every object becomes five tokens ``[ymin, xmin, ymax, xmax, class]``.  Coordinates are normalised to the padded
input image, quantised with ``round(v * (num_bins - 1))`` and clipped to ``[0, num_bins - 1]``.

Vocabulary layout (ids derived from the configuration, never hard-coded elsewhere)::

    0                          PAD       padding after the end of a sequence (weight 0 in the loss)
    1                          EOS       end of the object list
    2                          BOS       the detection task prompt, first input token
    3                          FAKE      the "noise" class of sequence augmentation
    4 .. 4 + C - 1             classes   real class ``c`` (0-based, mmdet label) is token ``4 + c``
    4 + C .. 4 + C + B - 1     coords    bin ``b`` is token ``4 + C + b``

Unlike the official code (which uses PAD as its end token) EOS and PAD are distinct: the model learns where the
object list stops (EOS, weight ``eos_weight``) while padding after it is ignored, so a sequence of ``n`` objects is
``5 n`` object tokens, one EOS and PAD up to the fixed length ``5 * max_objects + 1``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

OBJECT_ORDERS = ('random', 'area', 'dist2ori', 'none')
TOKENS_PER_OBJECT = 5
# the per-token training tensors the pipeline writes into each data sample, each of shape (seq_len,)
SEQUENCE_KEYS = ('input_tokens', 'target_tokens', 'token_weights')


class Pix2SeqTokenizer:
    """Maps normalised boxes and labels to token sequences and back.

    Args:
        num_classes (int): Number of real classes ``C``.
        num_bins (int): Number of coordinate quantisation bins ``B`` (>= 2).
        max_objects (int): Most objects in one sequence; more are truncated (after ordering).
    """
    PAD = 0
    EOS = 1
    BOS = 2
    FAKE = 3
    CLASS_OFFSET = 4

    def __init__(self, num_classes: int, num_bins: int, max_objects: int = 100) -> None:
        if int(num_classes) < 1:
            raise ValueError(f'Pix2SeqTokenizer: num_classes must be >= 1, got {num_classes}')
        if int(num_bins) < 2:
            raise ValueError(f'Pix2SeqTokenizer: num_bins must be >= 2, got {num_bins}')
        if int(max_objects) < 1:
            raise ValueError(f'Pix2SeqTokenizer: max_objects must be >= 1, got {max_objects}')
        self.num_classes = int(num_classes)
        self.num_bins = int(num_bins)
        self.max_objects = int(max_objects)

    # ----------------------------------------------------------------- vocabulary
    @property
    def coord_offset(self) -> int:
        """Token id of coordinate bin 0."""
        return self.CLASS_OFFSET + self.num_classes

    @property
    def vocab_size(self) -> int:
        """Number of token ids, the size of the model's embedding and output layer."""
        return self.coord_offset + self.num_bins

    @property
    def seq_len(self) -> int:
        """Fixed length of target and input sequences: every object slot plus one EOS."""
        return TOKENS_PER_OBJECT * self.max_objects + 1

    def is_coord(self, tokens: Tensor) -> Tensor:
        """Boolean mask of coordinate tokens, same shape as ``tokens`` (ids beyond the vocabulary are not)."""
        return (tokens >= self.coord_offset) & (tokens < self.vocab_size)

    # -------------------------------------------------------------- quantisation
    def quantize(self, coords: Tensor) -> Tensor:
        """Normalised coordinates in [0, 1] (any shape) -> coordinate token ids (int64)."""
        bins = torch.round(coords.clamp(0, 1) * (self.num_bins - 1)).long()
        return bins + self.coord_offset

    def dequantize(self, tokens: Tensor) -> Tensor:
        """Coordinate token ids (any shape) -> normalised coordinates in [0, 1] (float32).

        Tokens outside the coordinate range are clamped; callers drop them with :meth:`is_coord`.
        """
        bins = (tokens - self.coord_offset).clamp(0, self.num_bins - 1)
        return bins.float() / (self.num_bins - 1)

    # ------------------------------------------------------------------ ordering
    @staticmethod
    def order_objects(boxes_yxyx: Tensor, order: str = 'random',
                      generator: Optional[torch.Generator] = None) -> Tensor:
        """Permutation of objects for the sequence.

        Args:
            boxes_yxyx (Tensor): (N, 4) normalised ``ymin, xmin, ymax, xmax``.
            order (str): ``random`` (the paper's default), ``area`` (largest first), ``dist2ori`` (nearest
                top-left corner to the origin first, i.e. raster order) or ``none`` (keep as given).
            generator (torch.Generator, optional): Source of randomness for ``random``.

        Returns:
            Tensor: (N,) int64 indices.
        """
        num_objects = boxes_yxyx.shape[0]
        if order == 'random':
            return torch.randperm(num_objects, generator=generator)
        if order == 'area':
            area = (boxes_yxyx[:, 2] - boxes_yxyx[:, 0]) * (boxes_yxyx[:, 3] - boxes_yxyx[:, 1])
            return torch.argsort(area, descending=True, stable=True)
        if order == 'dist2ori':
            dist = boxes_yxyx[:, 0]**2 + boxes_yxyx[:, 1]**2
            return torch.argsort(dist, stable=True)
        if order == 'none':
            return torch.arange(num_objects)
        raise ValueError(f'unknown object order {order!r}; expected one of {OBJECT_ORDERS}')

    # ------------------------------------------------------------------ encoding
    def class_tokens(self, labels: Tensor) -> Tensor:
        """0-based labels (N,) -> class token ids (N,); label -1 stands for FAKE (noise)."""
        labels = labels.long()
        return torch.where(labels < 0, torch.full_like(labels, self.FAKE), labels + self.CLASS_OFFSET)

    def encode(self, boxes_yxyx: Tensor, labels: Tensor) -> Tensor:
        """Objects -> fixed-length target sequence.

        Args:
            boxes_yxyx (Tensor): (N, 4) normalised boxes, already ordered; clipped to [0, 1].
            labels (Tensor): (N,) 0-based class labels, -1 for noise (FAKE) objects.

        Returns:
            Tensor: (seq_len,) int64: ``5 n`` object tokens (n = min(N, max_objects)), EOS, then PAD.
        """
        num_objects = min(boxes_yxyx.shape[0], self.max_objects)
        objects = torch.cat([self.quantize(boxes_yxyx[:num_objects]),
                             self.class_tokens(labels[:num_objects])[:, None]], dim=1)
        sequence = torch.full((self.seq_len, ), self.PAD, dtype=torch.long)
        sequence[:TOKENS_PER_OBJECT * num_objects] = objects.flatten()
        sequence[TOKENS_PER_OBJECT * num_objects] = self.EOS
        return sequence

    # ------------------------------------------------------------------ decoding
    def decode(self, tokens: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Token sequences -> candidate objects, one per 5-token slot.

        Args:
            tokens (Tensor): (..., L) token ids; only the first ``5 * (L // 5)`` tokens are read.

        Returns:
            tuple: ``boxes_yxyx`` (..., K, 4) normalised float, ``class_tokens`` (..., K) int64 and ``valid``
            (..., K) bool, with K = L // 5.  A slot is valid when its four coordinate positions hold coordinate
            tokens, its class position holds a real class or FAKE token, ``ymax > ymin`` and ``xmax > xmin``,
            and no EOS occurred in an earlier slot or inside it.
        """
        num_slots = tokens.shape[-1] // TOKENS_PER_OBJECT
        slots = tokens[..., :num_slots * TOKENS_PER_OBJECT].unflatten(-1, (num_slots, TOKENS_PER_OBJECT))
        coord_tokens, class_tokens = slots[..., :4], slots[..., 4]
        boxes = self.dequantize(coord_tokens)
        is_class = (class_tokens >= self.FAKE) & (class_tokens < self.coord_offset)
        ended = (slots == self.EOS).any(-1).long().cumsum(-1) > 0
        valid = (self.is_coord(coord_tokens).all(-1) & is_class & ~ended
                 & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1]))
        return boxes, class_tokens, valid
