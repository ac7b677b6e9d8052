"""Pix2Seq for MMDetection 3.x.  Importing the package registers its modules in mmdet's registries."""
from . import checkpoint  # noqa: F401  (registers the local checkpoint loader)
from .checkpoint_hook import AtomicCheckpointHook
from .consistency import ConsistencyCheckHook
from .datasets import Pix2SeqCocoDataset
from .decoding import DecodingCache, DecodingConfig, decode_sequences
from .head import Pix2SeqHead
from .pix2seq import Pix2Seq
from .random_state import RandomStateHook
from .sampler import BatchRepeatSampler
from .tokenizer import Pix2SeqTokenizer
from .transforms import PackPix2SeqInputs, Pix2SeqSequenceAug

__version__ = '0.1.0'

__all__ = [
    'Pix2Seq', 'Pix2SeqHead', 'Pix2SeqTokenizer', 'Pix2SeqSequenceAug', 'PackPix2SeqInputs', 'BatchRepeatSampler',
    'DecodingConfig', 'DecodingCache', 'decode_sequences', 'Pix2SeqCocoDataset', 'AtomicCheckpointHook',
    'ConsistencyCheckHook', 'RandomStateHook'
]
