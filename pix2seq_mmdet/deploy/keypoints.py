"""Pix2Seq v2 keypoints in the ONNX runtime, in numpy (no torch): the points from the decoded responses to the box
prompts (:mod:`.instances`), as ``pix2seq_mmdet.models.keypoint_prediction`` does them for the PyTorch head.

A response is ``num_keypoints`` ``(y, x)`` pairs, coordinates only (``INVISIBLE`` too unless ``suppress_invisible``),
no EOS.  A point is the mean of the samples that place it (both tokens coordinates), else the box's centre, mapped
to the original image's pixels and clipped to the image; its score is its two tokens' mean probability over the
samples.  Detections of one box share its keypoints; boxes beyond ``max_instances`` get zero points and scores.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Sequence, Tuple

import numpy as np

from ..structures.polygons import frame_points_to_pixels
from .instances import InstanceOptions
from .metadata import Vocabulary
from .processing import ImageMeta


@dataclass
class KeypointOptions(InstanceOptions):
    """Keypoint settings of the runtime (defaults: the exported ``test_cfg.keypoints``):
    :class:`~.instances.InstanceOptions` fields and those of ``KeypointDecodingConfig``:

    Args:
        suppress_invisible (bool): Never answer ``INVISIBLE``.
    """
    task: ClassVar[str] = 'keypoints'
    kind: ClassVar[str] = 'keypoint'
    meta_key: ClassVar[str] = 'keypoint_decoding'
    top_p: float = 0.1
    suppress_invisible: bool = True

    def response_len(self, vocab: Vocabulary) -> int:
        return vocab.keypoints_response_len

    def constraint(self, vocab: Vocabulary) -> Optional[np.ndarray]:
        return vocab.coordinate_constraint(*(() if self.suppress_invisible else (vocab.invisible, )))

    def outputs(self, responses: np.ndarray, token_probs: np.ndarray, boxes_yxyx: np.ndarray, slot: np.ndarray,
                meta: ImageMeta, vocab: Vocabulary, pad_size: Sequence[int]) -> Dict[str, np.ndarray]:
        """``keypoints`` (N, P, 2) float32 ``(x, y)`` in the original image's pixels and ``keypoint_scores`` (N, P)
        float32."""
        keypoints, scores = responses_to_keypoints(responses, token_probs, boxes_yxyx, meta, vocab, pad_size,
                                                   self.num_samples)
        not_answered = np.zeros((1, vocab.num_keypoints, 2), np.float32)  # slot -1
        return dict(keypoints=np.concatenate([keypoints, not_answered])[slot],
                    keypoint_scores=np.concatenate([scores, not_answered[..., 0]])[slot])


def responses_to_keypoints(responses: np.ndarray, token_probs: np.ndarray, boxes_yxyx: np.ndarray, meta: ImageMeta,
                           vocab: Vocabulary, pad_size: Sequence[int],
                           num_samples: int) -> Tuple[np.ndarray, np.ndarray]:
    """K boxes' sampled responses of one image -> their keypoints, as ``keypoint_prediction.responses_to_keypoints``.

    Args:
        responses (np.ndarray): (K * S, 2 P) tokens, S = ``num_samples`` consecutive samples per box.
        token_probs (np.ndarray): (K * S, 2 P) probability of each token.
        boxes_yxyx (np.ndarray): (K, 4) the prompts' boxes, normalised to the frame.
        meta (ImageMeta): The image's place in the frame.
        vocab (Vocabulary): The export's tokens.
        pad_size (Sequence[int]): The frame's (h, w).
        num_samples (int): S.

    Returns:
        tuple: ``keypoints`` (K, P, 2) float32 ``(x, y)`` in the original image's pixels and ``keypoint_scores``
        (K, P) float32.
    """
    points_yx, labelled = vocab.decode_keypoints(responses)
    num_points = vocab.num_keypoints
    points_yx = points_yx.reshape(-1, num_samples, num_points, 2)
    labelled = labelled.reshape(-1, num_samples, num_points, 1).astype(np.float32)
    placed = (points_yx * labelled).sum(1) / np.maximum(labelled.sum(1), 1)
    centres = (boxes_yxyx[:, None, :2] + boxes_yxyx[:, None, 2:]) / 2
    points_yx = np.where(labelled.sum(1) > 0, placed, centres)
    scores = token_probs.reshape(-1, num_samples, num_points, 2).mean((1, 3))
    pixels = frame_points_to_pixels([points_yx.reshape(-1, 2)], pad_size, meta.img_shape, None, meta.scale_factor)[0]
    out_h, out_w = meta.ori_shape
    pixels = pixels.clip(0, (out_w, out_h))  # as the boxes, inside the image
    return pixels.astype(np.float32).reshape(-1, num_points, 2), scores.astype(np.float32)
