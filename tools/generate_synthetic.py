#!/usr/bin/env python
"""Generate a synthetic COCO-format detection dataset of coloured shapes.

The presets, the drawing and the layout written under ``--out-dir`` (default ``data/synthetic`` in the repository
root) are :mod:`pix2seq_mmdet.datasets.synthetic`'s.  An existing dataset generated with the same arguments is left
alone unless ``--force`` is given.
"""
import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from pix2seq_mmdet.datasets.synthetic import CLASSES, PRESETS, SPLITS, generate_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]


def summarise(split, coco):
    """Print image, empty-image and per-class instance counts of one split."""
    per_class = Counter(ann['category_id'] for ann in coco['annotations'])
    non_empty = len({ann['image_id'] for ann in coco['annotations']})
    counts = ', '.join(f'{name}={per_class[i + 1]}' for i, name in enumerate(CLASSES))
    print(f'  {split}: {len(coco["images"])} images ({len(coco["images"]) - non_empty} empty), '
          f'{len(coco["annotations"])} objects: {counts}')


def parse_args(argv=None):
    """Parse command-line arguments; preset-specific defaults fill unset image counts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='easy', help='difficulty preset')
    parser.add_argument('--out-dir', type=Path, default=REPO_ROOT / 'data' / 'synthetic', help='output directory')
    parser.add_argument('--num-train', type=int, help='training images (default: preset-specific, 2000)')
    parser.add_argument('--num-val', type=int, help='validation images (default: preset-specific, 200)')
    parser.add_argument('--img-size', type=int,
                        help='side of the square images in pixels (easy, hard; default 128); the varied preset '
                        'draws every image\'s size itself (short side 160-320 px, aspect ratio 1-2) and rejects it')
    parser.add_argument('--seed', type=int, default=0, help='random seed (train and val streams derive from it)')
    parser.add_argument('--force', action='store_true', help='regenerate even if an identical dataset exists')
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    args.num_train = preset.num_train if args.num_train is None else args.num_train
    args.num_val = preset.num_val if args.num_val is None else args.num_val
    if args.num_train < 0 or args.num_val < 0:
        parser.error('--num-train and --num-val must be non-negative')
    if preset.short_side_range is not None:
        if args.img_size is not None:
            parser.error(f'--img-size does not apply to --preset {args.preset}: it draws every image\'s size')
    elif args.img_size is None:
        args.img_size = 128
    elif args.img_size < 16:
        parser.error('--img-size must be at least 16')
    return args


def main(argv=None):
    """Generate (or reuse) the dataset described by the command line."""
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    out_dir = args.out_dir.resolve()
    start = time.perf_counter()
    cocos = generate_dataset(out_dir, args.preset, args.num_train, args.num_val, args.img_size, args.seed,
                             force=args.force)
    if cocos is None:
        print(f'Synthetic dataset in {out_dir} is up to date ({args.preset}, seed {args.seed}); '
              'nothing to do (use --force to regenerate).')
        return 0
    if args.img_size is None:
        low, high = preset.short_side_range
        size_text = f'short side {low}-{high}px, aspect {preset.aspect_range[0]:g}-{preset.aspect_range[1]:g}'
    else:
        size_text = f'{args.img_size}px'
    print(f'Wrote synthetic dataset ({args.preset}, seed {args.seed}, {size_text}) to {out_dir} '
          f'in {time.perf_counter() - start:.1f}s')
    print(f'Classes: {CLASSES}')
    for split in SPLITS:
        summarise(split, cocos[split])
    return 0


if __name__ == '__main__':
    sys.exit(main())
