"""Pix2Seq for MMDetection 3.x.

Importing the package registers its models, datasets and hooks in mmdet's registries (configs do it with
``custom_imports``) and changes nothing else.  Local checkpoints written by mmengine load on torch >= 2.6 once
:mod:`pix2seq_mmdet.engine.checkpoint_loader` is imported too, which the configs' runtime does explicitly.
"""
from .datasets import BatchRepeatSampler, CachedLoadImageFromFile, Pix2SeqCocoDataset
from .engine import AtomicCheckpointHook, ConsistencyCheckHook, MergedParamGroupsConstructor, RandomStateHook
from .models import (DecodingCache, DecodingConfig, Pix2Seq, Pix2SeqDataPreprocessor, Pix2SeqHead, Pix2SeqTokenizer,
                     SequenceAugmentation, decode_sequences)

__version__ = '0.2.0'

__all__ = [
    'Pix2Seq', 'Pix2SeqHead', 'Pix2SeqDataPreprocessor', 'Pix2SeqTokenizer', 'SequenceAugmentation',
    'BatchRepeatSampler', 'DecodingConfig', 'DecodingCache', 'decode_sequences', 'Pix2SeqCocoDataset',
    'CachedLoadImageFromFile', 'AtomicCheckpointHook', 'ConsistencyCheckHook', 'MergedParamGroupsConstructor',
    'RandomStateHook'
]
