from collections import Counter
from unittest import mock

import pytest
from mmdet.registry import DATA_SAMPLERS

import pix2seq_mmdet  # noqa: F401


def build_sampler(dataset_size, rank, world_size, batch_repeat=2, seed=0):
    with mock.patch('mmengine.dataset.sampler.get_dist_info', return_value=(rank, world_size)):
        return DATA_SAMPLERS.build(dict(type='BatchRepeatSampler', batch_repeat=batch_repeat, seed=seed),
                                   default_args=dict(dataset=list(range(dataset_size))))


@pytest.mark.parametrize('batch_repeat', [1, 2, 3])
def test_every_image_appears_batch_repeat_times_over_two_ranks(batch_repeat):
    samplers = [build_sampler(10, rank, 2, batch_repeat) for rank in range(2)]
    for epoch in range(2):
        per_rank = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            indices = list(sampler)
            assert len(indices) == len(sampler) == 5 * batch_repeat
            # copies are consecutive, so a batch size that is a multiple of batch_repeat keeps them together
            assert all(len(set(indices[i:i + batch_repeat])) == 1 for i in range(0, len(indices), batch_repeat))
            per_rank.append(indices)
        assert not set(per_rank[0]) & set(per_rank[1])
        counts = Counter(per_rank[0] + per_rank[1])
        assert set(counts) == set(range(10)) and set(counts.values()) == {batch_repeat}


def test_epochs_are_shuffled_differently():
    sampler = build_sampler(50, 0, 1)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(list(sampler)) == sorted(first)


@pytest.mark.parametrize('batch_repeat', [0, -1, 1.5])
def test_invalid_batch_repeat(batch_repeat):
    with pytest.raises(ValueError, match='batch_repeat'):
        build_sampler(4, 0, 1, batch_repeat)
