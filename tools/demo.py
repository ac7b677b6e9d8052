"""Detect objects in an image or a folder of images and draw the predictions with mmdet's DetLocalVisualizer
(through mmdet's DetInferencer).

Example:
    python tools/demo.py data/synthetic/val configs/pix2seq_r18-tiny_1xb16_30e_synthetic-112.py \
        work_dirs/synthetic-easy/epoch_30.pth --out-dir work_dirs/demo --score-thr 0.3
"""
import argparse
import os.path as osp

from mmdet.apis import DetInferencer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pix2Seq demo')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', default='work_dirs/demo', help='output folder (vis/ and preds/)')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3, help='score threshold of drawn boxes')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--no-save-pred', action='store_true', help='do not write the predictions as JSON')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not osp.exists(args.inputs):
        raise FileNotFoundError(f'demo.py: input {args.inputs} does not exist')
    inferencer = DetInferencer(model=args.config, weights=args.checkpoint, device=args.device, show_progress=True)
    inferencer(args.inputs, out_dir=args.out_dir, pred_score_thr=args.score_thr, batch_size=args.batch_size,
               no_save_pred=args.no_save_pred)
    print(f'results written to {args.out_dir}/vis' + ('' if args.no_save_pred else f' and {args.out_dir}/preds'))


if __name__ == '__main__':
    main()
