"""Show what Pix2Seq trains on: augmented images in the model's padded frame with real boxes (green, class names) and
noise boxes (red), and the token sequence as text. The sequences come from the model the config builds (its data
preprocessor and its head's sequence augmentation), as in training.

Example:
    python tools/analysis_tools/browse_dataset.py configs/pix2seq_r18-tiny_1xb16_34e_synthetic.py --out-dir vis \
        --num 4 --scale 4
writes vis/{index}_{image}.png and vis/{index}_{image}.txt.
"""
import argparse
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmdet.registry import DATASETS, MODELS, VISUALIZERS
from mmdet.utils import register_all_modules
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
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
        bins = tokenizer.bins(target_tokens[5 * slot:5 * slot + 4]).tolist()
        label = int(tokenizer.labels(class_token))
        is_noise = label < 0
        name = 'FAKE' if is_noise else classes[label]
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
    model = MODELS.build(cfg.model)
    tokenizer = model.head.tokenizer
    classes = dataset.metainfo['classes']
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='browse_dataset'))
    os.makedirs(args.out_dir, exist_ok=True)
    for index in range(min(args.num, len(dataset))):
        item = dataset[index]
        sample = model.data_preprocessor(pseudo_collate([item]), training=True)['data_samples'][0]
        _, (target_tokens, ), (token_weights, ) = model.head.sequence_augmentation([sample])
        pad_h, pad_w = sample.metainfo['pad_shape'][:2]
        frame = np.zeros((pad_h, pad_w, 3), dtype=np.uint8)
        img_h, img_w = item['inputs'].shape[1:]
        frame[:img_h, :img_w] = mmcv.bgr2rgb(item['inputs'].permute(1, 2, 0).numpy())
        image = mmcv.imrescale(frame, args.scale)
        boxes, class_tokens, valid = tokenizer.decode(target_tokens)
        boxes = tokenizer.denormalize_boxes(boxes[valid], (pad_h, pad_w)) * args.scale
        labels = tokenizer.labels(class_tokens[valid])
        is_noise = labels < 0
        visualizer.set_image(image)
        if is_noise.any():
            visualizer.draw_bboxes(boxes[is_noise], edge_colors=NOISE_COLOR, line_widths=1, alpha=0.6)
        if (~is_noise).any():
            visualizer.draw_bboxes(boxes[~is_noise], edge_colors=REAL_COLOR, line_widths=2)
            names = [classes[int(label)] for label in labels[~is_noise]]
            visualizer.draw_texts(names, boxes[~is_noise][:, :2], colors=REAL_COLOR, font_sizes=8)
        stem = osp.join(args.out_dir, f'{index:03d}_{osp.splitext(osp.basename(sample.img_path))[0]}')
        mmcv.imwrite(mmcv.rgb2bgr(visualizer.get_image()), stem + '.png')
        with open(stem + '.txt', 'w') as file:
            file.write(describe_sequence(target_tokens, token_weights, tokenizer, classes) + '\n')
        print(f'{stem}.png: {int((~is_noise).sum())} real, {int(is_noise.sum())} noise boxes')


if __name__ == '__main__':
    main()
