"""Convert a released official Pix2Seq TF2 checkpoint (google-research/pix2seq) to an mmdet checkpoint.

    python tools/model_converters/pix2seq_tf2mmdet.py CKPT_PREFIX_OR_DIR OUT.pth [--config CONFIG] [--reinit-classes]

``CKPT_PREFIX_OR_DIR``: a checkpoint prefix (``.../ckpt-400000``), its directory (e.g. a download of
``gs://pix2seq/coco_det_finetune/resnet_640x640``), or a ``.npz`` of its variables keyed by checkpoint key (as
``make_official_fixture.py --dump-checkpoint`` writes; no TensorFlow needed then).  Reading a TF checkpoint needs
TensorFlow: ``pip install -e ".[convert]"``.

The target model is ``--config`` (default ``configs/official/pix2seq_r50-official_8xb4_300e_coco-640.py``), resized
like the ``config.json`` stored beside the checkpoint when there is one (ResNet depth/width/variant, Transformer sizes,
frame, bins, objects; the R50-C4 models map too).  Only ``model/...`` variables are read (optimizer slots,
``global_step`` and ``save_counter`` are skipped); every one must map onto a parameter of the model and every parameter
must come from one, with the same shape, or the conversion fails listing all the problems.

``--reinit-classes``: for fine-tuning on your own classes, re-initialise every class-token row (tokens 100..999) of
the tied token embedding (truncated normal, std 0.02) and of the output bias (0) and keep every other weight.

Writes ``dict(state_dict=..., meta=...)`` of plain tensors, which mmengine's ``load_from`` (and torch's
``weights_only`` loading) accepts.
"""
import argparse
import os
from pathlib import Path

import torch

from pix2seq_mmdet.converters import (build_model, checkpoint_meta, convert_official_variables,
                                      find_official_config, load_model_config, read_checkpoint, reinit_class_tokens)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / 'configs' / 'official' / 'pix2seq_r50-official_8xb4_300e_coco-640.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert an official Pix2Seq TF2 checkpoint to an mmdet checkpoint')
    parser.add_argument('checkpoint', help='TF checkpoint prefix or directory, or a .npz of its variables')
    parser.add_argument('out', help='output .pth')
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='the target model\'s config')
    parser.add_argument('--official-config', help='the official config.json (default: the one beside the checkpoint)')
    parser.add_argument('--ignore-official-config', action='store_true',
                        help='use --config as it is even if a config.json lies beside the checkpoint')
    parser.add_argument('--reinit-classes', action='store_true',
                        help='re-initialise the class-token rows (fine-tuning on other classes)')
    parser.add_argument('--seed', type=int, default=0, help='seed of --reinit-classes')
    return parser.parse_args(argv)


def convert(checkpoint: str, out: str, config: str = str(DEFAULT_CONFIG), official_config_path: str = None,
            ignore_official_config: bool = False, reinit_classes: bool = False, seed: int = 0) -> dict:
    """Convert and save; returns the written checkpoint dict."""
    official_config = None
    if official_config_path:
        import json
        with open(official_config_path) as file:
            official_config = json.load(file)
    elif not ignore_official_config:
        official_config = find_official_config(checkpoint)
    cfg = load_model_config(config, official_config)
    model = build_model(cfg)
    state = convert_official_variables(read_checkpoint(checkpoint), model.state_dict())
    meta = checkpoint_meta(cfg, checkpoint, official_config)
    if reinit_classes:
        rows = reinit_class_tokens(state, model.head.tokenizer, generator=torch.Generator().manual_seed(seed))
        meta['reinitialised_class_tokens'] = [rows[0], rows[-1]]
        meta.pop('dataset_meta', None)
    result = dict(state_dict=state, meta=meta)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.save(result, out)
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    result = convert(args.checkpoint, args.out, args.config, args.official_config, args.ignore_official_config,
                     args.reinit_classes, args.seed)
    count = sum(value.numel() for value in result['state_dict'].values())
    print(f'converted {len(result["state_dict"])} tensors ({count} values) -> {args.out}')


if __name__ == '__main__':
    main()
