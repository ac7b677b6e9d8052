"""Converted official weights against the official TF model (no TensorFlow here).

The fixtures (tests/data/official_tiny*/, written by tools/model_converters/make_official_fixture.py with the official
code) are reduced official models with random weights: a ResNet-50, a ResNet-50 C4, a ViT and a multi-task ViT
(35000 tokens, detection, instance segmentation and keypoint prompts), each with its checkpoint variables keyed by
checkpoint key, its config.json, and the official model's outputs on one preprocessed image.
"""
import copy
import json
import math
import re

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, load_script
from mmdet.structures import DetDataSample
from mmdet.structures.mask import PolygonMasks
from mmengine.config import Config
from mmengine.structures import InstanceData

from pix2seq_mmdet.converters import (OFFICIAL_ARCHITECTURES, RELEASED_CHECKPOINTS, ConversionError, build_model,
                                      convert_official_variables, identify_release, load_model_config,
                                      official_model_options, read_checkpoint, reinit_class_tokens,
                                      target_config_name)
from pix2seq_mmdet.converters.parity import compare_with_reference, reference_outputs
from pix2seq_mmdet.models.positional_encoding import official_position_codes
from pix2seq_mmdet.models.resnet import TFSameMaxPool2d

FIXTURE = REPO_ROOT / 'tests' / 'data' / 'official_tiny'
OFFICIAL_CONFIGS = REPO_ROOT / 'configs' / 'official'
OFFICIAL_CONFIG = OFFICIAL_CONFIGS / 'pix2seq_r50-official_8xb4_300e_coco-640.py'
# every reduced official model and the configs/official config it converts into (its family's 640-px config)
FIXTURES = {
    'r50': ('official_tiny', 'pix2seq_r50-official_8xb4_300e_coco-640.py'),
    'r50-c4': ('official_tiny_c4', 'pix2seq_r50-c4-official-o365pre_8xb4_40e_coco-640.py'),
    'vit': ('official_tiny_vit', 'pix2seq_vit-b-official-o365pre_8xb4_40e_coco-640.py'),
    'multitask': ('official_tiny_multitask', 'pix2seq-v2-multitask_vit-b-official_coco-640.py'),
}
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


class Fixture:
    """One reduced official model: its official config, checkpoint variables, reference outputs, the model of its
    configs/official config resized like it, and the converted weights."""

    def __init__(self, name: str) -> None:
        folder, self.config_name = FIXTURES[name]
        self.folder = REPO_ROOT / 'tests' / 'data' / folder
        self.official_config = json.loads((self.folder / 'config.json').read_text())
        self.variables = read_checkpoint(str(self.folder / 'variables.npz'))
        with np.load(self.folder / 'reference.npz') as archive:
            self.reference = {key: archive[key] for key in archive.files}
        self.cfg = load_model_config(str(OFFICIAL_CONFIGS / self.config_name), self.official_config)
        self.model = build_model(self.cfg)
        self.state = convert_official_variables(self.variables, self.model.state_dict())
        self.model.load_state_dict(self.state, strict=True)


@pytest.fixture(scope='module', params=sorted(FIXTURES))
def fixture(request):
    return Fixture(request.param)


def test_converted_model_matches_the_official_outputs(fixture):
    reference, tokenizer = fixture.reference, fixture.model.head.tokenizer
    outputs = reference_outputs(fixture.model, reference)
    report = compare_with_reference(outputs, reference, tokenizer=tokenizer)
    differences = {key: value for key, value in report.items() if key.startswith('max_abs_diff/')}
    expected = {'stem_ln_out', 'encoder_output', 'memory', 'first_step_logits', 'teacher_forced_logits',
                'synth_logits', 'detection_boxes', 'detection_scores'}
    expected |= {'patch_embedding'} if 'patch_embedding' in reference else {'backbone_feature'}
    expected |= {'segmentation_logits', 'keypoint_logits'} if 'segmentation_input' in reference else set()
    assert {key.split('/')[1] for key in differences} == expected
    assert all(value < TOLERANCE for value in differences.values()), report
    # greedy decoding: the official margins leave room for float32 rounding, and every token must agree; the
    # sequence writes objects (coordinate and class tokens), so that the token check can fail
    assert reference['greedy_top1_top2_margin'].min() > 1e-3
    assert np.array_equal(outputs['greedy_tokens'], reference['greedy_tokens'])
    tokens = torch.from_numpy(reference['greedy_tokens'])
    assert tokenizer.is_coord(tokens).sum() >= 8 and tokenizer.is_class(tokens).sum() >= 2
    # the detections read from it equal the official post-processing's (boxes, classes, scores)
    assert report['detections/slots_with_a_model_class'] >= 2
    assert report['detections/classes_equal'] == report['detections/slots_with_a_model_class']
    assert report['max_abs_diff/detection_boxes'] < 1e-6
    if 'segmentation_input' in reference:  # the v2 prompts and responses this package writes are the official ones
        assert report['segmentation_input_equal'] and report['keypoint_input_equal']


def test_fixture_converts_into_its_family_config(fixture):
    release, name = target_config_name(fixture.official_config)
    assert release is None and name == fixture.config_name


def test_fixture_config_sizes_the_model(fixture):
    model, official = fixture.model, fixture.official_config['model']
    assert tuple(fixture.cfg.model.data_preprocessor.pad_size) == tuple(official['image_size'])
    assert model.head.tokenizer.vocab_size == official['vocab_size']
    assert model.encoder_dims == official['dim_att'] and model.head.embed_dims == official['dim_att_dec']
    if official['resnet_variant'] == 'c1':
        assert model.neck is None and model.encoder is None
        assert model.backbone.patch_embed.stride == (official['patch_size'], ) * 2
    tasks = [task['name'] for task in fixture.official_config['tasks']]
    assert len(model.head.tokenizer.tasks) == len(tasks)


def _training_batch(model, seed=0):
    """Two images of the model's frame with two objects each (boxes, polygon masks, keypoints), as the data
    preprocessor leaves them."""
    generator = torch.Generator().manual_seed(seed)
    height, width = model.data_preprocessor.pad_size
    inputs = torch.rand(2, 3, height, width, generator=generator)
    samples = []
    for _ in range(2):
        sample = DetDataSample(metainfo=dict(img_shape=(height, width), pad_shape=(height, width),
                                             batch_input_shape=(height, width), ori_shape=(height, width)))
        boxes = torch.tensor([[4.0, 6.0, width / 2, height / 2], [width / 3, height / 3, width - 5.0, height - 3.0]])
        polygons = [[np.array([x0, y0, x1, y0, x1, y1, x0, y1], np.float64)] for x0, y0, x1, y1 in boxes.tolist()]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        tokenizer = model.head.tokenizer
        keypoints = torch.cat([centres[:, None].expand(-1, tokenizer.num_keypoints, -1),
                               torch.full((2, tokenizer.num_keypoints, 1), 2.0)], dim=-1)
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]),
                                           masks=PolygonMasks(polygons, height, width), keypoints=keypoints)
        samples.append(sample)
    return inputs, samples


def test_a_fine_tuning_step_from_the_converted_weights(fixture):
    """One AdamW step of every task the model has, from the converted weights: finite losses, gradients reaching
    the first layer of the encoder, and the weights move."""
    model = build_model(fixture.cfg).train()
    model.load_state_dict(fixture.state, strict=True)
    inputs, samples = _training_batch(model)
    losses = model.loss(inputs, samples)
    expected = {'loss_segm', 'loss_keypoints'} if len(model.head.tokenizer.tasks) == 3 else set()
    assert expected <= set(losses)
    loss, _ = model.parse_losses(losses)
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    first = model.backbone.patch_embed.weight if model.neck is None else model.backbone.conv1.weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    before = first.detach().clone()
    torch.optim.AdamW(model.parameters(), lr=1e-4).step()
    assert not torch.equal(before, first.detach())


def _released_config(fixture_config: dict, release) -> dict:
    """A config.json of a released checkpoint: a fixture's official config with the release's architecture, frame,
    datasets and the official task settings (100 objects, 128 polygon points)."""
    config = copy.deepcopy(fixture_config)
    config['model'].update(OFFICIAL_ARCHITECTURES[release.architecture], image_size=[release.frame] * 2)
    config['task']['max_instances_per_image_test'] = 100
    for task in config['tasks']:
        task.update({'max_points_per_object': 128} if task['name'] == 'instance_segmentation' else {})
    if release.kind == 'objects365':
        config['datasets'][0]['name'] = 'objects365'
    return config


def _shapes(cfg) -> dict:
    """The parameter shapes of a config's model, built on the meta device (no memory, no initialisation)."""
    from mmdet.registry import MODELS
    with torch.device('meta'):
        return {name: tuple(value.shape) for name, value in MODELS.build(cfg.model).state_dict().items()}


RELEASE_IDS = [f'{release.architecture}-{release.kind}-{release.frame}' for release in RELEASED_CHECKPOINTS]


@pytest.mark.parametrize('release', RELEASED_CHECKPOINTS, ids=RELEASE_IDS)
def test_every_released_checkpoint_is_recognised_and_has_its_config(release):
    folder = 'official_tiny_multitask' if release.kind == 'multi-task' else FIXTURES[
        'vit' if release.architecture.startswith('vit') else 'r50'][0]
    fixture_config = json.loads((REPO_ROOT / 'tests' / 'data' / folder / 'config.json').read_text())
    config = _released_config(fixture_config, release)
    assert identify_release(config) == release
    assert target_config_name(config) == (release, release.config)
    # the config in configs/official already is the released model: resizing it like the official config changes
    # no parameter and not the frame
    cfg = Config.fromfile(str(OFFICIAL_CONFIGS / release.config))
    resized = load_model_config(str(OFFICIAL_CONFIGS / release.config), config)
    assert tuple(cfg.model.data_preprocessor.pad_size) == tuple(resized.model.data_preprocessor.pad_size) == (
        release.frame, ) * 2
    assert _shapes(cfg) == _shapes(resized)


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


def test_converter_refuses_a_checkpoint_without_its_official_config(tmp_path, converted):
    alone = tmp_path / 'variables.npz'
    alone.write_bytes((FIXTURE / 'variables.npz').read_bytes())
    converter = _load_converter()
    with pytest.raises(ConversionError, match='no official config.json beside .*--ignore-official-config'):
        converter.main([str(alone), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
    with pytest.raises(ConversionError, match='give --config'):
        converter.main([str(alone), str(tmp_path / 'out.pth'), '--ignore-official-config'])
    # --official-config names it, or --ignore-official-config converts into --config as it is
    converter.main([str(alone), str(tmp_path / 'named.pth'), '--official-config', str(FIXTURE / 'config.json')])
    assert torch.equal(torch.load(tmp_path / 'named.pth', weights_only=True)['state_dict']['head.output_bias'],
                       converted['head.output_bias'])
    with pytest.raises(ConversionError, match='shape mismatches'):  # the 640-px R50 config is not the tiny model
        converter.main([str(alone), str(tmp_path / 'as_is.pth'), '--ignore-official-config', '--config',
                        str(OFFICIAL_CONFIG)])


def test_a_config_of_another_architecture_is_refused(official_config):
    vit_config = json.loads((REPO_ROOT / 'tests' / 'data' / FIXTURES['vit'][0] / 'config.json').read_text())
    with pytest.raises(ConversionError, match="ViT model .* builds a Pix2SeqResNet backbone"):
        load_model_config(str(OFFICIAL_CONFIG), vit_config)
    with pytest.raises(ConversionError, match='ResNet model .* builds a Pix2SeqViT backbone'):
        load_model_config(str(OFFICIAL_CONFIGS / FIXTURES['vit'][1]), official_config)


@pytest.mark.parametrize('change, named', [
    (dict(use_cls_token=True), 'use_cls_token=True'),
    (dict(pos_encoding='learned'), "pos_encoding='learned'"),
    (dict(vocab_size=2000), 'vocab_size=2000'),
])
def test_unsupported_vit_options_are_refused(change, named):
    config = json.loads((REPO_ROOT / 'tests' / 'data' / FIXTURES['vit'][0] / 'config.json').read_text())
    config['model'].update(change)
    with pytest.raises(ConversionError, match=re.escape(named)):
        official_model_options(config)


def test_captioning_is_left_out_and_other_tasks_are_refused():
    config = json.loads((REPO_ROOT / 'tests' / 'data' / FIXTURES['multitask'][0] / 'config.json').read_text())
    config['tasks'].append(dict(name='captioning', vocab_id=13))
    tasks = official_model_options(config)['model.head.tokenizer.tasks']
    assert tasks == ('detection', 'instance_segmentation', 'keypoints')
    assert identify_release(_released_config(config, RELEASED_CHECKPOINTS[-1])) == RELEASED_CHECKPOINTS[-1]
    config['tasks'].append(dict(name='panoptic_segmentation', vocab_id=16))
    with pytest.raises(ConversionError, match=r"tasks \['panoptic_segmentation'\]"):
        official_model_options(config)


def test_vit_conversion_errors_name_the_variable():
    fixture = Fixture('vit')
    broken = dict(fixture.variables)
    broken.pop('model/encoder/stem_conv/kernel' + SUFFIX)
    broken['model/encoder/output_ln/gamma' + SUFFIX] = np.ones(47, np.float32)
    with pytest.raises(ConversionError) as error:
        convert_official_variables(broken, fixture.model.state_dict())
    for text in ('encoder/stem_conv/kernel (for backbone.patch_embed.weight (48, 3, 8, 8))',
                 'backbone.encoder.norm.weight: model (48,), checkpoint gives (47,)'):
        assert text in str(error.value), str(error.value)


@pytest.mark.parametrize('name', ['vit', 'multitask'])
def test_onnx_export_of_a_converted_vit_decodes_the_official_tokens(name, tmp_path):
    """The ONNX export (the encoder graph is the ViT) of a converted official model: its graphs match PyTorch, and
    ONNX Runtime's greedy decoding of the official preprocessed image writes the official model's tokens."""
    pytest.importorskip('onnxruntime')
    from pix2seq_mmdet.deploy.check import check_export
    from pix2seq_mmdet.deploy.export import export_onnx
    from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
    fixture = Fixture(name)
    export_onnx(fixture.model, tmp_path)
    result = check_export(fixture.model, tmp_path, steps=4)
    assert result['encoder_max_abs_diff'] < TOLERANCE and result['fp32_logits_max_abs_diff'] < TOLERANCE
    runtime = Pix2SeqRuntime(tmp_path)
    image = np.ascontiguousarray(fixture.reference['image'].transpose(2, 0, 1)[None], np.float32)
    tokens, _, _ = runtime.decode(runtime.encode(image), strategy='greedy')
    assert np.array_equal(tokens[0], fixture.reference['greedy_tokens'])
