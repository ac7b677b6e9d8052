#!/usr/bin/env python
"""Plot the training loss and validation mAP of an mmengine run.

Reads ``vis_data/scalars.json`` (one JSON dict per line, as written by mmengine's ``LocalVisBackend``) and writes a
PNG with two panels: the training loss against the iteration (raw and a moving average) and the validation
``coco/bbox_mAP`` / ``coco/bbox_mAP_50`` against the iteration.

Validation lines carry ``step`` = epoch when training by epochs, so each validation result is placed at the last
training ``iter`` logged before it (or at its ``step`` if no training line precedes it).

Usage::

    python tools/analysis_tools/plot_curve.py work_dirs/my_run            # newest */vis_data/scalars.json
    python tools/analysis_tools/plot_curve.py path/to/vis_data/scalars.json --out curve.png --title "my run"
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

MAP_KEYS = ('coco/bbox_mAP', 'coco/bbox_mAP_50')


def find_scalars_file(path):
    """Return ``path`` if it is a file, else the newest ``*/vis_data/scalars.json`` (or ``vis_data/...``) in it."""
    path = Path(path)
    if path.is_file():
        return path
    candidates = list(path.glob('*/vis_data/scalars.json')) + list(path.glob('vis_data/scalars.json'))
    if not candidates:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {path}')
    return max(candidates, key=lambda candidate: candidate.stat().st_mtime)


def default_output(scalars_file, source):
    """Return ``<work_dir>/curve.png``: the given directory, or the work dir above ``<timestamp>/vis_data/``."""
    source = Path(source)
    if source.is_dir():
        return source / 'curve.png'
    if scalars_file.parent.name == 'vis_data':
        return scalars_file.parents[2] / 'curve.png'
    return scalars_file.with_name('curve.png')


def load_curves(scalars_file):
    """Parse a scalars.json file.

    Returns:
        tuple: ``(train_iters, losses, val_iters, val_maps)`` where ``val_maps`` maps each of ``MAP_KEYS`` present
        in the file to its values (aligned with ``val_iters``).
    """
    train_iters, losses = [], []
    val_iters, val_maps = [], {key: [] for key in MAP_KEYS}
    last_train_iter = None
    for line in Path(scalars_file).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if 'loss' in record and 'iter' in record:
            last_train_iter = record['iter']
            train_iters.append(record['iter'])
            losses.append(record['loss'])
        elif any(key in record for key in MAP_KEYS):
            val_iters.append(last_train_iter if last_train_iter is not None else record.get('step', len(val_iters)))
            for key in MAP_KEYS:
                val_maps[key].append(record.get(key, np.nan))
    val_maps = {key: values for key, values in val_maps.items() if not np.all(np.isnan(values))}
    return train_iters, losses, val_iters, val_maps


def moving_average(values, window):
    """Return the centred moving average of ``values`` over ``window`` points (windows shrink at the ends)."""
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    centres = np.arange(len(values))
    starts = np.maximum(centres - window // 2, 0)
    ends = np.minimum(centres - window // 2 + window, len(values))
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_curves(train_iters, losses, val_iters, val_maps, out_file, title=None, window=20):
    """Draw the loss and mAP panels and save them as a PNG at ``out_file``."""
    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    if losses:
        loss_ax.plot(train_iters, losses, color='tab:blue', alpha=0.35, linewidth=0.8, label='loss')
        loss_ax.plot(train_iters, moving_average(losses, window), color='tab:blue', linewidth=1.8,
                     label=f'moving average ({window})')
        loss_ax.legend()
    else:
        loss_ax.text(0.5, 0.5, 'no training loss logged', ha='center', va='center', transform=loss_ax.transAxes)
    loss_ax.set(xlabel='iteration', ylabel='loss', title='training loss')
    loss_ax.grid(alpha=0.3)

    if val_maps:
        for key, values in val_maps.items():
            map_ax.plot(val_iters, values, marker='o', markersize=3, label=key.split('/')[-1])
        map_ax.legend()
    else:
        map_ax.text(0.5, 0.5, 'no validation results logged', ha='center', va='center', transform=map_ax.transAxes)
    map_ax.set(xlabel='iteration', ylabel='mAP', title='validation')
    map_ax.grid(alpha=0.3)

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('source', help='a scalars.json file or a work_dir holding */vis_data/scalars.json')
    parser.add_argument('--out', type=Path, help='output PNG (default: <work_dir>/curve.png)')
    parser.add_argument('--title', help='figure title (default: the scalars.json path)')
    parser.add_argument('--window', type=int, default=20, help='moving-average window in logged points')
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error('--window must be at least 1')
    return args


def main(argv=None):
    """Plot the curves of the run given on the command line."""
    args = parse_args(argv)
    scalars_file = find_scalars_file(args.source)
    out_file = args.out or default_output(scalars_file, args.source)
    train_iters, losses, val_iters, val_maps = load_curves(scalars_file)
    plot_curves(train_iters, losses, val_iters, val_maps, out_file, title=args.title or str(scalars_file),
                window=args.window)
    summary = f'{len(losses)} loss points, {len(val_iters)} validations'
    if val_maps:
        summary += ', last ' + ', '.join(f'{key}={values[-1]:.4f}' for key, values in val_maps.items())
    print(f'Saved {out_file} ({summary})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
