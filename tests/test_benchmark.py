"""tools/benchmark.py --tiny end to end: every section and field in the JSON, positive times, consistent derived
figures and ratios; the timing of tools/benchmarking/measure.py.  Speed itself is never asserted."""
import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

COMMON_FIELDS = {'section', 'model', 'batch', 'runs', 'warmup_runs', 'single_run', 'times_s', 'median_s', 'ratio',
                 'peak_mem_mb'}
SECTION_FIELDS = {
    'decode': COMMON_FIELDS | {'decoder', 'objects', 'tokens', 'memory_positions', 'ms_per_run', 'ms_per_step',
                               'tokens_per_s'},
    'infer': COMMON_FIELDS | {'size', 'images', 's_per_image'},
    'train': COMMON_FIELDS | {'size', 'images', 's_per_image'},
}
# (variant field, numerator, denominator) of each section's ratio
RATIOS = {'decode': ('decoder', 'full', 'cached'), 'infer': ('model', 'pix2seq', 'detr'),
          'train': ('model', 'pix2seq', 'detr')}
# the ONNX Runtime rows (pix2seq_mmdet.deploy) and the official ViT-B the tiny run adds to the PyTorch R50 ones
ORT_DECODERS = ('ort', 'ort-int8')
ONNX_MODELS = ('onnx', 'onnx-int8', 'onnx-vit-b', 'onnx-parallel', 'detr-onnx', 'detr-onnx-int8')
VIT_MODELS = ('pix2seq-vit-b', )


@pytest.fixture(scope='module')
def tiny_report(tmp_path_factory):
    """The tiny benchmark's JSON report and its printed output."""
    out_dir = tmp_path_factory.mktemp('benchmark')
    json_path, plot_path = out_dir / 'tmp.json', out_dir / 'decode.png'
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, 'tools/benchmark.py', '--tiny', '--json', str(json_path), '--plot', str(plot_path),
         '--decoders', 'cached', 'full', *ORT_DECODERS, '--infer-models', 'pix2seq', 'detr', *VIT_MODELS,
         *ONNX_MODELS],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert plot_path.stat().st_size > 0
    return json.loads(json_path.read_text()), result.stdout


def test_report_header_and_tables(tiny_report):
    report, stdout = tiny_report
    assert {'command', 'settings', 'environment', 'peak_memory_method', 'ratio_definitions', 'total_s',
            'rows'} <= set(report)
    assert stdout.splitlines()[0] == f"$ {report['command']}"
    assert '--tiny' in report['command'] and report['settings']['tiny']
    for title in ('Decoding', 'Inference end to end', 'Training iteration'):
        assert title in stdout


def test_every_section_and_field(tiny_report):
    rows = tiny_report[0]['rows']
    settings = tiny_report[0]['settings']
    assert {row['section'] for row in rows} == set(SECTION_FIELDS)
    for row in rows:
        assert set(row) == SECTION_FIELDS[row['section']], row
    decode = [row for row in rows if row['section'] == 'decode']
    assert {row['decoder'] for row in decode} == {'cached', 'full', *ORT_DECODERS}
    assert {row['model'] for row in rows if row['section'] == 'infer'} == {'pix2seq', 'detr', *VIT_MODELS,
                                                                           *ONNX_MODELS}
    assert {row['model'] for row in rows if row['section'] == 'train'} == {'pix2seq', 'detr'}
    assert all(row['tokens'] == 5 * row['objects'] for row in decode)
    assert all(row['batch'] == settings['train_batch'] for row in rows if row['section'] == 'train')


def test_times_positive_and_figures_consistent(tiny_report):
    for row in tiny_report[0]['rows']:
        assert row['runs'] == len(row['times_s']) >= 1
        assert all(time > 0 for time in row['times_s'])
        assert row['median_s'] == pytest.approx(statistics.median(row['times_s']))
        assert row['peak_mem_mb'] >= 0
        if row['section'] == 'decode':
            assert row['ms_per_run'] == pytest.approx(1000 * row['median_s'])
            assert row['ms_per_step'] == pytest.approx(row['ms_per_run'] / row['tokens'])
            assert row['tokens_per_s'] == pytest.approx(row['batch'] * row['tokens'] / row['median_s'])
        else:
            assert row['s_per_image'] == pytest.approx(row['median_s'] / row['images'])


def test_ratios_are_quotients_of_medians(tiny_report):
    rows = tiny_report[0]['rows']
    for section, (field, numerator, denominator) in RATIOS.items():
        section_rows = [row for row in rows if row['section'] == section]
        pair_fields = ('batch', 'objects') if section == 'decode' else ('batch', 'size')
        pairs = {}
        for row in section_rows:
            pairs.setdefault(tuple(row[key] for key in pair_fields), {})[row[field]] = row
        assert pairs
        for pair in pairs.values():
            expected = pair[numerator]['median_s'] / pair[denominator]['median_s']
            assert pair[numerator]['ratio'] == pytest.approx(expected)
            assert pair[denominator]['ratio'] == pytest.approx(expected)
            # the other rows against the same reference: full / that decoder, that model / detr (ONNX Runtime rows:
            # / detr-onnx; the detr-onnx row: onnx / detr-onnx)
            for variant in set(pair) - {numerator, denominator}:
                if section == 'decode':
                    quotient = pair['full']['median_s'] / pair[variant]['median_s']
                elif 'onnx' in variant:
                    quotient = pair['onnx' if variant == 'detr-onnx' else variant]['median_s'] / pair['detr-onnx'][
                        'median_s']
                else:
                    quotient = pair[variant]['median_s'] / pair['detr']['median_s']
                assert pair[variant]['ratio'] == pytest.approx(quotient)


@pytest.mark.parametrize('keep_long_warmup', [False, True])
def test_a_long_warmup_shortens_the_timing(keep_long_warmup, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'tools'))  # as `python tools/benchmark.py` puts it first
    from benchmarking.measure import time_runs
    calls = []

    def run():
        calls.append(None)

    short = time_runs(run, 'cpu', warmup=2, repeats=3, long_run=60.0, keep_long_warmup=keep_long_warmup)
    assert (len(short[0]), short[1:], len(calls)) == (3, (2, False), 5)
    calls.clear()
    long = time_runs(run, 'cpu', warmup=2, repeats=3, long_run=-1.0, keep_long_warmup=keep_long_warmup)
    # a long first warm-up: it is the only sample, or one timed run follows it
    expected = (1, (0, True), 1) if keep_long_warmup else (1, (1, False), 2)
    assert (len(long[0]), long[1:], len(calls)) == expected


def test_decoder_choice_must_include_the_full_rerun():
    result = subprocess.run([sys.executable, 'tools/benchmark.py', '--tiny', '--sections', 'decode', '--decoders',
                             'cached'], cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and '"full"' in result.stderr


@pytest.mark.parametrize('peer', ['detr', 'deformable-detr'])
def test_peer_onnx_detections_equal_pytorch(peer, tmp_path, monkeypatch):
    """mmdet's DETR (softmax classes) and Deformable DETR (sigmoid classes, top-k over queries x classes) in ONNX
    Runtime, with the numpy pre- and post-processing, give PyTorch's detections."""
    pytest.importorskip('onnxruntime')
    import torch
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'tools'))
    from benchmarking.models import build_detector, load_config, make_data_batch, random_image
    from benchmarking.peer_onnx import PeerOnnxDetector, export_peer
    from mmdet.utils import register_all_modules
    register_all_modules()
    size = 96
    # DETR shrunk (--tiny); Deformable DETR at its own size on a small image
    model = build_detector(load_config(peer, 100, tiny=peer == 'detr', size=size), 'cpu').eval()
    export_peer(model, tmp_path / 'peer.onnx', (size, size), 1)
    detector = PeerOnnxDetector(tmp_path / 'peer.onnx', model)
    bboxes, scores, labels = detector([random_image(size).permute(1, 2, 0).numpy()])[0]
    with torch.no_grad():
        expected = model.test_step(make_data_batch(size, 1))[0].pred_instances
    assert len(scores) == len(expected.scores) == model.bbox_head.test_cfg['max_per_img']
    assert abs(scores - expected.scores.numpy()).max() < 1e-5
    assert (labels == expected.labels.numpy()).all()
    assert abs(bboxes - expected.bboxes.numpy()).max() < 1e-3
