"""Speed and memory of Pix2Seq: KV-cached against full-rerun decoding, and Pix2Seq R50 against mmdet's DETR R50.

Sections (``--sections``, all by default):

* ``decode``: the head of the R50 paper config decodes N objects (5 N tokens, greedy, ``stop_at_eos=False``) for B
  images from a fixed random encoder memory of shape (B, S, D), S the stride-32 feature positions of a
  ``--decode-size`` image, once with the key/value cache (``use_cache=True``) and once re-running the whole decoder
  on the prefix at every step (``use_cache=False``); on CUDA also with the cache and the step replayed as a CUDA
  graph (``graphed``; ``cached`` is then the eager cached decoder, ``cuda_graph=False``) and with the step compiled
  by ``torch.compile`` before it is recorded (``compiled``, ``compile=True``; compiling happens in the warm-up).
  On the CPU, ``--decoders ... ort ort-int8`` adds ONNX Runtime: the same head exported as the cached decoder step
  (``pix2seq_mmdet.deploy``, ``decoder_step.onnx``; ``ort-int8`` its dynamic int8 quantisation) decoding greedily
  from the same memory's keys/values with the cache bound in place (IO binding), ``--ort-threads`` intra-op threads
  (default: torch's); the export happens before the timing.  Ratio: full / cached (and full / graphed,
  full / compiled, full / ort, full / ort-int8).
* ``infer``: ``model.test_step`` end to end (data preprocessing, backbone, transformer, decoding, post-processing) in
  eval mode under ``torch.no_grad()`` on one random S x S image repeated ``--infer-batch`` times (``--compile``:
  Pix2Seq's decoder step compiled, ``test_cfg.compile=True``).  ``--infer-models`` may add ``pix2seq-vit-b`` (the
  official ViT-B model of ``configs/official``, the converted released checkpoints' architecture), ``onnx`` and
  ``onnx-int8``: the same Pix2Seq R50 model exported to ONNX (frame S x S, the batch fixed) and run by
  ``pix2seq_mmdet.deploy.runtime`` on the image as a BGR array (preprocessing, encoder, decoding of every slot with
  the config's nucleus sampling, post-processing); ``onnx-int8`` with the int8 decoder step; ``onnx-vit-b`` the ViT-B
  so; ``onnx-parallel`` (``-int8``) the R50 with the block objective of parallel box decoding, greedy, one object
  per block step, every draft kept (``parallel_verify=False``: what verified decoding costs when every draft
  holds; a random model's drafts do not).
  ``detr-onnx``, ``deformable-detr-onnx`` (and ``-int8``, the MatMuls dynamically quantised): mmdet's DETR and
  Deformable DETR exported to ONNX and run by ONNX Runtime on the same BGR array with mmdet's normalisation and
  post-processing in numpy (``benchmarking/peer_onnx.py``), ``deformable-detr`` the latter in PyTorch.  Ratio: each
  PyTorch model / DETR, each ONNX Runtime row / ``detr-onnx`` (/ DETR without it).
* ``train``: ``model.train_step`` (forward, backward, gradient clipping and the optimiser step of an ``OptimWrapper``
  built from each config's ``optim_wrapper``) on ``--train-batch`` samples of that image with the same random
  ground-truth boxes.  Pix2Seq's batch repetition makes a batch of 2 one image twice, each copy with its own sequence
  augmentation; images are counted as samples for both models.  Ratio: Pix2Seq / DETR.

Every measurement (one row) runs in a fresh ``spawn`` child process: ``--warmup`` untimed runs, then ``--repeats``
timed runs, of which the median is reported.  A warm-up run slower than ``--long-run`` seconds is followed by a
single timed run; in the decode section (except for the ``compiled`` decoder, whose warm-up compiles) it is instead
the row's only sample.  A decode's one-off costs are small (a cold 5.6 s full-rerun decode measured 0.1 s slower
than a warm one), whereas a cold training iteration of Pix2Seq at 1333 px was 29 % slower than the next, DETR's 6 %,
so inference and training rows are always timed warm.  ``warmup_runs``, ``runs`` and ``single_run`` in the JSON say
which.  Peak memory is measured in the same child (see ``PEAK_MEMORY_METHOD`` in ``benchmarking/measure.py``).

Models are built without pretrained weights (``backbone.init_cfg=None``); ``--tiny`` shrinks both models (ResNet-18
of a quarter width, one transformer layer of width 32) and every setting, for tests.

This file is the command line; the sections, the timing and the report are the modules of ``tools/benchmarking/``.
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import List

import torch

from benchmarking.decode import ALL_DECODERS, DECODERS, DEFAULT_DECODERS
from benchmarking.infer import INFER_MODELS
from benchmarking.measure import PEAK_MEMORY_METHOD, measure_in_child
from benchmarking.models import FEATURE_STRIDE
from benchmarking.report import (RATIO_DEFINITIONS, SECTION_TITLES, add_ratios, environment, long_run_note, make_row,
                                 plot_decode, section_table)


SECTIONS = ('decode', 'infer', 'train')
MODEL_NAMES = ('pix2seq', 'detr')
# settings of --tiny (explicit command-line options still win; the model sizes: benchmarking.models)
TINY_SETTINGS = dict(num_objects=[2], batch_sizes=[1], sizes=[128], decode_size=128, model_objects=2, gt_boxes=2,
                     infer_batch=1)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument('--num-objects', nargs='+', type=positive_int, default=[10, 50, 100], help='decode: objects N')
    parser.add_argument('--batch-sizes', nargs='+', type=positive_int, default=[1, 8], help='decode: images B')
    parser.add_argument('--decoders', nargs='+', choices=ALL_DECODERS,
                        help='decode: decoders to time, "full" among them (default: the device\'s PyTorch ones; '
                             'the CPU also has ort and ort-int8, ONNX Runtime)')
    parser.add_argument('--decode-size', type=positive_int, default=640,
                        help='decode: image side whose stride-32 feature positions make the memory length')
    parser.add_argument('--sizes', nargs='+', type=positive_int, default=[640, 1333],
                        help='infer/train: square image side')
    parser.add_argument('--infer-batch', type=positive_int, default=1)
    parser.add_argument('--infer-models', nargs='+', choices=INFER_MODELS, default=['pix2seq', 'detr'],
                        help='infer: models to time (onnx, onnx-int8: Pix2Seq in ONNX Runtime, CPU only)')
    parser.add_argument('--ort-threads', type=non_negative_int, default=0,
                        help='ONNX Runtime intra-op threads of the ort/onnx rows (0: as many as torch uses)')
    parser.add_argument('--train-batch', type=positive_int, default=2)
    parser.add_argument('--model-objects', type=positive_int, default=100,
                        help='infer/train: Pix2Seq max_objects (all decoded)')
    parser.add_argument('--peer-queries', type=positive_int,
                        help='infer/train: DETR and Deformable DETR queries (default: their configs\', 100 and 300)')
    parser.add_argument('--gt-boxes', type=positive_int, default=10, help='train: random ground-truth boxes per image')
    parser.add_argument('--warmup', type=non_negative_int, default=1, help='untimed runs per row')
    parser.add_argument('--repeats', type=positive_int, default=3, help='timed runs per row (median reported)')
    parser.add_argument('--long-run', type=float, default=3.0,
                        help='seconds: a warm-up run slower than this is followed by one timed run (decode: is the '
                             'only sample of its row)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--amp', action='store_true', help='autocast: fp16 on CUDA, bf16 on CPU')
    parser.add_argument('--compile', action='store_true', help='infer: compile Pix2Seq\'s decoder step')
    parser.add_argument('--tiny', action='store_true', help='tiny models and settings, for tests')
    parser.add_argument('--json', metavar='PATH', help='write every row to this JSON file')
    parser.add_argument('--plot', metavar='PATH', help='draw decode time against object count (decode section)')
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**TINY_SETTINGS)
        args = parser.parse_args()
    if args.plot and 'decode' not in args.sections:
        parser.error('--plot draws the decode section')
    args.decoders = args.decoders or list(DEFAULT_DECODERS[args.device])
    args.ort_threads = args.ort_threads or torch.get_num_threads()
    if args.device == 'cuda' and {model for model in args.infer_models if model.startswith('onnx')}:
        parser.error('--infer-models onnx*: ONNX Runtime rows run on the CPU (--device cpu)')
    if not set(args.decoders) <= set(DECODERS[args.device]) or 'full' not in args.decoders:
        parser.error(f'--decoders on {args.device}: "full" and any of {DECODERS[args.device]}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available')
    return args


def plan_tasks(args: argparse.Namespace) -> List[dict]:
    """One task per row, paired rows adjacent (cached/full, pix2seq/detr)."""
    common = dict(device=args.device, amp=args.amp, compile=args.compile, tiny=args.tiny, warmup=args.warmup,
                  repeats=args.repeats, long_run=args.long_run, ort_threads=args.ort_threads)
    tasks = []
    if 'decode' in args.sections:
        tasks += [dict(common, section='decode', model='pix2seq', decoder=decoder, batch=batch, objects=objects,
                       decode_size=args.decode_size)
                  for batch in args.batch_sizes for objects in args.num_objects for decoder in args.decoders]
    for section, batch, models in (('infer', args.infer_batch, args.infer_models),
                                   ('train', args.train_batch, MODEL_NAMES)):
        if section in args.sections:
            tasks += [dict(common, section=section, model=model, size=size, batch=batch,
                           model_objects=args.model_objects, peer_queries=args.peer_queries, gt_boxes=args.gt_boxes)
                      for size in args.sizes for model in models]
    return tasks


def main() -> None:
    args = parse_args()
    command = shlex.join([sys.executable, *sys.argv])
    started = time.perf_counter()
    rows = []
    for task in plan_tasks(args):
        label = ' '.join(f'{key}={task[key]}' for key in ('section', 'model', 'decoder', 'batch', 'objects', 'size')
                         if key in task)
        print(f'measuring {label} ...', end=' ', file=sys.stderr, flush=True)
        rows.append(make_row(task, measure_in_child(task)))
        print(f"median {rows[-1]['median_s']:.3f} s over {rows[-1]['runs']} run(s)", file=sys.stderr, flush=True)
    add_ratios(rows)
    report = dict(command=command, settings=vars(args), environment=environment(args.device),
                  peak_memory_method=PEAK_MEMORY_METHOD[args.device], ratio_definitions=RATIO_DEFINITIONS,
                  total_s=time.perf_counter() - started, rows=rows)

    print(f'$ {command}')
    print(f"{json.dumps(report['environment'])}  amp={args.amp}  warm-up {args.warmup}, median of {args.repeats} "
          f'(one timed run after a warm-up above {args.long_run:g} s; decode: that warm-up)')
    print(f'peak memory (MiB): {report["peak_memory_method"]}')
    for section in (section for section in SECTIONS if section in args.sections):
        title = SECTION_TITLES[section].format(positions=(args.decode_size // FEATURE_STRIDE)**2)
        section_rows = [row for row in rows if row['section'] == section]
        print(f'\n{title}{long_run_note(section_rows)}\n{section_table(section, section_rows)}')
    print(f"\ntotal {report['total_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.plot:
        plot_decode(rows, args.plot)


if __name__ == '__main__':
    main()
