"""Shared by the model tests: a small model from the synthetic config, random batches, decoding with options."""
import copy

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from pix2seq_mmdet.models import DecodingConfig

IMAGE_SIZE = 64


def build_model(cfg, max_objects=6, **test_cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.head.tokenizer.max_objects = max_objects
    model_cfg.test_cfg.update(test_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def build_v2_model(cfg, task: str, tokenizer: dict, **test_cfg):
    """The synthetic config's model without its auxiliary head, with a Pix2Seq v2 ``task``: ``tokenizer`` updates
    (its tasks, sizes) and ``test_cfg`` as ``test_cfg.<task>``."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.aux_head = None
    model_cfg.head.tokenizer.update(tokenizer)
    model_cfg.test_cfg.update({task: test_cfg})
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def widen_decoder(model, seed=1):
    """Draw the head's weights and embeddings with a larger spread than the initialisation's (std 0.02), so that a
    randomly initialised decoder's greedy sequences vary with the position and the image instead of repeating one
    token."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.head.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, 0.2)
        model.head.pos_embed.weight.normal_(0, 1.0)
        model.head.token_embed.weight.normal_(0, 0.3)
    return model


def make_batch(model, batch_size=2, seed=0):
    """Random images and data samples with three ground-truth objects each, as the data preprocessor leaves them
    (boxes as plain tensors: mmdet's ``boxtype2tensor``)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(metainfo=dict(img_shape=(IMAGE_SIZE, IMAGE_SIZE), pad_shape=(IMAGE_SIZE, IMAGE_SIZE),
                                             batch_input_shape=(IMAGE_SIZE, IMAGE_SIZE), scale_factor=(0.5, 0.5),
                                             ori_shape=(2 * IMAGE_SIZE, 2 * IMAGE_SIZE)))
        corners = torch.rand(3, 2, 2, generator=generator).sort(dim=1).values * IMAGE_SIZE
        boxes = torch.cat([corners[:, 0], corners[:, 1]], dim=1)
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1, 2]))
        samples.append(sample)
    return inputs, samples


def decode(model, inputs, samples, seed=None, **test_cfg):
    """``model.head.generate`` on the encoded batch with ``test_cfg`` changes."""
    cfg = {**vars(model.head.decoding_cfg), **test_cfg}
    model.head.decoding_cfg = DecodingConfig(**cfg)
    memory, memory_mask = model.encode(inputs, samples)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return model.head.generate(memory, memory_mask, generator)
