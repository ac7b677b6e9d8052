"""The report: a JSON row per measurement with its derived figures and ratios, the printed tables, the decode plot and
the machine the numbers were measured on."""
import os
import platform
import statistics
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from .decode import ALL_DECODERS
from .infer import INFER_MODELS
from .models import FEATURE_STRIDE

RATIO_DEFINITIONS = {'decode': 'full / this decoder\'s median_s (the full row: full / cached, null without cached)',
                     'infer': 'this model / detr median_s (ONNX Runtime rows: / detr-onnx when measured; the detr '
                              'row: pix2seq / detr, the detr-onnx row: onnx / detr-onnx)',
                     'train': 'pix2seq / detr median_s'}


SECTION_TITLES = {
    'decode': 'Decoding: Pix2Seq R50 head, greedy, 5 N tokens per image, random memory (B, {positions}, encoder width)',
    'infer': 'Inference end to end: model.test_step, eval, no_grad',
    'train': 'Training iteration: model.train_step with the config\'s OptimWrapper',
}


LINE_STYLES = {'cached': '-', 'graphed': ':', 'compiled': '-.', 'full': '--', 'ort': (0, (5, 1, 1, 1)),
               'ort-int8': (0, (1, 1))}


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


def ratio_baseline(model: str, models) -> str:
    """The row an inference row's time is divided by: ``detr-onnx`` for an ONNX Runtime row when it was measured,
    else ``detr``."""
    return 'detr-onnx' if 'onnx' in model and 'detr-onnx' in models else 'detr'


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
                baseline = ratio_baseline(model, pair)
                reference = {'detr': 'pix2seq', 'detr-onnx': 'onnx'}.get(model, model)
                row['ratio'] = (pair[reference]['median_s'] / pair[baseline]['median_s']
                                if baseline in pair and reference in pair else None)


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
        compared = [model for model in models
                    if model not in ('detr', 'detr-onnx') and ratio_baseline(model, models) in models]
        headers = (['size', 'batch'] + [f'{model} {figure}' for model in models for figure in ('s/img', 'MiB')]
                   + [f'{model}/{ratio_baseline(model, models)}' for model in compared])
        lines = [[str(pair[models[0]]['size']), str(pair[models[0]]['batch'])]
                 + [figure for model in models for figure in (
                     f"{pair[model]['s_per_image']:.3f}", f"{pair[model]['peak_mem_mb']:.0f}")]
                 + [f"{pair[model]['ratio']:.2f}" for model in compared] for pair in pairs]
    return format_table(headers, lines)


def long_run_note(rows: List[dict]) -> str:
    """Title suffix counting the rows timed by one long warm-up run."""
    count = sum(row['single_run'] for row in rows)
    return f'  [{count} row(s) timed by one long warm-up run]' if count else ''


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
