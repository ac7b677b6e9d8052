"""COCO-format data with checked annotations, and batch repetition."""
from .coco import Pix2SeqCocoDataset
from .sampler import BatchRepeatSampler

__all__ = ['Pix2SeqCocoDataset', 'BatchRepeatSampler']
