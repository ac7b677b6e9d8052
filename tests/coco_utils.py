"""Shared by the dataset and hook tests: small COCO files and images written on the fly."""
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
from mmdet.registry import DATASETS

import pix2seq_mmdet  # noqa: F401  (registers Pix2SeqCocoDataset)

CLASSES = ('circle', 'square', 'triangle', 'star')
CATEGORIES = [dict(id=index + 1, name=name) for index, name in enumerate(CLASSES)]
TRAIN_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='PackDetInputs')]
TEST_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), keep_ratio=True),
                 dict(type='PackDetInputs')]


def write_image(path: Path, height: int, width: int, channels: int = 3) -> None:
    shape = (height, width) if channels == 1 else (height, width, channels)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))


def coco_image(image_id: int, file_name: str, width: int = 96, height: int = 64) -> dict:
    return dict(id=image_id, file_name=file_name, width=width, height=height)


def box(annotation_id: int, image_id: int, bbox, category_id: int = 1, iscrowd: int = 0) -> dict:
    return dict(id=annotation_id, image_id=image_id, category_id=category_id, bbox=bbox, area=100.0, iscrowd=iscrowd)


def write_annotations(root: Path, content, name: str = 'ann.json') -> str:
    path = root / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def build_dataset(root: Path, ann_file: str, pipeline=(), test_mode: bool = False):
    return DATASETS.build(dict(type='Pix2SeqCocoDataset', data_root=str(root), ann_file=ann_file,
                               data_prefix=dict(img=''), metainfo=dict(classes=CLASSES), test_mode=test_mode,
                               filter_cfg=dict(filter_empty_gt=False), pipeline=list(pipeline)))


def recorded_warnings(function, *args, **kwargs):
    """The result of ``function`` and the text of every warning it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = function(*args, **kwargs)
    return result, '\n'.join(str(warning.message) for warning in caught)
