"""The detector, its head, the Transformer layers, the vocabulary, sequence augmentation, the instance segmentation
sequences and masks, and decoding."""
from .cell_mask_head import CellMaskHead
from .data_preprocessor import Pix2SeqDataPreprocessor
from .decoding import DecodingCache, DecodingConfig, decode_responses, decode_sequences
from .instance_sequences import InstanceSegmentationSequences
from .mask_prediction import MaskDecodingConfig
from .pix2seq import Pix2Seq
from .pix2seq_head import Pix2SeqHead
from .positional_encoding import Pix2SeqSinCosPositionalEncoding, SumPositionalEncoding
from .resnet import Pix2SeqResNet
from .sequence_augmentation import SequenceAugmentation
from .token_projection import TokenProjection
from .tokenizer import Pix2SeqTokenizer
from .vit import Pix2SeqViT

__all__ = [
    'Pix2Seq', 'Pix2SeqHead', 'Pix2SeqDataPreprocessor', 'Pix2SeqTokenizer', 'SequenceAugmentation',
    'TokenProjection', 'DecodingCache', 'DecodingConfig', 'decode_sequences', 'decode_responses', 'Pix2SeqResNet',
    'Pix2SeqSinCosPositionalEncoding', 'SumPositionalEncoding', 'InstanceSegmentationSequences', 'MaskDecodingConfig',
    'Pix2SeqViT', 'CellMaskHead'
]
