"""ONNX export and the ONNX Runtime backend (pix2seq_mmdet.deploy) on the tiny synthetic model, randomly initialised:
the runtime's preprocessing, greedy tokens, logits and detections against PyTorch's, the cache kept in place through
IO binding, the int8 decoder, COCO evaluation through mmdet's metric, the command-line tools, a torch-free import of
the runtime, and clear errors on bad input; a tiny Pix2Seq v2 model's masks (greedy responses, masks and segm
equal to PyTorch's, seeded sampling, a fixed batch) with the detection-only export unchanged; and a tiny keypoints
model's keypoints and their scores (equal to PyTorch's, with and without INVISIBLE answers, keypoint AP)."""
import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

from conftest import REPO_ROOT, SYNTHETIC_CONFIG  # noqa: E402
from model_utils import build_model, widen_decoder  # noqa: E402

from pix2seq_mmdet.deploy import runtime as ort_runtime  # noqa: E402
from pix2seq_mmdet.deploy.check import check_export, torch_decoder_logits  # noqa: E402
from pix2seq_mmdet.deploy.export import export_onnx  # noqa: E402
from pix2seq_mmdet.deploy.metadata import ExportMismatchError, Vocabulary, sha256_file  # noqa: E402
from pix2seq_mmdet.deploy.processing import ImageMeta, load_image  # noqa: E402
from pix2seq_mmdet.deploy.sampling import sampling_candidates  # noqa: E402
from pix2seq_mmdet.models.decoding import DecodingConfig, filter_logits  # noqa: E402

MAX_OBJECTS = 4
# non-square images of other sizes than the 128-px frame: the runtime's keep-ratio resize against mmdet's Resize
ODD_SHAPES = ((90, 200), (300, 170))


@pytest.fixture(scope='module')
def model(synthetic_cfg):
    """The tiny synthetic model, randomly initialised, its decoder widened (``widen_decoder``: varied greedy
    sequences, and some slots of constrained decoding are boxes)."""
    torch.manual_seed(0)
    return widen_decoder(build_model(synthetic_cfg, max_objects=MAX_OBJECTS).eval())


@pytest.fixture(scope='module')
def export_dir(model, synthetic_cfg, tmp_path_factory):
    """A dynamic-batch export with the int8 decoder (checked against PyTorch by export_onnx)."""
    out_dir = tmp_path_factory.mktemp('onnx')
    meta = export_onnx(model, out_dir, dynamic_batch=True, int8=True, class_names=synthetic_cfg.classes,
                       test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    return out_dir, meta


@pytest.fixture(scope='module')
def cli_export(model, synthetic_cfg, tmp_path_factory):
    """tools/deployment/pytorch2onnx.py on a checkpoint of the same model: static batch 1, the decoder's
    self-attention in standard ONNX operators."""
    work = tmp_path_factory.mktemp('onnx_cli')
    checkpoint = work / 'model.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=synthetic_cfg.classes))),
               checkpoint)
    out_dir = work / 'export'
    result = subprocess.run(
        [sys.executable, 'tools/deployment/pytorch2onnx.py', str(SYNTHETIC_CONFIG), str(checkpoint), '--out-dir',
         str(out_dir), '--attention', 'onnx', '--cfg-options', f'model.head.tokenizer.max_objects={MAX_OBJECTS}'],
        cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out_dir, result.stdout


@pytest.fixture(scope='module')
def images(synthetic_root):
    """The synthetic val images as paths, plus two random BGR arrays of other shapes."""
    paths = sorted(str(path) for path in (synthetic_root / 'val').glob('*.png'))
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in ODD_SHAPES]
    return paths + arrays


def torch_batch(model, synthetic_cfg, images):
    """What mmdet's test pipeline and the model's data preprocessor make of ``images``."""
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    resize = next(step for step in synthetic_cfg.test_dataloader.dataset.pipeline if step['type'] == 'Resize')
    pipeline = Compose([dict(type='mmdet.LoadImageFromNDArray'), copy.deepcopy(resize),
                        dict(type='mmdet.PackDetInputs')])
    samples = [pipeline(dict(img=load_image(image))) for image in images]
    with torch.no_grad():
        return model.data_preprocessor(pseudo_collate(samples), False)


def constrained(model):
    """A copy of the model decoding greedily with constrained decoding: a random model's sequences are then
    well-formed (coordinates at box positions, classes at class positions), so it detects objects."""
    model = copy.deepcopy(model)
    model.head.decoding_cfg = DecodingConfig(**dict(vars(model.head.decoding_cfg), constrained=True))
    return model


@pytest.fixture(scope='module')
def torch_results(model, synthetic_cfg, images):
    """PyTorch's preprocessed batch, memory, greedy tokens and class probabilities (plain and constrained) and the
    detections of constrained decoding."""
    data = torch_batch(model, synthetic_cfg, images)
    with torch.no_grad():
        memory, memory_mask = model.encode(data['inputs'], data['data_samples'])
        tokens, class_probs, _ = model.head.generate(memory, memory_mask)
        constrained_model = constrained(model)
        constrained_tokens, constrained_probs, _ = constrained_model.head.generate(memory, memory_mask)
        detections = constrained_model.predict(data['inputs'], data['data_samples'])
    return dict(inputs=data['inputs'], memory=memory, tokens=tokens, class_probs=class_probs,
                constrained_tokens=constrained_tokens, constrained_probs=constrained_probs,
                detections=[sample.pred_instances for sample in detections])


def sorted_detections(bboxes, scores, labels):
    order = np.lexsort((labels, -np.round(scores, 5)))
    return bboxes[order], scores[order], labels[order]


# ------------------------------------------------------------------------------------------------------ export
def test_export_writes_graphs_and_json(model, export_dir):
    out_dir, meta = export_dir
    for key in ('encoder', 'decoder_step', 'decoder_step_int8'):
        assert (out_dir / meta['graphs'][key]['file']).is_file()
        assert meta['graphs'][key]['sha256'] == sha256_file(out_dir / meta['graphs'][key]['file'])
    assert json.loads((out_dir / 'pix2seq.json').read_text())['export_id'] == meta['export_id']
    tokenizer = model.head.tokenizer
    vocab = meta['vocabulary']
    assert (vocab['pad'], vocab['eos'], vocab['bos'], vocab['fake']) == (tokenizer.PAD, tokenizer.EOS, tokenizer.BOS,
                                                                         tokenizer.FAKE)
    assert vocab['class_token_ids'] == torch.arange(tokenizer.vocab_size)[tokenizer.real_classes].tolist()
    assert (vocab['coord_offset'], vocab['num_bins']) == (tokenizer.coord_offset, tokenizer.num_bins)
    assert vocab['max_objects'] == MAX_OBJECTS
    allowed = Vocabulary(vocab).constraint == 0
    assert (allowed == tokenizer.allowed_tokens().numpy()).all()
    assert meta['preprocess']['pad_size'] == [128, 128] and meta['preprocess']['bgr_to_rgb']
    assert meta['geometry'] == dict(num_layers=2, num_heads=4, head_dims=32, embed_dims=128,
                                    cache_len=tokenizer.seq_len, memory_len=64, box_memory=None)
    assert meta['check']['fp32_logits_max_abs_diff'] < 1e-4
    assert np.isfinite(meta['check']['int8_logits_max_abs_diff'])  # information only: int8 is close, not equal


def test_check_runs_the_graphs_against_pytorch(model, export_dir):
    result = check_export(model, export_dir[0], steps=3, seed=1)
    assert result['encoder_max_abs_diff'] < 1e-4 and result['fp32_logits_max_abs_diff'] < 1e-4


def test_export_refuses_what_the_runtime_cannot_reproduce(model, tmp_path):
    from pix2seq_mmdet.deploy.export import preprocess_spec
    with pytest.raises(ValueError, match='does not fit in the frame'):
        preprocess_spec(model, [dict(type='Resize', scale=(256, 256), keep_ratio=True)])
    assert preprocess_spec(model, [dict(type='Resize', scale=(128, 100), keep_ratio=False)])['resize'] == dict(
        scale=[128, 100], keep_ratio=False, interpolation='bilinear')
    masked = copy.deepcopy(model)
    masked.mask_padding = True
    with pytest.raises(NotImplementedError, match='mask_padding'):
        export_onnx(masked, tmp_path)


@pytest.mark.parametrize('attention', ['gqa', 'onnx'])
def test_export_leaves_the_model_in_eval_mode(model, tmp_path, attention):
    """The exporter restores its wrapper's training mode onto the model (the wrapper is built in eval mode) and the
    attention kernels it swaps in for the trace."""
    from pix2seq_mmdet.deploy.export import export_decoder_step
    from pix2seq_mmdet.models.transformer import dot_product_attention
    export_decoder_step(model.head, tmp_path / 'step.onnx', 1, 64, attention=attention)
    assert not any(module.training for module in model.head.modules())
    assert all(layer.self_attn.kernel is dot_product_attention and layer.cross_attn.kernel is dot_product_attention
               for layer in model.head.layers)


# ------------------------------------------------------------------------------------------------------ parity
def test_preprocessing_matches_mmdet(export_dir, torch_results, images):
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    batch, metas = detector.preprocess(images)
    np.testing.assert_allclose(batch, torch_results['inputs'].numpy(), rtol=0, atol=1e-5)
    for meta, shape in zip(metas[-len(ODD_SHAPES):], ODD_SHAPES):
        assert meta.ori_shape == shape and max(meta.img_shape) == 128


def test_greedy_tokens_logits_and_detections_match_pytorch(model, export_dir, torch_results, images):
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    batch, metas = detector.preprocess(images)
    encoded = detector.encode(batch)
    np.testing.assert_allclose(encoded.memory, torch_results['memory'].numpy(), atol=1e-4)
    tokens, class_probs, _ = detector.decode(encoded, strategy='greedy')
    assert (tokens == torch_results['tokens'].numpy()).all()  # every image, every token
    np.testing.assert_allclose(class_probs, torch_results['class_probs'].numpy(), atol=1e-5)
    # the logits along the decoded sequences, step by step through the bound cache
    inputs = np.concatenate([np.full((len(images), 1), detector.vocab.bos), tokens[:, :-1]], axis=1)
    reference = torch_decoder_logits(model.head, torch_results['memory'], torch.from_numpy(inputs)).numpy()
    detector.decoder.start(encoded)
    logits = np.stack([detector.decoder.step(inputs[:, t], t).copy() for t in range(inputs.shape[1])], axis=1)
    assert np.abs(logits - reference).max() < 1e-4
    tokens, class_probs, coords = detector.decode(encoded, strategy='greedy', constrained=True)
    assert (tokens == torch_results['constrained_tokens'].numpy()).all()
    np.testing.assert_allclose(class_probs, torch_results['constrained_probs'].numpy(), atol=1e-5)
    counts = []
    for seq, probs, seq_coords, meta, expected in zip(tokens, class_probs, coords, metas, torch_results['detections']):
        got = detector.postprocess(seq, probs, meta, coords=seq_coords)
        counts.append(len(got))
        assert len(got) == len(expected.scores)
        got = sorted_detections(got.bboxes, got.scores, got.labels)
        want = sorted_detections(expected.bboxes.numpy(), expected.scores.numpy(), expected.labels.numpy())
        np.testing.assert_allclose(got[0], want[0], atol=1e-3)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
        assert (got[2] == want[2]).all()
    assert sum(counts) > 0


def test_coordinate_readout_and_box_confidence_match_pytorch(model, export_dir, synthetic_cfg, images):
    """``coord_window`` and ``box_confidence`` (decoding options of the export too): the same tokens, read
    coordinates, scores and detections as the PyTorch head."""
    options = dict(strategy='greedy', constrained=True, coord_window=2, box_confidence=True)
    reading_model = copy.deepcopy(model)
    reading_model.head.decoding_cfg = DecodingConfig(**dict(vars(model.head.decoding_cfg), **options))
    data = torch_batch(reading_model, synthetic_cfg, images)
    with torch.no_grad():
        want_tokens, want_probs, want_coords = reading_model.head.generate(
            *reading_model.encode(data['inputs'], data['data_samples']))
        expected = [sample.pred_instances for sample in reading_model.predict(data['inputs'], data['data_samples'])]
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    batch, metas = detector.preprocess(images)
    tokens, class_probs, coords = detector.decode(detector.encode(batch), **options)
    assert (tokens == want_tokens.numpy()).all()
    np.testing.assert_allclose(coords, want_coords.numpy(), atol=1e-5)
    assert np.abs(coords - detector.vocab.dequantize(tokens))[detector.vocab.is_coord(tokens)].max() > 0
    np.testing.assert_allclose(class_probs, want_probs.numpy(), atol=1e-5)
    for seq, probs, seq_coords, meta, instances in zip(tokens, class_probs, coords, metas, expected):
        found = detector.postprocess(seq, probs, meta, coords=seq_coords)
        got = sorted_detections(found.bboxes, found.scores, found.labels)
        want = sorted_detections(instances.bboxes.numpy(), instances.scores.numpy(), instances.labels.numpy())
        assert len(got[1]) == len(want[1])
        np.testing.assert_allclose(got[0], want[0], atol=1e-3)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    with pytest.raises(ValueError, match='coord_window=0'):
        detector.options(parallel=True, coord_window=2)


@pytest.mark.parametrize('seed', range(4))
def test_postprocessing_matches_tokens_to_instances(model, export_dir, seed):
    """Random sequences (well-formed slots, malformed ones, EOS, boxes partly or wholly in the padding) through the
    runtime's post-processing and the head's ``tokens_to_instances``."""
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    tokenizer = model.head.tokenizer
    generator = torch.Generator().manual_seed(seed)
    num_slots = 3 * MAX_OBJECTS
    slots = torch.randint(tokenizer.coord_offset, tokenizer.vocab_size, (num_slots, 5), generator=generator)
    ordered = slots[::2, :4].view(-1, 2, 2).sort(dim=1).values  # every other box well-ordered (y1 < y2, x1 < x2)
    slots[::2, :4] = ordered.flatten(1)
    slots[:, 4] = torch.randint(tokenizer.FAKE, tokenizer.coord_offset, (num_slots, ), generator=generator)
    slots[2 * seed + 1, seed % 5] = [tokenizer.EOS, tokenizer.PAD, tokenizer.BOS, 0][seed]
    tokens = slots.flatten()
    class_probs = torch.rand(num_slots, tokenizer.num_classes, generator=generator)
    img_shape, scale_factor = (100, 80 + 10 * seed), (0.5 + 0.1 * seed, 0.4)
    expected = model.head.tokens_to_instances(tokens, class_probs, dict(img_shape=img_shape, pad_shape=(128, 128),
                                                                        scale_factor=scale_factor))
    meta = ImageMeta(ori_shape=(0, 0), img_shape=img_shape, scale_factor=scale_factor)
    got = detector.postprocess(tokens.numpy(), class_probs.numpy(), meta)
    got = sorted_detections(got.bboxes, got.scores, got.labels)
    want = sorted_detections(expected.bboxes.numpy(), expected.scores.numpy(), expected.labels.numpy())
    assert len(got[1]) == len(want[1])
    for got_part, want_part in zip(got, want):
        np.testing.assert_allclose(got_part, want_part, atol=1e-4)


def test_io_binding_updates_the_cache_in_place(export_dir, images, monkeypatch):
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])

    def no_plain_run(*args, **kwargs):
        raise AssertionError('decoding must go through run_with_iobinding')

    monkeypatch.setattr(detector.decoder.session, 'run', no_plain_run)
    monkeypatch.setattr(detector.encoder_session, 'run', no_plain_run)
    detector(images[:2], strategy='greedy')
    buffers = detector.decoder.buffers
    # the outputs are the bound buffers themselves: each layer's cache output its input, the logits a numpy array
    output_pointers = {value.data_ptr() for value in detector.decoder.binding.get_outputs()}
    assert output_pointers == {array.ctypes.data for array in buffers['cache'] + [buffers['logits']]}
    for cache in buffers['cache']:  # and the graph wrote every decoded position into them
        assert (np.abs(cache[:, :, :5 * MAX_OBJECTS]).sum(-1) > 0).all()


def test_decoding_with_a_static_batch_export(model, cli_export, export_dir, images):
    out_dir, stdout = cli_export
    assert sorted(path.name for path in out_dir.iterdir()) == ['decoder_step.onnx', 'encoder.onnx', 'pix2seq.json']
    assert 'check against PyTorch' in stdout
    static = ort_runtime.Pix2SeqRuntime(out_dir)
    assert static.static_batch == 1 and static.class_names == ['circle', 'square', 'triangle', 'star']
    assert static.meta['decoder_attention'] == 'onnx' and export_dir[1]['decoder_attention'] == 'gqa'
    dynamic = ort_runtime.Pix2SeqRuntime(export_dir[0])
    for image in (images[0], images[-1]):
        got, want = static(image, strategy='greedy')[0], dynamic(image, strategy='greedy')[0]
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
        np.testing.assert_allclose(got.bboxes, want.bboxes, atol=1e-3)
    with pytest.raises(ValueError, match='batch size of 1'):
        static(images[:2])


# ------------------------------------------------------------------------------------------ parallel decoding
@pytest.fixture(scope='module')
def block_model(synthetic_cfg):
    """The tiny synthetic model with the block objective of parallel box decoding, randomly initialised and
    widened, decoding greedily."""
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.head.block_decoding = dict(block_size=5)
    cfg.model.test_cfg.update(strategy='greedy', coord_window=0, box_confidence=False)  # parallel: decoded bins
    torch.manual_seed(0)
    return widen_decoder(build_model(cfg, max_objects=MAX_OBJECTS).eval())


def count_calls(monkeypatch, owner, name):
    """Count the calls of ``owner.<name>`` (a list whose length grows)."""
    calls, method = [], getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args, **kwargs: calls.append(1) or method(*args, **kwargs))
    return calls


@pytest.mark.parametrize('batch_size, dynamic_batch, attention', [(1, False, 'gqa'), (3, True, 'onnx')])
@pytest.mark.parametrize('stop_at_eos', [False, True])
def test_parallel_decoding_matches_pytorch(block_model, synthetic_cfg, images, tmp_path, monkeypatch, batch_size,
                                           dynamic_batch, attention, stop_at_eos):
    """The block-step graph (GroupQueryAttention at a fixed batch of 1, standard operators for a dynamic batch)
    decodes the tokens of PyTorch's parallel decoding with the drafts kept and verified (whose corrections of this
    untrained model's drafts run token steps and repeated block steps), in as many steps, with class probabilities
    within 1e-5; verified, they are token-by-token greedy decoding's."""
    meta = export_onnx(block_model, tmp_path, batch_size=batch_size, dynamic_batch=dynamic_batch,
                       test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    assert meta['block_attention'] == attention
    assert meta['check']['fp32_block_logits_max_abs_diff'] < 1e-4
    runtime = ort_runtime.Pix2SeqRuntime(tmp_path)
    data = torch_batch(block_model, synthetic_cfg, images[:3])
    head = block_model.head
    with torch.no_grad():
        memory, memory_mask = block_model.encode(data['inputs'], data['data_samples'])
    batch, _ = runtime.preprocess(images[:3])
    onnx_steps = count_calls(monkeypatch, runtime.decoder, 'step')
    onnx_block_steps = count_calls(monkeypatch, runtime.decoder, 'block_step')
    torch_steps = count_calls(monkeypatch, head, 'forward_step')
    cfg = head.decoding_cfg
    for verify in (False, True):
        head.decoding_cfg = DecodingConfig(**dict(vars(cfg), parallel=True, parallel_verify=verify,
                                                  stop_at_eos=stop_at_eos))
        torch_steps.clear(), onnx_steps.clear(), onnx_block_steps.clear()
        want_tokens, want_probs, _ = head.generate(memory, memory_mask)
        got = [runtime.decode(runtime.encode(batch[start:start + batch_size]), parallel=True,
                              parallel_verify=verify, stop_at_eos=stop_at_eos) for start in range(0, 3, batch_size)]
        got_tokens, got_probs, _ = (np.concatenate(part) for part in zip(*got))
        np.testing.assert_array_equal(got_tokens, want_tokens.numpy())
        np.testing.assert_allclose(got_probs, want_probs.numpy(), atol=1e-5)
        if batch_size == 3:  # one batch each: the same steps
            assert len(onnx_steps) + len(onnx_block_steps) == len(torch_steps)
        if verify:
            assert len(onnx_steps) > 0  # some drafts were corrected token by token
            head.decoding_cfg = DecodingConfig(**dict(vars(cfg), parallel=False, stop_at_eos=stop_at_eos))
            serial_tokens, _, _ = head.generate(memory, memory_mask)
            np.testing.assert_array_equal(got_tokens, serial_tokens.numpy())
    head.decoding_cfg = cfg


def test_parallel_decoding_needs_a_block_step(export_dir, images):
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    assert detector.decoder.block_session is None and export_dir[1]['block_attention'] is None
    with pytest.raises(ValueError, match='no block step.*block_decoding'):
        detector(images[0], parallel=True)
    with pytest.raises(ValueError, match='parallel decoding is greedy'):
        detector.options(parallel=True, strategy='nucleus')


# ---------------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize('top_k, top_p', [(0, 0.4), (0, 0.9), (5, 1.0), (5, 0.4), (0, 1.0), (80, 0.95)])
@pytest.mark.parametrize('spread', [3.0, 0.05])
def test_nucleus_filter_matches_the_package(top_k, top_p, spread):
    """The runtime sampler's candidates (sorted among the top tokens only, redone over the whole vocabulary when the
    nucleus reaches beyond them: the flat ``spread``) and their weights against ``decoding.filter_logits``."""
    logits = torch.randn(6, 200, generator=torch.Generator().manual_seed(top_k)) * spread
    filtered = filter_logits(logits, top_k, top_p)
    expected = torch.isinf(filtered).numpy()
    ids, weights = sampling_candidates(logits.numpy(), top_k, top_p)
    sampled = np.zeros(logits.shape)
    np.put_along_axis(sampled, ids, weights, axis=-1)
    assert ((sampled == 0) == expected).all()
    np.testing.assert_allclose(sampled / sampled.sum(-1, keepdims=True), filtered.softmax(-1).numpy(), atol=1e-6)


def test_nucleus_decoding_is_seeded(export_dir, images):
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    encoded = detector.encode(detector.preprocess(images[:3])[0])
    first = detector.decode(encoded, seed=3, strategy='nucleus', top_p=0.4)[0]
    assert (first == detector.decode(encoded, seed=3, strategy='nucleus', top_p=0.4)[0]).all()
    assert ((first >= 0) & (first < detector.vocab.vocab_size)).all()
    with pytest.raises(ValueError, match='one of'):
        detector.decode(encoded, strategy='beam')


def test_int8_decoder(export_dir, images):
    """The int8 decoder step teacher-forced on fp32's constrained greedy sequences: its logits within a few per cent
    of fp32's, and the detections those sequences give with its class probabilities equal to fp32's detections (the
    same boxes, the same best class, scores within 30 % (the logits differ by a few per cent of their range))."""
    fp32 = ort_runtime.Pix2SeqRuntime(export_dir[0])
    int8 = ort_runtime.Pix2SeqRuntime(export_dir[0], decoder='int8')
    batch, metas = fp32.preprocess(images[:4])
    encoded = fp32.encode(batch)
    # the class probabilities alone (no box confidence), as the int8 logits give them below
    tokens, class_probs, _ = fp32.decode(encoded, strategy='greedy', constrained=True, box_confidence=False)
    int8.decoder.start(encoded)
    fp32.decoder.start(encoded)
    inputs = np.concatenate([np.full((4, 1), fp32.vocab.bos), tokens[:, :-1]], axis=1)
    errors, int8_class_probs = [], np.zeros_like(class_probs)
    for t in range(inputs.shape[1]):
        expected = fp32.decoder.step(inputs[:, t], t)
        logits = int8.decoder.step(inputs[:, t], t)
        errors.append(np.abs(logits - expected).max() / np.abs(expected).max())
        if t % 5 == 4:  # a class position
            int8_class_probs[:, t // 5] = int8.vocab.class_probabilities(logits + int8.vocab.constraint[4])
    # dynamic int8 quantisation of this fixture's widened decoder weights: typically 4-8 % of the logits' range, single
    # steps up to ~11 %; a broken int8 graph is off by the whole range
    assert np.median(errors) < 0.1 and max(errors) < 0.2, np.round(errors, 3)
    compared = 0
    for seq, probs, int8_probs, meta in zip(tokens, class_probs, int8_class_probs, metas):
        want, got = fp32.postprocess(seq, probs, meta), int8.postprocess(seq, int8_probs, meta)
        assert len(got) == len(want)
        np.testing.assert_array_equal(got.bboxes, want.bboxes)
        assert got.labels[:1].tolist() == want.labels[:1].tolist()
        np.testing.assert_allclose(got.scores, want.scores, rtol=0.3, atol=2e-3)
        compared += len(want)
    assert compared >= 4


# ------------------------------------------------------------------------------------------------- evaluation
def assert_onnx_evaluation_equals_pytorch(model, export_dir, cfg, metric_key: str, **decoding) -> None:
    """The config's evaluator gives the same metrics (``metric_key`` among them) for the ONNX export (decoded with
    ``decoding`` overrides) and for ``model``."""
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner

    from pix2seq_mmdet.deploy.evaluation import evaluate_onnx
    got = evaluate_onnx(cfg, export_dir, **decoding)
    evaluator = Evaluator(cfg.test_evaluator)
    dataloader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator.dataset_meta = dataloader.dataset.metainfo
    with torch.no_grad():
        for data_batch in dataloader:
            evaluator.process(data_samples=model.test_step(data_batch), data_batch=data_batch)
    expected = evaluator.evaluate(len(dataloader.dataset))
    assert got.keys() == expected.keys() and metric_key in got
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def small_test_set(synthetic_cfg, synthetic_root):
    """The synthetic config on the tests' small dataset, 4 images per batch."""
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.test_dataloader.dataset.data_root = str(synthetic_root)
    cfg.test_dataloader.batch_size = 4
    return cfg


def test_onnx_evaluation_equals_pytorch_evaluation(model, export_dir, synthetic_cfg, synthetic_root):
    cfg = small_test_set(synthetic_cfg, synthetic_root)
    cfg.test_evaluator.ann_file = str(synthetic_root / 'annotations' / 'instances_val.json')
    assert_onnx_evaluation_equals_pytorch(constrained(model), export_dir[0], cfg, 'coco/bbox_mAP', strategy='greedy',
                                          constrained=True)


# ------------------------------------------------------------------------------------------- tools, no torch
def test_runtime_and_demo_need_no_torch(export_dir, images, tmp_path):
    code = (
        'import sys\n'
        'from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime\n'
        f'result = Pix2SeqRuntime({str(export_dir[0])!r})({images[0]!r})[0]\n'
        'assert result.bboxes.shape == (len(result), 4)\n'
        'heavy = [name for name in ("torch", "mmdet", "mmcv", "mmengine") if name in sys.modules]\n'
        'assert not heavy, heavy\n'
        'print("ok")\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and 'ok' in result.stdout, result.stderr[-3000:]
    out = tmp_path / 'demo.jpg'
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'deployment' / 'onnx_demo.py'), images[0],
                             str(export_dir[0]), '--out', str(out), '--score-thr', '0'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert cv2.imread(str(out)).shape == (128, 128, 3)
    # the demo itself, with torch, mmcv, mmdet and mmengine made unimportable
    blocker = tmp_path / 'blocked'
    for name in ('torch', 'mmdet', 'mmcv', 'mmengine'):
        (blocker / name).mkdir(parents=True)
        (blocker / name / '__init__.py').write_text(f'raise ImportError("{name} is blocked")')
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'deployment' / 'onnx_demo.py'), images[0],
                             str(export_dir[0]), '--out', str(out)],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=f'{blocker}{os.pathsep}{REPO_ROOT}'))
    assert result.returncode == 0, result.stderr[-3000:]


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def export_copy(export_dir, tmp_path):
    target = tmp_path / 'copy'
    shutil.copytree(export_dir[0], target)
    return target


def test_missing_files(export_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match='pix2seq.json'):
        ort_runtime.Pix2SeqRuntime(tmp_path / 'nowhere')
    (export_copy / 'decoder_step.onnx').unlink()
    with pytest.raises(FileNotFoundError, match='decoder_step.onnx'):
        ort_runtime.Pix2SeqRuntime(export_copy)
    (export_copy / 'decoder_step_int8.onnx').unlink()
    with pytest.raises(FileNotFoundError, match='decoder_step_int8.onnx'):
        ort_runtime.Pix2SeqRuntime(export_copy, decoder='int8')
    meta = json.loads((export_copy / 'pix2seq.json').read_text())
    del meta['graphs']['decoder_step_int8']
    (export_copy / 'pix2seq.json').write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match='--int8'):
        ort_runtime.Pix2SeqRuntime(export_copy, decoder='int8')


def test_mismatched_graph_file(export_copy):
    shutil.copy(export_copy / 'decoder_step_int8.onnx', export_copy / 'decoder_step.onnx')
    with pytest.raises(ExportMismatchError, match='decoder_step.onnx does not match'):
        ort_runtime.Pix2SeqRuntime(export_copy)
    # without the hash check the graph's inputs/outputs still are checked; here they agree, so it loads
    ort_runtime.Pix2SeqRuntime(export_copy, verify=False)


def test_json_from_another_export(export_copy, cli_export):
    shutil.copy(cli_export[0] / 'pix2seq.json', export_copy / 'pix2seq.json')
    with pytest.raises(ExportMismatchError, match='different exports'):
        ort_runtime.Pix2SeqRuntime(export_copy)
    with pytest.raises(ExportMismatchError, match='belongs to export'):
        ort_runtime.Pix2SeqRuntime(export_copy, verify=False)  # the export id stamped into the graphs


def test_json_of_another_format(export_copy):
    meta = json.loads((export_copy / 'pix2seq.json').read_text())
    (export_copy / 'pix2seq.json').write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(ValueError, match='format version 99'):
        ort_runtime.Pix2SeqRuntime(export_copy)
    (export_copy / 'pix2seq.json').write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match='not a Pix2Seq ONNX export'):
        ort_runtime.Pix2SeqRuntime(export_copy)


def test_bad_images(export_dir, tmp_path):
    detector = ort_runtime.Pix2SeqRuntime(export_dir[0])
    with pytest.raises(TypeError, match='file path or an'):
        detector(123)
    with pytest.raises(TypeError, match='file path or an'):
        detector([torch.zeros(3, 8, 8)])
    with pytest.raises(ValueError, match='uint8'):
        detector(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        detector(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        detector(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match='not found'):
        detector(str(tmp_path / 'missing.png'))
    (tmp_path / 'text.png').write_text('not an image')
    with pytest.raises(ValueError, match='could not be decoded'):
        detector(str(tmp_path / 'text.png'))
    with pytest.raises(ValueError, match='no images'):
        detector([])
    with pytest.raises(ValueError, match='float32'):
        detector.encode(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(TypeError, match='unknown decoding options'):
        detector(np.zeros((8, 8, 3), np.uint8), beam_width=2)


# ---------------------------------------------------------------------------------------- instance segmentation
V2 = ('detection', 'instance_segmentation')
# the detection-only export's JSON keys (pix2seq.json and its vocabulary) before the instance segmentation task
DETECTION_META_KEYS = {'format', 'format_version', 'export_id', 'exporter', 'opset', 'batch_size', 'dynamic_batch',
                       'decoder_attention', 'graphs', 'vocabulary', 'preprocess', 'geometry', 'classes', 'decoding',
                       'source', 'check'}
DETECTION_VOCABULARY_KEYS = {'vocab_size', 'pad', 'eos', 'bos', 'fake', 'class_token_ids', 'coord_offset', 'num_bins',
                             'num_classes', 'max_objects', 'seq_len', 'tokens_per_object', 'allowed_token_runs'}


def build_seg_model(synthetic_cfg, **model_options):
    """A tiny Pix2Seq v2 model (detection and instance segmentation, 16 polygon points: its 38 instance positions
    outnumber the 21 of the detection sequence), randomly initialised and widened, decoding greedily with
    constrained detection (so that it detects objects) and one greedy polygon per box; ``model_options`` set model
    config keys (a dict updates the key's dict, where there is one)."""
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.aux_head = None
    cfg.head.tokenizer.update(tasks=V2, max_points_per_object=16, max_objects=MAX_OBJECTS)
    cfg.test_cfg.update(constrained=True, instance_segmentation=dict(strategy='greedy', num_samples=1))
    for key, value in model_options.items():
        if isinstance(value, dict) and key in cfg:
            cfg[key].update(value)
        else:
            cfg[key] = value
    torch.manual_seed(0)
    from mmdet.registry import MODELS
    model = MODELS.build(cfg)
    model.init_weights()
    return widen_decoder(model.eval())


@pytest.fixture(scope='module')
def seg_model(synthetic_cfg):
    return build_seg_model(synthetic_cfg)


@pytest.fixture(scope='module')
def seg_export(seg_model, synthetic_cfg, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('onnx_seg')
    export_onnx(seg_model, out_dir, dynamic_batch=True, class_names=synthetic_cfg.classes,
                test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    return out_dir


def test_seg_export_records_the_task(seg_model, seg_export):
    meta = json.loads((seg_export / 'pix2seq.json').read_text())
    tokenizer = seg_model.head.tokenizer
    assert tokenizer.num_positions == tokenizer.instance_seq_len > tokenizer.seq_len
    assert meta['geometry']['cache_len'] == tokenizer.num_positions
    assert meta['vocabulary']['instance_segmentation'] == dict(
        task_prompt=tokenizer.task_prompts['instance_segmentation'], separator=tokenizer.SEPARATOR,
        max_points_per_object=16, response_len=tokenizer.response_len, instance_seq_len=tokenizer.instance_seq_len,
        polygon_frame='image')
    assert meta['mask_decoding']['num_samples'] == 1 and meta['mask_decoding']['strategy'] == 'greedy'
    assert meta['vocabulary']['keypoints'] is None and meta['keypoint_decoding'] is None
    assert meta['check']['fp32_logits_max_abs_diff'] < 1e-4


def test_detection_only_export_is_unchanged(export_dir, cli_export, images):
    """No new key but null ones, the cache of the detection sequence's length, and no masks to ask for."""
    for out_dir in (export_dir[0], cli_export[0]):
        meta = json.loads((out_dir / 'pix2seq.json').read_text())
        assert {key for key, value in meta.items() if value is not None} == DETECTION_META_KEYS
        assert meta['mask_decoding'] is None and meta['keypoint_decoding'] is None
        vocabulary = meta['vocabulary']
        assert {key for key, value in vocabulary.items() if value is not None} == DETECTION_VOCABULARY_KEYS
        assert meta['geometry']['cache_len'] == vocabulary['seq_len'] == 5 * MAX_OBJECTS + 1
        detector = ort_runtime.Pix2SeqRuntime(out_dir)
        cache = {node.name: node.shape for node in detector.decoder.session.get_inputs()}['cache_key_0']
        assert cache[2] == vocabulary['seq_len']
        found = detector(images[0])[0]
        assert found.masks is None and found.keypoints is None and found.keypoint_scores is None
        with pytest.raises(ValueError, match='without the instance_segmentation task'):
            detector(images[0], masks=True)
        with pytest.raises(ValueError, match='without the instance_segmentation task'):
            detector(images[0], mask_options=dict(num_samples=2))
        with pytest.raises(ValueError, match='without the keypoints task'):
            detector(images[0], keypoints=True)


@pytest.mark.parametrize('constrained', [False, True])
def test_greedy_responses_equal_pytorch_for_the_same_prompts(seg_model, seg_export, images, constrained):
    """Random prompts on random images of the batch: the runtime's greedy responses (the prompt fed one token per
    step through the step graph) against ``decode_responses`` over the head's cache (the prompt as one chunk)."""
    from pix2seq_mmdet.models.decoding import decode_responses
    from pix2seq_mmdet.models.mask_prediction import MaskDecodingConfig
    detector = ort_runtime.Pix2SeqRuntime(seg_export)
    encoded = detector.encode(detector.preprocess(images)[0])
    head, tokenizer = seg_model.head, seg_model.head.tokenizer
    generator = torch.Generator().manual_seed(int(constrained))
    corners = torch.rand(12, 2, 2, generator=generator).sort(dim=1).values
    prompts = tokenizer.instance_prompts(corners.flatten(1), torch.randint(0, 4, (12, ), generator=generator))
    image_index = torch.randint(0, len(images), (12, ), generator=generator)
    options = detector.instance_options('instance_segmentation', strategy='greedy', constrained=constrained)
    got, got_probs = detector.decode_responses(encoded, prompts.numpy(), image_index.numpy(), options,
                                               np.random.default_rng())
    with torch.no_grad():
        cache = head.init_cache(torch.from_numpy(encoded.memory.copy()), None, image_index, tokenizer.instance_seq_len)
        want, want_probs = decode_responses(lambda tokens, position: head.forward_step(tokens, position, cache)[:, -1],
                                            prompts, tokenizer.response_len, tokenizer.EOS, tokenizer.PAD,
                                            DecodingConfig(strategy='greedy'),
                                            MaskDecodingConfig(constrained=constrained).constraint(tokenizer, 'cpu'))
    assert got.shape == (12, tokenizer.response_len)
    assert (got == want.numpy()).all()
    np.testing.assert_allclose(got_probs, want_probs.numpy(), atol=1e-5)
    assert detector.vocab.is_coord(got).sum() > 12  # responses with points, not only EOS


def assert_masks_equal_pytorch(model, export_dir, cfg, images) -> list:
    """Detections and their masks of the export at ``export_dir`` equal ``model.predict``'s, at the original image's
    size; returns the runtime's detections."""
    detector = ort_runtime.Pix2SeqRuntime(export_dir)
    got = detector(images)
    data = torch_batch(model, cfg, images)
    with torch.no_grad():
        expected = [sample.pred_instances for sample in model.predict(data['inputs'], data['data_samples'])]
    covered = 0
    for found, want, image in zip(got, expected, images):
        height, width = load_image(image).shape[:2]
        assert found.masks.shape == (len(found), height, width) and found.masks.dtype == bool
        assert len(found) == len(want.scores)
        order = np.lexsort((found.labels, -np.round(found.scores, 5)))
        want_order = np.lexsort((want.labels.numpy(), -np.round(want.scores.numpy(), 5)))
        np.testing.assert_allclose(found.bboxes[order], want.bboxes.numpy()[want_order], atol=1e-3)
        assert np.array_equal(found.masks[order], want.masks.numpy()[want_order])
        covered += int(found.masks.sum())
    assert covered > 0
    return got


def test_greedy_masks_equal_pytorch(seg_model, seg_export, synthetic_cfg, images):
    """End to end on images of the frame's and of other sizes."""
    assert_masks_equal_pytorch(seg_model, seg_export, synthetic_cfg, images)


def test_fine_memory_masks_equal_pytorch(synthetic_cfg, images, tmp_path):
    """A model whose memory also holds the stride-8 level (``fine_memory``): the export's memory has its tokens,
    and the runtime's detections and masks equal PyTorch's."""
    model = build_seg_model(synthetic_cfg, backbone=dict(out_indices=(1, 2)),
                            neck=dict(in_channels=[64, 128], num_outs=2), fine_memory=True)
    export_onnx(model, tmp_path, dynamic_batch=True, class_names=synthetic_cfg.classes,
                test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    detector = ort_runtime.Pix2SeqRuntime(tmp_path)
    encoded = detector.encode(detector.preprocess(images[:1])[0])
    frame = synthetic_cfg.model.data_preprocessor.pad_size[0]
    assert encoded.memory.shape[1] == (frame // 16) ** 2 + (frame // 8) ** 2
    assert_masks_equal_pytorch(model, tmp_path, synthetic_cfg, images)


def test_box_memory_masks_equal_pytorch(synthetic_cfg, images, tmp_path):
    """A head with the box memory: the encoder also writes the fine level's keys and values, the export's check
    compares instance rows that read them, and the runtime's detections and masks equal PyTorch's."""
    model = build_seg_model(synthetic_cfg, backbone=dict(out_indices=(1, 2)),
                            neck=dict(in_channels=[64, 128], num_outs=2), fine_memory_proj=dict(mode='linear_p'),
                            head=dict(box_memory=dict(size=5)))
    meta = export_onnx(model, tmp_path, dynamic_batch=True, class_names=synthetic_cfg.classes,
                       test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    frame = synthetic_cfg.model.data_preprocessor.pad_size[0]
    assert meta['geometry']['box_memory'] == dict(size=5, fine_hw=[frame // 8] * 2, extent=[1.0, 1.0])
    assert meta['check']['fp32_box_memory_logits_max_abs_diff'] < 1e-4
    detector = ort_runtime.Pix2SeqRuntime(tmp_path)
    encoded = detector.encode(detector.preprocess(images[:1])[0])
    assert encoded.fine_key_value[0].shape[2] == (frame // 8) ** 2
    with pytest.raises(ValueError, match='need their prompt boxes'):
        detector.decoder.start(encoded, np.zeros(2, np.int64))
    assert_masks_equal_pytorch(model, tmp_path, synthetic_cfg, images)


def test_box_frame_masks_equal_pytorch(seg_model, seg_export, synthetic_cfg, images, tmp_path):
    """The same weights read with ``polygon_frame='box'``: the export records the frame, the runtime's masks equal
    PyTorch's, and they differ from the image frame's (the points are read in each prompt box)."""
    model = copy.deepcopy(seg_model)
    model.head.tokenizer.polygon_frame = 'box'
    export_onnx(model, tmp_path, dynamic_batch=True, class_names=synthetic_cfg.classes,
                test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    assert json.loads((tmp_path / 'pix2seq.json').read_text())['vocabulary']['instance_segmentation'][
        'polygon_frame'] == 'box'
    in_boxes = assert_masks_equal_pytorch(model, tmp_path, synthetic_cfg, images)
    in_image = ort_runtime.Pix2SeqRuntime(seg_export)(images)
    assert any(not np.array_equal(box.masks, image.masks) for box, image in zip(in_boxes, in_image))


def test_static_batch_export_gives_the_same_masks(seg_model, seg_export, synthetic_cfg, images, tmp_path):
    """Batch 1 and the standard-operator attention: the prompt samples decoded one row at a time."""
    export_onnx(seg_model, tmp_path, attention='onnx', class_names=synthetic_cfg.classes,
                test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    static = ort_runtime.Pix2SeqRuntime(tmp_path)
    dynamic = ort_runtime.Pix2SeqRuntime(seg_export)
    options = dict(num_samples=2)
    segmented = 0
    for image in images[-4:]:
        got, want = static(image, mask_options=options)[0], dynamic(image, mask_options=options)[0]
        assert np.array_equal(got.masks, want.masks)
        segmented += int(got.masks.any(axis=(1, 2)).sum())
    assert segmented > 0


def test_nucleus_masks_are_seeded(seg_export, images):
    detector = ort_runtime.Pix2SeqRuntime(seg_export)
    options = dict(strategy='nucleus', top_p=0.8, num_samples=3, max_rows=4)
    first, again, other = (detector(images[:3], seed=seed, mask_options=options) for seed in (5, 5, 6))
    for one, two in zip(first, again):
        assert np.array_equal(one.masks, two.masks)
    encoded = detector.encode(detector.preprocess(images[:1])[0])
    prompts = np.repeat(detector.vocab.quantize(np.array([[0.1, 0.2, 0.7, 0.9]], np.float32)), 6, axis=0)
    prompts = np.concatenate([np.full((6, 1), detector.vocab.task_prompts['instance_segmentation']), prompts,
                              np.full((6, 1), detector.vocab.class_ids[0])], axis=1)
    options = detector.instance_options('instance_segmentation', **options)
    sampled = [detector.decode_responses(encoded, prompts, np.zeros(6, np.int64), options,
                                         np.random.default_rng(seed))[0] for seed in (0, 0, 1)]
    assert np.array_equal(sampled[0], sampled[1]) and not np.array_equal(sampled[0], sampled[2])
    with pytest.raises(TypeError, match='unknown mask options'):
        detector(images[0], mask_options=dict(beam_width=2))
    with pytest.raises(ValueError, match='one of'):
        detector(images[0], mask_options=dict(strategy='beam'))


@pytest.mark.parametrize('seed', range(3))
def test_polygon_decoding_and_distinct_boxes_match_the_package(seg_model, seg_export, seed):
    from pix2seq_mmdet.deploy.instances import distinct_boxes
    from pix2seq_mmdet.models.instance_prediction import distinct_boxes as torch_distinct_boxes
    vocab = ort_runtime.Pix2SeqRuntime(seg_export).vocab
    tokenizer = seg_model.head.tokenizer
    generator = torch.Generator().manual_seed(seed)
    special = torch.tensor([tokenizer.SEPARATOR, tokenizer.EOS, tokenizer.PAD, tokenizer.FAKE])
    responses = torch.randint(tokenizer.coord_offset, tokenizer.coord_offset + tokenizer.num_bins, (20, 33),
                              generator=generator)
    where = torch.rand(responses.shape, generator=generator) < 0.08
    responses[where] = special[torch.randint(0, 4, (int(where.sum()), ), generator=generator)]
    for response in responses:
        got, want = vocab.decode_polygon(response.numpy()), tokenizer.decode_polygon(response)
        assert len(got) == len(want) and all(np.array_equal(a, b.numpy()) for a, b in zip(got, want))
    boxes = torch.randint(0, 4, (30, 4), generator=generator).float()
    for max_boxes in (2, 100):
        got, want = distinct_boxes(boxes.numpy(), max_boxes), torch_distinct_boxes(boxes, max_boxes)
        assert all(np.array_equal(a, b.numpy()) for a, b in zip(got, want))


def test_onnx_segm_evaluation_equals_pytorch_evaluation(seg_model, seg_export, synthetic_cfg, synthetic_root):
    cfg = small_test_set(synthetic_cfg, synthetic_root)
    cfg.test_evaluator.update(ann_file=str(synthetic_root / 'annotations' / 'instances_val.json'),
                              metric=['bbox', 'segm'])
    assert_onnx_evaluation_equals_pytorch(seg_model, seg_export, cfg, 'coco/segm_mAP')


def test_demo_draws_masks_without_torch(seg_export, images, tmp_path):
    blocker = tmp_path / 'blocked'
    for name in ('torch', 'mmdet', 'mmcv', 'mmengine'):
        (blocker / name).mkdir(parents=True)
        (blocker / name / '__init__.py').write_text(f'raise ImportError("{name} is blocked")')
    out = tmp_path / 'demo.png'
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'deployment' / 'onnx_demo.py'), images[0],
                             str(seg_export), '--out', str(out), '--score-thr', '0'],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=f'{blocker}{os.pathsep}{REPO_ROOT}'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'with their masks' in result.stdout
    plain = tmp_path / 'plain.png'
    subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'deployment' / 'onnx_demo.py'), images[0],
                    str(seg_export), '--out', str(plain), '--score-thr', '0', '--no-masks'], check=True,
                   capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert (cv2.imread(str(out)) != cv2.imread(str(plain))).any()  # the masks are drawn


# --------------------------------------------------------------------------------------------------------- keypoints
NUM_KEYPOINTS = 4  # the synthetic shapes' extreme points
# added to INVISIBLE's output bias in the 'invisible' case: some greedy points INVISIBLE (the box centre), some placed
INVISIBLE_BIAS = 10.0


@pytest.fixture(scope='module', params=['suppressed', 'invisible'])
def kpt_case(request, synthetic_cfg, tmp_path_factory):
    """A tiny keypoints model (detection and 4 keypoints), randomly initialised and widened, decoding greedily with
    constrained detection and one greedy response per box, and its dynamic-batch export: INVISIBLE suppressed (the
    default), or allowed and favoured by its output bias so that some points are placed by no sample."""
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.aux_head = None
    cfg.head.tokenizer.update(tasks=('detection', 'keypoints'), num_keypoints=NUM_KEYPOINTS, max_objects=MAX_OBJECTS)
    invisible = request.param == 'invisible'
    cfg.test_cfg.update(constrained=True, keypoints=dict(strategy='greedy', num_samples=1,
                                                         suppress_invisible=not invisible))
    torch.manual_seed(0)
    from mmdet.registry import MODELS
    model = MODELS.build(cfg)
    model.init_weights()
    model = widen_decoder(model.eval())
    if invisible:
        with torch.no_grad():
            model.head.output_bias[model.head.tokenizer.INVISIBLE] += INVISIBLE_BIAS
    out_dir = tmp_path_factory.mktemp(f'onnx_kpt_{request.param}')
    export_onnx(model, out_dir, dynamic_batch=True, class_names=synthetic_cfg.classes,
                test_pipeline=synthetic_cfg.test_dataloader.dataset.pipeline)
    return model, out_dir


def test_kpt_export_records_the_task(kpt_case, images):
    model, out_dir = kpt_case
    meta = json.loads((out_dir / 'pix2seq.json').read_text())
    head, tokenizer = model.head, model.head.tokenizer
    assert meta['geometry']['cache_len'] == tokenizer.num_positions
    assert meta['vocabulary']['keypoints'] == dict(task_prompt=tokenizer.task_prompts['keypoints'],
                                                   invisible=tokenizer.INVISIBLE, num_keypoints=NUM_KEYPOINTS,
                                                   response_len=2 * NUM_KEYPOINTS)
    assert meta['keypoint_decoding'] == asdict(head.instance_decoding_cfgs['keypoints'])
    assert meta['vocabulary']['instance_segmentation'] is None and meta['mask_decoding'] is None
    assert meta['check']['fp32_logits_max_abs_diff'] < 1e-4
    detector = ort_runtime.Pix2SeqRuntime(out_dir)
    with pytest.raises(ValueError, match='without the instance_segmentation task'):
        detector(images[0], masks=True)
    with pytest.raises(TypeError, match='unknown keypoint options'):
        detector(images[0], keypoint_options=dict(threshold=0.5))
    assert detector(images[0], keypoints=False)[0].keypoints is None


def test_greedy_keypoint_responses_equal_pytorch_for_the_same_prompts(kpt_case, images):
    """Random prompts on random images of the batch: the runtime's greedy responses and token probabilities against
    ``decode_responses`` over the head's cache with the head's keypoint constraint."""
    from pix2seq_mmdet.models.decoding import decode_responses
    model, out_dir = kpt_case
    detector = ort_runtime.Pix2SeqRuntime(out_dir)
    encoded = detector.encode(detector.preprocess(images)[0])
    head, tokenizer = model.head, model.head.tokenizer
    cfg = head.instance_decoding_cfgs['keypoints']
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(12, 2, 2, generator=generator).sort(dim=1).values
    prompts = tokenizer.instance_prompts(corners.flatten(1), torch.randint(0, 4, (12, ), generator=generator),
                                         'keypoints')
    image_index = torch.randint(0, len(images), (12, ), generator=generator)
    got, got_probs = detector.decode_responses(encoded, prompts.numpy(), image_index.numpy(),
                                               detector.instance_options('keypoints'), np.random.default_rng())
    with torch.no_grad():
        cache = head.init_cache(torch.from_numpy(encoded.memory.copy()), None, image_index,
                                tokenizer.task_seq_len('keypoints'))
        want, want_probs = decode_responses(lambda tokens, position: head.forward_step(tokens, position, cache)[:, -1],
                                            prompts, tokenizer.keypoints_response_len, tokenizer.EOS, tokenizer.PAD,
                                            cfg.decoding, cfg.constraint(tokenizer, 'cpu'))
    assert got.shape == got_probs.shape == (12, 2 * NUM_KEYPOINTS)
    assert (got == want.numpy()).all()
    np.testing.assert_allclose(got_probs, want_probs.numpy(), atol=1e-5)
    assert ((got_probs > 0) & (got_probs <= 1)).all()
    invisible = got == tokenizer.INVISIBLE
    assert invisible.any() != cfg.suppress_invisible
    assert detector.vocab.is_coord(got).sum() > 12


def test_greedy_keypoints_equal_pytorch(kpt_case, synthetic_cfg, images):
    """Detections, keypoints and keypoint scores end to end on images of the frame's and of other sizes: the same as
    ``model.predict``'s, in the original image's pixels."""
    model, out_dir = kpt_case
    got = ort_runtime.Pix2SeqRuntime(out_dir)(images)
    data = torch_batch(model, synthetic_cfg, images)
    with torch.no_grad():
        expected = [sample.pred_instances for sample in model.predict(data['inputs'], data['data_samples'])]
    at_centre = []  # per point: at its box's centre
    for found, want, image in zip(got, expected, images):
        height, width = load_image(image).shape[:2]
        assert found.masks is None
        assert found.keypoints.shape == (len(found), NUM_KEYPOINTS, 2) and found.keypoints.dtype == np.float32
        assert found.keypoint_scores.shape == (len(found), NUM_KEYPOINTS) and found.keypoint_scores.dtype == np.float32
        assert len(found) == len(want.scores)
        order = np.lexsort((found.labels, -np.round(found.scores, 5)))
        want_order = np.lexsort((want.labels.numpy(), -np.round(want.scores.numpy(), 5)))
        np.testing.assert_allclose(found.bboxes[order], want.bboxes.numpy()[want_order], atol=1e-3)
        np.testing.assert_allclose(found.keypoints[order], want.keypoints.numpy()[want_order], atol=1e-3)
        np.testing.assert_allclose(found.keypoint_scores[order], want.keypoint_scores.numpy()[want_order], atol=1e-5)
        assert (found.keypoints >= 0).all() and (found.keypoints <= (width, height)).all()
        centres = (found.bboxes[:, None, :2] + found.bboxes[:, None, 2:]) / 2
        at_centre.append(np.isclose(found.keypoints, centres, atol=1e-2).all(-1).ravel())
    at_centre = np.concatenate(at_centre)
    assert len(at_centre) > 0
    if not model.head.instance_decoding_cfgs['keypoints'].suppress_invisible:  # points placed by no sample, and not
        assert at_centre.any() and not at_centre.all()


def test_keypoint_decoding_matches_the_package(kpt_case):
    """``Vocabulary.decode_keypoints`` and ``responses_to_keypoints`` against the package's on random responses of
    coordinates and INVISIBLE, 3 samples per box: the mean over the samples that place a point, else the box centre,
    in the original image's pixels, clipped; the scores the mean probability of a point's tokens."""
    from pix2seq_mmdet.deploy.keypoints import responses_to_keypoints
    from pix2seq_mmdet.models.keypoint_prediction import responses_to_keypoints as torch_responses_to_keypoints
    model, out_dir = kpt_case
    vocab, tokenizer = ort_runtime.Pix2SeqRuntime(out_dir).vocab, model.head.tokenizer
    generator = torch.Generator().manual_seed(0)
    responses = torch.randint(tokenizer.coord_offset, tokenizer.coord_offset + tokenizer.num_bins,
                              (15, 2 * NUM_KEYPOINTS), generator=generator)
    responses[torch.rand(responses.shape, generator=generator) < 0.4] = tokenizer.INVISIBLE
    token_probs = torch.rand(responses.shape, generator=generator)
    boxes = torch.rand(5, 2, 2, generator=generator).sort(dim=1).values.flatten(1)
    points, labelled = vocab.decode_keypoints(responses.numpy())
    want_points, want_labelled = tokenizer.decode_keypoints(responses)
    assert np.array_equal(points, want_points.numpy()) and np.array_equal(labelled, want_labelled.numpy())
    assert labelled.any() and not labelled.all()
    meta = ImageMeta(ori_shape=(300, 170), img_shape=(128, 73), scale_factor=(73 / 170, 128 / 300))
    img_meta = dict(ori_shape=meta.ori_shape, img_shape=meta.img_shape, pad_shape=(128, 128),
                    scale_factor=meta.scale_factor)
    got = responses_to_keypoints(responses.numpy(), token_probs.numpy(), boxes.numpy(), meta, vocab, (128, 128), 3)
    want = torch_responses_to_keypoints(responses, token_probs, boxes, tokenizer, img_meta, True, 3)
    for array, tensor in zip(got, want):
        assert array.dtype == np.float32
        np.testing.assert_allclose(array, tensor.numpy(), atol=1e-4)
    assert (got[0][..., 0] == 170).any()  # clipped to the image's width


def test_nucleus_keypoints_are_seeded(kpt_case, images):
    _, out_dir = kpt_case
    detector = ort_runtime.Pix2SeqRuntime(out_dir)
    options = dict(strategy='nucleus', top_p=0.9, num_samples=3, max_rows=4)
    first, again, other = (detector(images[:3], seed=seed, keypoint_options=options) for seed in (5, 5, 6))
    for one, two in zip(first, again):
        assert np.array_equal(one.keypoints, two.keypoints)
        assert np.array_equal(one.keypoint_scores, two.keypoint_scores)
    assert any(not np.array_equal(one.keypoint_scores, two.keypoint_scores) for one, two in zip(first, other))


def test_onnx_keypoint_evaluation_equals_pytorch_evaluation(kpt_case, synthetic_cfg, synthetic_root):
    """bbox AP through ``CocoMetric`` and keypoint AP through ``CocoKeypointMetric``, as the keypoints config
    evaluates."""
    model, out_dir = kpt_case
    cfg = small_test_set(synthetic_cfg, synthetic_root)
    ann_file = str(synthetic_root / 'annotations' / 'instances_val.json')
    cfg.test_evaluator = [dict(cfg.test_evaluator, ann_file=ann_file),
                          dict(type='CocoKeypointMetric', ann_file=ann_file, sigmas=[0.05] * NUM_KEYPOINTS)]
    assert_onnx_evaluation_equals_pytorch(model, out_dir, cfg, 'coco/keypoints_mAP')


def test_demo_draws_keypoints_without_torch(kpt_case, images, tmp_path):
    _, out_dir = kpt_case
    blocker = tmp_path / 'blocked'
    for name in ('torch', 'mmdet', 'mmcv', 'mmengine'):
        (blocker / name).mkdir(parents=True)
        (blocker / name / '__init__.py').write_text(f'raise ImportError("{name} is blocked")')
    demo = str(REPO_ROOT / 'tools' / 'deployment' / 'onnx_demo.py')
    out, plain = tmp_path / 'demo.png', tmp_path / 'plain.png'
    result = subprocess.run([sys.executable, demo, images[0], str(out_dir), '--out', str(out), '--score-thr', '0'],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=f'{blocker}{os.pathsep}{REPO_ROOT}'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'with their keypoints' in result.stdout
    subprocess.run([sys.executable, demo, images[0], str(out_dir), '--out', str(plain), '--score-thr', '0',
                    '--no-keypoints'], check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert (cv2.imread(str(out)) != cv2.imread(str(plain))).any()  # the points are drawn
