"""Pix2Seq for MMDetection 3.x.

The configs register the package's modules in mmdet's registries by importing its submodules through
``custom_imports`` (``pix2seq_mmdet.models``, ``pix2seq_mmdet.datasets``, ``pix2seq_mmdet.engine``); importing the
package itself imports nothing, so that the torch-free ONNX runtime (``pix2seq_mmdet.deploy.runtime``) loads without
torch or mmdet.  The names below load their submodule on first use.  Local checkpoints written by mmengine load on
torch >= 2.6 once :mod:`pix2seq_mmdet.engine.checkpoint_loader` is imported too, which the configs' runtime does
explicitly.
"""
import importlib

__version__ = '0.2.0'

_SUBMODULE_OF = {
    'Pix2Seq': 'models', 'Pix2SeqHead': 'models', 'Pix2SeqDataPreprocessor': 'models', 'Pix2SeqTokenizer': 'models',
    'SequenceAugmentation': 'models', 'DecodingConfig': 'models', 'DecodingCache': 'models',
    'decode_sequences': 'models', 'InstanceSegmentationSequences': 'models', 'MaskDecodingConfig': 'models',
    'BatchRepeatSampler': 'datasets', 'Pix2SeqCocoDataset': 'datasets',
    'CachedLoadImageFromFile': 'datasets', 'AtomicCheckpointHook': 'engine', 'ConsistencyCheckHook': 'engine',
    'MergedParamGroupsConstructor': 'engine', 'RandomStateHook': 'engine'
}

__all__ = list(_SUBMODULE_OF)


def __getattr__(name: str):
    if name not in _SUBMODULE_OF:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_SUBMODULE_OF[name]}', __name__), name)
