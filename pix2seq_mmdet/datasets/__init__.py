"""COCO-format data with checked annotations, batch repetition, image loading with a decoded-image cache and
keypoints that follow the pipeline's geometric transforms."""
from .coco import Pix2SeqCocoDataset
from .keypoints import LoadKeypoints, PackKeypointDetInputs
from .sampler import BatchRepeatSampler
from .transforms import CachedLoadImageFromFile

__all__ = ['Pix2SeqCocoDataset', 'BatchRepeatSampler', 'CachedLoadImageFromFile', 'LoadKeypoints',
           'PackKeypointDetInputs']
