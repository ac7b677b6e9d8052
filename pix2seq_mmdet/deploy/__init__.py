"""Deployment of Pix2Seq outside PyTorch: ONNX export and an ONNX Runtime inference module.

* :mod:`pix2seq_mmdet.deploy.export` (torch and mmdet): writes ``encoder.onnx`` (preprocessed image -> memory and
  every decoder layer's cross-attention keys/values), ``decoder_step.onnx`` (one token, its position and the
  self-attention cache -> logits and the updated cache, static shapes), optionally ``decoder_step_int8.onnx``
  (dynamic int8 weights), and ``pix2seq.json`` (what the runtime needs); ``tools/deployment/pytorch2onnx.py`` is its
  command line.
* :mod:`pix2seq_mmdet.deploy.runtime` (numpy, onnxruntime and OpenCV only): preprocessing, greedy / top-k / nucleus
  decoding with the cache kept in ONNX Runtime through IO binding, and the head's post-processing; it imports
  nothing from this package, so it also loads from its file alone on a machine without torch
  (``tools/deployment/onnx_demo.py`` does).
* :mod:`pix2seq_mmdet.deploy.evaluation` (mmdet): COCO mAP of the ONNX backend with the config's dataloader and
  ``CocoMetric``, as ``tools/test.py`` measures the PyTorch model (``tools/deployment/onnx_test.py``).

This ``__init__`` imports none of them, so that importing the runtime costs no more than its own imports.
"""
