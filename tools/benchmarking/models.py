"""The benchmarked models and their inputs: the paper's Pix2Seq R50, the official Pix2Seq ViT-B and mmdet's DETR R50
configs without pretrained weights (``--tiny``: all shrunk), one seeded random image and random ground-truth boxes."""
from contextlib import nullcontext
from pathlib import Path
from typing import Optional, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.structures import InstanceData

REPO_ROOT = Path(__file__).resolve().parents[2]

PIX2SEQ_CONFIG = REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_300e_coco.py'
# the converted official ViT-B's config (the released checkpoints' model, official vocabulary and evaluation)
PIX2SEQ_VIT_CONFIG = REPO_ROOT / 'configs' / 'official' / 'pix2seq_vit-b-official-o365pre_8xb4_40e_coco-640.py'
PIX2SEQ_CONFIGS = {'pix2seq': PIX2SEQ_CONFIG, 'pix2seq-vit-b': PIX2SEQ_VIT_CONFIG}
DETR_CONFIG = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
DEFORMABLE_DETR_CONFIG = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'
PEER_CONFIGS = {'detr': DETR_CONFIG, 'deformable-detr': DEFORMABLE_DETR_CONFIG}
FEATURE_STRIDE = 32  # the R50 configs' backbone output (out_indices=(3, ))
NUM_CLASSES = 80  # both configs are COCO's
SEED = 0
# Pix2Seq with the block objective decoding one object per step greedily, every drafted object kept: the cost of
# verified parallel decoding when every draft holds (a random model's drafts do not, so verification is not timed)
PARALLEL_DECODING = {'model.head.block_decoding': dict(block_size=5), 'model.test_cfg.strategy': 'greedy',
                     'model.test_cfg.parallel': True, 'model.test_cfg.parallel_verify': False}

# the model sizes of --tiny
_TINY_BACKBONE = {'model.backbone.depth': 18, 'model.backbone.base_channels': 16, 'model.neck.in_channels': [128],
                  'model.neck.out_channels': 32, 'model.positional_encoding.num_feats': 16}
_TINY_DETR_LAYER = {'embed_dims': 32, 'num_heads': 2}
TINY_MODEL_OVERRIDES = {
    'pix2seq': {
        **_TINY_BACKBONE,
        **{f'model.{part}.{key}': value for part in ('encoder', 'head')
           for key, value in dict(num_layers=1, embed_dims=32, num_heads=2, ffn_dims=64).items()},
    },
    'pix2seq-vit-b': {
        **{f'model.backbone.{key}': value
           for key, value in dict(num_layers=1, embed_dims=32, num_heads=2, ffn_dims=64).items()},
        **{f'model.head.{key}': value
           for key, value in dict(num_layers=1, embed_dims=32, num_heads=2, ffn_dims=64).items()},
        'model.memory_positional_encoding.embed_dims': 32, 'model.memory_proj.ffn_dims': 64,
    },
    'detr': {
        **_TINY_BACKBONE,
        'model.bbox_head.embed_dims': 32,
        **{f'model.{part}.num_layers': 1 for part in ('encoder', 'decoder')},
        **{f'model.{part}.layer_cfg.{attn}': _TINY_DETR_LAYER
           for part, attns in (('encoder', ('self_attn_cfg', )), ('decoder', ('self_attn_cfg', 'cross_attn_cfg')))
           for attn in attns},
        **{f'model.{part}.layer_cfg.ffn_cfg': dict(embed_dims=32, feedforward_channels=64)
           for part in ('encoder', 'decoder')},
    },
}


def load_config(model_name: str, objects: int, tiny: bool, compile_decoder: bool = False,
                size: Optional[int] = None, peer_queries: Optional[int] = None) -> Config:
    """The paper's Pix2Seq R50 (``pix2seq``), the official Pix2Seq ViT-B (``pix2seq-vit-b``), mmdet's DETR R50
    (``detr``) or Deformable DETR R50 (``deformable-detr``) config, without pretrained weights, shrunk when ``tiny``.
    Pix2Seq decodes ``objects`` objects per image (``max_objects``), its decoder step compiled when
    ``compile_decoder``, in a ``size`` x ``size`` frame when given; the peers keep their configs' queries (DETR 100,
    Deformable DETR 300) unless ``peer_queries`` is given, and at most 100 detections (DETR: one per query)."""
    if model_name in PIX2SEQ_CONFIGS:
        cfg = Config.fromfile(str(PIX2SEQ_CONFIGS[model_name]))
        overrides = {'model.head.tokenizer.max_objects': objects, 'model.test_cfg.compile': compile_decoder}
        if size is not None:
            overrides['model.data_preprocessor.pad_size'] = (size, size)
    else:
        cfg = get_config(PEER_CONFIGS[model_name])
        overrides = {} if peer_queries is None else {
            'model.num_queries': peer_queries, 'model.test_cfg.max_per_img': min(peer_queries, 100)}
    overrides['model.backbone.init_cfg'] = None
    if tiny:
        overrides.update(TINY_MODEL_OVERRIDES[model_name])
    cfg.merge_from_dict(overrides)
    return cfg


def build_detector(cfg: Config, device: str) -> torch.nn.Module:
    """Build and initialise ``cfg.model`` (its own random initialisation) on ``device``."""
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device)


def random_image(size: int) -> torch.Tensor:
    """(3, size, size) uint8 image, the same for every child (seeded)."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)


def random_boxes(size: int, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` random xyxy boxes (count, 4) inside a size x size image and their labels (count,), seeded."""
    generator = torch.Generator().manual_seed(SEED + 1)
    top_left = torch.rand(count, 2, generator=generator) * 0.7 * size
    extent = (0.1 + 0.2 * torch.rand(count, 2, generator=generator)) * size
    labels = torch.randint(0, NUM_CLASSES, (count, ), generator=generator)
    return torch.cat([top_left, top_left + extent], dim=1), labels


def make_data_batch(size: int, batch: int, gt_boxes: int = 0) -> dict:
    """A data batch as mmdet's dataloader yields it: ``batch`` copies of one random square image, with ``gt_boxes``
    the same random ``gt_instances`` in each sample."""
    image = random_image(size)
    shape = (size, size)
    boxes, labels = random_boxes(size, gt_boxes)
    samples = []
    for _ in range(batch):
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, scale_factor=(1.0, 1.0)))
        if gt_boxes:
            sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(boxes.clone()), labels=labels.clone())
        samples.append(sample)
    return dict(inputs=[image.clone() for _ in range(batch)], data_samples=samples)


def autocast(device: str, amp: bool):
    """fp16 autocast on CUDA, bf16 on CPU, or nothing."""
    if not amp:
        return nullcontext()
    return torch.autocast(device, dtype=torch.float16 if device == 'cuda' else torch.bfloat16)
