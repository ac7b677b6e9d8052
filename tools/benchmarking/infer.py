"""The ``infer`` section: ``model.test_step`` end to end in eval mode; the same Pix2Seq model exported to ONNX and
run by the deployment runtime (``onnx``, ``onnx-int8``, ``onnx-vit-b``); mmdet's DETR and Deformable DETR exported to
ONNX and run by ONNX Runtime with mmdet's pre- and post-processing in numpy (``detr-onnx``, ``deformable-detr-onnx``,
and their ``-int8`` variants)."""
import tempfile
from pathlib import Path
from typing import Callable

import torch

from .models import (PARALLEL_DECODING, PEER_CONFIGS, autocast, build_detector, load_config, make_data_batch,
                     random_image)

# onnx*: a Pix2Seq model through pix2seq_mmdet.deploy (onnx, onnx-int8: the R50; onnx-vit-b: the ViT-B;
# onnx-parallel[-int8]: the R50 with the block objective, decoding one object per block step)
ONNX_MODELS = {'onnx': 'pix2seq', 'onnx-int8': 'pix2seq', 'onnx-vit-b': 'pix2seq-vit-b', 'onnx-parallel': 'pix2seq',
               'onnx-parallel-int8': 'pix2seq'}
# <peer>-onnx[-int8]: an mmdet peer through benchmarking.peer_onnx
PEER_ONNX_MODELS = {f'{peer}-onnx{suffix}': peer for peer in PEER_CONFIGS for suffix in ('', '-int8')}
INFER_MODELS = ('pix2seq', 'pix2seq-vit-b', *PEER_CONFIGS, *ONNX_MODELS, *PEER_ONNX_MODELS)


def setup_infer(task: dict) -> Callable[[], object]:
    """``model.test_step`` on one random image repeated ``batch`` times."""
    if task['model'] in ONNX_MODELS:
        return setup_onnx_infer(task)
    if task['model'] in PEER_ONNX_MODELS:
        return setup_peer_onnx_infer(task)
    cfg = load_config(task['model'], task['model_objects'], task['tiny'], task['compile'], task['size'],
                      task.get('peer_queries'))
    model = build_detector(cfg, task['device']).eval()
    data_batch = make_data_batch(task['size'], task['batch'])

    def run():
        with torch.no_grad(), autocast(task['device'], task['amp']):
            return model.test_step(data_batch)

    return run


def setup_onnx_infer(task: dict) -> Callable[[], object]:
    """A Pix2Seq model (:data:`ONNX_MODELS`) exported to ONNX (static batch, the frame ``size`` x ``size``) and run by
    the deployment runtime on the random image as a BGR array, ``batch`` times in one call; ``onnx-parallel*``: one
    object per block step (:data:`PARALLEL_DECODING`)."""
    from pix2seq_mmdet.deploy.export import export_onnx
    from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
    cfg = load_config(ONNX_MODELS[task['model']], task['model_objects'], task['tiny'], size=task['size'])
    if 'parallel' in task['model']:
        cfg.merge_from_dict(PARALLEL_DECODING)
    model = build_detector(cfg, 'cpu').eval()
    int8 = task['model'].endswith('-int8')
    with tempfile.TemporaryDirectory(prefix='pix2seq_benchmark_') as work_dir:
        export_onnx(model, work_dir, batch_size=task['batch'], int8=int8, check=False)
        runtime = Pix2SeqRuntime(work_dir, decoder='int8' if int8 else 'fp32', num_threads=task['ort_threads'])
    return on_random_images(runtime, task)


def setup_peer_onnx_infer(task: dict) -> Callable[[], object]:
    """An mmdet peer exported to ONNX (the frame ``size`` x ``size``, the batch fixed; ``-int8``: its MatMuls
    dynamically quantised as Pix2Seq's decoder) and run by ONNX Runtime on the random image as a BGR array, ``batch``
    times in one call, pre- and post-processing included."""
    from pix2seq_mmdet.deploy.export import quantize_int8

    from .peer_onnx import PeerOnnxDetector, export_peer
    cfg = load_config(PEER_ONNX_MODELS[task['model']], task['model_objects'], task['tiny'], size=task['size'],
                      peer_queries=task.get('peer_queries'))
    model = build_detector(cfg, 'cpu').eval()
    with tempfile.TemporaryDirectory(prefix='pix2seq_benchmark_') as work_dir:
        path = Path(work_dir) / 'peer.onnx'
        export_peer(model, path, (task['size'], task['size']), task['batch'])
        if task['model'].endswith('-int8'):
            quantize_int8(path, Path(work_dir) / 'peer_int8.onnx')
            path = Path(work_dir) / 'peer_int8.onnx'
        detector = PeerOnnxDetector(path, model, num_threads=task['ort_threads'])
    return on_random_images(detector, task)


def on_random_images(detector: Callable[[list], object], task: dict) -> Callable[[], object]:
    """A run of an ONNX Runtime detector (BGR arrays in) on the random image, ``batch`` times in one call."""
    image = random_image(task['size']).permute(1, 2, 0).contiguous().numpy()
    images = [image] * task['batch']

    def run():
        return detector(images)

    return run
