"""The ``infer`` section: ``model.test_step`` end to end in eval mode, and the same Pix2Seq model exported to ONNX and
run by the deployment runtime (``onnx``, ``onnx-int8``)."""
import tempfile
from typing import Callable

import torch

from .models import autocast, build_detector, load_config, make_data_batch, random_image

# onnx*: a Pix2Seq model through pix2seq_mmdet.deploy (onnx, onnx-int8: the R50; onnx-vit-b: the ViT-B)
ONNX_MODELS = {'onnx': 'pix2seq', 'onnx-int8': 'pix2seq', 'onnx-vit-b': 'pix2seq-vit-b'}
INFER_MODELS = ('pix2seq', 'pix2seq-vit-b', 'detr') + tuple(ONNX_MODELS)


def setup_infer(task: dict) -> Callable[[], object]:
    """``model.test_step`` on one random image repeated ``batch`` times."""
    if task['model'] in ONNX_MODELS:
        return setup_onnx_infer(task)
    cfg = load_config(task['model'], task['model_objects'], task['tiny'], task['compile'], task['size'])
    model = build_detector(cfg, task['device']).eval()
    data_batch = make_data_batch(task['size'], task['batch'])

    def run():
        with torch.no_grad(), autocast(task['device'], task['amp']):
            return model.test_step(data_batch)

    return run


def setup_onnx_infer(task: dict) -> Callable[[], object]:
    """A Pix2Seq model (:data:`ONNX_MODELS`) exported to ONNX (static batch, the frame ``size`` x ``size``) and run by
    the deployment runtime on the random image as a BGR array, ``batch`` times in one call."""
    from pix2seq_mmdet.deploy.export import export_onnx
    from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
    cfg = load_config(ONNX_MODELS[task['model']], task['model_objects'], task['tiny'], size=task['size'])
    model = build_detector(cfg, 'cpu').eval()
    int8 = task['model'] == 'onnx-int8'
    with tempfile.TemporaryDirectory(prefix='pix2seq_benchmark_') as work_dir:
        export_onnx(model, work_dir, batch_size=task['batch'], int8=int8, check=False)
        runtime = Pix2SeqRuntime(work_dir, decoder='int8' if int8 else 'fp32', num_threads=task['ort_threads'])
    del model
    image = random_image(task['size']).permute(1, 2, 0).contiguous().numpy()
    images = [image] * task['batch']

    def run():
        return runtime(images)

    return run
