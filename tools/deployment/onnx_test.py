"""Evaluate an exported Pix2Seq model (ONNX Runtime) on the config's test set with its evaluator (COCO bbox mAP via
mmdet's CocoMetric, segm with a Pix2Seq v2 instance segmentation export, keypoint OKS AP with a keypoints export and
the config's CocoKeypointMetric), as tools/test.py evaluates the PyTorch checkpoint.

Example:
    python tools/deployment/onnx_test.py configs/pix2seq_r18-tiny_1xb16_30e_synthetic-112.py work_dirs/onnx \
        --decoder int8
"""
import argparse
import json
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import Config, DictAction  # noqa: E402

from pix2seq_mmdet.deploy.sampling import add_decoding_arguments  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a Pix2Seq ONNX export with the config\'s evaluator')
    parser.add_argument('config', help='the config the model was exported from (its test set and evaluator)')
    parser.add_argument('model_dir', help='folder written by tools/deployment/pytorch2onnx.py')
    parser.add_argument('--decoder', choices=('fp32', 'int8'), default='fp32')
    parser.add_argument('--encoder', choices=('fp32', 'int8'), default='fp32')
    add_decoding_arguments(parser)
    parser.add_argument('--no-masks', action='store_true',
                        help='detection only, also with an instance segmentation export')
    parser.add_argument('--mask-strategy', choices=('greedy', 'top_k', 'nucleus'),
                        help='decoding strategy of the polygons (default: the exported '
                             'test_cfg.instance_segmentation\'s)')
    parser.add_argument('--num-samples', type=int,
                        help='polygons sampled per box (default: the exported test_cfg.instance_segmentation\'s)')
    parser.add_argument('--no-keypoints', action='store_true',
                        help='no keypoints, also with a keypoints export')
    parser.add_argument('--keypoint-strategy', choices=('greedy', 'top_k', 'nucleus'),
                        help='decoding strategy of the keypoints (default: the exported test_cfg.keypoints\'s)')
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime intra-op threads (0: its default)')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. test_dataloader.dataset.data_root=...')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from pix2seq_mmdet.deploy.evaluation import evaluate_onnx
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    masks = False if args.no_masks else None
    mask_options = {key: value for key, value in (('strategy', args.mask_strategy), ('num_samples', args.num_samples))
                    if value is not None}
    metrics = evaluate_onnx(cfg, args.model_dir, decoder=args.decoder, encoder=args.encoder,
                            num_threads=args.threads, strategy=args.strategy, seed=args.seed,
                            parallel=args.parallel or None, parallel_verify=args.parallel_verify, masks=masks,
                            mask_options=mask_options or None, keypoints=False if args.no_keypoints else None,
                            keypoint_options=dict(strategy=args.keypoint_strategy) if args.keypoint_strategy else None)
    print(json.dumps(metrics, indent=2))
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(dict(config=args.config, model_dir=args.model_dir, decoder=args.decoder, encoder=args.encoder,
                           metrics=metrics), file, indent=2)


if __name__ == '__main__':
    main()
