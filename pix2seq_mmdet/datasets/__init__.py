"""COCO-format data with checked annotations, batch repetition and image loading with a decoded-image cache."""
from .coco import Pix2SeqCocoDataset
from .sampler import BatchRepeatSampler
from .transforms import CachedLoadImageFromFile

__all__ = ['Pix2SeqCocoDataset', 'BatchRepeatSampler', 'CachedLoadImageFromFile']
