"""Pix2Seq training sequences: the real objects, the paper's noise objects, input corruption and token weights.

The head builds the sequences of a batch from its data samples (``gt_instances`` after mmdet's pipeline and
``DetDataPreprocessor``) with its own tokenizer, as the official ``tasks/object_detection.py`` builds them in its
batched preprocessing: the vocabulary exists once, in ``model.head.tokenizer``, and the options below are the model's
``train_cfg``.  Randomness comes from torch's global generator on the boxes' device.
"""
from typing import List, Tuple

import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

from .tokenizer import OBJECT_ORDERS, TOKENS_PER_OBJECT, Pix2SeqTokenizer

NOISE_MODES = ('paper', 'random_only', 'none')
CLASS_CORRUPTIONS = ('none', 'rand_cls', 'real_n_fake_cls', 'rand_n_fake_cls')


def truncated_normal(shape: Tuple[int, ...], std: float, bound: float, device: torch.device) -> Tensor:
    """Samples of N(0, std) truncated to [-bound, bound]."""
    return torch.nn.init.trunc_normal_(torch.empty(shape, device=device), 0.0, std, -bound, bound)


class SequenceAugmentation:
    """Build the training sequences of a batch, with the paper's sequence augmentation.

    Per image: normalise the real boxes to ``ymin, xmin, ymax, xmax`` in [0, 1] of the padded input
    (``pad_shape``; pad every image to the same square size so that all sequences share one scale), drop empty
    boxes (mmdet keeps ignored/crowd boxes out of ``gt_instances``), order them (``object_order``), keep at most
    ``max_objects``, fill the remaining slots with noise objects labelled FAKE in random order, tokenize, then corrupt
    the input side.

    Noise lies on the image, never on the padding (the official code adds it before padding,
    ``data/data_utils.py``: ``augment_bbox``): positions and random sizes are relative to the image's extent in the
    padded frame (``img_shape / pad_shape``) and every noise box is clipped to it.  With ``noise_mode='paper'``, of
    the ``n_noise = max_objects - n_real`` slots, ``U{0..floor(n_noise * max_duplicate_fraction)}`` hold jittered
    duplicates of real boxes (truncated-normal jitter of std ``jitter_std``, at most ``jitter_max``, relative to the
    box height/width); each remaining one is, with probability ``shift_fraction``, a real box's size moved to a
    uniform random centre, otherwise a random box (uniform centre, height and width ``|truncnormal(0,
    random_size_std)|`` truncated at ``2 * random_size_std``, of the image).  ``random_only`` (Stable-Pix2Seq) uses
    random boxes only; ``none`` adds no noise.  Images without real boxes get random boxes.

    Token weights: real coordinate tokens 1; real class tokens ``class_weight`` (1 in the paper); noise coordinates
    0; noise class tokens (target FAKE) ``noise_class_weight``; EOS ``eos_weight``; PAD 0.  In the tokenizer's
    ``official`` layout EOS is PAD, so every trailing PAD target gets ``eos_weight``, exactly as the official
    ``preprocess_batched`` weights its padding.

    Sequences per image: ``sequences_per_image = K`` builds K sequences of every image, each with its own object
    order, noise objects and corruption (K = 1, the paper's, one sequence per image); the head decodes them all
    against the image's memory, computed once, so the decoder gets K supervision signals per encoder pass.

    Input corruption (targets keep the true tokens): every input class token is replaced, per
    ``class_label_corruption``, by a random real class (``rand_cls``), by FAKE with probability
    ``fake_class_prob`` else the true class (``real_n_fake_cls``), or by FAKE with probability ``fake_class_prob``
    else a random real class (``rand_n_fake_cls``, the paper's); then each input token after BOS becomes FAKE with
    probability ``input_seq_drop_rate``.

    Args:
        tokenizer (Pix2SeqTokenizer): The head's vocabulary.
        object_order (str): ``random`` | ``area`` | ``dist2ori`` | ``none``.
        sequences_per_image (int): K, see above.
        Others: see above.
    """

    def __init__(self, tokenizer: Pix2SeqTokenizer, object_order: str = 'random', noise_mode: str = 'paper',
                 max_duplicate_fraction: float = 1.0, jitter_std: float = 0.05, jitter_max: float = 0.1,
                 shift_fraction: float = 0.5, random_size_std: float = 0.5, class_weight: float = 1.0,
                 noise_class_weight: float = 1.0, eos_weight: float = 0.1,
                 class_label_corruption: str = 'rand_n_fake_cls', fake_class_prob: float = 0.5,
                 input_seq_drop_rate: float = 0.0, sequences_per_image: int = 1) -> None:
        checks = [(object_order in OBJECT_ORDERS, f'object_order must be one of {OBJECT_ORDERS}'),
                  (noise_mode in NOISE_MODES, f'noise_mode must be one of {NOISE_MODES}'),
                  (class_label_corruption in CLASS_CORRUPTIONS,
                   f'class_label_corruption must be one of {CLASS_CORRUPTIONS}')]
        checks += [(0 <= value <= 1, f'{name} must be in [0, 1]') for name, value in (
            ('max_duplicate_fraction', max_duplicate_fraction), ('shift_fraction', shift_fraction),
            ('fake_class_prob', fake_class_prob), ('input_seq_drop_rate', input_seq_drop_rate))]
        checks += [(value >= 0, f'{name} must be >= 0') for name, value in (
            ('jitter_std', jitter_std), ('jitter_max', jitter_max), ('random_size_std', random_size_std),
            ('class_weight', class_weight), ('noise_class_weight', noise_class_weight), ('eos_weight', eos_weight))]
        checks.append((isinstance(sequences_per_image, int) and sequences_per_image >= 1,
                       'sequences_per_image must be an integer >= 1'))
        for ok, message in checks:
            if not ok:
                raise ValueError(f'model.train_cfg: {message}')
        self.tokenizer = tokenizer
        self.object_order = object_order
        self.noise_mode = noise_mode
        self.max_duplicate_fraction = max_duplicate_fraction
        self.jitter_std = jitter_std
        self.jitter_max = jitter_max
        self.shift_fraction = shift_fraction
        self.random_size_std = random_size_std
        self.class_weight = class_weight
        self.noise_class_weight = noise_class_weight
        self.eos_weight = eos_weight
        self.class_label_corruption = class_label_corruption
        self.fake_class_prob = fake_class_prob
        self.input_seq_drop_rate = input_seq_drop_rate
        self.sequences_per_image = sequences_per_image

    # ------------------------------------------------------------------- boxes
    def real_objects(self, sample: DetDataSample) -> Tuple[Tensor, Tensor]:
        """Normalised, clipped, ordered real boxes (N, 4) ``yxyx`` and labels (N,) of one data sample."""
        instances = sample.gt_instances
        labels = instances.labels.long()
        if len(labels) and (labels.min() < 0 or labels.max() >= self.tokenizer.num_classes):
            raise ValueError(f'{sample.metainfo.get("img_path", "an image")} has labels '
                             f'{sorted(set(labels.tolist()))} outside [0, {self.tokenizer.num_classes - 1}]: '
                             'model.head.tokenizer.num_classes does not match the dataset')
        yxyx = self.tokenizer.normalize_boxes(get_box_tensor(instances.bboxes).float().reshape(-1, 4),
                                              sample.metainfo['pad_shape'][:2])
        keep = (yxyx[:, 2] > yxyx[:, 0]) & (yxyx[:, 3] > yxyx[:, 1])
        yxyx, labels = yxyx[keep], labels[keep]
        order = self.tokenizer.order_objects(yxyx, self.object_order)[:self.tokenizer.max_objects]
        return yxyx[order], labels[order]

    def _random_boxes(self, count: int, extent: Tensor) -> Tensor:
        centre = torch.rand(count, 2, device=extent.device) * extent
        size = truncated_normal((count, 2), self.random_size_std, 2 * self.random_size_std, extent.device).abs()
        size = size * extent
        return torch.cat([centre - size / 2, centre + size / 2], dim=1)

    def noise_boxes(self, real_boxes: Tensor, count: int, extent: Tensor) -> Tuple[Tensor, Tensor]:
        """``count`` noise boxes (count, 4) ``yxyx`` inside the image, in random order, and their kinds (count,)
        int64: 0 jittered duplicate, 1 shifted, 2 random.

        Args:
            real_boxes (Tensor): (N, 4) normalised real boxes.
            count (int): Noise boxes to draw.
            extent (Tensor): (2,) the image's height and width in the padded frame (``img_shape / pad_shape``);
                noise is drawn and clipped there.
        """
        device = extent.device
        kinds = torch.full((count, ), 2, dtype=torch.long, device=device)
        if count == 0 or self.noise_mode == 'none':
            return real_boxes.new_zeros(0, 4), kinds[:0]
        boxes = self._random_boxes(count, extent)
        if self.noise_mode == 'paper' and len(real_boxes):
            num_duplicates = int(torch.randint(0, int(count * self.max_duplicate_fraction) + 1, ()))
            kinds[:num_duplicates] = 0
            kinds[num_duplicates:][torch.rand(count - num_duplicates, device=device) < self.shift_fraction] = 1
            source = real_boxes[torch.randint(0, len(real_boxes), (count, ), device=device)]
            size = source[:, 2:] - source[:, :2]
            jitter = truncated_normal((count, 4), self.jitter_std, self.jitter_max, device) * size.repeat(1, 2)
            centre = torch.rand(count, 2, device=device) * extent
            shifted = torch.cat([centre - size / 2, centre + size / 2], dim=1)
            boxes = torch.where((kinds == 0)[:, None], source + jitter, boxes)
            boxes = torch.where((kinds == 1)[:, None], shifted, boxes)
            shuffle = torch.randperm(count, device=device)  # the official code shuffles the noise objects
            boxes, kinds = boxes[shuffle], kinds[shuffle]
        boxes = torch.minimum(boxes.clamp(min=0), extent.repeat(2))
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2])
        return boxes, kinds

    # --------------------------------------------------------------- sequences
    def corrupt_inputs(self, target_tokens: Tensor) -> Tensor:
        """Corrupted copy of the target tokens (L,) for the input side (class corruption, then token drop)."""
        tokenizer = self.tokenizer
        tokens = target_tokens.clone()
        positions = torch.arange(len(tokens), device=tokens.device)
        is_class = tokenizer.is_class_position(positions) & tokenizer.is_class(tokens)
        if self.class_label_corruption != 'none':
            random_class = torch.randint(0, tokenizer.num_classes, tokens.shape, device=tokens.device)
            random_class = tokenizer.class_tokens(random_class)
            to_fake = torch.rand(tokens.shape, device=tokens.device) < self.fake_class_prob
            replacement = {
                'rand_cls': random_class,
                'real_n_fake_cls': torch.where(to_fake, tokenizer.FAKE, tokens),
                'rand_n_fake_cls': torch.where(to_fake, tokenizer.FAKE, random_class),
            }[self.class_label_corruption]
            tokens = torch.where(is_class, replacement, tokens)
        if self.input_seq_drop_rate > 0:
            drop = torch.rand(tokens.shape, device=tokens.device) < self.input_seq_drop_rate
            tokens = torch.where(drop, tokenizer.FAKE, tokens)
        return tokens

    def token_weights(self, target_tokens: Tensor, num_real: int) -> Tensor:
        """(L,) float32 loss weights for the target tokens of ``num_real`` real objects followed by noise."""
        weights = torch.zeros(target_tokens.shape, dtype=torch.float32, device=target_tokens.device)
        weights[:TOKENS_PER_OBJECT * num_real] = 1.0
        weights[self.tokenizer.is_class(target_tokens)] = self.class_weight  # FAKE targets are set next
        weights[target_tokens == self.tokenizer.FAKE] = self.noise_class_weight
        weights[target_tokens == self.tokenizer.EOS] = self.eos_weight
        return weights

    def sample_sequences(self, sample: DetDataSample) -> Tuple[Tensor, Tensor, Tensor]:
        """One image's ``input_tokens``, ``target_tokens`` (int64) and ``token_weights`` (float32), each (L,),
        ``L = 5 * max_objects + 1``; the input is BOS followed by the corrupted targets without their last token."""
        real_boxes, real_labels = self.real_objects(sample)
        img_h, img_w = sample.metainfo['img_shape'][:2]
        pad_h, pad_w = sample.metainfo['pad_shape'][:2]
        extent = real_boxes.new_tensor([min(img_h / pad_h, 1.0), min(img_w / pad_w, 1.0)])
        noise_boxes, _ = self.noise_boxes(real_boxes, self.tokenizer.max_objects - len(real_boxes), extent)
        boxes = torch.cat([real_boxes, noise_boxes])
        labels = torch.cat([real_labels, real_labels.new_full((len(noise_boxes), ), -1)])
        target_tokens = self.tokenizer.encode(boxes, labels)
        input_tokens = torch.cat([target_tokens.new_tensor([self.tokenizer.BOS]),
                                  self.corrupt_inputs(target_tokens)[:-1]])
        return input_tokens, target_tokens, self.token_weights(target_tokens, len(real_boxes))

    def __call__(self, batch_data_samples: List[DetDataSample]) -> Tuple[Tensor, Tensor, Tensor]:
        """A batch's ``input_tokens``, ``target_tokens`` and ``token_weights``, each (B * K, L), the K sequences of
        an image in consecutive rows."""
        per_sample = [self.sample_sequences(sample) for sample in batch_data_samples
                      for _ in range(self.sequences_per_image)]
        input_tokens, target_tokens, token_weights = (torch.stack(parts) for parts in zip(*per_sample))
        return input_tokens, target_tokens, token_weights

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(object_order={self.object_order!r}, noise_mode={self.noise_mode!r}, '
                f'class_label_corruption={self.class_label_corruption!r}, '
                f'sequences_per_image={self.sequences_per_image})')
