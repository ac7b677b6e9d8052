"""Tests of the synthetic dataset generator (pix2seq_mmdet.datasets.synthetic and its command line,
tools/generate_synthetic.py) and the curve plotter."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, load_script
from pix2seq_mmdet.datasets import synthetic

GENERATOR = REPO_ROOT / 'tools' / 'generate_synthetic.py'
PLOTTER = REPO_ROOT / 'tools' / 'analysis_tools' / 'plot_curve.py'
EXPECTED_CLASSES = ('circle', 'square', 'triangle', 'star')
NUM_TRAIN, NUM_VAL, IMG_SIZE = 12, 4, 96
# Modification time planted on generated files to detect rewrites independently of the filesystem's time resolution.
OLD_MTIME = 1_000_000_000


def run_generator(out_dir, *extra_args):
    """Run the generator's command line into ``out_dir``; return its stdout (fails the test on a non-zero exit)."""
    command = [sys.executable, str(GENERATOR), '--out-dir', str(out_dir), *extra_args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def generate(out_dir, preset='easy', seed=3, num_train=NUM_TRAIN, num_val=NUM_VAL, img_size=IMG_SIZE, force=False):
    """:func:`synthetic.generate_dataset` into ``out_dir`` (``img_size`` None: the preset draws the sizes)."""
    return synthetic.generate_dataset(Path(out_dir), preset, num_train, num_val, img_size, seed, force=force)


def ann_path(out_dir, split):
    """Path of one split's annotation file."""
    return Path(out_dir) / 'annotations' / f'instances_{split}.json'


@pytest.fixture(scope='module', params=['easy', 'hard'])
def dataset(request, tmp_path_factory):
    """A small generated dataset per preset: ``(preset, out_dir)``."""
    out_dir = tmp_path_factory.mktemp(f'synthetic_{request.param}')
    generate(out_dir, request.param)
    return request.param, out_dir


def test_classes_constant():
    assert synthetic.CLASSES == EXPECTED_CLASSES


@pytest.mark.parametrize('split, num_images', [('train', NUM_TRAIN), ('val', NUM_VAL)])
def test_annotations_are_valid_coco(dataset, split, num_images):
    from pycocotools.coco import COCO

    preset, out_dir = dataset
    coco = COCO(str(ann_path(out_dir, split)))
    assert coco.dataset['info']['generation_params']['preset'] == preset
    assert coco.dataset['licenses'] == []
    assert [(cat['id'], cat['name']) for cat in coco.dataset['categories']] == list(enumerate(EXPECTED_CLASSES, 1))
    assert all(cat['supercategory'] for cat in coco.dataset['categories'])
    assert len(coco.getImgIds()) == num_images
    assert len(coco.getAnnIds()) == len(coco.dataset['annotations']), 'annotation ids are not unique'

    for image_info in coco.dataset['images']:
        assert (image_info['width'], image_info['height']) == (IMG_SIZE, IMG_SIZE)
        image = cv2.imread(str(out_dir / split / image_info['file_name']))
        assert image is not None and image.shape == (IMG_SIZE, IMG_SIZE, 3)

    for ann in coco.dataset['annotations']:
        x, y, w, h = ann['bbox']
        assert all(isinstance(v, float) for v in ann['bbox'])
        assert w > 0 and h > 0 and ann['area'] > 0
        assert 0 <= x and 0 <= y and x + w <= IMG_SIZE and y + h <= IMG_SIZE
        assert ann['area'] <= w * h
        assert ann['iscrowd'] == 0 and ann['category_id'] in coco.getCatIds()
        assert ann['image_id'] in coco.imgs
        polygon = np.array(ann['segmentation'][0]).reshape(-1, 2)
        assert len(polygon) >= 3
        assert np.all(polygon >= 0) and np.all(polygon <= IMG_SIZE)
        # The outline and the box of the drawn pixels agree (a sharp star tip may lose about a pixel).
        np.testing.assert_allclose(polygon.min(axis=0), [x, y], atol=1.5)
        np.testing.assert_allclose(polygon.max(axis=0), [x + w, y + h], atol=1.5)


@pytest.mark.parametrize('height, width', [(64, 64), (64, 100), (100, 64)])
@pytest.mark.parametrize('category', EXPECTED_CLASSES)
def test_box_is_tight_around_drawn_pixels_and_clipped(category, height, width):
    generator = synthetic
    # Centred near the bottom-left corner, so part of the shape falls outside the image.
    outline = generator.shape_outline(category, centre=(3.0, height - 6.0), radius=15.0, rotation=0.4)
    mask = generator.rasterise(outline, height, width) >= 0.5
    assert mask.shape == (height, width)
    ann = generator.annotate(mask, outline)
    ys, xs = np.nonzero(mask)
    assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert ann['bbox'][0] == 0 and ann['bbox'][1] + ann['bbox'][3] == height
    assert ann['area'] == mask.sum()
    polygon = np.array(ann['segmentation'][0]).reshape(-1, 2)
    assert polygon[:, 0].min() == 0 and polygon[:, 1].max() == height
    assert np.all(polygon >= 0) and np.all(polygon <= (width, height))


@pytest.mark.parametrize('height, width', [(40, 90), (90, 40)])
def test_polygon_is_clipped_to_a_non_square_image(height, width):
    generator = synthetic
    # A square centred near the bottom-right corner, cut by both the right and the bottom border.
    outline = generator.shape_outline('square', centre=(width - 3.0, height - 3.0), radius=12.0, rotation=0.3)
    mask = generator.rasterise(outline, height, width) >= 0.5
    ann = generator.annotate(mask, outline)
    x, y, w, h = ann['bbox']
    assert x + w == width and y + h == height
    polygon = np.array(ann['segmentation'][0]).reshape(-1, 2)
    assert polygon[:, 0].max() == width and polygon[:, 1].max() == height
    assert np.all(polygon >= 0) and np.all(polygon <= (width, height))


def test_images_hold_several_objects(dataset):
    from pycocotools.coco import COCO

    _, out_dir = dataset
    coco = COCO(str(ann_path(out_dir, 'train')))
    objects_per_image = [len(coco.getAnnIds(imgIds=image_id)) for image_id in coco.getImgIds()]
    assert max(objects_per_image) >= 2


def test_command_line_writes_the_librarys_dataset_prints_its_summary_and_reuses_it(tmp_path):
    args = ['--seed', '3', '--num-train', str(NUM_TRAIN), '--num-val', str(NUM_VAL), '--img-size', str(IMG_SIZE)]
    stdout = run_generator(tmp_path / 'cli', *args)
    assert 'Classes:' in stdout and all(name in stdout for name in EXPECTED_CLASSES)
    assert f'  train: {NUM_TRAIN} images' in stdout and f'  val: {NUM_VAL} images' in stdout
    generate(tmp_path / 'library')
    assert dataset_sha256(tmp_path / 'cli') == dataset_sha256(tmp_path / 'library')
    assert 'up to date' in run_generator(tmp_path / 'cli', *args)


def test_same_seed_gives_identical_dataset(tmp_path):
    first, second, other_seed = tmp_path / 'first', tmp_path / 'second', tmp_path / 'other_seed'
    generate(first, seed=5)
    generate(second, seed=5)
    generate(other_seed, seed=6)
    for split in ('train', 'val'):
        assert ann_path(first, split).read_bytes() == ann_path(second, split).read_bytes()
        for image_file in sorted((first / split).glob('*.png')):
            assert image_file.read_bytes() == (second / split / image_file.name).read_bytes()
    first_train = json.loads(ann_path(first, 'train').read_text())
    first_val = json.loads(ann_path(first, 'val').read_text())
    other_train = json.loads(ann_path(other_seed, 'train').read_text())
    assert first_train['annotations'] != other_train['annotations']
    assert first_train['annotations'][:len(first_val['annotations'])] != first_val['annotations'], \
        'train and val should come from different random streams'


def test_second_run_does_not_rewrite(tmp_path):
    sizes = dict(num_train=3, num_val=2, img_size=64)
    assert generate(tmp_path, **sizes) is not None
    ann_files = [ann_path(tmp_path, split) for split in ('train', 'val')]
    for ann_file in ann_files:
        os.utime(ann_file, (OLD_MTIME, OLD_MTIME))

    assert generate(tmp_path, **sizes) is None  # up to date
    assert [ann_file.stat().st_mtime for ann_file in ann_files] == [OLD_MTIME, OLD_MTIME]

    generate(tmp_path, **sizes, force=True)
    assert all(ann_file.stat().st_mtime != OLD_MTIME for ann_file in ann_files)

    generate(tmp_path, **dict(sizes, num_val=1))
    assert len(json.loads(ann_path(tmp_path, 'val').read_text())['images']) == 1
    assert len(list((tmp_path / 'val').glob('*.png'))) == 1, 'stale images of the previous run were left behind'


# sha256 of a small set written by the generator before the `varied` preset was added (seed 3, 6 train / 3 val
# images, --img-size 96): of the two annotation files' bytes, and of every image's decoded pixels. Adding presets or
# refactoring must not change what `easy` and `hard` draw; a deliberate change updates these values (and
# GENERATOR_VERSION, so stale datasets are regenerated).
PINNED_SHA256 = {
    'easy': ('756b4ba44d9a3991820a02205e51c1d4f69982a68e62040ff3f46c74ca8a365a',
             '745fe3c05930e73b658769326a3a0f77ea3c39a78fa5a2656bac59000181d144'),
    'hard': ('27a56010b397023a4ff8ad3951a585c6891e3ea594a3bc0ea66732cc55d35f6c',
             '78298edd5f6c88ad8a31986fb0c648e85a1af5fb03729e96da3af180cf28babc'),
}


def dataset_sha256(out_dir):
    """``(annotations, images)`` sha256 of a generated dataset: annotation file bytes, decoded image pixels."""
    annotations, images = hashlib.sha256(), hashlib.sha256()
    for split in ('train', 'val'):
        annotations.update(ann_path(out_dir, split).read_bytes())
        for image_file in sorted((Path(out_dir) / split).glob('*.png')):
            image = cv2.imread(str(image_file), cv2.IMREAD_UNCHANGED)
            images.update(repr(image.shape).encode())
            images.update(image.tobytes())
    return annotations.hexdigest(), images.hexdigest()


@pytest.mark.parametrize('preset', sorted(PINNED_SHA256))
def test_easy_and_hard_output_is_pinned(tmp_path, preset):
    generate(tmp_path, preset, seed=3, num_train=6, num_val=3, img_size=96)
    assert dataset_sha256(tmp_path) == PINNED_SHA256[preset]


VARIED_SHORT_SIDE, VARIED_MAX_ASPECT = (160, 320), 2.0


@pytest.fixture(scope='module')
def varied_dataset(tmp_path_factory):
    """A small `varied` dataset (40 train, 8 val images): ``(out_dir, {split: COCO dict})``."""
    out_dir = tmp_path_factory.mktemp('synthetic_varied')
    generate(out_dir, 'varied', seed=3, num_train=40, num_val=8, img_size=None)
    return out_dir, {split: json.loads(ann_path(out_dir, split).read_text()) for split in ('train', 'val')}


def test_varied_images_have_their_own_sizes_within_the_preset_ranges(varied_dataset):
    out_dir, cocos = varied_dataset
    sizes = []
    for split, coco in cocos.items():
        for image_info in coco['images']:
            image = cv2.imread(str(out_dir / split / image_info['file_name']))
            assert image is not None and image.shape == (image_info['height'], image_info['width'], 3)
            sizes.append((image_info['height'], image_info['width']))
    short = np.array([min(size) for size in sizes])
    aspect = np.array([max(size) / min(size) for size in sizes])
    assert np.all((short >= VARIED_SHORT_SIDE[0]) & (short <= VARIED_SHORT_SIDE[1]))
    assert np.all((aspect >= 1) & (aspect <= VARIED_MAX_ASPECT))
    assert len(set(sizes)) > 0.8 * len(sizes), 'images should have their own sizes'
    assert short.min() < 200 and short.max() > 280
    assert aspect.min() < 1.2 and aspect.max() > 1.7
    assert any(height > width for height, width in sizes) and any(width > height for height, width in sizes)


def test_varied_boxes_lie_inside_their_images_and_span_the_size_range(varied_dataset):
    _, cocos = varied_dataset
    relative_sizes, objects_per_image = [], []
    for coco in cocos.values():
        images = {image['id']: image for image in coco['images']}
        objects_per_image += [sum(ann['image_id'] == image_id for ann in coco['annotations']) for image_id in images]
        for ann in coco['annotations']:
            image = images[ann['image_id']]
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and 0 < ann['area'] <= w * h
            assert 0 <= x and 0 <= y and x + w <= image['width'] and y + h <= image['height']
            polygon = np.array(ann['segmentation'][0]).reshape(-1, 2)
            assert np.all(polygon >= 0) and np.all(polygon <= (image['width'], image['height']))
            relative_sizes.append(max(w, h) / min(image['width'], image['height']))
    relative_sizes = np.array(relative_sizes)
    # log-uniform diameters of 8 %-60 % of the short side: the box's longer side is close to the diameter
    assert relative_sizes.max() <= 0.62
    assert np.sum(relative_sizes < 0.15) >= 5 and np.sum(relative_sizes > 0.4) >= 5
    assert max(objects_per_image) <= 6 and np.mean(objects_per_image) > 2


def test_varied_is_deterministic_for_a_seed(tmp_path):
    sizes = dict(num_train=3, num_val=2, img_size=None)
    first, second, other_seed = tmp_path / 'first', tmp_path / 'second', tmp_path / 'other_seed'
    generate(first, 'varied', seed=5, **sizes)
    generate(second, 'varied', seed=5, **sizes)
    generate(other_seed, 'varied', seed=6, **sizes)
    assert dataset_sha256(first) == dataset_sha256(second)
    for split in ('train', 'val'):
        for image_file in sorted((first / split).glob('*.png')):
            assert image_file.read_bytes() == (second / split / image_file.name).read_bytes()
    assert dataset_sha256(first)[1] != dataset_sha256(other_seed)[1]


def test_command_line_draws_varied_sizes_and_rejects_img_size_for_them(tmp_path):
    command = [sys.executable, str(GENERATOR), '--out-dir', str(tmp_path), '--preset', 'varied', '--img-size', '128']
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and '--img-size' in result.stderr
    assert not ann_path(tmp_path, 'train').exists()
    assert 'short side 160-320px' in run_generator(tmp_path, '--preset', 'varied', '--num-train', '2', '--num-val', '1')


def test_varied_config_trains_and_evaluates_on_varied_images(tmp_path):
    """The varied config's pipeline (resize into the 128 frame, keep the ratio; the model pads) on a small varied set:
    2 training iterations and a CocoMetric validation."""
    pytest.importorskip('mmdet')
    from mmengine.config import Config
    from mmengine.runner import Runner

    root = tmp_path / 'data'
    generate(root, 'varied', seed=1, num_train=32, num_val=16, img_size=None)
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'pix2seq_r18-tiny_1xb16_34e_synthetic-varied.py'))
    for dataloader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert dataloader.dataset.data_root == 'data/synthetic_varied/'
    assert cfg.val_evaluator.ann_file == cfg.test_evaluator.ann_file == \
        'data/synthetic_varied/annotations/instances_val.json'
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work'), 'train_dataloader.dataset.data_root': f'{root}/',
        'val_dataloader.dataset.data_root': f'{root}/',
        'val_evaluator.ann_file': f'{root}/annotations/instances_val.json',
        'test_dataloader.dataset.data_root': f'{root}/',
        'test_evaluator.ann_file': f'{root}/annotations/instances_val.json',
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1})
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert runner.val_loop.evaluator.metrics[0].__class__.__name__ == 'CocoMetric'

    # The ground truth, written as the model's tokens in the padded 128 frame and decoded like the model's output,
    # scores close to 1 with CocoMetric: frame coordinates map back to each image's own size.
    for batch in runner.val_dataloader:
        for data_sample in runner.model.data_preprocessor(batch, False)['data_samples']:
            height, width = data_sample.ori_shape
            scaled_height, scaled_width = data_sample.img_shape
            assert data_sample.pad_shape == (128, 128) and max(scaled_height, scaled_width) == 128
            assert abs(scaled_width / scaled_height - width / height) < 0.05 * width / height
    ceiling = load_script(REPO_ROOT / 'tools' / 'analysis_tools' / 'vocabulary_ceiling.py')
    metrics = ceiling.vocabulary_ceiling(cfg)
    assert metrics['coco/bbox_mAP_50'] > 0.95 and metrics['coco/bbox_mAP'] > 0.7, metrics


@pytest.mark.parametrize('split', ['train', 'val'])
def test_mmdet_coco_dataset_matches_json(dataset, split):
    pytest.importorskip('mmdet')
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules

    register_all_modules()
    _, out_dir = dataset
    coco = json.loads(ann_path(out_dir, split).read_text())
    boxes_by_image = {image['id']: [] for image in coco['images']}
    labels_by_image = {image['id']: [] for image in coco['images']}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        boxes_by_image[ann['image_id']].append([x, y, x + w, y + h])
        labels_by_image[ann['image_id']].append(ann['category_id'] - 1)

    mmdet_dataset = CocoDataset(
        data_root=str(out_dir),
        ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'),
        metainfo=dict(classes=EXPECTED_CLASSES),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs'),
        ])
    assert len(mmdet_dataset) == len(coco['images'])
    for index in range(len(mmdet_dataset)):
        item = mmdet_dataset[index]
        data_sample = item['data_samples']
        image_id = data_sample.img_id
        assert tuple(item['inputs'].shape) == (3, IMG_SIZE, IMG_SIZE)
        gt_boxes = data_sample.gt_instances.bboxes.tensor.numpy()
        expected_boxes = np.array(boxes_by_image[image_id], dtype=np.float32).reshape(-1, 4)
        np.testing.assert_allclose(gt_boxes, expected_boxes)
        assert data_sample.gt_instances.labels.tolist() == labels_by_image[image_id]
        assert len(data_sample.ignored_instances) == 0


def write_fake_scalars(scalars_file):
    """Write an mmengine-style scalars.json: 2 epochs of 5 training logs every 10 iterations, a val after each."""
    lines = []
    for epoch in (1, 2):
        for log_index in range(1, 6):
            iteration = (epoch - 1) * 50 + log_index * 10
            lines.append(dict(lr=1e-4, data_time=0.01, loss=2.0 / iteration ** 0.5, time=0.2, epoch=epoch,
                              iter=iteration, memory=100, step=iteration))
        lines.append({'coco/bbox_mAP': 0.2 * epoch, 'coco/bbox_mAP_50': 0.3 * epoch, 'coco/bbox_mAP_s': -1.0,
                      'data_time': 0.01, 'time': 0.1, 'step': epoch})
    scalars_file.parent.mkdir(parents=True)
    scalars_file.write_text(''.join(json.dumps(line) + '\n' for line in lines))


def test_plot_curve_from_work_dir(tmp_path):
    work_dir = tmp_path / 'work_dir'
    write_fake_scalars(work_dir / '20250101_000000' / 'vis_data' / 'scalars.json')
    result = subprocess.run([sys.executable, str(PLOTTER), str(work_dir), '--title', 'fake run'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    curve = cv2.imread(str(work_dir / 'curve.png'))
    assert curve is not None and curve.shape[1] > curve.shape[0] > 100
    assert curve.std() > 0, 'the figure is blank'


def test_plot_curve_places_validation_at_last_training_iter(tmp_path):
    scalars_file = tmp_path / 'run' / 'vis_data' / 'scalars.json'
    write_fake_scalars(scalars_file)
    plot_curve = load_script(PLOTTER)
    train_iters, losses, val_iters, val_maps = plot_curve.load_curves(scalars_file)
    assert train_iters == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert len(losses) == len(train_iters)
    assert val_iters == [50, 100]
    assert val_maps == {'coco/bbox_mAP': [0.2, 0.4], 'coco/bbox_mAP_50': [0.3, 0.6]}

    out_file = tmp_path / 'plots' / 'curve.png'
    assert plot_curve.main([str(scalars_file), '--out', str(out_file)]) == 0
    assert out_file.stat().st_size > 0
