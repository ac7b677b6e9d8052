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
  Pix2Seq's decoder step compiled, ``test_cfg.compile=True``).  ``--infer-models`` may add ``onnx`` and
  ``onnx-int8``: the same Pix2Seq model exported to ONNX (frame S x S, the batch fixed) and run by
  ``pix2seq_mmdet.deploy.runtime`` on the image as a BGR array (preprocessing, encoder, decoding of every slot with
  the config's nucleus sampling, post-processing); ``onnx-int8`` with the int8 decoder step.  Ratio: each model /
  DETR.
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
which.  Peak memory is measured in the same child (see :data:`PEAK_MEMORY_METHOD`).

Models are built without pretrained weights (``backbone.init_cfg=None``); ``--tiny`` shrinks both models (ResNet-18
of a quarter width, one transformer layer of width 32) and every setting, for tests.
"""
import argparse
import json
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.bbox import HorizontalBoxes  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hub import get_config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from pix2seq_mmdet.models import DecodingConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

SECTIONS = ('decode', 'infer', 'train')
MODEL_NAMES = ('pix2seq', 'detr')
INFER_MODELS = ('pix2seq', 'detr', 'onnx', 'onnx-int8')  # onnx*: Pix2Seq through pix2seq_mmdet.deploy
DECODERS = {'cpu': ('cached', 'full', 'ort', 'ort-int8'), 'cuda': ('cached', 'graphed', 'compiled', 'full')}
DEFAULT_DECODERS = {'cpu': ('cached', 'full'), 'cuda': DECODERS['cuda']}
ALL_DECODERS = ('cached', 'graphed', 'compiled', 'ort', 'ort-int8', 'full')  # table order
ORT_DECODERS = {'ort': False, 'ort-int8': True}  # name: int8
PIX2SEQ_CONFIG = REPO_ROOT / 'configs' / 'pix2seq_r50_8xb4_300e_coco.py'
DETR_CONFIG = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
FEATURE_STRIDE = 32  # the R50 configs' backbone output (out_indices=(3, ))
NUM_CLASSES = 80  # both configs are COCO's
SEED = 0
PEAK_MEMORY_METHOD = {
    'cpu': 'growth of the measuring child process\'s resident-set high-water mark (VmHWM, /proc/self/status) over '
           'its resident set after imports: weights, inputs, activations, optimiser state and allocator caches of '
           'that row alone',
    'cuda': 'torch.cuda.max_memory_allocated() after reset_peak_memory_stats() in the measuring child, minus the '
            'memory allocated after imports: weights, inputs, activations and optimiser state of that row alone '
            '(allocator caches excluded)',
}
RATIO_DEFINITIONS = {'decode': 'full / this decoder\'s median_s (the full row: full / cached, null without cached)',
                     'infer': 'this model / detr median_s (the detr row: pix2seq / detr)',
                     'train': 'pix2seq / detr median_s'}

# settings and model sizes of --tiny (explicit command-line options still win)
TINY_SETTINGS = dict(num_objects=[2], batch_sizes=[1], sizes=[128], decode_size=128, model_objects=2, gt_boxes=2,
                     infer_batch=1)
_TINY_BACKBONE = {'model.backbone.depth': 18, 'model.backbone.base_channels': 16, 'model.neck.in_channels': [128],
                  'model.neck.out_channels': 32, 'model.positional_encoding.num_feats': 16}
_TINY_DETR_LAYER = {'embed_dims': 32, 'num_heads': 2}
TINY_MODEL_OVERRIDES = {
    'pix2seq': {
        **_TINY_BACKBONE,
        **{f'model.{part}.{key}': value for part in ('encoder', 'head')
           for key, value in dict(num_layers=1, embed_dims=32, num_heads=2, ffn_dims=64).items()},
    },
    'detr': {
        **_TINY_BACKBONE,
        'model.bbox_head.embed_dims': 32,
        **{f'model.{part}.num_layers': 1 for part in ('encoder', 'decoder')},
        **{f'model.{part}.layer_cfg.{attn}': _TINY_DETR_LAYER
           for part, attns in (('encoder', ('self_attn_cfg', )), ('decoder', ('self_attn_cfg', 'cross_attn_cfg')))
           for attn in attns},
        **{f'model.{part}.layer_cfg.ffn_cfg': dict(embed_dims=32, feedforward_channels=64)
           for part in ('encoder', 'decoder')},
    },
}


# ------------------------------------------------------------------------------------------------ models and data
def load_config(model_name: str, objects: int, tiny: bool, compile_decoder: bool = False,
                size: Optional[int] = None) -> Config:
    """The paper's Pix2Seq R50 or mmdet's DETR R50 config, without pretrained weights, outputting ``objects``
    objects per image (Pix2Seq's ``max_objects``, DETR's queries), shrunk when ``tiny``; Pix2Seq's decoder step
    compiled when ``compile_decoder``, its frame ``size`` x ``size`` pixels when given."""
    if model_name == 'pix2seq':
        cfg = Config.fromfile(str(PIX2SEQ_CONFIG))
        overrides = {'model.head.tokenizer.max_objects': objects, 'model.test_cfg.compile': compile_decoder}
        if size is not None:
            overrides['model.data_preprocessor.pad_size'] = (size, size)
    else:
        cfg = get_config(DETR_CONFIG)
        overrides = {'model.num_queries': objects, 'model.test_cfg.max_per_img': objects}
    overrides['model.backbone.init_cfg'] = None
    if tiny:
        overrides.update(TINY_MODEL_OVERRIDES[model_name])
    cfg.merge_from_dict(overrides)
    return cfg


def build_detector(cfg: Config, device: str) -> torch.nn.Module:
    """Build and initialise ``cfg.model`` (its own random initialisation) on ``device``."""
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device)


def random_image(size: int) -> torch.Tensor:
    """(3, size, size) uint8 image, the same for every child (seeded)."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)


def random_boxes(size: int, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` random xyxy boxes (count, 4) inside a size x size image and their labels (count,), seeded."""
    generator = torch.Generator().manual_seed(SEED + 1)
    top_left = torch.rand(count, 2, generator=generator) * 0.7 * size
    extent = (0.1 + 0.2 * torch.rand(count, 2, generator=generator)) * size
    labels = torch.randint(0, NUM_CLASSES, (count, ), generator=generator)
    return torch.cat([top_left, top_left + extent], dim=1), labels


def make_data_batch(size: int, batch: int, gt_boxes: int = 0) -> dict:
    """A data batch as mmdet's dataloader yields it: ``batch`` copies of one random square image, with ``gt_boxes``
    the same random ``gt_instances`` in each sample."""
    image = random_image(size)
    shape = (size, size)
    boxes, labels = random_boxes(size, gt_boxes)
    samples = []
    for _ in range(batch):
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, scale_factor=(1.0, 1.0)))
        if gt_boxes:
            sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(boxes.clone()), labels=labels.clone())
        samples.append(sample)
    return dict(inputs=[image.clone() for _ in range(batch)], data_samples=samples)


def autocast(device: str, amp: bool):
    """fp16 autocast on CUDA, bf16 on CPU, or nothing."""
    if not amp:
        return nullcontext()
    return torch.autocast(device, dtype=torch.float16 if device == 'cuda' else torch.bfloat16)


# ------------------------------------------------------------------------------------- the measured workloads
def setup_decode(task: dict) -> Callable[[], object]:
    """The head of the R50 config decoding ``objects`` objects for ``batch`` images from random memory."""
    cfg = load_config('pix2seq', task['objects'], task['tiny'])
    memory_dims = cfg.model.head.embed_dims
    head = MODELS.build(cfg.model.head)
    head.init_weights()
    head.to(task['device']).eval()
    head.decoding_cfg = DecodingConfig(strategy='greedy', stop_at_eos=False, use_cache=task['decoder'] != 'full',
                                       cuda_graph=task['decoder'] in ('graphed', 'compiled'),
                                       compile=task['decoder'] == 'compiled')
    positions = (task['decode_size'] // FEATURE_STRIDE)**2
    generator = torch.Generator().manual_seed(SEED)
    memory = torch.randn(task['batch'], positions, memory_dims, generator=generator).to(task['device'])
    if task['decoder'] in ORT_DECODERS:
        return setup_ort_decode(task, head, memory)

    def run():
        with torch.no_grad(), autocast(task['device'], task['amp']):
            return head.generate(memory, None)

    return run


def setup_ort_decode(task: dict, head: torch.nn.Module, memory: torch.Tensor) -> Callable[[], object]:
    """The head's decoder step exported to ONNX (int8 for ``ort-int8``) and decoded greedily by the deployment
    runtime from ``memory``'s per-layer keys/values."""
    import tempfile

    from pix2seq_mmdet.deploy import runtime as ort_runtime
    from pix2seq_mmdet.deploy.export import export_decoder_step, quantize_int8, vocabulary_spec
    batch, memory_len = memory.shape[:2]
    with tempfile.TemporaryDirectory(prefix='pix2seq_benchmark_') as work_dir:
        path = Path(work_dir) / 'decoder_step.onnx'
        export_decoder_step(head, path, batch, memory_len)
        if ORT_DECODERS[task['decoder']]:
            quantize_int8(path, path.with_name('decoder_step_int8.onnx'))
            path = path.with_name('decoder_step_int8.onnx')
        session = ort_runtime.create_session(path, ort_runtime.make_session_options(task['ort_threads']))
    geometry = dict(num_layers=len(head.layers), num_heads=head.num_heads, head_dims=head.embed_dims // head.num_heads,
                    embed_dims=head.embed_dims, cache_len=head.tokenizer.seq_len, memory_len=memory_len)
    encoded = ort_runtime.EncoderOutputs(batch, geometry)
    with torch.no_grad():
        key_values, _ = head._project_memory(memory, None)
    for buffer, tensor in zip(encoded.memory_key_value, [tensor for pair in key_values for tensor in pair]):
        buffer[...] = tensor.numpy()
    decoder = ort_runtime.DecoderStep(session, geometry, head.tokenizer.vocab_size, batch)
    vocab = ort_runtime.Vocabulary(vocabulary_spec(head.tokenizer))
    options = ort_runtime.DecodingOptions(strategy='greedy', stop_at_eos=False)

    def run():
        decoder.start(encoded)
        return ort_runtime.decode_tokens(decoder.step, batch, vocab, options)

    return run


def setup_infer(task: dict) -> Callable[[], object]:
    """``model.test_step`` on one random image repeated ``batch`` times."""
    if task['model'] in ('onnx', 'onnx-int8'):
        return setup_onnx_infer(task)
    cfg = load_config(task['model'], task['model_objects'], task['tiny'], task['compile'], task['size'])
    model = build_detector(cfg, task['device']).eval()
    data_batch = make_data_batch(task['size'], task['batch'])

    def run():
        with torch.no_grad(), autocast(task['device'], task['amp']):
            return model.test_step(data_batch)

    return run


def setup_train(task: dict) -> Callable[[], object]:
    """``model.train_step`` with the config's optimiser wrapper (``AmpOptimWrapper`` for ``--amp`` on CUDA)."""
    cfg = load_config(task['model'], task['model_objects'], task['tiny'], size=task['size'])
    data_batch = make_data_batch(task['size'], task['batch'], task['gt_boxes'])
    model = build_detector(cfg, task['device']).train()
    optim_cfg = cfg.optim_wrapper
    cuda_amp = task['amp'] and task['device'] == 'cuda'
    if cuda_amp:
        optim_cfg = dict(optim_cfg, type='AmpOptimWrapper', dtype='float16')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)

    def run():
        with autocast(task['device'], task['amp'] and not cuda_amp):
            return model.train_step(data_batch, optim_wrapper)

    return run


def setup_onnx_infer(task: dict) -> Callable[[], object]:
    """The Pix2Seq model exported to ONNX (static batch, the frame ``size`` x ``size``) and run by the deployment
    runtime on the random image as a BGR array, ``batch`` times in one call."""
    import tempfile

    from pix2seq_mmdet.deploy.export import export_onnx
    from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
    cfg = load_config('pix2seq', task['model_objects'], task['tiny'], size=task['size'])
    model = build_detector(cfg, 'cpu').eval()
    int8 = task['model'] == 'onnx-int8'
    with tempfile.TemporaryDirectory(prefix='pix2seq_benchmark_') as work_dir:
        export_onnx(model, work_dir, batch_size=task['batch'], int8=int8, check=False)
        runtime = Pix2SeqRuntime(work_dir, decoder='int8' if int8 else 'fp32', num_threads=task['ort_threads'])
    del model
    image = random_image(task['size']).permute(1, 2, 0).contiguous().numpy()
    images = [image] * task['batch']

    def run():
        return runtime(images)

    return run


SETUPS = dict(decode=setup_decode, infer=setup_infer, train=setup_train)


# ------------------------------------------------------------------------------------- timing and peak memory
def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def time_runs(run: Callable[[], object], device: str, warmup: int, repeats: int, long_run: float,
              keep_long_warmup: bool) -> Tuple[List[float], int, bool]:
    """Wall-clock seconds of ``repeats`` calls of ``run`` after ``warmup`` untimed ones.

    A warm-up call slower than ``long_run`` seconds cuts the timed calls to one, or, with ``keep_long_warmup``, is
    itself the only sample.

    Returns:
        tuple: the timed samples, the number of warm-up calls discarded and whether a long warm-up call was kept
        as the only sample.
    """

    def timed() -> float:
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        return time.perf_counter() - start

    for discarded in range(warmup):
        elapsed = timed()
        if elapsed > long_run:
            if keep_long_warmup:
                return [elapsed], discarded, True
            return [timed()], discarded + 1, False
    return [timed() for _ in range(repeats)], warmup, False


def _proc_status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (reported in kB) in MiB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise KeyError(f'/proc/self/status has no {field}')


def memory_baseline(device: str) -> float:
    """Memory in use before the row's work, in MiB, after resetting the CUDA peak (see PEAK_MEMORY_METHOD)."""
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return _proc_status_mb('VmRSS')


def peak_memory(device: str) -> float:
    """Peak memory so far, in MiB, on the same scale as :func:`memory_baseline`."""
    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20
    return _proc_status_mb('VmHWM')


def keeps_long_warmup(task: dict) -> bool:
    """Whether a long warm-up run may be the row's only sample: decoding rows, except the compiled decoder's, whose
    warm-up compiles."""
    return task['section'] == 'decode' and task['decoder'] != 'compiled'


def measure(task: dict) -> dict:
    """Run in a fresh child process: build the row's workload, time it and report its peak memory."""
    MMLogger.get_instance('benchmark', log_level='ERROR')  # the current logger: silences build-time messages
    warnings.filterwarnings('ignore', category=UserWarning, module='mmdet')
    register_all_modules(init_default_scope=True)
    torch.manual_seed(SEED)
    baseline = memory_baseline(task['device'])
    run = SETUPS[task['section']](task)
    times, warmup_runs, single_run = time_runs(run, task['device'], task['warmup'], task['repeats'],
                                               task['long_run'], keep_long_warmup=keeps_long_warmup(task))
    return dict(times_s=times, warmup_runs=warmup_runs, single_run=single_run,
                peak_mem_mb=peak_memory(task['device']) - baseline)


def measure_in_child(task: dict) -> dict:
    """:func:`measure` in a new ``spawn`` process, so that neither memory nor caches carry over between rows (a
    child killed, e.g. for lack of memory, raises ``BrokenProcessPool`` here)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context('spawn')) as executor:
        return executor.submit(measure, task).result()


# ------------------------------------------------------------------------------------------------------ rows
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
                           model_objects=args.model_objects, gt_boxes=args.gt_boxes)
                      for size in args.sizes for model in models]
    return tasks


def make_row(task: dict, result: dict) -> dict:
    """A JSON row: the task's coordinates, the raw samples, the median and derived figures (ratio added later)."""
    median = statistics.median(result['times_s'])
    row = dict(section=task['section'], model=task['model'])
    if task['section'] == 'decode':
        tokens = 5 * task['objects']
        row.update(decoder=task['decoder'], batch=task['batch'], objects=task['objects'], tokens=tokens,
                   memory_positions=(task['decode_size'] // FEATURE_STRIDE)**2)
        figures = dict(ms_per_run=1000 * median, ms_per_step=1000 * median / tokens,
                       tokens_per_s=task['batch'] * tokens / median)
    else:
        row.update(size=task['size'], batch=task['batch'], images=task['batch'])
        figures = dict(s_per_image=median / task['batch'])
    row.update(runs=len(result['times_s']), warmup_runs=result['warmup_runs'], single_run=result['single_run'],
               times_s=result['times_s'], median_s=median, **figures, peak_mem_mb=result['peak_mem_mb'])
    return row


def group_pairs(rows: List[dict]) -> List[Dict[str, dict]]:
    """The compared rows, in order: ``{decoder: row}`` per decode batch and object count,
    ``{'pix2seq': row, 'detr': row}`` per inference/training size."""
    pairs: Dict[tuple, Dict[str, dict]] = {}
    for row in rows:
        if row['section'] == 'decode':
            key, variant = (row['section'], row['batch'], row['objects']), row['decoder']
        else:
            key, variant = (row['section'], row['batch'], row['size']), row['model']
        pairs.setdefault(key, {})[variant] = row
    return list(pairs.values())


def add_ratios(rows: List[dict]) -> None:
    """Set ``ratio`` on every row: full / that decoder for decoding (full / cached on the full row), that model / detr
    otherwise (pix2seq / detr on the detr row; null without detr)."""
    for pair in group_pairs(rows):
        if 'full' in pair:
            for decoder, row in pair.items():
                reference = 'cached' if decoder == 'full' else decoder
                row['ratio'] = pair['full']['median_s'] / pair[reference]['median_s'] if reference in pair else None
        else:
            for model, row in pair.items():
                reference = 'pix2seq' if model == 'detr' else model
                row['ratio'] = (pair[reference]['median_s'] / pair['detr']['median_s']
                                if 'detr' in pair and reference in pair else None)


# ----------------------------------------------------------------------------------------------------- output
def format_table(headers: List[str], lines: List[List[str]]) -> str:
    """Right-aligned columns."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *lines)]

    def render(cells: List[str]) -> str:
        return '  '.join(cell.rjust(width) for cell, width in zip(cells, widths))

    return '\n'.join([render(headers), render(['-' * width for width in widths])] + [render(line) for line in lines])


def section_table(section: str, rows: List[dict]) -> str:
    """One line per pair of the section's rows."""
    pairs = group_pairs([row for row in rows if row['section'] == section])
    if section == 'decode':
        decoders = [decoder for decoder in ALL_DECODERS if pairs and decoder in pairs[0]]
        faster = [decoder for decoder in decoders if decoder != 'full']
        headers = (['batch', 'objects', 'tokens']
                   + [f'{decoder} {figure}' for decoder in decoders for figure in ('ms', 'ms/step', 'tok/s', 'MiB')]
                   + [f'full/{decoder}' for decoder in faster])
        lines = [[str(pair['full']['batch']), str(pair['full']['objects']), str(pair['full']['tokens'])]
                 + [figure for decoder in decoders for figure in (
                     f"{pair[decoder]['ms_per_run']:.1f}", f"{pair[decoder]['ms_per_step']:.3f}",
                     f"{pair[decoder]['tokens_per_s']:.0f}", f"{pair[decoder]['peak_mem_mb']:.0f}")]
                 + [f"{pair[decoder]['ratio']:.2f}" for decoder in faster] for pair in pairs]
    else:
        models = [model for model in INFER_MODELS if pairs and model in pairs[0]]
        compared = [model for model in models if model != 'detr' and 'detr' in models]
        headers = (['size', 'batch'] + [f'{model} {figure}' for model in models for figure in ('s/img', 'MiB')]
                   + [f'{model}/detr' for model in compared])
        lines = [[str(pair[models[0]]['size']), str(pair[models[0]]['batch'])]
                 + [figure for model in models for figure in (
                     f"{pair[model]['s_per_image']:.3f}", f"{pair[model]['peak_mem_mb']:.0f}")]
                 + [f"{pair[model]['ratio']:.2f}" for model in compared] for pair in pairs]
    return format_table(headers, lines)


SECTION_TITLES = {
    'decode': 'Decoding: Pix2Seq R50 head, greedy, 5 N tokens per image, random memory (B, {positions}, encoder width)',
    'infer': 'Inference end to end: model.test_step, eval, no_grad',
    'train': 'Training iteration: model.train_step with the config\'s OptimWrapper',
}


def long_run_note(rows: List[dict]) -> str:
    """Title suffix counting the rows timed by one long warm-up run."""
    count = sum(row['single_run'] for row in rows)
    return f'  [{count} row(s) timed by one long warm-up run]' if count else ''


LINE_STYLES = {'cached': '-', 'graphed': ':', 'compiled': '-.', 'full': '--', 'ort': (0, (5, 1, 1, 1)),
               'ort-int8': (0, (1, 1))}


def plot_decode(rows: List[dict], path: str) -> None:
    """Decode time against object count, one line per decoder and batch size."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4))
    series: Dict[Tuple[str, int], List[dict]] = {}
    for row in rows:
        if row['section'] == 'decode':
            series.setdefault((row['decoder'], row['batch']), []).append(row)
    batches = sorted({batch for _, batch in series})
    for (decoder, batch), points in series.items():
        points.sort(key=lambda row: row['objects'])
        axes.plot([row['objects'] for row in points], [row['ms_per_run'] for row in points], marker='o',
                  color=f'C{batches.index(batch)}', linestyle=LINE_STYLES[decoder],
                  label=f'{decoder}, batch {batch}')
    axes.set(xlabel='objects decoded (5 tokens each)', ylabel='ms per run', yscale='log',
             title='Pix2Seq decoding: KV cache vs full re-run')
    axes.grid(True, which='both', alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` knows."""
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: str) -> dict:
    """What the numbers were measured on."""
    env = dict(python=platform.python_version(), torch=torch.__version__, cpu=cpu_name(), cpu_count=os.cpu_count(),
               torch_threads=torch.get_num_threads())
    if device == 'cuda':
        env['gpu'] = torch.cuda.get_device_name()
    try:
        import onnxruntime
        env['onnxruntime'] = onnxruntime.__version__
    except ImportError:
        pass
    return env


# ------------------------------------------------------------------------------------------------------- main
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
                        help='infer/train: Pix2Seq max_objects (all decoded) and DETR queries')
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
    if args.device == 'cuda' and {'onnx', 'onnx-int8'} & set(args.infer_models):
        parser.error('--infer-models onnx, onnx-int8: ONNX Runtime rows run on the CPU (--device cpu)')
    if not set(args.decoders) <= set(DECODERS[args.device]) or 'full' not in args.decoders:
        parser.error(f'--decoders on {args.device}: "full" and any of {DECODERS[args.device]}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available')
    return args


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
