"""mmdet's DETR-family detectors (DETR, Deformable DETR) in ONNX Runtime, for comparing Pix2Seq's ONNX path with its
peers in the same runtime.

The exported graph is the detector up to its head's last decoder layer: a (B, 3, H, W) preprocessed image ->
``cls_scores`` (B, Q, C or C + 1) and ``bbox_preds`` (B, Q, 4) (normalised cx, cy, w, h), traced at a fixed frame
(the image masks that mmdet builds from the samples' shapes become constants: every image fills the frame).
:class:`PeerOnnxDetector` does the rest in numpy as mmdet does it: the data preprocessor's normalisation, then
``DETRHead._predict_by_feat_single`` (softmax without the background class and the best class per query, or sigmoid
and the top-k of queries x classes when the head's classification loss is a sigmoid one), boxes to xyxy pixels
clipped to the image.
"""
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn


class LastLayerOutputs(nn.Module):
    """The detector from image to the last decoder layer's class scores and boxes, for samples of one shape."""

    def __init__(self, detector: nn.Module, frame_hw: Tuple[int, int], batch_size: int) -> None:
        super().__init__()
        self.detector = detector
        shape = tuple(frame_hw)
        self.samples = [DetDataSample(metainfo=dict(img_shape=shape, pad_shape=shape, batch_input_shape=shape))
                        for _ in range(batch_size)]

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        head_inputs = self.detector.forward_transformer(self.detector.extract_feat(images), self.samples)
        cls_scores, bbox_preds = self.detector.bbox_head(**head_inputs)
        return cls_scores[-1], bbox_preds[-1]


def export_peer(detector: nn.Module, path: Union[str, Path], frame_hw: Tuple[int, int], batch_size: int,
                opset: int = 17) -> None:
    """Trace ``detector`` (eval mode) at the frame and batch into ``path``."""
    module = LastLayerOutputs(detector.eval(), frame_hw, batch_size).eval()
    images = torch.zeros(batch_size, 3, *frame_hw)
    with torch.no_grad():
        torch.onnx.export(module, (images, ), str(path), input_names=['image'],
                          output_names=['cls_scores', 'bbox_preds'], opset_version=opset, dynamo=False)


class PeerOnnxDetector:
    """An exported DETR-family detector run by ONNX Runtime on BGR uint8 images of the exported frame.

    Args:
        path: The ``.onnx`` file of :func:`export_peer`.
        detector: The PyTorch detector it was exported from, for its preprocessing and head settings.
        num_threads: ONNX Runtime intra-op threads (0: its default).
    """

    def __init__(self, path: Union[str, Path], detector: nn.Module, num_threads: int = 0) -> None:
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        preprocessor = detector.data_preprocessor
        self.mean = preprocessor.mean.reshape(1, 3, 1, 1).numpy().astype(np.float32)
        self.std = preprocessor.std.reshape(1, 3, 1, 1).numpy().astype(np.float32)
        self.bgr_to_rgb = bool(preprocessor._channel_conversion)
        head = detector.bbox_head
        self.use_sigmoid = bool(head.loss_cls.use_sigmoid)
        self.num_classes = head.num_classes
        self.max_per_img = head.test_cfg.get('max_per_img', 100)

    def preprocess(self, images: List[np.ndarray]) -> np.ndarray:
        """(H, W, 3) BGR uint8 images of the frame -> the normalised (B, 3, H, W) float32 batch."""
        batch = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2)
        if self.bgr_to_rgb:
            batch = batch[:, ::-1]
        return np.ascontiguousarray((batch - self.mean) / self.std, dtype=np.float32)

    def postprocess(self, cls_scores: np.ndarray, bbox_preds: np.ndarray,
                    image_hw: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's (Q, C') scores and (Q, 4) boxes -> ``bboxes`` (N, 4) xyxy pixels, ``scores`` (N,),
        ``labels`` (N,), as mmdet's ``DETRHead._predict_by_feat_single``."""
        if self.use_sigmoid:
            probs = 1.0 / (1.0 + np.exp(-cls_scores.astype(np.float64)))
            flat = probs.reshape(-1)
            top = np.argsort(-flat, kind='stable')[:self.max_per_img]
            scores, labels, queries = flat[top], top % self.num_classes, top // self.num_classes
        else:
            logits = cls_scores.astype(np.float64)
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs = (probs / probs.sum(-1, keepdims=True))[:, :-1]
            best, best_labels = probs.max(-1), probs.argmax(-1)
            queries = np.argsort(-best, kind='stable')[:self.max_per_img]
            scores, labels = best[queries], best_labels[queries]
        centre_x, centre_y, width, height = bbox_preds[queries].astype(np.float64).T
        height_px, width_px = image_hw
        bboxes = np.stack([(centre_x - width / 2) * width_px, (centre_y - height / 2) * height_px,
                           (centre_x + width / 2) * width_px, (centre_y + height / 2) * height_px], axis=1)
        bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, width_px)
        bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, height_px)
        return bboxes.astype(np.float32), scores.astype(np.float32), labels

    def __call__(self, images: List[np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """BGR uint8 images of the exported frame and batch -> per image (bboxes, scores, labels)."""
        cls_scores, bbox_preds = self.session.run(None, {'image': self.preprocess(images)})
        return [self.postprocess(scores, boxes, image.shape[:2])
                for scores, boxes, image in zip(cls_scores, bbox_preds, images)]
