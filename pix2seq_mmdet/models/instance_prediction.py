"""What the Pix2Seq v2 instance tasks share at inference: the prompts' boxes and the decoding options.

Per image, every distinct detected box (or every ground-truth box, to evaluate an instance task alone) up to
``max_instances`` becomes a prompt ``[task, box, class]`` with the class of its best detection; each prompt is
answered ``num_samples`` times, all images' prompts and samples decoding as one batch through the head's key/value
cache (:meth:`Pix2SeqHead.predict_instance_tasks`); each task turns its responses into its outputs
(:mod:`.mask_prediction`, :mod:`.keypoint_prediction`).
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

import torch
from mmdet.structures.bbox import bbox_flip
from torch import Tensor

from .decoding import DecodingConfig
from .tokenizer import Pix2SeqTokenizer

PROMPT_BOXES = ('predicted', 'ground_truth')


@dataclass
class InstanceDecodingConfig:
    """Options of an instance task's prediction, the head's ``test_cfg.<task>``.

    Args:
        num_samples (int): Responses sampled per box.
        strategy (str): ``nucleus`` (official) or another :class:`DecodingConfig` strategy but beam.
        top_p (float): Nucleus mass.
        temperature (float): Sampling temperature (official 1.0).
        prompt_boxes (str): ``predicted`` (the detections) or ``ground_truth`` (the data sample's boxes and labels,
            scored 1; the official ``use_gt_box_at_test``).
        max_instances (int): Most boxes per image to answer, best first.
        max_rows (int, optional): Most prompt samples (boxes x samples) decoded at once; the key/value cache holds
            this many rows, so it bounds the memory (default None: the whole batch at once).
    """
    task: ClassVar[str] = ''
    num_samples: int = 1
    strategy: str = 'nucleus'
    top_p: float = 1.0
    temperature: float = 1.0
    prompt_boxes: str = 'predicted'
    max_instances: int = 100
    max_rows: Optional[int] = None

    def __post_init__(self) -> None:
        where = f'test_cfg.{self.task}'
        if self.prompt_boxes not in PROMPT_BOXES:
            raise ValueError(f'{where}.prompt_boxes must be one of {PROMPT_BOXES}, got {self.prompt_boxes!r}')
        for name in ('num_samples', 'max_instances') + (('max_rows', ) if self.max_rows is not None else ()):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f'{where}.{name} must be an integer >= 1, got {getattr(self, name)!r}')
        if self.strategy == 'beam':
            raise ValueError(f'{where}.strategy: beam search does not apply to instance responses')
        self.decoding = DecodingConfig(strategy=self.strategy, top_p=self.top_p, temperature=self.temperature)

    def response_len(self, tokenizer: Pix2SeqTokenizer) -> int:
        """Most tokens of the task's response."""
        raise NotImplementedError

    def constraint(self, tokenizer: Pix2SeqTokenizer, device: torch.device) -> Optional[Tensor]:
        """(V,) additive logit mask of the response's tokens (0 allowed, -inf not), or None."""
        raise NotImplementedError

    def outputs(self, responses: Tensor, token_probs: Tensor, boxes_yxyx: Tensor, tokenizer: Pix2SeqTokenizer,
                img_meta: dict, rescale: bool) -> Dict[str, Tensor]:
        """K boxes' responses and token probabilities (K * S, L) of one image, S = ``num_samples`` per box, and
        the boxes (K, 4) normalised ``yxyx`` of the frame -> the task's ``pred_instances`` fields, each (K, ...)."""
        raise NotImplementedError


def coordinate_constraint(tokenizer: Pix2SeqTokenizer, device: torch.device, *tokens: int) -> Tensor:
    """(V,) additive logit mask of a response allowing the coordinates and ``tokens`` (0), nothing else (-inf)."""
    constraint = torch.full((tokenizer.vocab_size, ), float('-inf'), device=device)
    constraint[tokenizer.coordinates] = 0
    constraint[list(tokens)] = 0
    return constraint


def boxes_in_frame(bboxes: Tensor, img_meta: dict, rescaled: bool, tokenizer: Pix2SeqTokenizer) -> Tensor:
    """(N, 4) pixel ``xyxy`` boxes as the head reports them (in the original image when ``rescaled``, else in the
    resized image) -> (N, 4) normalised ``yxyx`` of the padded frame, as the model reads them: the inverse of
    :meth:`Pix2SeqHead.tokens_to_instances`."""
    if rescaled and 'scale_factor' in img_meta:
        bboxes = bboxes * bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
    if img_meta.get('flip', False):
        bboxes = bbox_flip(bboxes, img_meta['img_shape'][:2], img_meta['flip_direction'])
    return tokenizer.normalize_boxes(bboxes, img_meta.get('pad_shape', img_meta['img_shape'])[:2])


def distinct_boxes(bboxes: Tensor, max_boxes: int) -> Tuple[Tensor, Tensor]:
    """Detections sorted by score -> the rows of their distinct boxes to answer, best first (at most
    ``max_boxes``), and for every detection the index of its box among those rows (-1: not answered)."""
    if len(bboxes) == 0:
        return bboxes.new_zeros(0, dtype=torch.long), bboxes.new_zeros(0, dtype=torch.long)
    unique, inverse = torch.unique(bboxes, dim=0, return_inverse=True)
    order = torch.arange(len(bboxes), device=bboxes.device)
    first = torch.full((len(unique), ), len(bboxes), dtype=torch.long, device=bboxes.device)
    first = first.scatter_reduce(0, inverse, order, 'amin')  # the best detection of each distinct box
    rows = first.sort().values[:max_boxes]
    slot = torch.full((len(unique), ), -1, dtype=torch.long, device=bboxes.device)
    slot[inverse[rows]] = torch.arange(len(rows), device=bboxes.device)
    return rows, slot[inverse]
