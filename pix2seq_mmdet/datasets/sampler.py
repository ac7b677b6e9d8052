"""Batch repetition: every sampled image appears ``batch_repeat`` times in a row (the official
``batch_duplicates``), each copy augmented independently by the dataset pipeline."""
from typing import Iterator, Optional

from mmdet.registry import DATA_SAMPLERS
from mmengine.dataset import DefaultSampler
from torch.utils.data import Dataset


@DATA_SAMPLERS.register_module()
class BatchRepeatSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (shuffling with a shared seed, one slice per rank) with each index repeated.

    Each rank yields its own slice of the shuffled indices, every index ``batch_repeat`` times in a row, so with a
    batch size that is a multiple of ``batch_repeat`` the copies of an image share a batch.  Over all ranks an epoch
    holds every image exactly ``batch_repeat`` times (plus the few indices ``DefaultSampler`` repeats to make the
    dataset divisible by the world size when ``round_up``).  ``train_dataloader.batch_size`` counts the copies:
    that is the batch the model sees and what ``auto_scale_lr`` compares with its ``base_batch_size``.

    Args:
        dataset (Dataset): The dataset.
        batch_repeat (int): Copies of each image (>= 1; paper: 2).
        shuffle (bool), seed (int, optional), round_up (bool): As in ``DefaultSampler``.
    """

    def __init__(self, dataset: Dataset, batch_repeat: int = 2, shuffle: bool = True, seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        if int(batch_repeat) != batch_repeat or batch_repeat < 1:
            raise ValueError(f'BatchRepeatSampler: batch_repeat must be an integer >= 1, got {batch_repeat}')
        super().__init__(dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self.batch_repeat = int(batch_repeat)

    def __iter__(self) -> Iterator[int]:
        for index in super().__iter__():
            for _ in range(self.batch_repeat):
                yield index

    def __len__(self) -> int:
        return self.num_samples * self.batch_repeat
