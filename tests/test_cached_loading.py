"""CachedLoadImageFromFile: mmcv's image loading, each file decoded once and handed out as a copy."""
import numpy as np
import pytest
from coco_utils import (CATEGORIES, TRAIN_PIPELINE, box, build_dataset, coco_image, recorded_warnings,
                        write_annotations, write_image)
from mmcv.transforms import LoadImageFromFile

from pix2seq_mmdet.datasets import CachedLoadImageFromFile


def load(transform, path):
    return transform(dict(img_path=str(path)))


def test_loads_as_mmcv_then_from_memory_as_a_copy(tmp_path):
    path = tmp_path / 'image.png'
    write_image(path, 20, 30)
    expected = load(LoadImageFromFile(), path)['img']
    cached = CachedLoadImageFromFile()
    first = load(cached, path)
    assert np.array_equal(first['img'], expected) and first['img_shape'] == first['ori_shape'] == (20, 30)
    path.unlink()  # later loads do not read the file
    first['img'][:] = 0  # a transform that edits its image in place
    second = load(cached, path)
    assert np.array_equal(second['img'], expected) and second['img_shape'] == (20, 30)


def test_files_beyond_the_memory_limit_are_read_every_time(tmp_path):
    small, large = tmp_path / 'small.png', tmp_path / 'large.png'
    write_image(small, 10, 10)
    write_image(large, 400, 400)
    cached = CachedLoadImageFromFile(max_cache_mb=0.1)  # 104857 bytes: the 300-byte image, not the 480000-byte one
    load(cached, small), load(cached, large)
    small.unlink(), large.unlink()
    assert load(cached, small)['img'].shape == (10, 10, 3)
    with pytest.raises(FileNotFoundError):
        load(cached, large)


def test_unreadable_files_fail_as_in_mmcv(tmp_path):
    missing = tmp_path / 'missing.png'
    with pytest.raises(FileNotFoundError):
        load(CachedLoadImageFromFile(), missing)
    assert load(CachedLoadImageFromFile(ignore_empty=True), missing) is None


@pytest.mark.parametrize('max_cache_mb', [0, -1])
def test_memory_limit_must_be_positive(max_cache_mb):
    with pytest.raises(ValueError, match='max_cache_mb must be > 0'):
        CachedLoadImageFromFile(max_cache_mb=max_cache_mb)


def test_dataset_still_names_and_skips_a_missing_image(tmp_path):
    write_image(tmp_path / 'good.png', 64, 96)
    write_annotations(tmp_path, dict(images=[coco_image(0, 'good.png'), coco_image(1, 'missing.png')],
                                     annotations=[box(0, 0, [0, 0, 2, 2]), box(1, 1, [0, 0, 2, 2])],
                                     categories=CATEGORIES))
    pipeline = [dict(type='CachedLoadImageFromFile')] + TRAIN_PIPELINE[1:]
    dataset = build_dataset(tmp_path, 'ann.json', pipeline)
    result, messages = recorded_warnings(dataset.prepare_data, 1)
    assert result is None and 'missing.png (id 1)' in messages and 'does not exist' in messages
    assert dataset.prepare_data(0)['inputs'].shape == (3, 64, 96)
