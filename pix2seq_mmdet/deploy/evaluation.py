"""COCO evaluation of the ONNX Runtime backend with mmdet's metric, as ``tools/test.py`` evaluates the PyTorch model.

The config's test dataloader and ``test_evaluator`` (``CocoMetric``) are built as mmengine's Runner builds them; for
every batch the runtime detects objects in the samples' original image files (its own preprocessing, not the
pipeline's tensors) and its detections, in original-image pixels, with their ``masks`` when the export has the
instance segmentation task (``CocoMetric(metric=['bbox', 'segm'])`` scores both) and their ``keypoints`` and
``keypoint_scores`` when it has the keypoints task (for ``CocoKeypointMetric``), become the samples'
``pred_instances`` that ``evaluator.process`` receives, as the Runner's test loop passes the PyTorch model's
outputs.
"""
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from .runtime import Detections, Pix2SeqRuntime


def predict_in_batches(runtime: Pix2SeqRuntime, images: Sequence, **decoding) -> List[Detections]:
    """Detections for ``images``, in chunks of the export's fixed batch size (the last one padded with repeats of
    its last image, whose extra results are dropped), or all at once with a dynamic batch."""
    batch = runtime.static_batch
    if batch is None:
        return runtime(list(images), **decoding)
    results = []
    for start in range(0, len(images), batch):
        chunk = list(images[start:start + batch])
        count = len(chunk)
        chunk += [chunk[-1]] * (batch - count)
        results += runtime(chunk, **decoding)[:count]
    return results


def evaluate_onnx(cfg: Config, model_dir: Union[str, os.PathLike], decoder: str = 'fp32', encoder: str = 'fp32',
                  num_threads: int = 0, runtime: Optional[Pix2SeqRuntime] = None, **decoding) -> Dict[str, float]:
    """The config's test-set metrics of the export in ``model_dir``.

    Args:
        cfg (Config): The model's config (its ``test_dataloader`` and ``test_evaluator``).
        model_dir (str | Path): The export folder.
        decoder (str), encoder (str): ``'fp32'`` or ``'int8'`` graphs.
        num_threads (int): ONNX Runtime intra-op threads.
        runtime (Pix2SeqRuntime, optional): Use this runtime instead of loading one.
        **decoding: Decoding overrides (``strategy``, ``seed``, ``masks``, ``mask_options``, ``keypoints``,
            ``keypoint_options``, ...), as for :class:`Pix2SeqRuntime`.

    Returns:
        dict: The evaluator's metrics (e.g. ``coco/bbox_mAP``).
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    runtime = runtime or Pix2SeqRuntime(model_dir, decoder=decoder, encoder=encoder, num_threads=num_threads)
    dataloader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = dataloader.dataset.metainfo
    classes = evaluator.dataset_meta.get('classes')
    if classes is not None and len(classes) != len(runtime.class_names):
        raise ValueError(f'the export has {len(runtime.class_names)} classes, the dataset {len(classes)}')
    for data_batch in dataloader:
        samples = data_batch['data_samples']
        detections = predict_in_batches(runtime, [sample.img_path for sample in samples], **decoding)
        for sample, found in zip(samples, detections):
            sample.pred_instances = InstanceData(bboxes=torch.from_numpy(found.bboxes),
                                                 scores=torch.from_numpy(found.scores),
                                                 labels=torch.from_numpy(found.labels))
            for key in ('masks', 'keypoints', 'keypoint_scores'):
                if getattr(found, key) is not None:
                    sample.pred_instances[key] = torch.from_numpy(getattr(found, key))
        evaluator.process(data_samples=samples, data_batch=data_batch)
    return {key: float(value) if isinstance(value, (int, float, np.floating)) else value
            for key, value in evaluator.evaluate(len(dataloader.dataset)).items()}
