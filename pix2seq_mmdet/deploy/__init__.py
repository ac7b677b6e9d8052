"""Deployment of Pix2Seq outside PyTorch: ONNX export and an ONNX Runtime inference module.

With torch and mmdet:

* :mod:`.export`: writes ``encoder.onnx`` (preprocessed image -> memory and every decoder layer's cross-attention
  keys/values), ``decoder_step.onnx`` (one token, its position and the self-attention cache -> logits and the
  updated cache, static shapes), optionally ``decoder_step_int8.onnx`` (dynamic int8 weights), for a model trained
  for parallel box decoding ``decoder_block.onnx`` (one object per step), and ``pix2seq.json`` (what the runtime
  needs); ``tools/deployment/pytorch2onnx.py`` is its command line.
* :mod:`.traced`: the modules the export traces: the model's own encoder and ``Pix2SeqHead.forward_step``, with a
  cache over graph inputs and ONNX Runtime's fused attention operators swapped in as attention kernels.
* :mod:`.check`: the written graphs in ONNX Runtime against PyTorch.
* :mod:`.evaluation`: COCO mAP of the ONNX backend with the config's dataloader and evaluator, as
  ``tools/test.py`` measures the PyTorch model (``tools/deployment/onnx_test.py``).

With numpy, onnxruntime and OpenCV only (no torch, mmcv or mmdet is imported):

* :mod:`.runtime`: :class:`~.runtime.Pix2SeqRuntime`, built from :mod:`.metadata` (``pix2seq.json`` and the
  vocabulary), :mod:`.sessions` (sessions and IO binding), :mod:`.sampling` (token selection and the decoding loops),
  :mod:`.processing` (pre- and post-processing), :mod:`.instances` (the prompts of a Pix2Seq v2 export's instance
  tasks) and each task's outputs: :mod:`.masks` (instance segmentation) and :mod:`.keypoints`.

This ``__init__`` imports none of them, so that importing the runtime costs no more than its own imports.
"""
