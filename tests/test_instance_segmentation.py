"""Pix2Seq v2 instance segmentation: the vocabulary's task tokens, polygon sequences, their training rows and the
masks decoded from them."""
import copy

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData
from pycocotools import mask as mask_utils

from pix2seq_mmdet.models.decoding import DecodingConfig, decode_responses
from pix2seq_mmdet.models.instance_sequences import InstanceSegmentationSequences, canonical_points
from pix2seq_mmdet.models.instance_prediction import distinct_boxes
from pix2seq_mmdet.models.mask_prediction import MaskDecodingConfig, responses_to_masks
from pix2seq_mmdet.models.sequence_augmentation import SequenceAugmentation
from pix2seq_mmdet.models.tokenizer import Pix2SeqTokenizer
from model_utils import build_v2_model

V2 = ('detection', 'instance_segmentation')


def seg_tokenizer(max_points=8, num_bins=128, **kwargs):
    return Pix2SeqTokenizer(4, num_bins, 6, tasks=V2, max_points_per_object=max_points, **kwargs)


def test_official_layout_ids_are_vocab_py_s():
    # google-research/pix2seq vocab.py and configs/config_multi_task.py: PADDING_TOKEN 0, detection 10, instance
    # segmentation 11, FAKE_CLASS_TOKEN 30, SEPARATOR_TOKEN 40, INVISIBLE_TOKEN 41, BASE_VOCAB_SHIFT 100,
    # coord_vocab_shift 1000
    tokenizer = Pix2SeqTokenizer(80, 1000, 100, layout='official', class_ids='coco', tasks=V2)
    assert tokenizer.task_prompts == {'detection': 10, 'instance_segmentation': 11}
    special = (tokenizer.PAD, tokenizer.EOS, tokenizer.FAKE, tokenizer.SEPARATOR, tokenizer.INVISIBLE)
    assert special == (0, 0, 30, 40, 41)
    assert (tokenizer.CLASS_OFFSET, tokenizer.coord_offset, tokenizer.vocab_size) == (100, 1000, 3000)
    prompt = tokenizer.instance_prompts(torch.tensor([[0.0, 0.25, 0.5, 1.0]]), torch.tensor([0]))
    assert prompt.tolist() == [[11, 1000, 1250, 1500, 1999, 101]]  # COCO label 0 is category 1
    # the multi-task checkpoint's sequences (6 + 2 * 128 tokens) fit its 512 positions; the detection's are longer
    assert tokenizer.instance_seq_len == 6 + 2 * 128 and tokenizer.num_positions == 501


def test_compact_layout_keeps_every_detection_id_and_appends_the_task_tokens():
    detection = Pix2SeqTokenizer(4, 128, 6)
    both = seg_tokenizer()
    assert detection.vocab_size == 4 + 4 + 128 and detection.num_positions == detection.seq_len
    assert detection.SEPARATOR is None and detection.task_prompts == {'detection': detection.BOS}
    for name in ('PAD', 'EOS', 'BOS', 'FAKE', 'CLASS_OFFSET', 'coord_offset'):
        assert getattr(both, name) == getattr(detection, name)
    assert both.vocab_size == detection.vocab_size + 4
    assert sorted([both.task_prompts['instance_segmentation'], both.SEPARATOR, both.INVISIBLE]) == [
        detection.vocab_size, detection.vocab_size + 2, detection.vocab_size + 3]
    with pytest.raises(ValueError, match='instance_segmentation.*not configured'):
        detection.encode_polygon([torch.rand(3, 2)])
    with pytest.raises(ValueError, match='detection first'):
        Pix2SeqTokenizer(4, 128, 6, tasks=('instance_segmentation', ))
    with pytest.raises(ValueError, match='max_points_per_object'):
        seg_tokenizer(max_points=2)


def test_detection_sequences_are_the_same_with_the_task():
    samples = [DetDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64))) for _ in range(2)]
    for index, sample in enumerate(samples):
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[4.0, 8, 30, 40], [20, 2, 60, 30]]) + index,
                                           labels=torch.tensor([1, 3]))
    sequences = []
    for tokenizer in (Pix2SeqTokenizer(4, 128, 6), seg_tokenizer()):
        torch.manual_seed(0)
        sequences.append(SequenceAugmentation(tokenizer)(samples))
    for detection_only, with_task in zip(*sequences):
        assert torch.equal(detection_only, with_task)


def test_polygon_round_trip_with_several_parts():
    tokenizer = seg_tokenizer(max_points=16)
    parts = [torch.tensor([[0.1, 0.1], [0.1, 0.5], [0.5, 0.3]]),
             torch.tensor([[0.6, 0.6], [0.9, 0.6], [0.9, 0.9], [0.6, 0.9]])]
    response = tokenizer.encode_polygon(parts)
    assert response.shape == (tokenizer.response_len, )
    assert response[6:8].tolist() == [tokenizer.SEPARATOR] * 2 and response[16] == tokenizer.EOS
    assert (response[17:] == tokenizer.PAD).all()
    decoded = tokenizer.decode_polygon(response)
    assert [len(part) for part in decoded] == [3, 4]
    for part, original in zip(decoded, parts):
        assert (part - original).abs().max() <= 0.5 / (tokenizer.num_bins - 1) + 1e-6


def test_polygon_truncation_counts_separators_as_points():
    tokenizer = seg_tokenizer(max_points=5)
    triangle = torch.tensor([[0.1, 0.1], [0.1, 0.5], [0.5, 0.3]])
    response = tokenizer.encode_polygon([triangle, triangle + 0.4])
    # 3 points, a separator pair, 1 point of the second part, then EOS
    assert response[:10].tolist()[6:8] == [tokenizer.SEPARATOR] * 2 and response[10] == tokenizer.EOS
    decoded = tokenizer.decode_polygon(response)
    assert len(decoded) == 1 and len(decoded[0]) == 3  # the 1-point remnant has no area: dropped
    long = torch.rand(9, 2)
    assert len(tokenizer.decode_polygon(tokenizer.encode_polygon([long]))[0]) == 5


def test_polygon_decoding_reads_to_eos_and_skips_pairs_that_are_not_points():
    tokenizer = seg_tokenizer()
    c = tokenizer.coord_offset
    response = torch.tensor([c + 1, c + 1, c + 1, tokenizer.FAKE, c + 1, c + 9, c + 9, c + 9, tokenizer.EOS, c + 5,
                             c + 5, c + 5])
    (part, ) = tokenizer.decode_polygon(response)
    assert part.tolist() == (torch.tensor([[1, 1], [1, 9], [9, 9]]) / 127).tolist()


def test_canonical_order_starts_at_the_top_and_runs_clockwise_whatever_the_annotation():
    square = np.array([[0.5, 0.2], [0.2, 0.2], [0.2, 0.6], [0.5, 0.6]])  # (y, x)
    expected = [[0.2, 0.2], [0.2, 0.6], [0.5, 0.6], [0.5, 0.2]]  # right along the top edge, then down
    for start in range(4):
        for points in (np.roll(square, start, axis=0), np.roll(square[::-1], start, axis=0)):
            assert canonical_points(points).tolist() == expected


def polygon_sample(flip: bool, masks=None, img_path='photo.jpg'):
    """One 96 x 64 image with a triangle and a two-part object, through mmdet's Resize (to a 128 frame) and
    RandomFlip, packed; returns the data sample (pad_shape set as the data preprocessor sets it) and the polygons."""
    polygons = [[np.array([10.0, 10, 50, 12, 30, 40])],
                [np.array([60.0, 20, 90, 20, 90, 60, 60, 60]), np.array([5.0, 45, 20, 45, 12, 60])]]
    results = dict(img=np.zeros((64, 96, 3), np.uint8), img_shape=(64, 96), ori_shape=(64, 96), img_path=img_path,
                   img_id=0, gt_bboxes=HorizontalBoxes(torch.tensor([[10.0, 10, 50, 40], [5, 20, 90, 60]])),
                   gt_bboxes_labels=np.array([0, 2]), gt_ignore_flags=np.array([False, False]),
                   gt_masks=masks if masks is not None else PolygonMasks(copy.deepcopy(polygons), 64, 96))
    pipeline = Compose([dict(type='Resize', scale=(128, 128), keep_ratio=True),
                        dict(type='RandomFlip', prob=1.0 if flip else 0.0), dict(type='PackDetInputs')])
    sample = pipeline(results)['data_samples']
    sample.set_metainfo(dict(pad_shape=(128, 128), batch_input_shape=(128, 128)))
    return sample, polygons


def round_trip_ious(flip, polygon_frame, num_bins):
    """Tokens built from the pipeline's (resized, flipped) polygons of :func:`polygon_sample`, decoded as a
    prediction's response from the prompt's box -> the masks' IoU with the annotation, at the original size."""
    tokenizer = seg_tokenizer(max_points=16, num_bins=num_bins, polygon_frame=polygon_frame)
    sample, polygons = polygon_sample(flip)
    torch.manual_seed(0)
    input_tokens, target_tokens, weights, image_index = InstanceSegmentationSequences(tokenizer)([sample])
    assert image_index.tolist() == [0, 0] and torch.equal(input_tokens[:, 1:], target_tokens[:, :-1])
    instance_of_row = [0 if row[4] == tokenizer.class_tokens(torch.tensor([0])) else 1 for row in target_tokens]
    responses = torch.cat([target_tokens[:, 5:], torch.zeros(2, 1, dtype=torch.long)], dim=1)  # pad to length
    cfg = MaskDecodingConfig(num_samples=1)
    masks = responses_to_masks(responses, tokenizer.dequantize(target_tokens[:, :4]), tokenizer, sample.metainfo,
                               True, cfg)
    assert masks.shape == (2, 64, 96)
    ious = []
    for mask, instance in zip(masks, instance_of_row):
        rles = mask_utils.frPyObjects([p.tolist() for p in polygons[instance]], 64, 96)
        expected = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
        ious.append((mask & expected).sum() / (mask | expected).sum())
    return ious


@pytest.mark.parametrize('polygon_frame', ['image', 'box'])
@pytest.mark.parametrize('flip', [False, True])
def test_training_polygons_decode_to_the_annotated_masks_at_the_original_size(flip, polygon_frame):
    """Annotation -> training tokens -> decoded masks at the original image's size, in either polygon frame."""
    assert min(round_trip_ious(flip, polygon_frame, num_bins=128)) > 0.85


def test_box_frame_polygons_span_their_box_and_read_finer():
    """With ``polygon_frame='box'`` a response's points span the bins from the first to the last (the outline
    touches its box on every side), the same shape reads the same tokens at another size and place, and the masks
    of a coarse vocabulary come back closer to the annotation than in the image's frame."""
    tokenizer = seg_tokenizer(max_points=16, num_bins=129, polygon_frame='box')  # a bin per pixel of the frame

    def response(polygon, box_xyxy):
        sample = DetDataSample(metainfo=dict(pad_shape=(128, 128), img_shape=(128, 128), img_path='x'))
        sample.gt_instances = InstanceData(bboxes=torch.tensor([box_xyxy]), labels=torch.tensor([1]),
                                           masks=PolygonMasks([polygon], 128, 128))
        (sequence, _), = InstanceSegmentationSequences(tokenizer).sample_sequences(sample)
        return sequence[6:]

    tokens = response([np.array([10.0, 10, 50, 10, 30, 40])], [10.0, 10, 50, 40])
    bins = tokenizer.bins(tokens[tokenizer.is_coord(tokens)])
    assert bins.min() == 0 and bins.max() == tokenizer.num_bins - 1
    # the same triangle at half the size, elsewhere
    assert torch.equal(tokens, response([np.array([60.0, 50, 80, 50, 70, 65])], [60.0, 50, 80, 65]))
    image_ious, box_ious = (round_trip_ious(False, frame, num_bins=24) for frame in ('image', 'box'))
    assert np.mean(box_ious) > np.mean(image_ious) + 0.02


def test_instance_weights_and_rows():
    tokenizer = seg_tokenizer(max_points=16)
    sample, _ = polygon_sample(False)
    input_tokens, target_tokens, weights, _ = InstanceSegmentationSequences(tokenizer, eos_weight=0.5)([sample])
    prompt_targets = weights[:, :5]
    assert (prompt_targets == 0).all()  # box and class of the prompt are given
    assert input_tokens[:, 0].eq(tokenizer.task_prompts['instance_segmentation']).all()
    eos = target_tokens == tokenizer.EOS
    assert (weights[eos] == 0.5).all() and (weights[(target_tokens == tokenizer.PAD)] == 0).all()
    response_points = (~eos & (target_tokens != tokenizer.PAD))[:, 5:]
    assert (weights[:, 5:][response_points] == 1).all()
    assert weights[:, -1].gt(0).any()  # cut after the longest weighted extent
    one = InstanceSegmentationSequences(tokenizer, max_instances_per_image=1)([sample, sample])
    assert one[3].tolist() == [0, 1]


def test_bad_polygons_are_named_or_skipped():
    tokenizer = seg_tokenizer(max_points=16)
    nan = PolygonMasks([[np.array([10.0, 10, np.nan, 12, 30, 40])], [np.array([60.0, 20, 90, 20, 90, 60])]], 64, 96)
    sample, _ = polygon_sample(False, nan, img_path='bad.jpg')
    with pytest.raises(ValueError, match='bad.jpg, instance 0.*not finite'):
        InstanceSegmentationSequences(tokenizer)([sample])
    # a part of fewer than 3 points is skipped; an instance without a usable part is left out
    short = PolygonMasks([[np.array([10.0, 10, 50, 12])],
                          [np.array([60.0, 20, 90, 20, 90, 60]), np.array([1.0, 1, 2, 2])]], 64, 96)
    sample, _ = polygon_sample(False, short)
    rows = InstanceSegmentationSequences(tokenizer)([sample])
    assert len(rows[0]) == 1 and (rows[1][0] == tokenizer.SEPARATOR).sum() == 0
    assert InstanceSegmentationSequences(tokenizer)([polygon_sample(False, PolygonMasks(
        [[np.array([1.0, 1, 2, 2])], [np.array([3.0, 3])]], 64, 96))[0]]) is None
    # outside the image: clipped to the frame
    outside = PolygonMasks([[np.array([-40.0, -10, 50, 12, 300, 400])], [np.array([60.0, 20, 90, 20, 90, 60])]],
                           64, 96)
    sample, _ = polygon_sample(False, outside)
    target = InstanceSegmentationSequences(tokenizer)([sample])[1]
    coords = target[tokenizer.is_coord(target)] - tokenizer.coord_offset
    assert coords.min() == 0 and coords.max() == tokenizer.num_bins - 1
    bitmap = BitmapMasks(np.zeros((2, 64, 96), np.uint8), 64, 96)
    sample, _ = polygon_sample(False, bitmap)
    with pytest.raises(ValueError, match='poly2mask=False'):
        InstanceSegmentationSequences(tokenizer)([sample])


def test_decode_responses_stops_each_row_at_eos():
    tokenizer = seg_tokenizer()
    c = tokenizer.coord_offset
    plan = [[c + 1, c + 2, c + 3, tokenizer.EOS], [tokenizer.EOS] * 4]  # what each row's logits pick per step
    calls = []

    def step(tokens, position):
        calls.append((tokens.shape[1], position))
        logits = torch.zeros(2, tokenizer.vocab_size)
        index = len(calls) - 1
        for row in range(2):
            logits[row, plan[row][index]] = 10
        return logits

    prompts = torch.full((2, 6), tokenizer.task_prompts['instance_segmentation'])
    responses, token_probs = decode_responses(step, prompts, tokenizer.response_len, tokenizer.EOS, tokenizer.PAD,
                                              DecodingConfig(strategy='greedy'))
    assert responses[0, :4].tolist() == plan[0] and responses[1, 0] == tokenizer.EOS
    assert (responses[1, 1:] == tokenizer.PAD).all() and (responses[0, 4:] == tokenizer.PAD).all()
    # each chosen token's probability (logit 10 against V - 1 zeros), 0 after the row's end
    chosen = torch.tensor(10.0).exp() / (torch.tensor(10.0).exp() + tokenizer.vocab_size - 1)
    assert torch.allclose(token_probs[0, :4], chosen) and torch.allclose(token_probs[1, :1], chosen)
    assert (token_probs[1, 1:] == 0).all() and (token_probs[0, 4:] == 0).all()
    assert calls == [(6, 0), (1, 6), (1, 7), (1, 8)]  # the prompt as one chunk, then one token per step


def test_distinct_boxes_share_a_mask_and_respect_the_cap():
    boxes = torch.tensor([[0.0, 0, 5, 5], [1, 1, 6, 6], [0, 0, 5, 5], [2, 2, 7, 7]])  # sorted by score
    rows, slot = distinct_boxes(boxes, max_boxes=2)
    assert rows.tolist() == [0, 1] and slot.tolist() == [0, 1, 0, -1]
    rows, slot = distinct_boxes(boxes[:0], max_boxes=2)
    assert len(rows) == 0 and len(slot) == 0


def seg_model(synthetic_cfg, **test_cfg):
    return build_v2_model(synthetic_cfg, 'instance_segmentation', dict(tasks=V2, max_points_per_object=16), **test_cfg)


def test_each_instance_row_reads_its_own_image(synthetic_cfg):
    model = seg_model(synthetic_cfg).eval()
    memory = torch.randn(3, 10, model.head.embed_dims)
    tokens = torch.randint(0, model.head.tokenizer.vocab_size, (4, 7))
    image_index = torch.tensor([2, 0, 2, 1])
    with torch.no_grad():
        together = model.head(memory, None, tokens, image_index)
        for row, image in enumerate(image_index.tolist()):
            alone = model.head(memory[image:image + 1], None, tokens[row:row + 1])
            torch.testing.assert_close(together[row:row + 1], alone, rtol=1e-5, atol=1e-5)


def test_segmentation_loss_reaches_the_encoder(synthetic_cfg):
    model = seg_model(synthetic_cfg)
    sample, _ = polygon_sample(False)
    inputs = torch.rand(1, 3, 128, 128)
    losses = model.loss(inputs, [sample])
    assert losses['loss_segm'] > 0 and torch.isfinite(losses['loss'])
    losses['loss_segm'].backward()
    assert model.encoder.layers[0].self_attn.in_proj.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_ground_truth_prompts_give_one_mask_per_box_at_the_original_size(synthetic_cfg):
    model = seg_model(synthetic_cfg, num_samples=2, prompt_boxes='ground_truth').eval()
    sample, _ = polygon_sample(True)
    sample.gt_instances.bboxes = sample.gt_instances.bboxes.tensor / sample.gt_instances.bboxes.tensor.new_tensor(
        sample.metainfo['scale_factor']).repeat(2)  # a test pipeline's boxes: the original image's
    with torch.no_grad():
        (result, ) = model.predict(torch.rand(1, 3, 128, 128), [sample])
    pred = result.pred_instances
    assert pred.masks.shape == (2, 64, 96) and pred.masks.dtype == torch.bool
    assert pred.scores.tolist() == [1.0, 1.0] and pred.labels.tolist() == [0, 2]


def test_task_options_need_the_task(synthetic_cfg):
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.train_cfg.update(instance_segmentation=dict(max_instances_per_image=2))
    with pytest.raises(ValueError, match='has no \'instance_segmentation\''):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='prompt_boxes'):
        MaskDecodingConfig(prompt_boxes='boxes')
    with pytest.raises(ValueError, match='beam'):
        MaskDecodingConfig(strategy='beam')


def test_decoding_in_row_batches_gives_the_same_masks(synthetic_cfg):
    model = seg_model(synthetic_cfg, num_samples=3, prompt_boxes='ground_truth', strategy='greedy').eval()
    sample, _ = polygon_sample(False)
    sample.gt_instances.bboxes = sample.gt_instances.bboxes.tensor / sample.gt_instances.bboxes.tensor.new_tensor(
        sample.metainfo['scale_factor']).repeat(2)
    inputs = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        memory, memory_mask = model.encode(inputs, [sample])
        results = []
        for max_rows in (None, 4):
            model.head.instance_decoding_cfgs['instance_segmentation'] = MaskDecodingConfig(
                num_samples=3, prompt_boxes='ground_truth', strategy='greedy', max_rows=max_rows)
            results.append(model.head.predict_instance_tasks(memory, memory_mask, [None], [sample])[0].masks)
    assert torch.equal(*results)
    with pytest.raises(ValueError, match='max_rows'):
        MaskDecodingConfig(max_rows=0)
