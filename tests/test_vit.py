"""The official ViT encoder as a backbone, and the detector without its own encoder."""
import copy

import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT
from pix2seq_mmdet.models import Pix2SeqViT

VIT_CONFIG = REPO_ROOT / 'configs' / 'official' / 'pix2seq_vit-b-official-o365pre_8xb4_40e_coco-640.py'
TINY_VIT = dict(patch_size=8, embed_dims=32, num_layers=2, num_heads=4, ffn_dims=64, dropout=0.0, drop_path=0.0)


def test_vit_keeps_whole_patches_like_the_official_valid_stem():
    torch.manual_seed(0)
    vit = Pix2SeqViT(**TINY_VIT).eval()
    images = torch.rand(2, 3, 100, 75)
    with torch.no_grad():
        features, = vit(images)
        cropped, = vit(images[..., :96, :72])
    assert features.shape == (2, 32, 12, 9)
    assert torch.equal(features, cropped)
    assert vit.positions(12, 9).shape == (108, 32)


def test_vit_tokens_see_each_other_and_their_positions():
    """Changing one patch changes every output token (self-attention), and two equal patches at different places
    give different tokens (positions)."""
    torch.manual_seed(0)
    vit = Pix2SeqViT(**TINY_VIT).eval()
    images = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        plain, = vit(images)
        images[..., :8, :8] = 1.0
        changed, = vit(images)
    assert (changed - plain).flatten(2).abs().amax(1).min() > 0
    assert not torch.allclose(plain[0, :, 1, 1], plain[0, :, 2, 2])


def vit_detector_cfg(**changes):
    cfg = Config.fromfile(str(VIT_CONFIG)).model
    cfg.backbone.update(TINY_VIT)
    cfg.data_preprocessor.pad_size = (64, 48)
    cfg.head.update(embed_dims=32, num_layers=1, num_heads=2, ffn_dims=64)
    cfg.memory_positional_encoding.embed_dims = 32
    cfg.memory_proj.ffn_dims = 64
    for key, value in changes.items():
        cfg[key] = value
    return cfg


def test_detector_with_an_encoder_backbone_decodes():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    model = MODELS.build(vit_detector_cfg()).eval()
    assert model.encoder is None and model.neck is None and model.encoder_dims == 32
    sample = DetDataSample(metainfo=dict(img_shape=(64, 48), pad_shape=(64, 48), batch_input_shape=(64, 48),
                                         ori_shape=(64, 48)))
    memory, memory_mask = model.encode(torch.rand(1, 3, 64, 48), [sample])
    assert memory.shape == (1, 8 * 6, 32) and memory_mask is None


@pytest.mark.parametrize('changes, error', [
    (dict(positional_encoding=dict(type='Pix2SeqSinCosPositionalEncoding', embed_dims=32)),
     'with encoder=None the backbone places its own positions'),
    (dict(memory_positional_encoding=None), 'set memory_positional_encoding'),
    (dict(mask_padding=True), 'mask_padding masks the detector\'s encoder'),
    (dict(backbone=dict(type='ResNet', depth=18, out_indices=(3, ))), 'ResNet does not'),
], ids=['positions-before-no-encoder', 'memory-positions-missing', 'mask-padding', 'backbone-without-encoder'])
def test_detector_without_an_encoder_refuses_what_needs_one(changes, error):
    from mmdet.registry import MODELS
    with pytest.raises(ValueError, match=error):
        MODELS.build(vit_detector_cfg(**copy.deepcopy(changes)))


def test_detector_with_an_encoder_needs_its_positions(synthetic_cfg):
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(synthetic_cfg.model)
    cfg.positional_encoding = None
    with pytest.raises(ValueError, match='positional_encoding is required with an encoder'):
        MODELS.build(cfg)
