"""Show what Pix2Seq trains on: augmented images with real boxes (green, class names) and noise boxes (red), and
the token sequence as text.

Example:
    python tools/analysis_tools/browse_dataset.py configs/pix2seq_r18-tiny_1xb16-34e_synthetic.py --out-dir vis --num 4 --scale 4
writes vis/{index}_{image}.png and vis/{index}_{image}.txt.
"""
import argparse
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmdet.registry import DATASETS, VISUALIZERS
from mmdet.utils import register_all_modules
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

REAL_COLOR = (0, 200, 0)
NOISE_COLOR = (230, 40, 40)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw augmented training samples and their token sequences')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--out-dir', default='work_dirs/browse_dataset', help='where to write PNG and TXT files')
    parser.add_argument('--num', type=int, default=4, help='number of samples to draw')
    parser.add_argument('--seed', type=int, default=0, help='seed of the augmentation')
    parser.add_argument('--scale', type=float, default=1.0, help='enlarge the drawings (e.g. 4 for 128-px images)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser.parse_args()


def describe_sequence(target_tokens: torch.Tensor, token_weights: torch.Tensor, tokenizer, classes) -> str:
    """One line per object slot: kind, box tokens (bins), class, weights; then EOS."""
    boxes, class_tokens, valid = tokenizer.decode(target_tokens)
    lines = []
    for slot, (box, class_token) in enumerate(zip(boxes, class_tokens)):
        if not valid[slot]:
            break
        bins = (target_tokens[5 * slot:5 * slot + 4] - tokenizer.coord_offset).tolist()
        is_noise = int(class_token) == tokenizer.FAKE
        name = 'FAKE' if is_noise else classes[int(class_token) - tokenizer.CLASS_OFFSET]
        weights = token_weights[5 * slot:5 * slot + 5].tolist()
        lines.append(f'{slot:3d} {"noise" if is_noise else "real ":5s} bins(ymin,xmin,ymax,xmax)={bins} '
                     f'class={name} weights={weights}')
    lines.append(f'EOS at token {int((target_tokens == tokenizer.EOS).nonzero()[0])}')
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules()
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    transform = next(t for t in dataset.pipeline.transforms if type(t).__name__ == 'Pix2SeqSequenceAug')
    tokenizer = transform.tokenizer
    classes = dataset.metainfo['classes']
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='browse_dataset'))
    os.makedirs(args.out_dir, exist_ok=True)
    for index in range(min(args.num, len(dataset))):
        item = dataset[index]
        sample = item['data_samples']
        image = mmcv.imrescale(mmcv.bgr2rgb(item['inputs'].permute(1, 2, 0).numpy()), args.scale)
        pad_h, pad_w = sample.metainfo['pad_shape'][:2]
        boxes, class_tokens, valid = tokenizer.decode(sample.target_tokens)
        boxes = boxes[valid][:, [1, 0, 3, 2]] * torch.tensor([pad_w, pad_h, pad_w, pad_h]) * args.scale
        is_noise = class_tokens[valid] == tokenizer.FAKE
        visualizer.set_image(image)
        if is_noise.any():
            visualizer.draw_bboxes(boxes[is_noise], edge_colors=NOISE_COLOR, line_widths=1, alpha=0.6)
        if (~is_noise).any():
            visualizer.draw_bboxes(boxes[~is_noise], edge_colors=REAL_COLOR, line_widths=2)
            labels = [classes[int(t) - tokenizer.CLASS_OFFSET] for t in class_tokens[valid][~is_noise]]
            visualizer.draw_texts(labels, boxes[~is_noise][:, :2], colors=REAL_COLOR, font_sizes=8)
        stem = osp.join(args.out_dir, f'{index:03d}_{osp.splitext(osp.basename(sample.img_path))[0]}')
        mmcv.imwrite(mmcv.rgb2bgr(visualizer.get_image()), stem + '.png')
        with open(stem + '.txt', 'w') as file:
            file.write(describe_sequence(sample.target_tokens, sample.token_weights, tokenizer, classes) + '\n')
        print(f'{stem}.png: {int((~is_noise).sum())} real, {int(is_noise.sum())} noise boxes')


if __name__ == '__main__':
    main()
