"""The training data path of the synthetic config: dataset -> transforms -> sampler -> collate -> preprocessor."""
import copy

import torch
from mmengine.runner import Runner

from pix2seq_mmdet.tokenizer import TOKENS_PER_OBJECT


def synthetic_dataloader_cfg(cfg, root, batch_size=4):
    dataloader = copy.deepcopy(cfg.train_dataloader)
    dataloader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    dataloader.sampler.batch_repeat = 2
    dataloader.dataset.data_root = str(root)
    return dataloader


def test_training_batch_carries_sequences_through_the_config_pipeline(synthetic_cfg, synthetic_root):
    torch.manual_seed(0)
    dataloader = Runner.build_dataloader(synthetic_dataloader_cfg(synthetic_cfg, synthetic_root), seed=0)
    batch = next(iter(dataloader))
    samples = batch['data_samples']
    assert len(samples) == 4
    # batch repetition: consecutive copies of one image, each with its own sequence augmentation
    assert samples[0].img_path == samples[1].img_path and samples[2].img_path == samples[3].img_path
    assert not torch.equal(samples[0].input_tokens, samples[1].input_tokens)
    max_objects = synthetic_cfg.model.head.tokenizer.max_objects
    for sample in samples:
        for name in ('input_tokens', 'target_tokens', 'token_weights'):
            assert getattr(sample, name).shape == (TOKENS_PER_OBJECT * max_objects + 1, )
        num_real = len(sample.gt_instances)
        real_weights = sample.token_weights[:TOKENS_PER_OBJECT * num_real]
        assert torch.all(real_weights == 1)
        noise_weights = sample.token_weights[TOKENS_PER_OBJECT * num_real:-1].view(-1, TOKENS_PER_OBJECT)
        assert torch.all(noise_weights[:, :4] == 0) and torch.all(noise_weights[:, 4] == 1)
        assert sample.metainfo['pad_shape'][:2] == (128, 128)
    model_cfg = copy.deepcopy(synthetic_cfg.model)
    from mmdet.registry import MODELS
    model = MODELS.build(model_cfg)
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape == (4, 3, 128, 128)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss'])


def test_sequence_boxes_match_the_flipped_annotations(synthetic_cfg, synthetic_root):
    """Noise is generated after mmdet's geometric transforms: the real tokens encode the final (flipped) boxes."""
    dataloader = Runner.build_dataloader(synthetic_dataloader_cfg(synthetic_cfg, synthetic_root, batch_size=8),
                                         seed=1)
    checked = 0
    for batch in dataloader:
        for sample in batch['data_samples']:
            tokenizer_bins = synthetic_cfg.model.head.tokenizer.num_bins
            boxes = sample.gt_instances.bboxes.tensor if hasattr(sample.gt_instances.bboxes, 'tensor') \
                else sample.gt_instances.bboxes
            if len(boxes) == 0:
                continue
            coord_offset = 4 + 4
            target = sample.target_tokens[:TOKENS_PER_OBJECT * len(boxes)].view(-1, TOKENS_PER_OBJECT)
            yxyx = (target[:, :4] - coord_offset).float() / (tokenizer_bins - 1) * 128
            xyxy = yxyx[:, [1, 0, 3, 2]]
            # every encoded box is one of the (possibly flipped) ground-truth boxes, within half a bin
            distance = (xyxy[:, None, :] - boxes[None]).abs().amax(-1).min(1).values
            assert torch.all(distance <= 0.5 * 128 / (tokenizer_bins - 1) + 1e-3)
            checked += 1
    assert checked > 8
