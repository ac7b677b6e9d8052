"""Pix2Seq v2 keypoints at inference: sampled responses to points.

Each box's prompt (:mod:`.instance_prediction`) is answered ``num_samples`` times (official: one sample at top-p 0.1)
with coordinate tokens only: the ``INVISIBLE`` token is suppressed (the official ``eval_suppress_invisible_token``)
unless ``suppress_invisible`` is off.  A point is the mean of the samples that place it, mapped to the pixels the
boxes are reported in and clipped to the image; a point that no sample places is the box's centre (the official
rule).  Its score is its two tokens' mean probability over the samples; the official instance score
(``points_score_weight``) is made from these by :class:`~pix2seq_mmdet.evaluation.CocoKeypointMetric`.  Detections
of one box share its keypoints; boxes beyond ``max_instances`` get zero points and scores.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

import torch
from torch import Tensor

from ..structures.polygons import frame_points_to_pixels
from .instance_prediction import InstanceDecodingConfig, coordinate_constraint
from .tokenizer import Pix2SeqTokenizer


@dataclass
class KeypointDecodingConfig(InstanceDecodingConfig):
    """Options of the keypoint prediction, the head's ``test_cfg.keypoints``:
    :class:`~.instance_prediction.InstanceDecodingConfig` fields (official: one sample at ``top_p`` 0.1) and

    Args:
        suppress_invisible (bool): Never answer ``INVISIBLE`` (official True).
    """
    task: ClassVar[str] = 'keypoints'
    num_samples: int = 1
    top_p: float = 0.1
    suppress_invisible: bool = True

    def response_len(self, tokenizer: Pix2SeqTokenizer) -> int:
        return tokenizer.keypoints_response_len

    def constraint(self, tokenizer: Pix2SeqTokenizer, device: torch.device) -> Optional[Tensor]:
        """Coordinates, and ``INVISIBLE`` unless ``suppress_invisible``."""
        return coordinate_constraint(tokenizer, device, *(() if self.suppress_invisible else (tokenizer.INVISIBLE, )))

    def outputs(self, responses: Tensor, token_probs: Tensor, boxes_yxyx: Tensor, tokenizer: Pix2SeqTokenizer,
                img_meta: dict, rescale: bool) -> Dict[str, Tensor]:
        """``keypoints`` (K, P, 2) and ``keypoint_scores`` (K, P) (:func:`responses_to_keypoints`)."""
        keypoints, scores = responses_to_keypoints(responses, token_probs, boxes_yxyx, tokenizer, img_meta, rescale,
                                                   self.num_samples)
        return dict(keypoints=keypoints, keypoint_scores=scores)


def responses_to_keypoints(responses: Tensor, token_probs: Tensor, boxes_yxyx: Tensor, tokenizer: Pix2SeqTokenizer,
                           img_meta: dict, rescale: bool, num_samples: int) -> Tuple[Tensor, Tensor]:
    """K boxes' sampled responses of one image -> their keypoints.

    Args:
        responses (Tensor): (K * S, 2 P) tokens, S = ``num_samples`` consecutive samples per box.
        token_probs (Tensor): (K * S, 2 P) probability of each token.
        boxes_yxyx (Tensor): (K, 4) the prompts' boxes, normalised to the padded frame.
        tokenizer (Pix2SeqTokenizer): The head's vocabulary.
        img_meta (dict): The data sample's metainfo.
        rescale (bool): Report in the original image's pixels (else in the resized image's).
        num_samples (int): S.

    Returns:
        tuple: ``keypoints`` (K, P, 2) float32 ``(x, y)`` pixels and ``keypoint_scores`` (K, P) float32.

    Raises:
        ValueError: for a flipped image (the points' sides would need the dataset's flip indices).
    """
    points_yx, labelled = tokenizer.decode_keypoints(responses.cpu())
    num_points = points_yx.shape[1]
    points_yx = points_yx.view(-1, num_samples, num_points, 2)
    labelled = labelled.view(-1, num_samples, num_points, 1).float()
    placed = (points_yx * labelled).sum(1) / labelled.sum(1).clamp(min=1)
    centres = ((boxes_yxyx[:, :2] + boxes_yxyx[:, 2:]) / 2).cpu()[:, None, :].expand_as(placed)
    points_yx = torch.where(labelled.sum(1) > 0, placed, centres)
    scores = token_probs.cpu().view(-1, num_samples, num_points, 2).mean((1, 3))
    if img_meta.get('flip', False):
        raise ValueError(f'image {img_meta.get("img_path", "?")}: keypoints of a flipped test image would exchange '
                         'their left and right points; leave RandomFlip out of the test pipeline')
    scale_factor = img_meta.get('scale_factor', (1.0, 1.0)) if rescale else (1.0, 1.0)
    pixels = frame_points_to_pixels([points_yx.reshape(-1, 2).numpy()],
                                    img_meta.get('pad_shape', img_meta['img_shape'])[:2], img_meta['img_shape'][:2],
                                    None, scale_factor)[0]
    out_h, out_w = img_meta['ori_shape'][:2] if rescale else img_meta['img_shape'][:2]
    pixels = pixels.clip(0, (out_w, out_h))  # as the boxes, inside the image
    return torch.from_numpy(pixels).float().view(-1, num_points, 2), scores.float()
