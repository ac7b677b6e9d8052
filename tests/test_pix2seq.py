"""The Pix2Seq detector: loss, gradients, modes and the encoder side."""
import copy

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from model_utils import IMAGE_SIZE, build_model, decode, make_batch, widen_decoder


def test_loss_shapes_and_gradients_reach_every_part(synthetic_cfg):
    torch.manual_seed(0)
    model = build_model(synthetic_cfg)
    inputs, samples = make_batch(model)
    losses = model.loss(inputs, samples)
    # the sequence loss and its logged parts, and the main recipe's auxiliary head's losses
    assert set(losses) == {'loss', 'coord_ce', 'class_ce', 'eos_ce', 'aux_loss_cls', 'aux_loss_bbox',
                           'aux_loss_centerness'}
    assert all(value.dim() == 0 and value.dtype == torch.float32 for value in losses.values())
    assert not any(value.requires_grad for name, value in losses.items() if 'loss' not in name)
    # an untrained model is close to uniform over the vocabulary
    assert losses['loss'].item() == pytest.approx(torch.log(torch.tensor(model.head.tokenizer.vocab_size)).item(),
                                                  rel=0.2)
    sum(value for name, value in losses.items() if 'loss' in name).backward()
    for part in (model.backbone, model.neck, model.encoder, model.memory_proj, model.head.layers,
                 model.head.token_embed, model.aux_head):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_memory_projection_with_positions_needs_equal_widths(synthetic_cfg):
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.head.embed_dims = 64
    with pytest.raises(ValueError, match='must equal the head'):
        build_model(synthetic_cfg)
    synthetic_cfg.model.memory_proj = dict(mode='linear')
    assert build_model(synthetic_cfg).memory_proj(torch.randn(1, 5, 128), None).shape == (1, 5, 64)


def test_tensor_mode_returns_logits(synthetic_cfg):
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model)
    logits = model(inputs, samples, mode='tensor')
    assert logits.shape == (2, model.head.tokenizer.seq_len, model.head.tokenizer.vocab_size)


def test_padding_is_attended_unless_mask_padding(synthetic_cfg):
    """The official code attends to the whole padded frame; ``mask_padding=True`` keeps attention off it."""
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    model = build_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model)
    samples[0].set_metainfo(dict(img_shape=(32, 64)))  # the lower half of the first image is padding
    _, memory_mask = model.encode(inputs, samples)
    assert memory_mask is None
    synthetic_cfg.model.mask_padding = True
    model = build_model(synthetic_cfg).eval()
    _, memory_mask = model.encode(inputs, samples)
    feature_rows = memory_mask.shape[1] // (IMAGE_SIZE // 16)
    assert memory_mask[0].view(feature_rows, -1)[feature_rows // 2:].all()
    assert not memory_mask[0].view(feature_rows, -1)[:feature_rows // 2].any() and not memory_mask[1].any()


def test_aux_head_trains_the_encoder_and_leaves_prediction_alone(synthetic_cfg):
    """The main recipe's auxiliary head (its `aux_fcos_head` at stride 16)."""
    torch.manual_seed(0)
    model = build_model(synthetic_cfg)
    inputs, samples = make_batch(model)
    assert (model.aux_head.num_classes, model.aux_head.in_channels) == (4, 128)  # the tokenizer's, the encoder's
    losses = model.loss(inputs, samples)
    assert {'aux_loss_cls', 'aux_loss_bbox', 'aux_loss_centerness'} <= set(losses)
    assert all(losses[name].item() > 0 for name in ('aux_loss_cls', 'aux_loss_bbox', 'aux_loss_centerness'))
    # the auxiliary losses alone reach the encoder and the backbone, not the decoder
    sum(value for name, value in losses.items() if name.startswith('aux_')).backward()
    assert model.encoder.norm.weight.grad.abs().sum() > 0 and model.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.head.parameters())
    widen_decoder(model)  # varied greedy tokens for the comparison below
    # without the auxiliary head's weights the same model gives the same sequence loss and the same detections
    plain_cfg = copy.deepcopy(synthetic_cfg)
    plain_cfg.model.aux_head = None
    plain = build_model(plain_cfg)
    plain.load_state_dict({key: value for key, value in model.state_dict().items() if not key.startswith('aux_head.')})
    torch.manual_seed(1)
    aux_loss = model.loss(inputs, samples)['loss']
    torch.manual_seed(1)
    assert plain.loss(inputs, samples)['loss'].item() == pytest.approx(aux_loss.item(), abs=1e-6)
    model.eval(), plain.eval()
    torch.manual_seed(2)
    logits = model(inputs, samples, mode='tensor')
    torch.manual_seed(2)
    assert torch.equal(plain(inputs, samples, mode='tensor'), logits)
    # greedy decoding of every slot
    tokens, class_probs, _ = decode(model, inputs, samples, strategy='greedy')
    plain_tokens, plain_class_probs, _ = decode(plain, inputs, samples, strategy='greedy')
    assert torch.equal(tokens, plain_tokens) and torch.equal(class_probs, plain_class_probs)
    assert len(tokens.unique()) > 3 and class_probs.sum() > 0


def test_aux_head_stride_must_fit_the_feature_map(synthetic_cfg):
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.aux_head = dict(synthetic_cfg.aux_fcos_head, strides=[8])  # the features have stride 16
    model = build_model(synthetic_cfg)
    with pytest.raises(ValueError, match='strides \\[8\\] do not fit the feature map: 4 x 4 features of a 64 x 64'):
        model.loss(*make_batch(model))


def test_aux_head_fits_a_frame_that_is_not_a_multiple_of_the_stride(synthetic_cfg):
    """The documented COCO setting at 1333 px: ceil(1333 / 16) = 84 features per side at stride 16 (a ResNet's
    strided convolutions round up), which the stride check accepts; the losses are finite."""
    synthetic_cfg = copy.deepcopy(synthetic_cfg)
    synthetic_cfg.model.data_preprocessor.pad_size = (1333, 1333)
    learned = synthetic_cfg.model.positional_encoding.encodings[1]
    learned.row_num_embed = learned.col_num_embed = 84
    model = build_model(synthetic_cfg)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(1, 3, 1333, 1333, generator=generator)
    sample = DetDataSample(metainfo=dict(img_shape=(1333, 1333), pad_shape=(1333, 1333),
                                         batch_input_shape=(1333, 1333)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[100., 200., 700., 900.]]), labels=torch.tensor([1]))
    assert model.extract_feat(inputs).shape[-2:] == (84, 84)
    losses = model.loss(inputs, [sample])
    assert all(torch.isfinite(losses[name]) for name in ('loss', 'aux_loss_cls', 'aux_loss_bbox'))
    synthetic_cfg.model.aux_head = dict(synthetic_cfg.aux_fcos_head, strides=[16, 32],
                                        regress_ranges=((-1, 32), (32, 1e8)))
    with pytest.raises(ValueError, match='exactly one entry in strides'):
        build_model(synthetic_cfg)
    synthetic_cfg.model.aux_head = dict(synthetic_cfg.aux_fcos_head, strides=[16], num_classes=80)
    with pytest.raises(ValueError, match='aux_head num_classes \\(80\\) must equal the tokenizer\'s \\(4\\)'):
        build_model(synthetic_cfg)


def test_several_sequences_per_image_share_one_encoder_pass(synthetic_cfg):
    """``train_cfg.sequences_per_image = K``: the encoder runs once per batch of B images, the head decodes B * K
    sequences against it, and every sequence's loss reaches the encoder through its own image's memory only."""
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.train_cfg.sequences_per_image = 3
    torch.manual_seed(0)
    model = build_model(cfg)
    inputs, samples = make_batch(model)
    calls = []
    model.encoder.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    losses = model.loss(inputs, samples)
    assert calls == [2] and torch.isfinite(losses['loss'])
    memory, memory_mask = model.encode(inputs, samples)
    input_tokens, _, _ = model.head.sequence_augmentation(samples)
    logits = model.head(memory, memory_mask, input_tokens)
    assert logits.shape[0] == 6
    for row in range(6):
        (grad, ) = torch.autograd.grad(logits[row].logsumexp(-1).sum(), memory, retain_graph=True)
        image = row // 3
        assert grad[image].abs().sum() > 0 and grad[1 - image].abs().sum() == 0


def test_identical_sequences_per_image_give_the_one_sequence_loss(synthetic_cfg):
    """The loss is normalised over all sequences: K copies of the same sequence (no random order, noise or
    corruption) give the K = 1 loss, and K = 1 is the default's loss bit for bit."""
    losses = {}
    for name, options in (('default', {}), ('k1', dict(sequences_per_image=1)),
                          ('k1_fixed', dict(sequences_per_image=1, object_order='area', noise_mode='none',
                                            class_label_corruption='none')),
                          ('k3_fixed', dict(sequences_per_image=3, object_order='area', noise_mode='none',
                                            class_label_corruption='none'))):
        cfg = copy.deepcopy(synthetic_cfg)
        cfg.model.train_cfg.update(options)
        torch.manual_seed(0)
        model = build_model(cfg)
        inputs, samples = make_batch(model)
        torch.manual_seed(1)
        losses[name] = model.loss(inputs, samples)
    assert torch.equal(losses['default']['loss'], losses['k1']['loss'])
    for key in ('loss', 'coord_ce', 'class_ce', 'eos_ce'):
        assert losses['k3_fixed'][key].item() == pytest.approx(losses['k1_fixed'][key].item(), rel=1e-6), key


def fine_memory_cfg(synthetic_cfg):
    """The synthetic model with its backbone's stride-8 level beside the stride-16 one, and ``fine_memory``."""
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.backbone.out_indices = (1, 2)
    cfg.model.neck.update(in_channels=[64, 128], num_outs=2)
    cfg.model.fine_memory = True
    return cfg


def test_fine_memory_follows_the_encoder_tokens_and_trains(synthetic_cfg):
    """``fine_memory``: the memory is the encoder's (IMAGE_SIZE / 16)^2 tokens, unchanged, then the stride-8 level's
    (IMAGE_SIZE / 8)^2; the sequence loss reaches the fine level's projection and the backbone through it."""
    cfg = fine_memory_cfg(synthetic_cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    inputs, samples = make_batch(model)
    model.eval()
    memory, memory_mask = model.encode(inputs, samples)
    coarse, fine = (IMAGE_SIZE // 16) ** 2, (IMAGE_SIZE // 8) ** 2
    assert memory.shape == (2, coarse + fine, model.head.embed_dims) and memory_mask is None
    features = model.extract_feats(inputs)
    alone, _, _ = model.forward_encoder(features[-1], samples)
    assert torch.equal(memory[:, :coarse], alone)
    model.train()
    model.loss(inputs, samples)['loss'].backward()
    grads = [p.grad for p in model.fine_memory_proj.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert model.neck.convs[0].conv.weight.grad.abs().sum() > 0  # the stride-8 level's own projection


def test_fine_memory_needs_two_levels_and_no_padding_mask(synthetic_cfg):
    cfg = fine_memory_cfg(synthetic_cfg)
    cfg.model.backbone.out_indices = (2, )
    cfg.model.neck.update(in_channels=[128], num_outs=1)
    model = build_model(cfg)
    with pytest.raises(ValueError, match='need a neck of two or more levels'):
        model.loss(*make_batch(model))
    cfg = fine_memory_cfg(synthetic_cfg)
    cfg.model.mask_padding = True
    with pytest.raises(ValueError, match='do not mask padding'):
        build_model(cfg)
