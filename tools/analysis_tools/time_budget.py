#!/usr/bin/env python
"""Give detectors the same training time: measure their training steps side by side, derive their epochs.

Every config is built with mmengine's ``Runner`` (its own model, optimiser and training dataloader) in this one
process; their steps then run interleaved, ``--steps-per-round`` of each in turn for ``--rounds`` rounds after
``--warmup`` steps each, so a slow or busy moment of the machine falls on all of them alike.  The reference is the
first config: its ``train_cfg.max_epochs`` at its measured seconds per step is the budget, and every other config gets
the epochs that fill the same seconds at its own speed (``max_epochs / ratio``, the ratio being the median over
rounds of ``t_config / t_ref`` for an epoch, rounded to the nearest epoch; the configs must share the training set,
so an epoch is the same images: with another batch size it is another number of steps, and the ratio compares
epoch times).  Steps are timed without the configs' warm-up schedule, at ``WARMUP_LR_FACTOR`` times their learning
rate.

Usage::

    python tools/analysis_tools/time_budget.py configs/ablations/pix2seq_r18-tiny_1xb16_44e_synthetic.py \\
        configs/peers/detr_r18-tiny_1xb16_43e_synthetic.py configs/peers/fcos_r18-tiny_1xb16_18e_synthetic.py \\
        --out work_dirs/time_budget.json

The table gives seconds per step (median over rounds), the ratio of an epoch's time to the reference's and the
epochs in the budget.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.runner import Runner

WARMUP_LR_FACTOR = 1e-3


class StepTimer:
    """One config's model, optimiser and an endless stream of its training batches."""

    def __init__(self, config: str, work_dir: str) -> None:
        cfg = Config.fromfile(config)
        cfg.work_dir = work_dir
        self.name = Path(config).stem
        self.max_epochs = cfg.train_cfg.max_epochs
        self.batch_size = cfg.train_dataloader.batch_size
        runner = Runner.from_cfg(cfg)
        self.model = runner.model
        self.model.train()
        self.optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
        # timed at a warm-up-like lr (no scheduler runs here): a config that needs its warm-up must not diverge
        for group in self.optim_wrapper.param_groups:
            group['lr'] *= WARMUP_LR_FACTOR
        self.dataloader = runner.build_dataloader(cfg.train_dataloader)
        self.steps_per_epoch = len(self.dataloader)
        self.images_per_epoch = len(self.dataloader.dataset)
        self._batches = iter(self.dataloader)
        self.round_times = []

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:
            self._batches = iter(self.dataloader)
            return next(self._batches)

    def run(self, steps: int) -> float:
        """Seconds per step over ``steps`` training steps, data loading included (as the runner's loop)."""
        start = time.perf_counter()
        for _ in range(steps):
            self.model.train_step(self._next_batch(), optim_wrapper=self.optim_wrapper)
        return (time.perf_counter() - start) / steps


def measure(configs, warmup: int, steps_per_round: int, rounds: int):
    """Median seconds per step of every config, measured interleaved."""
    with tempfile.TemporaryDirectory() as work_root:
        timers = [StepTimer(config, str(Path(work_root) / str(index))) for index, config in enumerate(configs)]
        if len({timer.images_per_epoch for timer in timers}) != 1:
            raise ValueError('the configs must share the training set (images per epoch): got '
                             + ', '.join(f'{t.name}: {t.images_per_epoch} images' for t in timers))
        for timer in timers:
            timer.run(warmup)
        for _ in range(rounds):
            for timer in timers:
                timer.round_times.append(timer.run(steps_per_round))
    return timers


def budget_rows(timers):
    """Rows of the table: the first timer is the reference whose epochs set the budget.

    A config's ratio to the reference is the median over rounds of the per-round ratio of an epoch's time (seconds
    per step times steps per epoch), so a change of the machine's speed between rounds cancels out, and configs of
    another batch size get the epochs of the same time."""
    reference = timers[0]
    t_ref = statistics.median(reference.round_times)
    budget_s = reference.max_epochs * reference.steps_per_epoch * t_ref
    rows = []
    for timer in timers:
        steps_ratio = timer.steps_per_epoch / reference.steps_per_epoch
        ratio = statistics.median(t * steps_ratio / r for t, r in zip(timer.round_times, reference.round_times))
        rows.append(dict(config=timer.name, seconds_per_step=statistics.median(timer.round_times),
                         ratio_to_reference=ratio, rounds=[round(t, 4) for t in timer.round_times],
                         epochs_in_budget=max(1, round(reference.max_epochs / ratio)),
                         steps_per_epoch=timer.steps_per_epoch, batch_size=timer.batch_size))
    return rows, budget_s


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+', help='configs; the first is the reference')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps of each config first')
    parser.add_argument('--steps-per-round', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--out', type=Path, help='write the rows and the environment as JSON here')
    args = parser.parse_args(argv)
    if min(args.warmup, args.steps_per_round - 1, args.rounds - 1) < 0:
        parser.error('--warmup must be >= 0, --steps-per-round and --rounds >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    timers = measure(args.configs, args.warmup, args.steps_per_round, args.rounds)
    rows, budget_s = budget_rows(timers)
    print(f'budget: {timers[0].name} x {timers[0].max_epochs} epochs = {budget_s:.0f} s at the measured speed '
          f'({torch.get_num_threads()} threads)')
    print('| config | s / step | ratio | epochs in the budget |')
    print('|---|---|---|---|')
    for row in rows:
        print(f'| {row["config"]} | {row["seconds_per_step"]:.3f} | {row["ratio_to_reference"]:.2f} '
              f'| {row["epochs_in_budget"]} |')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(
            rows=rows, budget_s=budget_s, threads=torch.get_num_threads(), torch=torch.__version__,
            date=time.strftime('%Y-%m-%d'), command=' '.join(sys.argv)), indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
