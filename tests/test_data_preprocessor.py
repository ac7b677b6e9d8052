"""Pix2SeqDataPreprocessor: every batch padded to one fixed frame, each image keeping its own size."""
import pytest
import torch
from mmdet.structures import DetDataSample

from pix2seq_mmdet.models import Pix2SeqDataPreprocessor


def batch(*shapes):
    images = [torch.full((3, height, width), 200, dtype=torch.uint8) for height, width in shapes]
    samples = [DetDataSample(metainfo=dict(img_shape=shape)) for shape in shapes]
    return dict(inputs=images, data_samples=samples)


def test_batches_are_padded_to_the_frame_and_images_keep_their_shape():
    preprocessor = Pix2SeqDataPreprocessor(pad_size=(64, 80), mean=[100.0] * 3, std=[50.0] * 3, pad_value=0.3)
    data = preprocessor(batch((40, 80), (64, 30)), training=True)
    assert data['inputs'].shape == (2, 3, 64, 80)
    first, second = data['data_samples']
    assert first.img_shape == (40, 80) and second.img_shape == (64, 30)
    assert first.pad_shape == second.pad_shape == first.batch_input_shape == (64, 80)
    assert torch.all(data['inputs'][0, :, :40] == 2.0)  # (200 - 100) / 50
    assert torch.allclose(data['inputs'][0, :, 40:], torch.tensor(0.3))  # the frame around the image
    assert torch.allclose(data['inputs'][1, :, :, 30:], torch.tensor(0.3))


def test_an_image_larger_than_the_frame_is_a_clear_error():
    preprocessor = Pix2SeqDataPreprocessor(pad_size=(64, 64))
    with pytest.raises(ValueError, match=r'a batch of 70 x 50 images does not fit in pad_size 64 x 64.*Resize'):
        preprocessor(batch((70, 50)))
    with pytest.raises(ValueError, match='pad_size must be'):
        Pix2SeqDataPreprocessor(pad_size=(64, ))


@pytest.mark.parametrize('channels_last', [False, True])
def test_channels_last_changes_the_layout_not_the_values(channels_last):
    images = batch((40, 80), (64, 30))
    images['inputs'] = [torch.randint(0, 256, image.shape, dtype=torch.uint8) for image in images['inputs']]
    reference = Pix2SeqDataPreprocessor(pad_size=(64, 80))(images)['inputs']
    inputs = Pix2SeqDataPreprocessor(pad_size=(64, 80), channels_last=channels_last)(images)['inputs']
    assert torch.equal(inputs, reference)
    assert inputs.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert inputs.is_contiguous() == (not channels_last)
