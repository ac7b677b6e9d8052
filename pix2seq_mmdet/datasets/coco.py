"""mmdet's ``CocoDataset`` with checked annotations and named, survivable image failures."""
import warnings
from functools import partial
from typing import List, Optional, Sequence

import mmcv
from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS
from mmengine.fileio import get, get_file_backend

from .annotations import check_classes_are_categories, check_coco_annotations, read_coco_file


def image_file_problem(path: str, backend_args: Optional[dict] = None) -> Optional[str]:
    """Why the image file at ``path`` cannot be used (missing, empty, undecodable), or None when it decodes."""
    if not get_file_backend(path, backend_args=backend_args).exists(path):
        return 'does not exist'
    content = get(path, backend_args=backend_args)
    if len(content) == 0:
        return 'is empty (0 bytes)'
    try:
        image = mmcv.imfrombytes(content)
    except Exception:  # noqa: BLE001  (any decoder failure means the same thing here)
        image = None
    if image is None:
        return f'cannot be decoded ({len(content)} bytes): it is truncated, corrupt or not an image'
    return None


class CheckedCOCO(COCO):
    """mmdet's COCO API over an annotation file read and checked first.

    Args:
        local_path (str): The file on disk.
        ann_file (str): Its name in messages (the dataset's ``ann_file``).
        require_annotations (bool): Whether the ``annotations`` section must exist (training).
        classes (Sequence[str]): The dataset's classes; each must be a category of the file.
    """

    def __init__(self, local_path: str, ann_file: str, require_annotations: bool, classes: Sequence[str]) -> None:
        annotations = read_coco_file(local_path, ann_file)
        check_coco_annotations(annotations, ann_file, require_annotations=require_annotations)
        check_classes_are_categories(classes, annotations['categories'], ann_file)
        super().__init__()
        self.dataset = annotations
        self.createIndex()
        self.img_ann_map, self.cat_img_map = self.imgToAnns, self.catToImgs


@DATASETS.register_module()
class Pix2SeqCocoDataset(CocoDataset):
    """``CocoDataset`` that checks its annotation file and survives a bad image.

    Annotations: the file is read and checked by
    :func:`~pix2seq_mmdet.datasets.annotations.check_coco_annotations` (errors naming the file and field for a
    malformed file, warned skips for unusable annotations, clipping of boxes partly
    outside their image), and every class of ``metainfo.classes`` must be a category of the file.  Then mmdet's
    parsing runs unchanged.

    Images: when the pipeline fails on an image whose file is missing, empty or undecodable, training warns with the
    file and draws another image in its place (mmengine's refetch); testing raises ``OSError`` naming the file.  Any
    other pipeline error is re-raised with a note naming the image.
    """

    def load_data_list(self) -> List[dict]:
        """mmdet's ``CocoDataset.load_data_list``, reading the file through :class:`CheckedCOCO`."""
        self.COCOAPI = partial(CheckedCOCO, ann_file=self.ann_file, require_annotations=not self.test_mode,
                               classes=self.metainfo['classes'])
        return super().load_data_list()

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing, keeping each instance's COCO ``keypoints`` (read by
        :class:`~pix2seq_mmdet.datasets.keypoints.LoadKeypoints`) when the file has them."""
        data_info = super().parse_data_info(raw_data_info)
        annotations = raw_data_info['raw_ann_info']
        if not any('keypoints' in annotation for annotation in annotations):
            return data_info
        # the annotations mmdet kept, in its order: each parsed alone keeps its instance or not
        kept = [annotation for annotation in annotations if super(Pix2SeqCocoDataset, self).parse_data_info(
            dict(raw_img_info=raw_data_info['raw_img_info'], raw_ann_info=[annotation]))['instances']]
        for instance, annotation in zip(data_info['instances'], kept):
            if 'keypoints' in annotation:
                instance['keypoints'] = annotation['keypoints']
        return data_info

    def prepare_data(self, idx: int) -> Optional[dict]:
        try:
            return super().prepare_data(idx)
        except Exception as error:
            data_info = self.get_data_info(idx)
            where = f'image {data_info["img_path"]} (id {data_info["img_id"]}) of {self.ann_file}'
            problem = image_file_problem(data_info['img_path'], self.backend_args)
            if problem is None:
                error.add_note(f'while preparing {where}')
                raise
            if self.test_mode:
                raise OSError(f'{where} {problem}: restore the file or remove the image from the annotation file') \
                    from error
            warnings.warn(f'{where} {problem}: skipped, another training image is drawn in its place')
            return None
