"""Detect objects in an image with an exported Pix2Seq model in ONNX Runtime and draw them (OpenCV): boxes, the
instance masks of a Pix2Seq v2 instance segmentation export (blended in the class's colour) and the keypoints of a
keypoints export (small circles).

Needs numpy, onnxruntime and opencv only: ``pix2seq_mmdet.deploy.runtime`` imports neither torch nor mmdet.

Example:
    python tools/deployment/onnx_demo.py data/synthetic/val/000000.png work_dirs/onnx --out work_dirs/onnx_demo.jpg
"""
import argparse
import sys

import cv2
import numpy as np

from pix2seq_mmdet.deploy.processing import load_image
from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
from pix2seq_mmdet.deploy.sampling import add_decoding_arguments


MASK_ALPHA = 0.5


def draw(image: np.ndarray, detections, class_names, score_thr: float) -> np.ndarray:
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for index, (box, score, label) in enumerate(zip(detections.bboxes, detections.scores, detections.labels)):
        if score < score_thr:
            continue
        color = tuple(int(c) for c in np.random.default_rng(int(label)).integers(64, 256, 3))
        if detections.masks is not None:
            mask = detections.masks[index]
            canvas[mask] = ((1 - MASK_ALPHA) * canvas[mask] + MASK_ALPHA * np.asarray(color)).astype(np.uint8)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        if detections.keypoints is not None:
            for x, y in detections.keypoints[index]:
                cv2.circle(canvas, (int(round(x)), int(round(y))), thickness + 1, color, -1, cv2.LINE_AA)
        text = f'{class_names[label]} {score:.2f}'
        cv2.putText(canvas, text, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thickness, color,
                    thickness, cv2.LINE_AA)
    return canvas


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pix2Seq ONNX Runtime demo')
    parser.add_argument('image', help='image file')
    parser.add_argument('model_dir', help='folder written by tools/deployment/pytorch2onnx.py')
    parser.add_argument('--out', default='onnx_demo.jpg', help='where to write the image with the detections')
    parser.add_argument('--decoder', choices=('fp32', 'int8'), default='fp32')
    add_decoding_arguments(parser)
    parser.add_argument('--no-masks', action='store_true',
                        help='boxes only, also with an instance segmentation export')
    parser.add_argument('--mask-strategy', choices=('greedy', 'top_k', 'nucleus'),
                        help='decoding strategy of the polygons (default: the exported '
                             'test_cfg.instance_segmentation\'s)')
    parser.add_argument('--no-keypoints', action='store_true', help='no keypoints, also with a keypoints export')
    parser.add_argument('--score-thr', type=float, default=0.3, help='score threshold of drawn boxes')
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime intra-op threads (0: its default)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    detector = Pix2SeqRuntime(args.model_dir, decoder=args.decoder, num_threads=args.threads)
    image = load_image(args.image)
    mask_options = dict(strategy=args.mask_strategy) if args.mask_strategy else None
    detections = detector(image, seed=args.seed, strategy=args.strategy, parallel=args.parallel or None,
                          parallel_verify=args.parallel_verify, masks=False if args.no_masks else None,
                          mask_options=mask_options, keypoints=False if args.no_keypoints else None)[0]
    if not cv2.imwrite(args.out, draw(image, detections, detector.class_names, args.score_thr)):
        sys.exit(f'onnx_demo.py: could not write {args.out}')
    kept = int((detections.scores >= args.score_thr).sum())
    outputs = [name for name in ('masks', 'keypoints') if getattr(detections, name) is not None]
    drawn = f' with their {" and ".join(outputs)}' if outputs else ''
    print(f'{len(detections)} detections, {kept} with score >= {args.score_thr}, drawn{drawn} into {args.out}')
    for box, score, label in zip(detections.bboxes, detections.scores, detections.labels):
        if score >= args.score_thr:
            print(f'  {detector.class_names[label]:>12s} {score:.3f} ' + ' '.join(f'{v:.1f}' for v in box))


if __name__ == '__main__':
    main()
