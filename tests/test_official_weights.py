"""Converted official weights against the official TF model (no TensorFlow here).

The fixture (tests/data/official_tiny/, written by tools/model_converters/make_official_fixture.py with the official
code) is a reduced official ResNet-50 Pix2Seq with random weights: its checkpoint variables keyed by checkpoint key,
its config.json, and the official model's outputs on one preprocessed image.
"""
import copy
import json
import math

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, load_script
from pix2seq_mmdet.converters import (ConversionError, build_model, convert_official_variables, load_model_config,
                                      official_model_options, read_checkpoint, reinit_class_tokens)
from pix2seq_mmdet.converters.parity import compare_with_reference, reference_outputs
from pix2seq_mmdet.models.positional_encoding import official_position_codes
from pix2seq_mmdet.models.resnet import TFSameMaxPool2d

FIXTURE = REPO_ROOT / 'tests' / 'data' / 'official_tiny'
OFFICIAL_CONFIG = REPO_ROOT / 'configs' / 'official' / 'pix2seq_r50-official_8xb4_300e_coco-640.py'
SYNTHETIC_CONFIG = REPO_ROOT / 'configs' / 'official' / 'pix2seq_r50-official-o365pre_1xb8_20e_synthetic.py'
CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / 'pix2seq_tf2mmdet.py'
SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def official_config():
    return json.loads((FIXTURE / 'config.json').read_text())


@pytest.fixture(scope='module')
def variables():
    return read_checkpoint(str(FIXTURE / 'variables.npz'))


@pytest.fixture(scope='module')
def reference():
    with np.load(FIXTURE / 'reference.npz') as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture(scope='module')
def tiny_model(official_config):
    return build_model(load_model_config(str(OFFICIAL_CONFIG), official_config))


@pytest.fixture(scope='module')
def converted(tiny_model, variables):
    return convert_official_variables(variables, tiny_model.state_dict())


def test_fixture_is_the_official_tiny_model(variables, official_config):
    assert len(variables) == 370 and all(key.startswith('model/') and key.endswith(SUFFIX) for key in variables)
    assert sum(value.size for value in variables.values()) == 571200
    options = official_model_options(official_config)
    assert options['model.data_preprocessor.pad_size'] == (100, 72)
    assert options['model.backbone.base_channels'] == 8 and options['model.neck.in_channels'] == [256]
    assert options['model.memory_proj.ffn_dims'] == 64  # decoder width 32 x the encoder's mlp ratio 2
    assert options['model.head.tokenizer.max_objects'] == 5 and options['model.head.tokenizer.num_bins'] == 1000


def test_converted_model_matches_the_official_outputs(tiny_model, converted, reference):
    tiny_model.load_state_dict(converted, strict=True)
    outputs = reference_outputs(tiny_model, reference)
    report = compare_with_reference(outputs, reference)
    for name in ('backbone_feature', 'stem_ln_out', 'encoder_output', 'memory', 'first_step_logits',
                 'teacher_forced_logits', 'synth_logits'):
        assert report[f'max_abs_diff/{name}'] < TOLERANCE, (name, report)
    # tied official greedy margins are >= 0.045 here: every token must agree
    assert reference['greedy_top1_top2_margin'].min() > 0.04
    assert np.array_equal(outputs['greedy_tokens'], reference['greedy_tokens'])
    # the teacher-forced logits reproduce the official incremental decoder's logits at every position
    assert np.abs(outputs['teacher_forced_logits'] - reference['infer_logits_all']).max() < TOLERANCE


def test_official_position_codes(reference):
    encoder = official_position_codes(4, 3, 48).flatten(1).t().numpy()
    decoder = official_position_codes(4, 3, 32).flatten(1).t().numpy()
    assert np.abs(encoder - reference['encoder_vis_pos_emb']).max() < 1e-6
    assert np.abs(decoder - reference['proj_vis_pos_emb']).max() < 1e-6
    row = official_position_codes(1, 5, 8)[:, 0]  # (8, 5): a single row gets the 1-D code of its 5 positions
    angles = torch.arange(5) / 4 * 6.2831852  # channel 0: sin(c), channel 4 (first of the cosine block): cos(c)
    assert torch.allclose(row[0], torch.sin(angles)) and torch.allclose(row[4], torch.cos(angles))


def test_tf_same_max_pool_pads_after_on_even_sizes():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = TFSameMaxPool2d(3, 2)(x)
    # windows start at 0 and 2, the last one padded by one row/column after: max of rows/cols {0,1,2} and {2,3}
    assert pooled[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    odd = TFSameMaxPool2d(3, 2)(torch.arange(25.0).view(1, 1, 5, 5))
    assert torch.equal(odd, torch.nn.functional.max_pool2d(torch.arange(25.0).view(1, 1, 5, 5), 3, 2, padding=1))


def _break(variables, change):
    broken = dict(variables)
    change(broken)
    return broken


@pytest.mark.parametrize('case, named', [
    ('missing', 'model/encoder/stem_ln/gamma'),
    ('extra', 'model/encoder/some_new_layer/kernel'),
    ('misshaped', 'model/decoder/decoder/dec_layers/1/cross_mha/_key_dense/kernel'),
])
def test_conversion_errors_name_the_variable(tiny_model, variables, case, named):
    key = named + SUFFIX
    if case == 'missing':
        broken = _break(variables, lambda state: state.pop(key))
        expected = ['missing', 'encoder/stem_ln/gamma', 'neck.norm.weight']
    elif case == 'extra':
        broken = _break(variables, lambda state: state.update({key: np.zeros((3, 3), np.float32)}))
        expected = ['not mapped', 'encoder/some_new_layer/kernel']
    else:
        broken = _break(variables, lambda state: state.update({key: np.zeros((32, 2, 15), np.float32)}))
        expected = ['shape mismatches', 'head.layers.1.cross_attn.in_proj.weight',
                    'decoder/decoder/dec_layers/1/cross_mha/_key_dense/kernel (32, 2, 15)']
    with pytest.raises(ConversionError) as error:
        convert_official_variables(broken, tiny_model.state_dict())
    for text in expected:
        assert text in str(error.value), str(error.value)


def test_optimizer_slots_and_trainer_variables_are_skipped(tiny_model, variables):
    extra = {'global_step' + SUFFIX: np.array(3), 'save_counter' + SUFFIX: np.array(1),
             'optimizer/iter' + SUFFIX: np.array(3), '_CHECKPOINTABLE_OBJECT_GRAPH': np.array(b'')}
    extra.update({f'{key[:-len(SUFFIX)]}/.OPTIMIZER_SLOT/optimizer/m{SUFFIX}': value
                  for key, value in list(variables.items())[:5]})
    state = convert_official_variables({**variables, **extra}, tiny_model.state_dict())
    assert state.keys() == tiny_model.state_dict().keys()


def test_unsupported_official_options_are_refused(official_config):
    config = copy.deepcopy(official_config)
    config['model']['resnet_variant'] = 'dc5'
    config['model']['dec_proj_mode'] = 'linear'
    with pytest.raises(ConversionError, match="resnet_variant='dc5'.*dec_proj_mode='linear'"):
        official_model_options(config)
    config = copy.deepcopy(official_config)
    config['model']['resnet_variant'] = 'c4'
    options = official_model_options(config)
    assert options['model.backbone.num_stages'] == 3 and options['model.neck.in_channels'] == [128]


def _load_converter():
    return load_script(CONVERTER)


def test_converter_cli_writes_a_weights_only_checkpoint(tmp_path, tiny_model, converted):
    out = tmp_path / 'tiny.pth'
    # a .npz beside its config.json: the config is found like a released checkpoint's
    _load_converter().main([str(FIXTURE / 'variables.npz'), str(out)])
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint['state_dict'].keys() == converted.keys()
    assert all(torch.equal(checkpoint['state_dict'][key], value) for key, value in converted.items())
    assert checkpoint['meta']['official_model_config']['dim_att'] == 48
    assert len(checkpoint['meta']['dataset_meta']['classes']) == 80


def test_reinit_class_tokens_keeps_every_other_weight(tiny_model, converted):
    state = {key: value.clone() for key, value in converted.items()}
    rows = reinit_class_tokens(state, tiny_model.head.tokenizer, generator=torch.Generator().manual_seed(0))
    assert rows == list(range(100, 1000))
    embedding, bias = state['head.token_embed.weight'], state['head.output_bias']
    assert torch.equal(embedding[:100], converted['head.token_embed.weight'][:100])
    assert torch.equal(embedding[1000:], converted['head.token_embed.weight'][1000:])
    assert torch.all(bias[100:1000] == 0) and torch.equal(bias[1000:], converted['head.output_bias'][1000:])
    assert embedding[100:1000].abs().max() <= 0.04
    assert math.isclose(embedding[100:1000].std().item(), 0.0176, rel_tol=0.1)
    assert all(torch.equal(state[key], converted[key]) for key in converted if not key.startswith('head.token_embed')
               and key != 'head.output_bias')


def test_fine_tune_from_converted_weights_on_the_synthetic_set(tmp_path, official_config, synthetic_root):
    from mmengine.runner import Runner
    checkpoint = tmp_path / 'tiny_reinit.pth'
    _load_converter().main([str(FIXTURE / 'variables.npz'), str(checkpoint), '--reinit-classes'])
    cfg = load_model_config(str(SYNTHETIC_CONFIG), official_config)
    frame_wh = (72, 100)
    cfg.merge_from_dict({
        'load_from': str(checkpoint), 'work_dir': str(tmp_path / 'work'), 'experiment_name': 'official_finetune',
        'visualizer.name': 'official_finetune', 'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 4, 'val_dataloader.batch_size': 4,
        'train_dataloader.dataset.pipeline.2.scale': frame_wh, 'val_dataloader.dataset.pipeline.1.scale': frame_wh,
        'train_dataloader.dataset.data_root': f'{synthetic_root}/', 'val_dataloader.dataset.data_root':
        f'{synthetic_root}/', 'val_evaluator.ann_file': f'{synthetic_root}/annotations/instances_val.json',
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1, 'optim_wrapper.optimizer.lr': 1e-4,
        'param_scheduler': [dict(type='ConstantLR', factor=1.0)], 'randomness.seed': 0,
        # a barely trained model: near-uniform constrained sampling always yields boxes to evaluate
        'model.test_cfg.top_p': 1.0, 'model.test_cfg.temperature': 3.0, 'model.test_cfg.constrained': True})
    runner = Runner.from_cfg(cfg)
    runner.train()
    records = [json.loads(line) for line in
               next((tmp_path / 'work').glob('*/vis_data/scalars.json')).read_text().splitlines()]
    losses = [record['loss'] for record in records if 'loss' in record]
    assert len(losses) == 4 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert any('coco/bbox_mAP' in record for record in records)
    # the class rows were re-initialised, the rest is the converted model
    embedding = runner.model.head.token_embed.weight.detach()
    assert embedding[100:1000].abs().max() < 0.1
