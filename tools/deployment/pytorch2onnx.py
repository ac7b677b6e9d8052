"""Export a Pix2Seq checkpoint to ONNX: encoder.onnx, decoder_step.onnx (and decoder_step_int8.onnx) and pix2seq.json;
for a model trained with model.head.block_decoding also decoder_block.onnx, the block step of parallel box decoding.

The graphs are checked with onnx.checker and run with ONNX Runtime against PyTorch on a random image (logits within
1e-4) before the command reports success.  What the files contain: pix2seq_mmdet/deploy/export.py, docs/deployment.md.

Example:
    python tools/deployment/pytorch2onnx.py configs/pix2seq_r18-tiny_1xb16_30e_synthetic-112.py \
        work_dirs/synthetic-easy/epoch_30.pth --out-dir work_dirs/onnx --int8
"""
import argparse
import json
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a Pix2Seq detector to ONNX (encoder + cached decoder step)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file ("none": the config\'s random initialisation)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='batch size of the graphs (without --dynamic-batch the only one they accept)')
    parser.add_argument('--dynamic-batch', action='store_true', help='make the batch axis dynamic')
    parser.add_argument('--int8', action='store_true',
                        help='also write decoder_step_int8.onnx (dynamic quantisation, int8 weights)')
    parser.add_argument('--int8-encoder', action='store_true',
                        help='also write encoder_int8.onnx (int8 weights of the encoder\'s MatMuls)')
    parser.add_argument('--attention', choices=('gqa', 'onnx'), default='gqa',
                        help='decoder self-attention: ONNX Runtime\'s GroupQueryAttention (fastest there) or '
                             'standard ONNX operators only (other runtimes)')
    parser.add_argument('--no-check', action='store_true', help='skip the ONNX Runtime vs PyTorch check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.batch_size < 1:
        sys.exit('pytorch2onnx.py: --batch-size must be >= 1')
    if args.checkpoint != 'none' and not osp.isfile(args.checkpoint):
        sys.exit(f'pytorch2onnx.py: checkpoint {args.checkpoint} not found')
    MMLogger.get_instance('pix2seq_export', log_level='WARNING')
    from mmdet.apis import init_detector
    from mmdet.utils import register_all_modules

    from pix2seq_mmdet.deploy.export import export_onnx
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    checkpoint = None if args.checkpoint == 'none' else args.checkpoint
    model = init_detector(cfg, checkpoint, device='cpu')
    if checkpoint is None:
        model.init_weights()
    classes = (model.dataset_meta or {}).get('classes')
    if checkpoint is None or classes is None or len(classes) != model.head.tokenizer.num_classes:
        classes = cfg.get('classes') or (cfg.test_dataloader.dataset.get('metainfo') or {}).get('classes')
    test_pipeline = cfg.test_dataloader.dataset.get('pipeline', cfg.get('test_pipeline'))
    meta = export_onnx(model, args.out_dir, opset=args.opset, batch_size=args.batch_size,
                       dynamic_batch=args.dynamic_batch, int8=args.int8, int8_encoder=args.int8_encoder,
                       class_names=classes, test_pipeline=test_pipeline, check=not args.no_check,
                       attention=args.attention,
                       source=dict(config=args.config, checkpoint=args.checkpoint,
                                   cfg_options=args.cfg_options or {}))
    print(f'wrote {", ".join(graph["file"] for graph in meta["graphs"].values())} and pix2seq.json to '
          f'{args.out_dir}')
    if 'check' in meta:
        print('check against PyTorch (max abs diff): ' + json.dumps(meta['check']))


if __name__ == '__main__':
    main()
