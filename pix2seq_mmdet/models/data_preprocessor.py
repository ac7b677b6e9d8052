"""Batches padded to one fixed frame: the frame Pix2Seq's coordinates are normalised to."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS


@MODELS.register_module()
class Pix2SeqDataPreprocessor(DetDataPreprocessor):
    """mmdet's ``DetDataPreprocessor`` (same arguments) that then pads every batch to ``pad_size``.

    Pix2Seq quantises box coordinates relative to the padded input, so every image of every batch, in training and
    in testing, must share one frame, as the official code pads each image to its maximum size
    (``pad_image_to_max_size``).  The pipeline only resizes (and crops) so that images fit in the frame; padding
    here rather than with the pipeline's ``Pad`` keeps each sample's ``img_shape`` the image's own size, which places
    the sequence augmentation's noise boxes on the image and clips decoded boxes to it.  Sets ``pad_shape`` and
    ``batch_input_shape`` of every sample to ``pad_size``; padded pixels hold ``pad_value`` after normalisation.

    Args:
        pad_size (tuple[int, int]): The frame ``(height, width)``, e.g. ``(1333, 1333)``.
        channels_last (bool): Hand the batch to the backbone in the channels-last memory layout (same values), which
            PyTorch's CPU convolutions run faster (about 10 % of a half-width ResNet-18's forward and backward at 128
            px, docs/learning_speed.md).  Default False: the contiguous layout.
        **kwargs: ``DetDataPreprocessor`` arguments (``mean``, ``std``, ``bgr_to_rgb``, ``pad_value``, ...).
    """

    def __init__(self, pad_size: Sequence[int], channels_last: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels_last = channels_last
        if len(pad_size) != 2 or min(pad_size) < 1:
            raise ValueError(f'Pix2SeqDataPreprocessor: pad_size must be (height, width) > 0, got {pad_size}')
        self.pad_size = tuple(int(side) for side in pad_size)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        inputs, data_samples = data['inputs'], data['data_samples']
        height, width = inputs.shape[-2:]
        pad_h, pad_w = self.pad_size
        if height > pad_h or width > pad_w:
            raise ValueError(f'Pix2SeqDataPreprocessor: a batch of {height} x {width} images does not fit in '
                             f'pad_size {pad_h} x {pad_w}: resize images into the frame in the pipeline (mmdet '
                             f"Resize with scale=({pad_w}, {pad_h}) and keep_ratio=True) or raise pad_size")
        inputs = F.pad(inputs, (0, pad_w - width, 0, pad_h - height), value=self.pad_value)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        for sample in data_samples or []:
            sample.set_metainfo(dict(batch_input_shape=self.pad_size, pad_shape=self.pad_size))
        return dict(inputs=inputs, data_samples=data_samples)
