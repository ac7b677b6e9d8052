"""Pix2Seq sequence augmentation: noisy-GT and random noise objects, input corruption, token weights.

Runs at the end of the training pipeline, after mmdet's geometric transforms (resize, crop, flip, pad), on the final
boxes, and before :class:`PackPix2SeqInputs`.
"""
from typing import Optional, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from torch import Tensor

from .tokenizer import OBJECT_ORDERS, SEQUENCE_KEYS, TOKENS_PER_OBJECT, Pix2SeqTokenizer

NOISE_MODES = ('paper', 'random_only', 'none')
CLASS_CORRUPTIONS = ('none', 'rand_cls', 'real_n_fake_cls', 'rand_n_fake_cls')


def _truncated_normal(shape: Tuple[int, ...], std: float, bound: float) -> Tensor:
    """Samples of N(0, std) truncated to [-bound, bound] (torch's global RNG)."""
    return torch.nn.init.trunc_normal_(torch.empty(shape), 0.0, std, -bound, bound)


@TRANSFORMS.register_module()
class Pix2SeqSequenceAug(BaseTransform):
    """Build the training sequences of one image, with the paper's sequence augmentation.

    Steps: normalise the real boxes to ``ymin, xmin, ymax, xmax`` in [0, 1] of the padded image (``pad_shape``; pad
    every image to the same square size so that all sequences share one scale), drop ignored (crowd) and empty
    boxes, order them (``object_order``), keep at most ``max_objects``, fill the remaining slots with noise objects
    labelled FAKE, tokenize, then corrupt the input side.

    Noise (``noise_mode='paper'``): of the ``n_noise = max_objects - n_real`` slots, ``U{0..floor(n_noise *
    max_duplicate_fraction)}`` hold jittered duplicates of real boxes (truncated-normal jitter of std
    ``jitter_std``, at most ``jitter_max``, relative to the box height/width); each remaining one is, with
    probability ``shift_fraction``, a real box's size moved to a uniform random centre, otherwise a random box
    (uniform centre, height and width ``|truncnormal(0, random_size_std)|`` truncated at ``2 * random_size_std``).
    Every box is clipped to [0, 1].  ``random_only`` (Stable-Pix2Seq) uses random boxes only; ``none`` adds no
    noise.  Images without real boxes get random boxes.

    Token weights: real coordinate and class tokens 1; noise coordinates 0; noise class tokens (target FAKE)
    ``noise_class_weight``; EOS ``eos_weight``; PAD 0.

    Input corruption (targets keep the true tokens): every input class token is replaced, per
    ``class_label_corruption``, by a random real class (``rand_cls``), by FAKE with probability
    ``fake_class_prob`` else the true class (``real_n_fake_cls``), or by FAKE with probability ``fake_class_prob``
    else a random real class (``rand_n_fake_cls``, the paper's); then each input token after BOS becomes FAKE with
    probability ``input_seq_drop_rate``.

    Added keys: ``input_tokens``, ``target_tokens`` (int64) and ``token_weights`` (float32), each of shape
    ``(5 * max_objects + 1,)``; ``input_tokens`` is BOS followed by the corrupted targets without their last
    token.

    Args:
        num_classes (int), num_bins (int), max_objects (int): Tokenizer arguments, identical to the head's.
        object_order (str): ``random`` | ``area`` | ``dist2ori`` | ``none``.
    """

    def __init__(self, num_classes: int, num_bins: int, max_objects: int = 100, object_order: str = 'random',
                 noise_mode: str = 'paper', max_duplicate_fraction: float = 1.0, jitter_std: float = 0.05,
                 jitter_max: float = 0.1, shift_fraction: float = 0.5, random_size_std: float = 0.5,
                 noise_class_weight: float = 1.0, eos_weight: float = 0.1,
                 class_label_corruption: str = 'rand_n_fake_cls', fake_class_prob: float = 0.5,
                 input_seq_drop_rate: float = 0.0) -> None:
        checks = [(object_order in OBJECT_ORDERS, f'object_order must be one of {OBJECT_ORDERS}'),
                  (noise_mode in NOISE_MODES, f'noise_mode must be one of {NOISE_MODES}'),
                  (class_label_corruption in CLASS_CORRUPTIONS,
                   f'class_label_corruption must be one of {CLASS_CORRUPTIONS}')]
        checks += [(0 <= value <= 1, f'{name} must be in [0, 1]') for name, value in (
            ('max_duplicate_fraction', max_duplicate_fraction), ('shift_fraction', shift_fraction),
            ('fake_class_prob', fake_class_prob), ('input_seq_drop_rate', input_seq_drop_rate))]
        checks += [(value >= 0, f'{name} must be >= 0') for name, value in (
            ('jitter_std', jitter_std), ('jitter_max', jitter_max), ('random_size_std', random_size_std),
            ('noise_class_weight', noise_class_weight), ('eos_weight', eos_weight))]
        for ok, message in checks:
            if not ok:
                raise ValueError(f'Pix2SeqSequenceAug: {message}')
        self.tokenizer = Pix2SeqTokenizer(num_classes, num_bins, max_objects)
        self.object_order = object_order
        self.noise_mode = noise_mode
        self.max_duplicate_fraction = max_duplicate_fraction
        self.jitter_std = jitter_std
        self.jitter_max = jitter_max
        self.shift_fraction = shift_fraction
        self.random_size_std = random_size_std
        self.noise_class_weight = noise_class_weight
        self.eos_weight = eos_weight
        self.class_label_corruption = class_label_corruption
        self.fake_class_prob = fake_class_prob
        self.input_seq_drop_rate = input_seq_drop_rate

    # ------------------------------------------------------------------- boxes
    def real_objects(self, results: dict) -> Tuple[Tensor, Tensor]:
        """Normalised, clipped, ordered real boxes (N, 4) ``yxyx`` and labels (N,) of ``results``."""
        pad_h, pad_w = results.get('pad_shape', results['img_shape'])[:2]
        bboxes = results.get('gt_bboxes')
        if bboxes is None or len(bboxes) == 0:
            return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
        xyxy = torch.as_tensor(np.asarray(bboxes.tensor if hasattr(bboxes, 'tensor') else bboxes),
                               dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(np.asarray(results['gt_bboxes_labels']), dtype=torch.long)
        if (labels < 0).any() or (labels >= self.tokenizer.num_classes).any():
            raise ValueError(f'Pix2SeqSequenceAug: {results.get("img_path", "an image")} has labels '
                             f'{sorted(set(labels.tolist()))} outside [0, {self.tokenizer.num_classes - 1}]: '
                             'num_classes does not match the dataset')
        keep = ~torch.as_tensor(np.asarray(results['gt_ignore_flags']), dtype=torch.bool) \
            if 'gt_ignore_flags' in results else torch.ones(len(labels), dtype=torch.bool)
        yxyx = (xyxy[:, [1, 0, 3, 2]] / torch.tensor([pad_h, pad_w, pad_h, pad_w], dtype=torch.float32)).clamp(0, 1)
        keep &= (yxyx[:, 2] > yxyx[:, 0]) & (yxyx[:, 3] > yxyx[:, 1])
        yxyx, labels = yxyx[keep], labels[keep]
        order = self.tokenizer.order_objects(yxyx, self.object_order)[:self.tokenizer.max_objects]
        return yxyx[order], labels[order]

    def _random_boxes(self, count: int) -> Tensor:
        centre = torch.rand(count, 2)
        size = _truncated_normal((count, 2), self.random_size_std, 2 * self.random_size_std).abs()
        return torch.cat([centre - size / 2, centre + size / 2], dim=1)

    def noise_boxes(self, real_boxes: Tensor, count: int) -> Tuple[Tensor, Tensor]:
        """``count`` noise boxes (count, 4) ``yxyx`` clipped to [0, 1], and their kinds (count,) int64:
        0 jittered duplicate, 1 shifted, 2 random."""
        kinds = torch.full((count, ), 2, dtype=torch.long)
        if count == 0 or self.noise_mode == 'none':
            return torch.zeros(0, 4), kinds[:0]
        boxes = self._random_boxes(count)
        if self.noise_mode == 'paper' and len(real_boxes):
            num_duplicates = int(torch.randint(0, int(count * self.max_duplicate_fraction) + 1, ()))
            kinds[:num_duplicates] = 0
            kinds[num_duplicates:][torch.rand(count - num_duplicates) < self.shift_fraction] = 1
            source = real_boxes[torch.randint(0, len(real_boxes), (count, ))]
            size = source[:, 2:] - source[:, :2]
            jitter = _truncated_normal((count, 4), self.jitter_std, self.jitter_max) * size.repeat(1, 2)
            centre = torch.rand(count, 2)
            shifted = torch.cat([centre - size / 2, centre + size / 2], dim=1)
            boxes = torch.where((kinds == 0)[:, None], source + jitter, boxes)
            boxes = torch.where((kinds == 1)[:, None], shifted, boxes)
        boxes = boxes.clamp(0, 1)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2])
        return boxes, kinds

    # --------------------------------------------------------------- sequences
    def corrupt_inputs(self, target_tokens: Tensor) -> Tensor:
        """Corrupted copy of the target tokens (L,) for the input side (class corruption, then token drop)."""
        tokens = target_tokens.clone()
        is_class = torch.zeros_like(tokens, dtype=torch.bool)
        is_class[TOKENS_PER_OBJECT - 1::TOKENS_PER_OBJECT] = True
        is_class &= tokens != self.tokenizer.PAD
        is_class &= tokens != self.tokenizer.EOS
        if self.class_label_corruption != 'none':
            random_class = torch.randint(0, self.tokenizer.num_classes, tokens.shape) + self.tokenizer.CLASS_OFFSET
            to_fake = torch.rand(tokens.shape) < self.fake_class_prob
            replacement = {
                'rand_cls': random_class,
                'real_n_fake_cls': torch.where(to_fake, self.tokenizer.FAKE, tokens),
                'rand_n_fake_cls': torch.where(to_fake, self.tokenizer.FAKE, random_class),
            }[self.class_label_corruption]
            tokens = torch.where(is_class, replacement, tokens)
        if self.input_seq_drop_rate > 0:
            drop = torch.rand(tokens.shape) < self.input_seq_drop_rate
            tokens = torch.where(drop, self.tokenizer.FAKE, tokens)
        return tokens

    def token_weights(self, target_tokens: Tensor, num_real: int) -> Tensor:
        """(L,) float32 loss weights for the target tokens of ``num_real`` real objects followed by noise."""
        weights = torch.zeros(target_tokens.shape, dtype=torch.float32)
        weights[:TOKENS_PER_OBJECT * num_real] = 1.0
        noise_class = target_tokens == self.tokenizer.FAKE
        weights[noise_class] = self.noise_class_weight
        weights[target_tokens == self.tokenizer.EOS] = self.eos_weight
        return weights

    def transform(self, results: dict) -> Optional[dict]:
        real_boxes, real_labels = self.real_objects(results)
        num_noise = self.tokenizer.max_objects - len(real_boxes)
        noise_boxes, _ = self.noise_boxes(real_boxes, num_noise)
        boxes = torch.cat([real_boxes, noise_boxes])
        labels = torch.cat([real_labels, torch.full((len(noise_boxes), ), -1, dtype=torch.long)])
        target_tokens = self.tokenizer.encode(boxes, labels)
        input_tokens = torch.cat([torch.tensor([self.tokenizer.BOS]), self.corrupt_inputs(target_tokens)[:-1]])
        results['input_tokens'] = input_tokens
        results['target_tokens'] = target_tokens
        results['token_weights'] = self.token_weights(target_tokens, len(real_boxes))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.tokenizer.num_classes}, '
                f'num_bins={self.tokenizer.num_bins}, max_objects={self.tokenizer.max_objects}, '
                f'object_order={self.object_order!r}, noise_mode={self.noise_mode!r}, '
                f'class_label_corruption={self.class_label_corruption!r})')


@TRANSFORMS.register_module()
class PackPix2SeqInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also moves the Pix2Seq sequences into the data sample.

    ``input_tokens``, ``target_tokens`` and ``token_weights`` (each (L,)) become fields of the ``DetDataSample``
    of the same names, which the detector stacks into (B, L) tensors.  ``pad_shape``, the frame the coordinates are
    normalised to, is kept in the metainfo by default.
    """

    def __init__(self, meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor',
                                  'flip', 'flip_direction')) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        for key in SEQUENCE_KEYS:
            if key in results:
                packed['data_samples'].set_field(results[key], key)
        return packed
