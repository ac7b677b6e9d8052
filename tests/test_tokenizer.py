import pytest
import torch

from pix2seq_mmdet.models.tokenizer import TOKENS_PER_OBJECT, Pix2SeqTokenizer


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


def test_layout_helpers_agree_with_the_vocabulary():
    tokenizer = Pix2SeqTokenizer(num_classes=3, num_bins=10, max_objects=4)
    ids = torch.arange(tokenizer.vocab_size)
    assert ids[tokenizer.is_class(ids)].tolist() == [tokenizer.FAKE] + list(range(4, 7))
    assert ids[tokenizer.real_classes].tolist() == [4, 5, 6]
    assert ids[tokenizer.coordinates].tolist() == ids[tokenizer.is_coord(ids)].tolist() == list(range(7, 17))
    assert tokenizer.labels(tokenizer.class_tokens(torch.tensor([2, -1, 0]))).tolist() == [2, -1, 0]
    allowed = tokenizer.allowed_tokens()
    assert allowed.shape == (5, tokenizer.vocab_size)
    for row in range(4):
        assert ids[allowed[row]].tolist() == ([tokenizer.EOS] if row == 0 else []) + list(range(7, 17))
    assert ids[allowed[4]].tolist() == [tokenizer.FAKE, 4, 5, 6]
    positions = torch.arange(12)
    assert positions[tokenizer.is_class_position(positions)].tolist() == [4, 9]
    assert tokenizer.is_class_position(14) and not tokenizer.is_class_position(13)


def test_box_normalisation_round_trip_in_the_padded_frame():
    xyxy = torch.tensor([[10.0, 20.0, 50.0, 40.0]])
    yxyx = Pix2SeqTokenizer.normalize_boxes(xyxy, (80, 100))
    assert yxyx.tolist() == [pytest.approx([0.25, 0.1, 0.5, 0.5])]
    assert torch.allclose(Pix2SeqTokenizer.denormalize_boxes(yxyx, (80, 100)), xyxy)
    outside = Pix2SeqTokenizer.normalize_boxes(torch.tensor([[-5.0, 0.0, 120.0, 90.0]]), (80, 100))
    assert outside.tolist() == [[0.0, 0.0, 1.0, 1.0]]


# ------------------------------------------------------------------------------------------------ official layout
def test_official_layout_ids():
    from pix2seq_mmdet.models.tokenizer import COCO_CATEGORY_IDS
    tokenizer = Pix2SeqTokenizer(num_classes=80, num_bins=1000, max_objects=100, layout='official', class_ids='coco')
    assert (tokenizer.PAD, tokenizer.EOS, tokenizer.BOS, tokenizer.FAKE) == (0, 0, 10, 30)
    assert tokenizer.vocab_size == 3000 and tokenizer.coord_offset == 1000 and tokenizer.seq_len == 501
    assert tokenizer.class_ids == COCO_CATEGORY_IDS and len(set(COCO_CATEGORY_IDS)) == 80
    labels = torch.arange(80)
    assert tokenizer.class_tokens(labels).tolist() == [100 + class_id for class_id in COCO_CATEGORY_IDS]
    assert tokenizer.class_tokens(torch.tensor([0, 11, 79, -1])).tolist() == [101, 113, 190, 30]
    assert torch.equal(tokenizer.labels(tokenizer.class_tokens(labels)), labels)
    ids = torch.arange(tokenizer.vocab_size)
    assert ids[tokenizer.is_class(ids)].tolist() == [30] + [100 + class_id for class_id in COCO_CATEGORY_IDS]
    assert ids[tokenizer.real_classes].tolist() == tokenizer.class_tokens(labels).tolist()  # not contiguous
    assert ids[tokenizer.is_coord(ids)].tolist() == ids[tokenizer.coordinates].tolist() == list(range(1000, 2000))
    assert tokenizer.quantize(torch.tensor([0.0, 1.0])).tolist() == [1000, 1999]
    assert tokenizer.labels(torch.tensor([0, 10, 112, 1000, 2999, 3000, -1])).tolist() == [-2] * 7  # not classes
    allowed = tokenizer.allowed_tokens()
    assert ids[allowed[0]].tolist() == [0] + list(range(1000, 2000))
    assert ids[allowed[4]].tolist() == ids[tokenizer.is_class(ids)].tolist()


def test_official_layout_default_class_ids_are_contiguous():
    tokenizer = Pix2SeqTokenizer(num_classes=4, num_bins=128, max_objects=3, layout='official')
    assert tokenizer.class_ids == (1, 2, 3, 4)
    assert tokenizer.real_classes == slice(101, 105)
    assert tokenizer.coordinates == slice(1000, 1128) and tokenizer.vocab_size == 3000


def test_official_layout_sequences_end_with_pad_as_eos():
    from pix2seq_mmdet.models.sequence_augmentation import SequenceAugmentation
    tokenizer = Pix2SeqTokenizer(num_classes=80, num_bins=1000, max_objects=4, layout='official', class_ids='coco')
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.8]])
    sequence = tokenizer.encode(boxes, torch.tensor([0, 79]))
    assert sequence[:10].tolist() == [1100, 1200, 1500, 1599, 101, 1300, 1300, 1899, 1799, 190]
    assert torch.all(sequence[10:] == 0) and sequence.shape == (21, )
    decoded, class_tokens, valid = tokenizer.decode(sequence)
    assert valid.tolist() == [True, True, False, False] and class_tokens[:2].tolist() == [101, 190]
    assert torch.allclose(decoded[:2], boxes, atol=0.5 / 999)
    # EOS is PAD: every trailing PAD target carries the EOS weight, as the official code weights its padding
    weights = SequenceAugmentation(tokenizer, eos_weight=0.1).token_weights(sequence, num_real=2)
    assert torch.all(weights[:10] == 1) and torch.allclose(weights[10:], torch.full((11, ), 0.1))


def test_official_layout_decoding_ends_at_pad():
    from pix2seq_mmdet.models.decoding import DecodingConfig, decode_sequences
    tokenizer = Pix2SeqTokenizer(num_classes=3, num_bins=10, max_objects=3, layout='official', class_ids=[5, 7, 9])
    script = [1001, 1002, 1005, 1006, 109, 0, 1003, 1003, 1004, 105]  # one object, then the end token (PAD)

    def step(tokens, position):
        logits = torch.zeros(tokens.shape[0], tokenizer.vocab_size)
        logits[:, script[min(position, len(script) - 1)]] = 10.0
        return logits

    tokens, class_probs, _ = decode_sequences(step, 2, torch.device('cpu'), tokenizer,
                                              DecodingConfig(strategy='greedy'))
    assert tokens[0].tolist() == script[:6] + [0] * 9
    assert class_probs.shape == (2, 3, 3) and class_probs[0, 0].argmax() == 2  # token 109 = class id 9 = label 2
    _, class_tokens, valid = tokenizer.decode(tokens[0])
    assert valid.tolist() == [True, False, False] and tokenizer.labels(class_tokens[:1]).tolist() == [2]


@pytest.mark.parametrize('kwargs, message', [
    (dict(layout='tf'), 'layout'),
    (dict(layout='official', num_bins=2001), 'at most 2000'),
    (dict(layout='official', class_ids=[1, 2, 900]), r'\[0, 900\)'),
    (dict(layout='official', class_ids=[1, 2]), 'num_classes is 3'),
    (dict(layout='official', class_ids=[1, 2, 2]), 'distinct'),
    (dict(layout='official', class_ids='voc'), 'coco'),
    (dict(class_ids=[1, 2, 3]), 'only apply'),
    (dict(vocab_size=3000), 'only apply'),
    (dict(layout='official', vocab_size=2999), 'vocab_size >= 3000'),
])
def test_invalid_layout_configuration(kwargs, message):
    arguments = dict(num_classes=3, num_bins=10, max_objects=4)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Pix2SeqTokenizer(**arguments)
