"""Evaluate a Pix2Seq checkpoint with the config's evaluator (COCO bbox mAP via mmdet's CocoMetric).

Examples:
    python tools/test.py configs/pix2seq_r18-tiny_1xb16_30e_synthetic-112.py work_dirs/synthetic-easy/epoch_30.pth
    tools/dist_test.sh configs/pix2seq_r50_8xb4_300e_coco.py pix2seq_r50.pth 8 --show-dir vis
"""
import argparse

from mmdet.evaluation import DumpDetResults
from mmengine.runner import Runner

from launch import add_common_args, finish_distributed, load_config, prepare_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a Pix2Seq detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show-dir', help='write images with predictions drawn into this dir (inside work_dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        visualization = cfg.default_hooks.visualization
        visualization.draw = True
        visualization.test_out_dir = args.show_dir
        visualization.wait_time = args.wait_time
    prepare_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    del runner  # before the process group goes: finish_distributed's docstring
    finish_distributed()


if __name__ == '__main__':
    main()
