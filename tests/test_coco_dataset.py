"""Pix2SeqCocoDataset: checked annotation files and named, survivable image failures."""
from pathlib import Path

import cv2
import pytest
from coco_utils import (CATEGORIES, TEST_PIPELINE, TRAIN_PIPELINE, box, build_dataset, coco_image, recorded_warnings,
                        write_annotations, write_image)


# ---------------------------------------------------------------------------------------------------------- images
@pytest.fixture(scope='module')
def image_root(tmp_path_factory) -> Path:
    """One good image and one of every kind of bad or unusual image file, each with one box."""
    root = tmp_path_factory.mktemp('images')
    write_image(root / 'good.png', 64, 96)
    write_image(root / 'gray.png', 64, 96, channels=1)
    write_image(root / 'rgba.png', 64, 96, channels=4)
    write_image(root / 'tiny.png', 1, 1)
    write_image(root / 'wide.png', 2, 3000)
    write_image(root / 'source.jpg', 64, 96)
    (root / 'empty.png').write_bytes(b'')
    (root / 'truncated.png').write_bytes((root / 'good.png').read_bytes()[:300])
    (root / 'truncated.jpg').write_bytes((root / 'source.jpg').read_bytes()[:300])
    (root / 'text.jpg').write_text('not an image')
    sizes = {'tiny.png': (1, 1), 'wide.png': (3000, 2)}
    names = ['good.png', 'missing.png', 'empty.png', 'truncated.png', 'truncated.jpg', 'text.jpg', 'gray.png',
             'rgba.png', 'tiny.png', 'wide.png']
    images = [coco_image(index, name, *sizes.get(name, (96, 64))) for index, name in enumerate(names)]
    annotations = [box(index, index, [0, 0, 1, 1] if index == 8 else [0, 0, 2, 2]) for index in range(len(names))]
    write_annotations(root, dict(images=images, annotations=annotations, categories=CATEGORIES))
    return root


def index_of(dataset, name: str) -> int:
    return next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'].endswith(name))


@pytest.mark.parametrize('name, problem', [('missing.png', 'does not exist'), ('empty.png', r'is empty \(0 bytes\)'),
                                           ('truncated.png', 'cannot be decoded'),
                                           ('truncated.jpg', 'cannot be decoded'), ('text.jpg', 'cannot be decoded')])
def test_bad_image_file_is_skipped_in_training_and_an_error_in_testing(image_root, name, problem):
    dataset = build_dataset(image_root, 'ann.json', TRAIN_PIPELINE)
    result, messages = recorded_warnings(dataset.prepare_data, index_of(dataset, name))
    assert result is None
    assert f'{name} (id {index_of(dataset, name)})' in messages and 'skipped' in messages
    assert problem.replace('\\', '') in messages
    # mmengine's refetch: the sample slot is filled by another image
    sample, _ = recorded_warnings(dataset.__getitem__, index_of(dataset, name))
    assert not sample['data_samples'].img_path.endswith(name)
    test_set = build_dataset(image_root, 'ann.json', TEST_PIPELINE, test_mode=True)
    with pytest.raises(OSError, match=f'{name}.*{problem}.*restore the file or remove the image'):
        test_set.prepare_data(index_of(test_set, name))


@pytest.mark.parametrize('name', ['gray.png', 'rgba.png', 'tiny.png'])
def test_grayscale_four_channel_and_one_pixel_images_load_as_three_channels(image_root, name):
    for pipeline, test_mode in ((TRAIN_PIPELINE, False), (TEST_PIPELINE, True)):
        dataset = build_dataset(image_root, 'ann.json', pipeline, test_mode=test_mode)
        packed = dataset.prepare_data(index_of(dataset, name))
        assert packed['inputs'].shape[0] == 3


def test_extreme_aspect_ratio_error_names_the_image(image_root):
    """Resizing a 3000 x 2 image to 128 px makes it 0 px high: OpenCV's error, with a note naming the image."""
    dataset = build_dataset(image_root, 'ann.json', TEST_PIPELINE, test_mode=True)
    with pytest.raises(cv2.error) as error:
        dataset.prepare_data(index_of(dataset, 'wide.png'))
    assert any('while preparing image' in note and 'wide.png (id 9)' in note for note in error.value.__notes__)


# ----------------------------------------------------------------------------------------------------- annotations
@pytest.mark.parametrize('content, message', [
    ('{"images": [', r'ann.json is not valid JSON: Expecting value at line 1, column 13'),
    ('[1, 2]', 'holds a JSON list'),
    (dict(annotations=[], categories=CATEGORIES), r'has no images section'),
    (dict(images=[], categories=CATEGORIES), r'has no annotations section'),
    (dict(images=[], annotations=[]), r'has no categories section'),
    (dict(images=[coco_image(1, 'a.png'), coco_image(1, 'b.png')], annotations=[], categories=CATEGORIES),
     r'image id 1 is used by both a.png and b.png'),
    (dict(images=[dict(id=1, file_name='a.png')], annotations=[], categories=CATEGORIES), r'images\[0\] lacks width'),
    (dict(images=[coco_image(1, 'a.png', width=0)], annotations=[], categories=CATEGORIES), r'has width 0'),
    (dict(images=[coco_image(1, 'a.png')], annotations=[box(7, 1, [0, 0, 5, 5]), box(7, 1, [1, 1, 5, 5])],
          categories=CATEGORIES), r'annotation id 7 appears twice'),
])
def test_malformed_annotation_file_is_an_error_naming_the_field(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        build_dataset(tmp_path, write_annotations(tmp_path, content))


def test_test_files_without_annotations_load(tmp_path):
    dataset = build_dataset(tmp_path, write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png')],
                                                                       categories=CATEGORIES)), test_mode=True)
    assert len(dataset) == 1 and dataset.get_data_info(0)['instances'] == []


def test_unusable_annotations_are_skipped_with_warnings_and_partial_boxes_clipped(tmp_path):
    annotations = [
        box(1, 1, [10, 10, 20, 20]),  # fine
        box(2, 1, [10, 10, -5, 20]),  # negative width
        box(3, 1, [10, 10, 20, 0]),  # zero height
        box(4, 1, [200, 10, 20, 20]),  # entirely right of the 96-px image
        box(5, 1, [float('nan'), 10, 20, 20]),  # NaN
        box(6, 1, [10, 10, float('inf'), 20]),  # inf
        box(7, 1, [10, 10, 20, 20], category_id=99),  # unknown category
        box(8, 42, [10, 10, 20, 20]),  # unknown image
        box(9, 1, [10, 10, 20]),  # three numbers
        box(10, 1, [-10, 50, 30, 30]),  # partly outside: clipped to [0, 50, 20, 14]
        box(11, 1, [30, 30, 10, 10], iscrowd=1),  # crowd: kept, ignored
    ]
    path = write_annotations(tmp_path, dict(images=[coco_image(1, 'a.png'), coco_image(2, 'empty.png')],
                                            annotations=annotations, categories=CATEGORIES))
    dataset, messages = recorded_warnings(build_dataset, tmp_path, path)
    for expected in ('skipped 2 annotation(s) with a bbox width or height below 1 pixel, e.g. id 2 (image a.png',
                     'skipped 1 annotation(s) with a bbox with less than 1 pixel inside its image, e.g. id 4',
                     'skipped 3 annotation(s) with a bbox that is not four finite numbers',
                     'id 5 (image a.png, bbox [nan, 10, 20, 20])', 'id 6 (image a.png, bbox [10, 10, inf, 20])',
                     'skipped 1 annotation(s) with a category_id that is not in "categories", e.g. id 7',
                     'skipped 1 annotation(s) with an image_id that is not in "images", e.g. id 8 (image ?',
                     'clipped 1 box(es) partly outside their image to the image, e.g. id 10 (image a.png, '
                     'bbox [0, 50, 20, 14])'):
        assert expected in messages
    assert messages.count('ann.json') == 6
    first, empty = dataset.get_data_info(0), dataset.get_data_info(1)
    assert [instance['bbox'] for instance in first['instances']] == [[10, 10, 30, 30], [0, 50, 20, 64],
                                                                     [30, 30, 40, 40]]
    assert [instance['ignore_flag'] for instance in first['instances']] == [0, 0, 1]
    assert empty['img_path'].endswith('empty.png') and empty['instances'] == []


def test_dataset_classes_must_be_categories_of_the_file(tmp_path):
    categories = [dict(id=1, name='circle'), dict(id=2, name='box')]
    path = write_annotations(tmp_path, dict(images=[], annotations=[], categories=categories))
    with pytest.raises(ValueError, match=r"classes \['square', 'triangle', 'star'\] are not category names.*"
                                         r"\['circle', 'box'\]"):
        build_dataset(tmp_path, path)
