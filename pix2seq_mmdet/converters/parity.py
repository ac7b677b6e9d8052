"""Run a converted official model on the official reference input and compare with the official outputs.

The reference (``reference.npz`` of ``tools/model_converters/make_official_fixture.py``) holds the official model's
preprocessed input image and its intermediate and final outputs; :func:`reference_outputs` computes the same
quantities with this package's model (fed the same preprocessed image, so the data pipeline is not compared) and
:func:`compare_with_reference` reports the differences.
"""
from typing import Dict, Optional

import numpy as np
import torch
from mmdet.structures import DetDataSample

from ..models.decoding import DecodingConfig


def _encoder_outputs(model: torch.nn.Module, image: torch.Tensor, sample: DetDataSample) -> Dict[str, torch.Tensor]:
    """The encoder's intermediate outputs, named as the reference's: a ResNet model's ``backbone_feature`` (h, w, C)
    and ``stem_ln_out`` (the neck), a ViT model's ``patch_embedding`` (h, w, D) and ``stem_ln_out`` (its stem
    LayerNorm); then ``encoder_output`` and ``memory`` (h * w, D)."""
    captured = {}
    hooks = [model.backbone.register_forward_hook(lambda module, args, out: captured.update(backbone=out[-1]))]
    if model.neck is not None:
        hooks.append(model.neck.register_forward_hook(
            lambda module, args, out: captured.update(stem=out[-1].flatten(2))))
    else:
        backbone = model.backbone
        hooks += [backbone.patch_embed.register_forward_hook(lambda module, args, out: captured.update(patches=out)),
                  backbone.stem_norm.register_forward_hook(lambda module, args, out: captured.update(
                      stem=out.transpose(1, 2)))]
    try:
        memory, _, encoded = model.forward_encoder(model.extract_feat(image), [sample])
    finally:
        for hook in hooks:
            hook.remove()
    outputs = dict(stem_ln_out=captured['stem'][0].t(), encoder_output=encoded[0], memory=memory[0])
    if model.neck is not None:
        outputs['backbone_feature'] = captured['backbone'][0].permute(1, 2, 0)
    else:
        outputs['patch_embedding'] = captured['patches'][0].permute(1, 2, 0)
    return outputs


def _instance_inputs(tokenizer, reference: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    """This package's teacher-forcing inputs for the reference's instance segmentation and keypoint examples (its box,
    official class id and points), cut to the length of the official inputs."""
    box = torch.from_numpy(np.asarray(reference['instance_box_yxyx01'], np.float32))[None]
    label = torch.tensor([tokenizer.class_ids.index(int(reference['instance_label']))])
    inputs = {}
    polygon = torch.from_numpy(np.asarray(reference['polygon_points'], np.float32))
    separators = np.nonzero((polygon == -2).all(1).numpy())[0].tolist()
    bounds = [-1] + separators + [len(polygon)]
    parts = [polygon[start + 1:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
    response = tokenizer.encode_polygon(parts)
    inputs['segmentation'] = torch.cat([tokenizer.instance_prompts(box, label, 'instance_segmentation')[0], response])
    points = torch.from_numpy(np.asarray(reference['keypoint_points'], np.float32))
    labelled = ~(points == -3).all(1)
    response = tokenizer.encode_keypoints(points.clamp(0, 1), labelled)
    inputs['keypoint'] = torch.cat([tokenizer.instance_prompts(box, label, 'keypoints')[0], response])
    return {name: tokens[:len(reference[f'{name}_input'])] for name, tokens in inputs.items()}


@torch.no_grad()
def reference_outputs(model: torch.nn.Module, reference: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """This package's outputs for the reference's preprocessed ``image`` (H, W, 3), as numpy arrays named and laid
    out like the reference's: the encoder's (:func:`_encoder_outputs`), ``first_step_logits`` (V,) of the
    incremental decoder after the prompt, ``teacher_forced_logits`` (L, V) on ``teacher_forced_input``,
    ``synth_logits`` on ``synth_input``, ``greedy_tokens`` (5 K,) and ``greedy_class_probs`` (K, C) of greedy
    decoding with the key/value cache, and for a multi-task reference this package's ``segmentation_input`` /
    ``keypoint_input`` for the same object and the ``segmentation_logits`` / ``keypoint_logits`` on the official
    inputs.
    """
    model.eval()
    head = model.head
    image = torch.from_numpy(np.ascontiguousarray(reference['image'])).permute(2, 0, 1)[None].float()
    height, width = image.shape[-2:]
    unpadded = tuple(int(side) for side in reference['unpadded_image_size'])
    sample = DetDataSample(metainfo=dict(img_shape=unpadded, pad_shape=(height, width),
                                         batch_input_shape=(height, width), ori_shape=unpadded))
    outputs = _encoder_outputs(model, image, sample)
    memory = outputs['memory'][None]
    bos = torch.full((1, 1), head.tokenizer.BOS, dtype=torch.long)
    cache = head.init_cache(memory, None)
    outputs['first_step_logits'] = head.forward_step(bos, 0, cache)[0, -1]
    for name in ('teacher_forced', 'synth', 'segmentation', 'keypoint'):
        tokens = reference.get(f'{name}_input')
        if tokens is not None:
            key = 'teacher_forced_logits' if name == 'teacher_forced' else f'{name}_logits'
            outputs[key] = head(memory, None, torch.from_numpy(np.asarray(tokens))[None].long())[0]
    if 'segmentation_input' in reference:
        instance_inputs = _instance_inputs(head.tokenizer, reference)
        outputs.update({f'{name}_input': tokens for name, tokens in instance_inputs.items()})
    saved_cfg = head.decoding_cfg
    head.decoding_cfg = DecodingConfig(strategy='greedy', use_cache=True, cuda_graph=False)
    try:
        tokens, class_probs, _ = head.generate(memory, None)
    finally:
        head.decoding_cfg = saved_cfg
    outputs['greedy_tokens'], outputs['greedy_class_probs'] = tokens[0], class_probs[0]
    return {key: value.detach().cpu().numpy() for key, value in outputs.items()}


def compare_detections(outputs: Dict[str, np.ndarray], reference: Dict[str, np.ndarray],
                       tokenizer) -> Dict[str, object]:
    """This package's reading of its greedy sequence against the official post-processing of the official one
    (``decode_object_seq_to_bbox``: boxes, classes, scores), slot by slot: the boxes of every slot, and the class and
    score of the slots whose official class is one of the model's classes (the official argmax runs over every
    class id)."""
    boxes, _, _ = tokenizer.decode(torch.from_numpy(outputs['greedy_tokens']))
    official_boxes = np.asarray(reference['decoded_boxes_yxyx01'], np.float64)
    slots = min(len(boxes), len(official_boxes))
    probs = outputs['greedy_class_probs'][:slots]
    official_classes = np.asarray(reference['decoded_classes'])[:slots]
    ours = np.array(tokenizer.class_ids)[probs.argmax(-1)]
    known = np.isin(official_classes, tokenizer.class_ids)
    report = {'detections/slots': int(slots), 'detections/slots_with_a_model_class': int(known.sum()),
              'max_abs_diff/detection_boxes': float(np.abs(boxes[:slots].numpy() - official_boxes[:slots]).max()),
              'detections/classes_equal': int((ours[known] == official_classes[known]).sum())}
    if known.any():
        scores = probs.max(-1)[known]
        official_scores = np.asarray(reference['decoded_scores'], np.float64)[:slots][known]
        report['max_abs_diff/detection_scores'] = float(np.abs(scores - official_scores).max())
    return report


def compare_with_reference(outputs: Dict[str, np.ndarray], reference: Dict[str, np.ndarray],
                           token_limit: Optional[int] = None, tokenizer=None) -> Dict[str, object]:
    """Max absolute differences of every compared tensor and the greedy-token agreement.

    ``token_limit``: compare the greedy tokens before this position only (positions where the official logits have
    near-ties; the rest is reported as the count of agreeing tokens).  With the model's ``tokenizer``, also the
    detections (:func:`compare_detections`).
    """
    pairs = dict(backbone_feature='backbone_feature', patch_embedding='patch_embedding', stem_ln_out='stem_ln_out',
                 encoder_output='encoder_output', memory='memory', first_step_logits='logits_first5',
                 teacher_forced_logits='infer_logits_all', synth_logits='synth_logits',
                 segmentation_logits='segmentation_logits', keypoint_logits='keypoint_logits')
    report = {}
    columns = reference.get('logit_columns')  # a reference may keep some vocabulary columns of its logits only
    for ours, theirs in pairs.items():
        if ours in outputs and theirs in reference:
            expected = np.asarray(reference[theirs], np.float64)
            if ours == 'first_step_logits':
                expected = expected[0]
            value = outputs[ours].astype(np.float64)
            if ours.endswith('logits') and columns is not None:
                value = value[..., columns]
            report[f'max_abs_diff/{ours}'] = float(np.abs(value - expected).max())
            report[f'max_abs/{ours}'] = float(np.abs(expected).max())
    tokens, expected_tokens = outputs['greedy_tokens'], np.asarray(reference['greedy_tokens'])
    length = min(len(tokens), len(expected_tokens))
    same = tokens[:length] == expected_tokens[:length]
    report['greedy_positions'] = int(length)
    if 'greedy_top1_top2_margin' in reference:  # how far the official greedy choices are from a tie
        report['official_min_greedy_margin'] = float(np.min(reference['greedy_top1_top2_margin']))
    report['greedy_equal'] = int(same.sum())
    report['greedy_first_difference'] = int(np.argmin(same)) if not same.all() else None
    if token_limit is not None:
        report[f'greedy_equal_before_{token_limit}'] = bool(same[:token_limit].all())
    for name in ('segmentation_input', 'keypoint_input'):
        if name in outputs and name in reference:
            report[f'{name}_equal'] = bool(np.array_equal(outputs[name], reference[name]))
    if 'infer_logits_all' in reference and 'teacher_forced_logits' in outputs:
        report['teacher_forced_argmax_equal'] = int(
            (outputs['teacher_forced_logits'].argmax(-1) == np.asarray(reference['greedy_tokens'])).sum())
    if tokenizer is not None and 'decoded_boxes_yxyx01' in reference:
        report.update(compare_detections(outputs, reference, tokenizer))
    return report
