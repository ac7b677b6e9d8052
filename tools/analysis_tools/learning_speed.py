#!/usr/bin/env python
"""Train configs for several seeds, collect their final COCO metrics and training time into one table.

Each (config, seed) trains with ``tools/train.py CONFIG --work-dir ROOT/CONFIG/seedS --cfg-options
randomness.seed=S``; the run's last validation (mmengine validates after the last epoch; ``CocoMetric`` on the val
set) gives ``coco/bbox_mAP`` and ``coco/bbox_mAP_50`` (and the instance tasks' ``coco/segm_*`` and
``coco/keypoints_*``).  A finished run writes ``result.json`` into its work dir and is not trained again, so an
interrupted table resumes where it stopped.  ``--jobs 2`` trains two runs at a time (set ``OMP_NUM_THREADS=1``
then: on 2 cores two one-thread runs train more steps per hour than one two-thread run; the configs' epochs, not
the wall clock, fix each run's length, so the result does not depend on ``--jobs``).

Usage::

    OMP_NUM_THREADS=1 python tools/analysis_tools/learning_speed.py \\
        configs/peers/detr_r18-tiny_1xb16_43e_synthetic.py configs/peers/fcos_r18-tiny_1xb16_18e_synthetic.py \\
        --seeds 0 1 --jobs 2 --work-root work_dirs/learning_speed
    python tools/analysis_tools/learning_speed.py CONFIGS... --seeds 0 1 --table-only   # the table of what exists

``--cfg-options`` apply to every run (e.g. a learning rate of a search) and ``--tag`` names them: the work dirs are
``ROOT/CONFIG_TAG/seedS``, and a finished run trained with other options is an error, not a result.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50')
# recorded too when the run's evaluator gives them (the instance tasks)
TASK_METRICS = ('coco/segm_mAP', 'coco/segm_mAP_50', 'coco/keypoints_mAP', 'coco/keypoints_mAP_50',
                'coco/keypoints_mAP_75')


def run_name(config: Path, tag: str) -> str:
    return f'{config.stem}_{tag}' if tag else config.stem


def last_validation(work_dir: Path) -> dict:
    """The last line of the newest ``vis_data/scalars.json`` that carries the COCO metrics, and the last iteration."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'), key=lambda path: path.stat().st_mtime)
    if not scalars:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}: the run did not log')
    validation, last_iter = None, 0
    for line in scalars[-1].read_text().splitlines():
        record = json.loads(line)
        if METRICS[0] in record:
            validation = record
        last_iter = max(last_iter, int(record.get('iter', 0)))
    if validation is None:
        raise ValueError(f'{scalars[-1]} holds no {METRICS[0]}: the run never validated')
    return dict(validation, iterations=last_iter)


def train_one(config: Path, seed: int, work_root: Path, cfg_options, tag: str, python: str) -> dict:
    """Train one run unless its ``result.json`` exists; return the result."""
    work_dir = work_root / run_name(config, tag) / f'seed{seed}'
    result_file = work_dir / 'result.json'
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result['cfg_options'] != list(cfg_options):
            raise ValueError(f'{result_file} was trained with --cfg-options {result["cfg_options"]}, not '
                             f'{list(cfg_options)}: give these runs their own --tag')
        return result
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [python, str(REPO_ROOT / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir),
               '--cfg-options', f'randomness.seed={seed}', *cfg_options]
    start = time.perf_counter()
    with open(work_dir / 'train_stdout.log', 'w') as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT).returncode
    seconds = time.perf_counter() - start
    if returncode != 0:
        raise RuntimeError(f'training {config} (seed {seed}) failed with exit code {returncode}; '
                           f'see {work_dir / "train_stdout.log"}')
    validation = last_validation(work_dir)
    shown = config.relative_to(REPO_ROOT) if config.is_relative_to(REPO_ROOT) else config
    result = dict(config=str(shown), tag=tag, cfg_options=list(cfg_options), seed=seed,
                  train_seconds=round(seconds, 1), iterations=validation['iterations'],
                  threads=os.environ.get('OMP_NUM_THREADS', ''), date=time.strftime('%Y-%m-%d'),
                  **{key: validation[key] for key in METRICS + TASK_METRICS if key in validation})
    result_file.write_text(json.dumps(result, indent=1))
    return result


def table(results) -> str:
    """One row per run name: mean and each seed's mAP and AP50, iterations and training seconds."""
    rows = {}
    for result in results:
        name = run_name(Path(result['config']), result.get('tag', ''))
        rows.setdefault(name, []).append(result)
    lines = ['| run | mAP (mean; per seed) | AP50 (mean; per seed) | iterations | training s per run | seeds |',
             '|---|---|---|---|---|---|']
    for name, runs in rows.items():
        runs = sorted(runs, key=lambda run: run['seed'])
        cells = []
        for key in METRICS:
            values = [run[key] for run in runs]
            cells.append(f'**{statistics.mean(values):.3f}**; ' + ' / '.join(f'{value:.3f}' for value in values))
        seconds = ' / '.join(f'{run["train_seconds"]:.0f}' for run in runs)
        seeds = ', '.join(str(run['seed']) for run in runs)
        lines.append(f'| {name} | {cells[0]} | {cells[1]} | {runs[0]["iterations"]} | {seconds} | {seeds} |')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+', type=Path)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at the same time')
    parser.add_argument('--work-root', type=Path, default=REPO_ROOT / 'work_dirs' / 'learning_speed')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='key=value overrides for every run')
    parser.add_argument('--tag', default='', help='suffix of the run names (e.g. lr4e-4 for one lr of a search)')
    parser.add_argument('--table-only', action='store_true', help='print the table of finished runs, train none')
    parser.add_argument('--out', type=Path, help='write all results as JSON here')
    args = parser.parse_args(argv)
    missing = [str(config) for config in args.configs if not config.is_file()]
    if missing:
        parser.error(f'config not found: {", ".join(missing)}')
    if args.jobs < 1:
        parser.error('--jobs must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    plan = [(config.resolve(), seed) for config in args.configs for seed in args.seeds]
    if args.table_only:
        results = []
        for config, seed in plan:
            result_file = args.work_root / run_name(config, args.tag) / f'seed{seed}' / 'result.json'
            if result_file.is_file():
                results.append(json.loads(result_file.read_text()))
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(train_one, config, seed, args.work_root, args.cfg_options, args.tag,
                                   sys.executable)
                       for config, seed in plan]
            results = [future.result() for future in futures]
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
