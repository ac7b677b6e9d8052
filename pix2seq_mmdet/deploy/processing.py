"""Pre- and post-processing of the ONNX runtime, in numpy and OpenCV: images into the export's frame as mmdet's
test pipeline and ``Pix2SeqDataPreprocessor`` put them, decoded tokens into detections as
``Pix2SeqHead.tokens_to_instances`` does."""
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .metadata import Vocabulary

ImageLike = Union[str, os.PathLike, np.ndarray]


@dataclass
class Detections:
    """One image's detections, in the original image's pixels.

    Attributes:
        bboxes (np.ndarray): (N, 4) float32 ``x1, y1, x2, y2``.
        scores (np.ndarray): (N,) float32, descending.
        labels (np.ndarray): (N,) int64, 0-based class indices (``Pix2SeqRuntime.class_names``).
        masks (np.ndarray, optional): (N, H, W) bool instance masks at the original image's size (an export with
            the instance segmentation task), else None.
        keypoints (np.ndarray, optional): (N, P, 2) float32 ``x, y`` of each detection's P keypoints (an export with
            the keypoints task), else None.
        keypoint_scores (np.ndarray, optional): (N, P) float32, each keypoint's score, with ``keypoints``.
    """
    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None
    keypoint_scores: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ImageMeta:
    """Where one preprocessed image sits in the frame: ``ori_shape`` and ``img_shape`` (resized) as (h, w),
    ``scale_factor`` as (w_scale, h_scale), like mmdet's metainfo."""
    ori_shape: Tuple[int, int]
    img_shape: Tuple[int, int]
    scale_factor: Tuple[float, float]


def load_image(image: ImageLike) -> np.ndarray:
    """A path (read with OpenCV, BGR) or an (H, W, 3) uint8 BGR array -> the (H, W, 3) uint8 BGR array."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'image {path} not found')
        array = cv2.imread(path, cv2.IMREAD_COLOR)
        if array is None:
            raise ValueError(f'image {path} could not be decoded by OpenCV')
        return array
    if not isinstance(image, np.ndarray):
        raise TypeError(f'an image must be a file path or an (H, W, 3) uint8 BGR numpy array, got '
                        f'{type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'an image array must be uint8 (BGR, as OpenCV reads it), got dtype {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'an image array must be (H, W, 3) BGR, got shape {image.shape}')
    if min(image.shape[:2]) < 1:
        raise ValueError(f'an image array must not be empty, got shape {image.shape}')
    return image


def rescale_size(width: int, height: int, scale: Sequence[int], keep_ratio: bool) -> Tuple[int, int]:
    """mmcv's ``rescale_size`` (keep_ratio) or a fixed size: the (new_w, new_h) of mmdet's ``Resize``."""
    if not keep_ratio:
        return int(scale[0]), int(scale[1])
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


INTERPOLATIONS = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
                  'area': cv2.INTER_AREA, 'lanczos': cv2.INTER_LANCZOS4}


def as_image_list(images) -> list:
    """One image or a non-empty list of images -> a list."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError('no images given')
        return list(images)
    return [images]


def preprocess(images: Sequence[ImageLike], spec: dict) -> Tuple[np.ndarray, List[ImageMeta]]:
    """Images -> (B, 3, H, W) float32 batch in the frame and each image's :class:`ImageMeta`, as ``pix2seq.json``'s
    ``preprocess`` ``spec`` describes: the test pipeline's ``Resize`` (mmcv's ``imrescale`` with ``keep_ratio``),
    BGR -> RGB, ``(x - mean) / std``, padding at the bottom and right to ``pad_size`` with ``pad_value``."""
    pad_h, pad_w = spec['pad_size']
    mean = np.asarray(spec['mean'], np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec['std'], np.float32).reshape(-1, 1, 1)
    batch = np.full((len(images), 3, pad_h, pad_w), spec['pad_value'], dtype=np.float32)
    metas = []
    for index, image in enumerate(images):
        image = load_image(image)
        height, width = image.shape[:2]
        resize = spec['resize']
        if resize is not None:
            new_w, new_h = rescale_size(width, height, resize['scale'], resize['keep_ratio'])
            image = cv2.resize(image, (new_w, new_h), interpolation=INTERPOLATIONS[resize['interpolation']])
        new_h, new_w = image.shape[:2]
        if new_h > pad_h or new_w > pad_w:
            raise ValueError(f'an image of {new_h} x {new_w} pixels (after resizing) does not fit in the frame '
                             f'{pad_h} x {pad_w} of this export')
        chw = image.transpose(2, 0, 1)
        if spec['bgr_to_rgb']:
            chw = chw[::-1]
        chw = chw.astype(np.float32)
        if spec['normalize']:
            chw = (chw - mean) / std
        batch[index, :, :new_h, :new_w] = chw
        metas.append(ImageMeta((height, width), (new_h, new_w), (new_w / width, new_h / height)))
    return batch, metas


def postprocess(tokens: np.ndarray, class_probs: np.ndarray, meta: ImageMeta, vocab: Vocabulary,
                pad_size: Sequence[int], classes_per_box: int, max_per_img: int, rescale: bool = True,
                coords: Optional[np.ndarray] = None) -> Detections:
    """One image's tokens (L,), class probabilities (K, C) and read coordinates (L,) -> :class:`Detections`, as
    ``Pix2SeqHead.tokens_to_instances``: malformed slots dropped, ``classes_per_box`` detections per box, boxes
    normalised to the frame ``pad_size``, clipped to the resized image, empty ones dropped, divided by the scale
    factor when ``rescale``, sorted by score, at most ``max_per_img``."""
    boxes_yxyx, valid = vocab.decode_slots(tokens, coords)
    probs = class_probs[valid]
    labels = np.argsort(-probs, axis=-1, kind='stable')[:, :classes_per_box]
    scores = np.take_along_axis(probs, labels, axis=-1).reshape(-1)
    labels = labels.reshape(-1)
    boxes_yxyx = np.repeat(boxes_yxyx[valid], classes_per_box, axis=0)
    pad_h, pad_w = pad_size
    img_h, img_w = meta.img_shape
    bboxes = boxes_yxyx[:, [1, 0, 3, 2]] * np.asarray([pad_w, pad_h, pad_w, pad_h], np.float32)
    bboxes[:, 0::2] = np.clip(bboxes[:, 0::2], 0, img_w)
    bboxes[:, 1::2] = np.clip(bboxes[:, 1::2], 0, img_h)
    inside = (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])
    bboxes, scores, labels = bboxes[inside], scores[inside], labels[inside]
    if rescale:
        bboxes = bboxes / np.asarray(meta.scale_factor * 2, np.float32)
    order = np.argsort(-scores, kind='stable')[:max_per_img]
    return Detections(bboxes[order].astype(np.float32), scores[order].astype(np.float32),
                      labels[order].astype(np.int64))
