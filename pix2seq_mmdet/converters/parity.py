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


@torch.no_grad()
def reference_outputs(model: torch.nn.Module, reference: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """This package's outputs for the reference's preprocessed ``image`` (H, W, 3), as numpy arrays named and laid
    out like the reference's: ``backbone_feature`` (h, w, C), ``stem_ln_out`` / ``encoder_output`` / ``memory``
    (h * w, D), ``first_step_logits`` (V,) of the incremental decoder after the prompt, ``teacher_forced_logits``
    (L, V) on ``teacher_forced_input``, ``synth_logits`` on ``synth_input``, and ``greedy_tokens`` (5 K,) of greedy
    decoding with the key/value cache.
    """
    model.eval()
    head = model.head
    image = torch.from_numpy(np.ascontiguousarray(reference['image'])).permute(2, 0, 1)[None].float()
    height, width = image.shape[-2:]
    unpadded = tuple(int(side) for side in reference['unpadded_image_size'])
    sample = DetDataSample(metainfo=dict(img_shape=unpadded, pad_shape=(height, width),
                                         batch_input_shape=(height, width), ori_shape=unpadded))
    captured = {}
    hook = model.neck.register_forward_hook(lambda module, args, out: captured.update(neck=out[-1]))
    try:
        features = model.backbone(image)
        memory, memory_mask, encoded = model.forward_encoder(model.neck(features)[-1], [sample])
    finally:
        hook.remove()
    outputs = dict(backbone_feature=features[-1][0].permute(1, 2, 0),
                   stem_ln_out=captured['neck'][0].flatten(1).t(), encoder_output=encoded[0],
                   memory=memory[0])
    bos = torch.full((1, 1), head.tokenizer.BOS, dtype=torch.long)
    cache = head.init_cache(memory, memory_mask)
    outputs['first_step_logits'] = head.forward_step(bos, 0, cache)[0, -1]
    for name in ('teacher_forced', 'synth'):
        tokens = reference.get(f'{name}_input')
        if tokens is not None:
            key = 'teacher_forced_logits' if name == 'teacher_forced' else 'synth_logits'
            outputs[key] = head(memory, memory_mask, torch.from_numpy(np.asarray(tokens))[None].long())[0]
    saved_cfg = head.decoding_cfg
    head.decoding_cfg = DecodingConfig(strategy='greedy', use_cache=True, cuda_graph=False)
    try:
        outputs['greedy_tokens'] = head.generate(memory, memory_mask)[0][0]
    finally:
        head.decoding_cfg = saved_cfg
    return {key: value.detach().cpu().numpy() for key, value in outputs.items()}


def compare_with_reference(outputs: Dict[str, np.ndarray], reference: Dict[str, np.ndarray],
                           token_limit: Optional[int] = None) -> Dict[str, object]:
    """Max absolute differences of every compared tensor and the greedy-token agreement.

    ``token_limit``: compare the greedy tokens before this position only (positions where the official logits have
    near-ties; the rest is reported as the count of agreeing tokens).
    """
    pairs = dict(backbone_feature='backbone_feature', stem_ln_out='stem_ln_out', encoder_output='encoder_output',
                 memory='memory', first_step_logits='logits_first5', teacher_forced_logits='infer_logits_all',
                 synth_logits='synth_logits')
    report = {}
    for ours, theirs in pairs.items():
        if ours in outputs and theirs in reference:
            expected = np.asarray(reference[theirs], np.float64)
            if ours == 'first_step_logits':
                expected = expected[0]
            report[f'max_abs_diff/{ours}'] = float(np.abs(outputs[ours].astype(np.float64) - expected).max())
            report[f'max_abs/{ours}'] = float(np.abs(expected).max())
    tokens, expected_tokens = outputs['greedy_tokens'], np.asarray(reference['greedy_tokens'])
    length = min(len(tokens), len(expected_tokens))
    same = tokens[:length] == expected_tokens[:length]
    report['greedy_positions'] = int(length)
    report['greedy_equal'] = int(same.sum())
    report['greedy_first_difference'] = int(np.argmin(same)) if not same.all() else None
    if token_limit is not None:
        report[f'greedy_equal_before_{token_limit}'] = bool(same[:token_limit].all())
    if 'infer_logits_all' in reference and 'teacher_forced_logits' in outputs:
        report['teacher_forced_argmax_equal'] = int(
            (outputs['teacher_forced_logits'].argmax(-1) == np.asarray(reference['greedy_tokens'])).sum())
    return report
