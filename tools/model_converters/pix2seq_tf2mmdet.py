"""Convert a released official Pix2Seq TF2 checkpoint (google-research/pix2seq) to an mmdet checkpoint.

    python tools/model_converters/pix2seq_tf2mmdet.py CKPT_PREFIX_OR_DIR OUT.pth [--config CONFIG] [--reinit-classes]

``CKPT_PREFIX_OR_DIR``: a checkpoint prefix (``.../ckpt-400000``), its directory (e.g. a download of
``gs://pix2seq/coco_det_finetune/vit_b_640x640``), or a ``.npz`` of its variables keyed by checkpoint key (as
``make_official_fixture.py --dump-checkpoint`` writes; no TensorFlow needed then).  Reading a TF checkpoint needs
TensorFlow: ``pip install -e ".[convert]"``.

The official ``config.json`` of the checkpoint's folder (or ``--official-config``) decides the model: it names the
released checkpoint (R50, R50-C4, ViT-B, ViT-L; Objects365 pretraining, COCO fine-tune or multi-task; the frame),
whose config in ``configs/official`` is the default ``--config``, and sizes that config like it (encoder, decoder,
frame, bins, objects, vocabulary, instance tasks).  Without a config.json the conversion stops: a checkpoint of
another frame, bin count or ResNet variant (dc5) has the same variables as the standard one, so guessing could give
a model that loads and is wrong.  ``--ignore-official-config`` converts into ``--config`` as it is.

Only ``model/...`` variables are read (optimizer slots, ``global_step`` and ``save_counter`` are skipped); every one
must map onto a parameter of the model and every parameter must come from one, with the same shape, or the
conversion fails listing all the problems.

``--reinit-classes``: for fine-tuning on your own classes, re-initialise every class-token row (tokens 100..999) of
the tied token embedding (truncated normal, std 0.02) and of the output bias (0) and keep every other weight.

Writes ``dict(state_dict=..., meta=...)`` of plain tensors, which mmengine's ``load_from`` (and torch's
``weights_only`` loading) accepts.
"""
import argparse
import json
import os
from pathlib import Path

import torch

from pix2seq_mmdet.converters import (ConversionError, build_model, checkpoint_meta, convert_official_variables,
                                      find_official_config, load_model_config, read_checkpoint, reinit_class_tokens,
                                      target_config_name)

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_CONFIGS = REPO_ROOT / 'configs' / 'official'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert an official Pix2Seq TF2 checkpoint to an mmdet checkpoint')
    parser.add_argument('checkpoint', help='TF checkpoint prefix or directory, or a .npz of its variables')
    parser.add_argument('out', help='output .pth')
    parser.add_argument('--config', help='the target model\'s config (default: the configs/official config of the '
                        'released checkpoint the official config.json describes)')
    parser.add_argument('--official-config', help='the official config.json (default: the one beside the checkpoint)')
    parser.add_argument('--ignore-official-config', action='store_true',
                        help='convert into --config as it is, without (or ignoring) the official config.json')
    parser.add_argument('--reinit-classes', action='store_true',
                        help='re-initialise the class-token rows (fine-tuning on other classes)')
    parser.add_argument('--seed', type=int, default=0, help='seed of --reinit-classes')
    return parser.parse_args(argv)


def target_config(checkpoint: str, config: str = None, official_config_path: str = None,
                  ignore_official_config: bool = False):
    """The official config (a dict, or None with ``ignore_official_config``) and the path of the target config."""
    if ignore_official_config:
        if config is None:
            raise ConversionError('--ignore-official-config converts into --config as it is: give --config')
        return None, config
    if official_config_path:
        with open(official_config_path) as file:
            official_config = json.load(file)
    else:
        official_config = find_official_config(checkpoint)
    if official_config is None:
        raise ConversionError(
            f'no official config.json beside {checkpoint}: the official config decides the architecture, frame, '
            'bins and vocabulary (a dc5 or another-bins checkpoint has the same variables as the standard one). '
            'Download the folder\'s config.json with the checkpoint, pass --official-config, or convert into '
            '--config as it is with --ignore-official-config')
    if config is None:
        release, name = target_config_name(official_config)
        config = str(OFFICIAL_CONFIGS / name)
        if release is None:
            print(f'the official config is not one of a released checkpoint; converting into {config} resized '
                  'like it')
        else:
            print(f'official config: {release.architecture}, {release.kind}, {release.frame} px '
                  f'(gs://pix2seq/{release.folder}) -> {config}')
    return official_config, config


def convert(checkpoint: str, out: str, config: str = None, official_config_path: str = None,
            ignore_official_config: bool = False, reinit_classes: bool = False, seed: int = 0) -> dict:
    """Convert and save; returns the written checkpoint dict."""
    official_config, config = target_config(checkpoint, config, official_config_path, ignore_official_config)
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
