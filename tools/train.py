"""Train a Pix2Seq model with mmengine's Runner (mmdet's tools/train.py conventions and flags).

Examples:
    python tools/train.py configs/pix2seq_r18-tiny_1xb16_34e_synthetic.py --work-dir work_dirs/synthetic
    tools/dist_train.sh configs/pix2seq_r50_8xb4_300e_coco.py 8 --amp
"""
import argparse

from mmengine.config import Config
from mmengine.runner import Runner

from launch import add_common_args, finish_distributed, load_config, prepare_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a Pix2Seq detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the lr with the total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest one in the work dir')
    add_common_args(parser)
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main() -> None:
    args = parse_args()
    cfg = build_config(args)
    prepare_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    del runner  # before the process group goes: finish_distributed's docstring
    finish_distributed()


if __name__ == '__main__':
    main()
