"""Pix2Seq v2 keypoints: the vocabulary's tokens, the points through mmdet's pipeline, the training rows, the points
decoded from responses, the synthetic annotations and the COCO keypoint metric."""
import copy
import json

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import MODELS
from mmdet.structures.bbox import HorizontalBoxes

from pix2seq_mmdet.datasets.coco import Pix2SeqCocoDataset
from pix2seq_mmdet.datasets.synthetic import KEYPOINT_NAMES, annotate_keypoints, compass_points, shape_outline
from pix2seq_mmdet.evaluation import CocoKeypointMetric
from pix2seq_mmdet.models.instance_sequences import KeypointSequences
from pix2seq_mmdet.models.keypoint_prediction import KeypointDecodingConfig, responses_to_keypoints
from pix2seq_mmdet.models.tokenizer import PROMPT_LENGTH, Pix2SeqTokenizer
from model_utils import build_v2_model

TASKS = ('detection', 'keypoints')
# a 96 x 64 image with two objects of 3 keypoints: (x, y, v) each
KEYPOINTS = [[10.0, 12, 2, 40, 14, 1, 30, 38, 2], [60.0, 22, 2, 0, 0, 0, 88, 58, 2]]


def kpt_tokenizer(num_keypoints=3, **kwargs):
    return Pix2SeqTokenizer(4, 128, 6, tasks=TASKS, num_keypoints=num_keypoints, **kwargs)


def test_official_keypoint_ids_and_sequence_length():
    # vocab.py: keypoint task 12, INVISIBLE_TOKEN 41; config_multi_task.py: 17 points, max_seq_len 5 + 2 * 17
    tokenizer = Pix2SeqTokenizer(80, 1000, 100, layout='official', class_ids='coco',
                                 tasks=('detection', 'instance_segmentation', 'keypoints'))
    assert tokenizer.task_prompts['keypoints'] == 12 and tokenizer.INVISIBLE == 41
    assert tokenizer.task_seq_len('keypoints') == 5 + 2 * 17
    assert tokenizer.num_positions == max(tokenizer.seq_len, tokenizer.instance_seq_len)
    compact = kpt_tokenizer()
    assert compact.task_prompts['keypoints'] == compact.coord_offset + compact.num_bins + 1
    assert compact.num_positions == compact.seq_len  # 31 > 6 + 6 - 1


def test_keypoint_round_trip_with_unlabelled_points():
    tokenizer = kpt_tokenizer()
    points = torch.tensor([[0.1, 0.2], [0.5, 0.5], [1.0, 0.0]])
    labelled = torch.tensor([True, False, True])
    response = tokenizer.encode_keypoints(points, labelled)
    assert response.shape == (6, ) and response[2:4].tolist() == [tokenizer.INVISIBLE] * 2
    decoded, decoded_labelled = tokenizer.decode_keypoints(response)
    assert decoded_labelled.tolist() == [True, False, True]
    torch.testing.assert_close(decoded[labelled], points[labelled], atol=0.5 / 127, rtol=0)
    with pytest.raises(ValueError, match=r'\(3, 2\)'):
        tokenizer.encode_keypoints(points[:2], labelled[:2])
    with pytest.raises(ValueError, match='num_keypoints'):
        kpt_tokenizer(num_keypoints=0)


def keypoint_results(flip: bool, crop: bool = False, pack: bool = True):
    results = dict(img=np.zeros((64, 96, 3), np.uint8), img_shape=(64, 96), ori_shape=(64, 96), img_path='k.png',
                   img_id=0, gt_bboxes=HorizontalBoxes(torch.tensor([[10.0, 12, 40, 38], [60, 22, 88, 58]])),
                   gt_bboxes_labels=np.array([0, 2]), gt_ignore_flags=np.array([False, False]),
                   instances=[dict(bbox=box, keypoints=points)
                              for box, points in zip([[10.0, 12, 40, 38], [60, 22, 88, 58]], KEYPOINTS)])
    transforms = [dict(type='Resize', scale=(128, 128), keep_ratio=True),
                  dict(type='RandomFlip', prob=1.0 if flip else 0.0)]
    if crop:  # keeps 20 of the 128 x 85 image's columns: at most one object stays
        transforms.append(dict(type='RandomCrop', crop_size=(85, 20), crop_type='absolute'))
    transforms += [dict(type='LoadKeypoints', flip_indices=(0, 2, 1))]
    transforms += [dict(type='PackKeypointDetInputs')] if pack else []
    return Compose(transforms)(results)


@pytest.mark.parametrize('flip', [False, True])
def test_keypoints_follow_resize_and_flip(flip):
    sample = keypoint_results(flip)['data_samples']
    keypoints = sample.gt_instances.keypoints.numpy()
    expected = np.array(KEYPOINTS).reshape(2, 3, 3)
    expected[..., :2] *= sample.metainfo['scale_factor']  # 96 x 64 -> 128 x 85
    if flip:
        expected[..., 0] = sample.metainfo['img_shape'][1] - expected[..., 0]
        expected = expected[:, [0, 2, 1]]
    expected[expected[..., 2] == 0] = 0
    np.testing.assert_allclose(keypoints, expected, atol=1e-4)


def test_keypoint_pipeline_errors_name_the_problem():
    # a crop that drops an object: the kept one keeps its own points, moved by the crop
    np.random.seed(0)
    for _ in range(20):
        cropped = keypoint_results(False, crop=True, pack=False)
        if cropped is not None:  # a crop without any object gives None: draw another
            break
    (label, ) = cropped['gt_bboxes_labels'].tolist()
    offset_x = cropped['homography_matrix'][0, 2]
    expected = np.array(KEYPOINTS[[0, 2].index(label)]).reshape(3, 3)
    expected[:, :2] = expected[:, :2] * cropped['scale_factor'] + [offset_x, 0]
    expected[(expected[:, 0] < 0) | (expected[:, 0] > 20) | (expected[:, 2] == 0)] = 0
    assert cropped['gt_keypoints'].shape == (1, 3, 3) and offset_x < 0
    np.testing.assert_allclose(cropped['gt_keypoints'][0], expected, atol=1e-4)
    with pytest.raises(ValueError, match='matches no annotated instance'):
        load = Compose([dict(type='LoadKeypoints')])
        load(dict(img_shape=(64, 96), img_path='k.png', gt_bboxes=np.array([[50.0, 50, 60, 60]]),
                  instances=[dict(bbox=[0, 0, 10, 10], keypoints=[1, 1, 2]),
                             dict(bbox=[0, 0, 5, 5], keypoints=[1, 1, 2])]))
    results = keypoint_results(True)
    load = Compose([dict(type='LoadKeypoints')])
    flipped = dict(img_shape=(64, 96), img_path='k.png', flip=True, flip_direction='horizontal',
                   instances=[dict(keypoints=KEYPOINTS[0])])
    with pytest.raises(ValueError, match='flip_indices'):
        load(copy.deepcopy(flipped))
    with pytest.raises(ValueError, match='horizontal flips only'):
        Compose([dict(type='LoadKeypoints', flip_indices=(0, 2, 1))])(dict(flipped, flip_direction='vertical'))
    with pytest.raises(ValueError, match='instance 0: keypoints must be'):
        load(dict(img_shape=(64, 96), img_path='k.png', instances=[dict(keypoints=[1.0, 2.0])]))
    with pytest.raises(ValueError, match='instance 0: keypoints must be'):
        load(dict(img_shape=(64, 96), img_path='k.png', instances=[dict(bbox=[0, 0, 4, 4])]))
    assert results['data_samples'].gt_instances.keypoints.shape == (2, 3, 3)


def test_dataset_keeps_each_instance_s_keypoints_when_mmdet_skips_an_annotation(tmp_path):
    annotations = [dict(id=1, image_id=1, category_id=1, bbox=[2, 2, 10, 10], area=100, iscrowd=0,
                        keypoints=[3, 3, 2]),
                   dict(id=2, image_id=1, category_id=2, bbox=[5, 5, 10, 10], area=100, iscrowd=0,
                        keypoints=[6, 6, 2]),  # a category the dataset does not use: mmdet leaves it out
                   dict(id=3, image_id=1, category_id=1, bbox=[20, 20, 10, 10], area=100, iscrowd=0,
                        keypoints=[25, 25, 1])]
    coco = dict(images=[dict(id=1, file_name='a.png', width=64, height=64)], annotations=annotations,
                categories=[dict(id=1, name='shape', keypoints=['centre']), dict(id=2, name='other')])
    (tmp_path / 'ann.json').write_text(json.dumps(coco))
    dataset = Pix2SeqCocoDataset(ann_file=str(tmp_path / 'ann.json'), data_root=str(tmp_path), data_prefix=dict(img=''),
                                 metainfo=dict(classes=('shape', )), pipeline=[], lazy_init=False)
    instances = dataset.get_data_info(0)['instances']
    assert [instance['keypoints'] for instance in instances] == [[3, 3, 2], [25, 25, 1]]


def test_keypoint_rows_and_weights():
    tokenizer = kpt_tokenizer()
    sample = keypoint_results(False)['data_samples']
    sample.set_metainfo(dict(pad_shape=(128, 128)))
    sequences = KeypointSequences(tokenizer, mask_inputs=False)
    torch.manual_seed(0)
    input_tokens, target_tokens, weights, image_index = sequences([sample, sample])
    assert input_tokens.shape == target_tokens.shape == weights.shape == (4, PROMPT_LENGTH + 6 - 1)
    assert image_index.tolist() == [0, 0, 1, 1]
    invisible = target_tokens == tokenizer.INVISIBLE
    assert invisible.sum() == 2 * 2  # the second object's middle point, in both images
    assert (weights[:, :PROMPT_LENGTH - 1] == 0).all()
    assert torch.allclose(weights[invisible], torch.tensor(0.1)) and (weights[:, PROMPT_LENGTH - 1:][~invisible[
        :, PROMPT_LENGTH - 1:]] == 1).all()
    # the input masking replaces response inputs only
    torch.manual_seed(1)
    masked = KeypointSequences(tokenizer, mask_inputs=True).corrupt_inputs(input_tokens.repeat(50, 1))
    changed = masked != input_tokens.repeat(50, 1)
    assert not changed[:, :PROMPT_LENGTH].any() and changed[:, PROMPT_LENGTH:].any()
    assert (masked[changed] == tokenizer.INVISIBLE).all()
    # an instance without a labelled point is left out; a sample without keypoints is an error naming the fix
    sample.gt_instances.keypoints[1, :, 2] = 0
    assert len(sequences.sample_sequences(sample)) == 1
    del sample.gt_instances.keypoints
    with pytest.raises(ValueError, match='LoadKeypoints'):
        sequences([sample])


def test_training_keypoints_decode_to_the_annotation_at_the_original_size():
    tokenizer = kpt_tokenizer()
    sample = keypoint_results(False)['data_samples']
    sample.set_metainfo(dict(pad_shape=(128, 128)))
    input_tokens, target_tokens, weights, _ = KeypointSequences(tokenizer, mask_inputs=False)([sample])
    boxes = tokenizer.dequantize(target_tokens[:, :4])  # the prompt boxes tell the rows' instances apart
    responses = target_tokens[:, PROMPT_LENGTH - 1:]
    keypoints, scores = responses_to_keypoints(responses, torch.ones_like(responses, dtype=torch.float), boxes,
                                               tokenizer, sample.metainfo, True, 1)
    annotated = torch.tensor(KEYPOINTS).view(2, 3, 3)
    scale = torch.tensor(sample.metainfo['scale_factor'])
    not_placed_count = 0
    for row in range(len(responses)):
        instance = int(boxes[row, 1] > 0.4)  # the second object is on the right
        labelled = annotated[instance, :, 2] > 0
        # a bin of the 128 frame is 128 / 127 px of the resized image: half of it, scaled back to the original
        torch.testing.assert_close(keypoints[row][labelled], annotated[instance, labelled, :2], atol=0.4, rtol=0)
        centre = torch.stack([boxes[row, 1] + boxes[row, 3], boxes[row, 0] + boxes[row, 2]]) / 2 * 128
        not_placed = keypoints[row][~labelled]  # the box centre
        torch.testing.assert_close(not_placed, (centre / scale).expand_as(not_placed))
        not_placed_count += len(not_placed)
    assert torch.equal(scores, torch.ones_like(scores)) and not_placed_count == 1
    flipped = keypoint_results(True)['data_samples']
    with pytest.raises(ValueError, match='flipped test image'):
        responses_to_keypoints(responses, torch.ones(responses.shape), boxes, tokenizer, flipped.metainfo, True, 1)


def kpt_model(synthetic_cfg, **test_cfg):
    return build_v2_model(synthetic_cfg, 'keypoints', dict(tasks=TASKS, num_keypoints=3), **test_cfg)


def test_keypoint_loss_and_ground_truth_prompts(synthetic_cfg):
    model = kpt_model(synthetic_cfg, prompt_boxes='ground_truth', num_samples=2)
    sample = keypoint_results(False)['data_samples']
    sample.set_metainfo(dict(pad_shape=(128, 128), batch_input_shape=(128, 128)))
    losses = model.loss(torch.rand(1, 3, 128, 128), [sample])
    assert losses['loss_keypoints'] > 0
    losses['loss_keypoints'].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    sample.gt_instances.bboxes = sample.gt_instances.bboxes.tensor / sample.gt_instances.bboxes.tensor.new_tensor(
        sample.metainfo['scale_factor']).repeat(2)  # a test pipeline's boxes: the original image's
    model.eval()
    with torch.no_grad():
        (result, ) = model.predict(torch.rand(1, 3, 128, 128), [sample])
    pred = result.pred_instances
    assert pred.keypoints.shape == (2, 3, 2) and pred.keypoint_scores.shape == (2, 3)
    assert (pred.keypoint_scores > 0).all() and (pred.keypoint_scores <= 1).all()
    assert (pred.keypoints[..., 0] <= 96).all() and (pred.keypoints[..., 1] <= 64).all()
    with pytest.raises(ValueError, match='same boxes'):
        cfg = copy.deepcopy(synthetic_cfg.model)
        cfg.head.tokenizer.update(tasks=('detection', 'instance_segmentation', 'keypoints'))
        cfg.test_cfg.update(keypoints=dict(prompt_boxes='ground_truth'))
        MODELS.build(cfg)
    assert KeypointDecodingConfig().top_p == 0.1


def test_synthetic_keypoints_are_the_outline_around_the_centre_and_hidden_ones_are_flagged():
    square = np.array([[10.0, 20], [20, 10], [30, 20], [20, 30]])  # a diamond about (20, 20): its corners
    np.testing.assert_allclose(compass_points(square, np.array([20.0, 20])),
                               np.array([[20, 10], [30, 20], [20, 30], [10, 20]]) + 0.5)
    star = shape_outline('star', np.array([50.0, 50]), 20, 0.3)  # not convex: each ray still meets it once
    points = compass_points(star, np.array([50.0, 50])) - 0.5
    np.testing.assert_allclose(points[[0, 2], 0], 50)  # top and bottom straight above and below the centre
    np.testing.assert_allclose(points[[1, 3], 1], 50)
    assert all(cv2.pointPolygonTest(star.astype(np.float32), tuple(map(float, point)), True) > -1e-3
               for point in points)  # on the outline
    rotated = shape_outline('square', np.array([50.0, 50]), 20, 1e-3)  # a small rotation moves the points a little
    upright = shape_outline('square', np.array([50.0, 50]), 20, 0.0)
    assert np.abs(compass_points(rotated, np.array([50.0, 50])) - compass_points(upright, np.array([50.0, 50]))).max() \
        < 0.1
    cover = np.array([[25.0, 15], [35, 15], [35, 25], [25, 25]])  # drawn later, over the diamond's right point
    keypoints = annotate_keypoints([(square, np.array([20.0, 20])), (cover, np.array([30.0, 20]))], 32, 32)
    assert keypoints[0]['keypoints'][3 * 1 + 2] == 1 and keypoints[0]['num_keypoints'] == 4
    # the later square's right side (x 35.5) is outside the 32-px image: not labelled
    assert keypoints[1]['keypoints'][3:6] == [0.0, 0.0, 0] and keypoints[1]['num_keypoints'] == 3
    assert len(KEYPOINT_NAMES) == 4


def keypoint_metric(tmp_path, **kwargs):
    annotations = [dict(id=index + 1, image_id=1, category_id=1 + index, bbox=[x, y, 30, 30], area=900, iscrowd=0,
                        num_keypoints=2, keypoints=[x, y, 2, x + 30, y + 30, 2])
                   for index, (x, y) in enumerate([(5.0, 5.0), (40.0, 20.0)])]
    coco = dict(images=[dict(id=1, file_name='a.png', width=96, height=64)], annotations=annotations,
                categories=[dict(id=1, name='a', keypoints=['p', 'q']), dict(id=2, name='b', keypoints=['p', 'q'])])
    (tmp_path / 'kpt.json').write_text(json.dumps(coco))
    metric = CocoKeypointMetric(str(tmp_path / 'kpt.json'), **kwargs)
    metric.dataset_meta = dict(classes=('a', 'b'))
    return metric


def keypoint_prediction(shift: float):
    """Both objects' points shifted by ``shift`` px; each box also detected as the other class at a lower score
    (``classes_per_box`` 2), with the same points as its box."""
    points = torch.tensor([[[5.0, 5], [35, 35]], [[40, 20], [70, 50]]]) + shift
    bboxes = torch.tensor([[5.0, 5, 35, 35], [40, 20, 70, 50]])
    return dict(img_id=1, pred_instances=dict(
        bboxes=bboxes.repeat(2, 1), labels=torch.tensor([0, 1, 1, 0]), scores=torch.tensor([0.9, 0.8, 0.1, 0.2]),
        keypoints=points.repeat(2, 1, 1), keypoint_scores=torch.full((4, 2), 0.7)))


def test_keypoint_metric_scores_oks(tmp_path):
    metric = keypoint_metric(tmp_path, sigmas=[0.05, 0.05])
    metric.process({}, [keypoint_prediction(0.0)])
    # one prediction per box, with its best class: the other class's detections do not count
    entries = metric.predictions(metric.results)
    best = [(entry['category_id'], entry['score']) for entry in entries]
    # scored half by the points (0.7), half by the box (0.9 and 0.8)
    assert best == [(1, pytest.approx(0.8)), (2, pytest.approx(0.75))]
    assert [entry['score'] for entry in keypoint_metric(tmp_path, sigmas=[0.05, 0.05], score_weight=1.0).predictions(
        metric.results)] == [pytest.approx(0.7)] * 2  # the official points-only score
    assert metric.evaluate(1)['coco/keypoints_mAP'] == 1.0
    metric.process({}, [keypoint_prediction(6.0)])  # OKS exp(-72 / (2 * 900 * 0.01)) = 0.018 per point
    assert metric.evaluate(1)['coco/keypoints_mAP'] == 0.0
    with pytest.raises(ValueError, match='give sigmas'):
        keypoint_metric(tmp_path)
    with pytest.raises(ValueError, match='2 positive numbers'):
        keypoint_metric(tmp_path, sigmas=[0.05])
    with pytest.raises(ValueError, match='no keypoints'):
        metric.process({}, [dict(img_id=1, pred_instances=dict(labels=torch.tensor([0])))])


def test_visualiser_draws_the_keypoints_in_the_box_colour():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from pix2seq_mmdet.visualization import KeypointDetLocalVisualizer
    visualiser = KeypointDetLocalVisualizer(name='keypoint_visualiser_test', keypoint_radius=2)
    visualiser.dataset_meta = dict(classes=('a', 'b'), palette=[(255, 0, 0), (0, 255, 0)])
    image = np.zeros((64, 96, 3), np.uint8)
    pred = InstanceData(bboxes=torch.tensor([[10.0, 10, 50, 50]]), labels=torch.tensor([1]), scores=torch.ones(1))
    drawn = {}
    for with_points in (False, True):
        sample = DetDataSample()
        sample.pred_instances = pred.clone()
        if with_points:
            sample.pred_instances.keypoints = torch.tensor([[[30.0, 30], [70, 20]]])
        visualiser.add_datasample('image', image, sample, draw_gt=False, pred_score_thr=0.5)
        drawn[with_points] = visualiser.get_image()
    changed = np.abs(drawn[True].astype(int) - drawn[False].astype(int)).sum(-1) > 0
    assert changed[30, 30] and changed[20, 70] and not changed[5:, :5].any()
    red, green, blue = drawn[True][20, 70].tolist()
    assert green > 200 and red < 50 and blue < 50  # class 1's colour
