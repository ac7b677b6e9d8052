"""Parallel box decoding: the block objective (``block_decoding``) and one object per decoder step
(``test_cfg.parallel``)."""
import copy

import pytest
import torch
from mmdet.registry import MODELS

from model_utils import build_model, decode, make_batch, widen_decoder
from pix2seq_mmdet.models.decoding import block_attention_mask

FIXED_SEQUENCES = dict(object_order='area', noise_mode='none', class_label_corruption='none')
PARALLEL_READOUT = dict(coord_window=0, box_confidence=False)  # parallel decoding reads the decoded bins


def block_model(synthetic_cfg, block_size=5, **train_cfg):
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.aux_head = None
    cfg.model.head.block_decoding = dict(block_size=block_size)
    cfg.model.train_cfg.update(train_cfg)
    cfg.model.test_cfg.update(PARALLEL_READOUT)
    torch.manual_seed(0)
    return build_model(cfg)


def test_block_mask_sees_the_real_tokens_before_the_block_and_its_own_queries():
    mask = block_attention_mask(7, 5, torch.device('cpu'))
    real, queries = mask[:7], mask[7:]
    assert torch.equal(real[:, :7], torch.ones(7, 7).tril().bool()) and not real[:, 7:].any()
    # query 6 is in the block that starts at 5: real tokens 0..4, queries 5 and 6
    assert queries[6, :7].tolist() == [True] * 5 + [False] * 2
    assert queries[6, 7:].tolist() == [False] * 5 + [True] * 2
    # query 3, in the first block: no real token, queries 0..3
    assert not queries[3, :7].any() and queries[3, 7:].tolist() == [True] * 4 + [False] * 3


def test_blocks_of_one_position_give_the_usual_loss(synthetic_cfg):
    model = block_model(synthetic_cfg, block_size=1).eval()
    inputs, samples = make_batch(model)
    memory, memory_mask = model.encode(inputs, samples)
    torch.manual_seed(1)
    input_tokens, _, _ = model.head.sequence_augmentation(samples)
    with torch.no_grad():
        usual = model.head(memory, memory_mask, input_tokens)
        blocks = model.head.block_logits(memory, memory_mask, input_tokens)
    assert (usual - blocks).abs().max() < 1e-5
    torch.manual_seed(1)
    losses = model.head.loss(memory, memory_mask, samples)
    assert losses['loss_block'].item() == pytest.approx(losses['loss'].item(), rel=1e-5)


def test_a_block_reads_the_real_tokens_before_it_only(synthetic_cfg):
    model = block_model(synthetic_cfg).eval()
    inputs, samples = make_batch(model)
    memory, memory_mask = model.encode(inputs, samples)
    tokens, _, _ = model.head.sequence_augmentation(samples)
    with torch.no_grad():
        base = model.head.block_logits(memory, memory_mask, tokens)
        inside = tokens.clone()
        inside[:, 6:10] = model.head.tokenizer.coord_offset  # the second object's first four input tokens
        changed_inside = model.head.block_logits(memory, memory_mask, inside)
        before = tokens.clone()
        before[:, 5] = model.head.tokenizer.coord_offset  # the block start (the first object's class)
        changed_before = model.head.block_logits(memory, memory_mask, before)
    block = slice(5, 10)
    assert torch.equal(base[:, block], changed_inside[:, block])  # the block never reads its own object's tokens
    assert not torch.allclose(base[:, 10:], changed_inside[:, 10:])  # later blocks do
    assert not torch.allclose(base[:, block], changed_before[:, block])


def test_parallel_decoding_needs_the_block_objective(synthetic_cfg):
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.test_cfg.update(strategy='greedy', parallel=True, **PARALLEL_READOUT)
    with pytest.raises(ValueError, match='trained without it cannot decode in parallel'):
        MODELS.build(cfg.model)
    cfg.model.head.block_decoding = dict(block_size=5)
    cfg.model.test_cfg.strategy = 'nucleus'
    with pytest.raises(ValueError, match='parallel decodes greedily'):
        MODELS.build(cfg.model)


def test_parallel_and_token_by_token_decoding_agree_on_a_model_trained_to_certainty(synthetic_cfg):
    """Two images learned by heart (fixed object order, no noise): one object per step writes the same tokens as
    five steps per object, and close class scores for the objects (the same ones with the token-by-token fallback),
    whether a block is never or always decoded again token by token."""
    model = block_model(synthetic_cfg, **FIXED_SEQUENCES)
    inputs, samples = make_batch(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(150):
        losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses['loss_block'].item() < 0.05 and losses['loss'].item() < 0.05
    model.eval()
    serial_tokens, serial_probs, _ = decode(model, inputs, samples, strategy='greedy', parallel=False)
    objects = model.head.tokenizer.decode(serial_tokens)[2]
    assert int(objects.sum()) == 6  # the three objects of each image
    for verify in (False, True):  # the drafts kept / checked against the token-by-token logits
        tokens, probs, _ = decode(model, inputs, samples, strategy='greedy', parallel=True, parallel_verify=verify)
        assert torch.equal(tokens, serial_tokens)
        assert (probs[objects] - serial_probs[objects]).abs().max() < (1e-5 if verify else 0.05)


@pytest.mark.parametrize('stop_at_eos, constrained', [(False, False), (True, False), (False, True)])
def test_verified_parallel_decoding_writes_the_token_by_token_tokens(synthetic_cfg, stop_at_eos, constrained):
    """An untrained model, whose drafts are mostly wrong: checking each drafted object against the next step's
    causal logits and correcting it gives greedy token-by-token decoding's tokens and class probabilities, in fewer
    steps than five per object when some drafts hold; without the check, one step per object and other tokens."""
    model = widen_decoder(block_model(synthetic_cfg).eval())
    head = model.head
    with torch.no_grad():  # a block query that drafts the token-by-token tokens for some objects
        head.block_query.copy_(head.token_embed.weight[head.tokenizer.coord_offset + 40])
    inputs, samples = make_batch(model, batch_size=3)
    options = dict(strategy='greedy', stop_at_eos=stop_at_eos, constrained=constrained)
    serial_tokens, serial_probs, _ = decode(model, inputs, samples, parallel=False, **options)
    steps = []
    original = head.forward_step

    def counted(*args, **kwargs):
        steps.append(args[0].shape[1])
        return original(*args, **kwargs)

    head.forward_step = counted
    tokens, probs, _ = decode(model, inputs, samples, parallel=True, **options)
    assert torch.equal(tokens, serial_tokens)
    assert (probs - serial_probs).abs().max() < 1e-5
    verified_steps = len(steps)
    steps.clear()
    drafts, _, _ = decode(model, inputs, samples, parallel=True, parallel_verify=False, **options)
    slots = head.tokenizer.max_objects
    if not stop_at_eos:
        assert len(steps) == slots and verified_steps < 5 * slots
    assert not torch.equal(drafts, serial_tokens)


def test_a_checkpoint_without_the_objective_refuses_parallel_decoding(synthetic_cfg):
    from pix2seq_mmdet.engine.consistency_check_hook import check_checkpoint_fits
    plain = build_model(synthetic_cfg)
    cfg = copy.deepcopy(synthetic_cfg)
    cfg.model.head.block_decoding = dict(block_size=5)
    cfg.model.test_cfg.update(parallel=True, **PARALLEL_READOUT)
    parallel = build_model(cfg)
    with pytest.raises(ValueError, match='trained without the block objective .* decode token by token'):
        check_checkpoint_fits(dict(state_dict=plain.state_dict()), parallel, 'plain.pth')
    check_checkpoint_fits(dict(state_dict=parallel.state_dict()), parallel, 'block.pth')  # its own: fine
    check_checkpoint_fits(dict(state_dict=plain.state_dict()), plain, 'plain.pth')
