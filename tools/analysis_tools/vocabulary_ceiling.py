#!/usr/bin/env python
"""The COCO metrics of a perfect model under a config's vocabulary: the ceiling its tokens allow.

Every ground-truth box of the test set is written as the model's tokens (normalised to the padded frame, quantised to
``num_bins``, at most ``max_objects`` per image in the config's training order) and read back with the head's own
``tokens_to_instances``, each with its true class at probability 1; mmdet's ``CocoMetric`` then scores these
detections against the annotations.  What the result misses of 1.0 is lost to the frame, the bins or the object limit,
whatever the model learns.  With the instance segmentation task (``tasks`` of the tokenizer), every ground-truth
polygon is also written as the task's response (the training rule: clipping, ``simplify_tolerance``,
``canonical_order``, ``max_points_per_object``) and read back into a mask as a prediction is, so ``segm`` is scored too;
with the keypoint task, every ground-truth instance's keypoints are written as its response and read back, so the
config's ``CocoKeypointMetric`` scores them.

Usage::

    python tools/analysis_tools/vocabulary_ceiling.py configs/pix2seq_r18-tiny-s8_1xb4_31e_synthetic-hard.py
    python tools/analysis_tools/vocabulary_ceiling.py CONFIG --cfg-options model.head.tokenizer.num_bins=256
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from pix2seq_mmdet.models.keypoint_prediction import responses_to_keypoints
from pix2seq_mmdet.models.mask_prediction import MaskDecodingConfig, responses_to_masks


def ground_truth_as_detections(model, data_sample) -> None:
    """Set ``data_sample.pred_instances`` to its ground truth after a round trip through the head's tokens."""
    head, tokenizer = model.head, model.head.tokenizer
    # the test pipeline loads the boxes after resizing (original image pixels): into the frame, as in training, then
    # the head's own real-object selection (normalise, drop empty boxes, order, keep max_objects)
    framed = data_sample.clone()  # shallow: its own instances, so that the sample's boxes stay the original's
    framed.gt_instances = data_sample.gt_instances.clone()
    boxes = get_box_tensor(framed.gt_instances.bboxes).float()
    framed.gt_instances.bboxes = boxes * boxes.new_tensor(data_sample.scale_factor).repeat(2)
    yxyx, labels = head.sequence_augmentation.real_objects(framed)
    tokens = tokenizer.encode(yxyx, labels)
    class_probs = torch.zeros(tokenizer.max_objects, tokenizer.num_classes)
    class_probs[torch.arange(len(labels)), labels] = 1.0
    data_sample.pred_instances = head.tokens_to_instances(tokens[:5 * tokenizer.max_objects], class_probs,
                                                          data_sample.metainfo)
    if 'instance_segmentation' in head.instance_sequences:
        add_ground_truth_masks(model, framed, data_sample)
    if 'keypoints' in head.instance_sequences:
        add_ground_truth_keypoints(model, data_sample)


def ground_truth_source(data_sample) -> torch.Tensor:
    """For every detection of ``data_sample.pred_instances``, the ground-truth instance its box came from."""
    pred_boxes = data_sample.pred_instances.bboxes
    if not len(pred_boxes):
        return torch.zeros(0, dtype=torch.long)
    return bbox_overlaps(pred_boxes, get_box_tensor(data_sample.gt_instances.bboxes).float()).argmax(1)


def add_ground_truth_keypoints(model, data_sample) -> None:
    """Give every detection the keypoints of the ground-truth instance its box came from, after a round trip of
    the instance's points through the task's response tokens (each token scored 1)."""
    tokenizer = model.head.tokenizer
    gt = data_sample.gt_instances
    frame_h, frame_w = data_sample.pad_shape[:2]
    points = gt.keypoints.float()  # (N, K, 3) in the resized image, as LoadKeypoints moved them
    responses = torch.stack([tokenizer.encode_keypoints((row[:, [1, 0]] / row.new_tensor([frame_h, frame_w])).clamp(
        0, 1), row[:, 2] > 0) for row in points]) if len(points) else torch.zeros(0, tokenizer.keypoints_response_len)
    boxes = get_box_tensor(gt.bboxes).float() * torch.tensor(data_sample.scale_factor).repeat(2)
    keypoints, scores = responses_to_keypoints(responses.long(), torch.ones(responses.shape),
                                               tokenizer.normalize_boxes(boxes, (frame_h, frame_w)), tokenizer,
                                               data_sample.metainfo, True, 1)
    source = ground_truth_source(data_sample)
    data_sample.pred_instances.keypoints, data_sample.pred_instances.keypoint_scores = keypoints[source], scores[source]


def add_ground_truth_masks(model, framed, data_sample) -> None:
    """Give every detection the mask of the ground-truth instance its box came from, after a round trip of the
    instance's polygon through the task's response tokens."""
    head, tokenizer = model.head, model.head.tokenizer
    # the original image's polygons into the resized one, as the training pipeline's Resize moves them
    polygons = framed.gt_instances.masks.resize(data_sample.img_shape[:2])
    boxes = tokenizer.normalize_boxes(get_box_tensor(framed.gt_instances.bboxes), data_sample.pad_shape[:2])
    responses = []
    sequences = head.instance_sequences['instance_segmentation']
    for polygon, box in zip(polygons.masks, boxes):
        parts = sequences.polygon_parts(polygon, data_sample.pad_shape[:2], box, data_sample.img_path)
        responses.append(tokenizer.encode_polygon(parts))
    pred = data_sample.pred_instances
    cfg = MaskDecodingConfig(num_samples=1)
    masks = responses_to_masks(torch.stack(responses), boxes, tokenizer, data_sample.metainfo, True, cfg) \
        if responses else np.zeros((0, *data_sample.ori_shape[:2]), dtype=bool)
    pred.masks = torch.from_numpy(masks)[ground_truth_source(data_sample)]


def vocabulary_ceiling(cfg: Config) -> dict:
    """CocoMetric's results for the ground truth read back through the vocabulary of ``cfg``."""
    with tempfile.TemporaryDirectory() as work_dir:
        # a visualiser of its own: mmengine keeps instances by name, and an earlier one may write to a deleted dir
        cfg.merge_from_dict({'work_dir': work_dir, 'visualizer.name': f'vocabulary_ceiling_{Path(work_dir).name}'})
        tasks = cfg.model.head.tokenizer.get('tasks', ())
        pipeline = cfg.test_dataloader.dataset.pipeline
        if 'instance_segmentation' in tasks:
            # the polygons too, as training loads them
            for transform in pipeline:
                if transform['type'] == 'LoadAnnotations':
                    transform.update(with_mask=True, poly2mask=False)
        if 'keypoints' in tasks:  # the keypoints too, in the resized image
            pipeline[-1:] = [dict(type='LoadKeypoints'), dict(type='PackKeypointDetInputs')]
        runner = Runner.from_cfg(cfg)
        model, dataloader, evaluator = runner.model, runner.test_dataloader, runner.test_evaluator
        model.eval()
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            for data_sample in data['data_samples']:
                ground_truth_as_detections(model, data_sample)
            evaluator.process(data_samples=data['data_samples'], data_batch=batch)
        return evaluator.evaluate(len(dataloader.dataset))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    metrics = vocabulary_ceiling(cfg)
    tokenizer = cfg.model.head.tokenizer
    print(f'vocabulary: {tokenizer.num_bins} bins, {tokenizer.max_objects} objects, frame '
          f'{cfg.model.data_preprocessor.pad_size}')
    print('  '.join(f'{key}: {value:.3f}' for key, value in metrics.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
