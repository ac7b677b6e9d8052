import pytest
import torch

from pix2seq_mmdet.tokenizer import TOKENS_PER_OBJECT, Pix2SeqTokenizer


def random_boxes(num: int, generator: torch.Generator) -> torch.Tensor:
    corners = torch.rand(num, 2, 2, generator=generator)
    low, high = corners.min(1).values, corners.max(1).values
    return torch.cat([low, high], dim=1)


def test_vocabulary_ranges_are_disjoint_and_complete():
    tokenizer = Pix2SeqTokenizer(num_classes=80, num_bins=2000, max_objects=100)
    specials = {tokenizer.PAD, tokenizer.EOS, tokenizer.BOS, tokenizer.FAKE}
    classes = set(range(tokenizer.CLASS_OFFSET, tokenizer.coord_offset))
    coords = set(range(tokenizer.coord_offset, tokenizer.vocab_size))
    assert len(specials) == 4 and not specials & classes and not classes & coords and not specials & coords
    assert len(classes) == 80 and len(coords) == 2000
    assert specials | classes | coords == set(range(tokenizer.vocab_size))
    assert tokenizer.seq_len == 501


@pytest.mark.parametrize('num_bins', [2, 17, 128, 1000])
def test_round_trip_within_half_a_bin(num_bins):
    generator = torch.Generator().manual_seed(num_bins)
    tokenizer = Pix2SeqTokenizer(num_classes=5, num_bins=num_bins, max_objects=50)
    for _ in range(20):
        count = int(torch.randint(0, 51, (1, ), generator=generator))
        boxes = random_boxes(count, generator)
        labels = torch.randint(0, 5, (count, ), generator=generator)
        sequence = tokenizer.encode(boxes, labels)
        assert sequence.shape == (tokenizer.seq_len, ) and sequence.dtype == torch.long
        decoded, class_tokens, _ = tokenizer.decode(sequence)
        assert torch.all((decoded[:count] - boxes).abs() <= 0.5 / (num_bins - 1) + 1e-6)
        assert torch.equal(class_tokens[:count], labels + tokenizer.CLASS_OFFSET)


def test_edge_boxes_and_clipping():
    tokenizer = Pix2SeqTokenizer(num_classes=3, num_bins=100, max_objects=3)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [-0.2, 0.5, 1.3, 0.75]])
    sequence = tokenizer.encode(boxes, torch.tensor([0, 2]))
    assert sequence[:4].tolist() == [tokenizer.coord_offset] * 2 + [tokenizer.vocab_size - 1] * 2
    decoded, _, valid = tokenizer.decode(sequence)
    assert decoded[1].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.75], abs=0.5 / 99)
    assert valid.tolist() == [True, True, False]


def test_empty_image_is_just_eos():
    tokenizer = Pix2SeqTokenizer(num_classes=3, num_bins=10, max_objects=4)
    sequence = tokenizer.encode(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert sequence[0] == tokenizer.EOS
    assert torch.all(sequence[1:] == tokenizer.PAD)
    assert not tokenizer.decode(sequence)[2].any()


def test_more_than_max_objects_is_truncated():
    tokenizer = Pix2SeqTokenizer(num_classes=3, num_bins=10, max_objects=4)
    generator = torch.Generator().manual_seed(0)
    boxes = random_boxes(9, generator)
    sequence = tokenizer.encode(boxes, torch.zeros(9, dtype=torch.long))
    assert sequence.shape == (TOKENS_PER_OBJECT * 4 + 1, )
    assert sequence[-1] == tokenizer.EOS
    assert (sequence == tokenizer.EOS).sum() == 1


def test_noise_label_is_fake_and_decode_flags_invalid_slots():
    tokenizer = Pix2SeqTokenizer(num_classes=3, num_bins=10, max_objects=4)
    sequence = tokenizer.encode(torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6]]), torch.tensor([1, -1]))
    assert sequence[4] == tokenizer.CLASS_OFFSET + 1 and sequence[9] == tokenizer.FAKE
    corrupted = sequence.clone()
    corrupted[1] = tokenizer.CLASS_OFFSET  # a class token where a coordinate belongs
    _, _, valid = tokenizer.decode(corrupted)
    assert valid.tolist() == [False, True, False, False]
    inverted = tokenizer.encode(torch.tensor([[0.6, 0.1, 0.2, 0.5]]), torch.tensor([0]))
    assert not tokenizer.decode(inverted)[2].any()


def test_object_orders():
    boxes = torch.tensor([[0.5, 0.5, 0.6, 0.6], [0.0, 0.1, 0.9, 0.9], [0.2, 0.0, 0.3, 0.2]])
    assert Pix2SeqTokenizer.order_objects(boxes, 'area').tolist() == [1, 2, 0]
    assert Pix2SeqTokenizer.order_objects(boxes, 'dist2ori').tolist() == [1, 2, 0]
    assert Pix2SeqTokenizer.order_objects(boxes, 'none').tolist() == [0, 1, 2]
    assert sorted(Pix2SeqTokenizer.order_objects(boxes, 'random').tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match='unknown object order'):
        Pix2SeqTokenizer.order_objects(boxes, 'size')


@pytest.mark.parametrize('kwargs, message', [(dict(num_bins=1), 'num_bins'), (dict(max_objects=0), 'max_objects'),
                                             (dict(num_classes=0), 'num_classes')])
def test_invalid_configuration(kwargs, message):
    arguments = dict(num_classes=3, num_bins=10, max_objects=4)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Pix2SeqTokenizer(**arguments)
