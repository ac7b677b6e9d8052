"""One row's measurement in a fresh ``spawn`` child process: its workload built, timed (warm-up runs, then the median
of the timed runs) and its peak memory."""
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, List, Tuple

import torch
from mmdet.utils import register_all_modules
from mmengine.logging import MMLogger

from .decode import setup_decode
from .infer import setup_infer
from .models import SEED
from .train import setup_train

PEAK_MEMORY_METHOD = {
    'cpu': 'growth of the measuring child process\'s resident-set high-water mark (VmHWM, /proc/self/status) over '
           'its resident set after imports: weights, inputs, activations, optimiser state and allocator caches of '
           'that row alone',
    'cuda': 'torch.cuda.max_memory_allocated() after reset_peak_memory_stats() in the measuring child, minus the '
            'memory allocated after imports: weights, inputs, activations and optimiser state of that row alone '
            '(allocator caches excluded)',
}

SETUPS = dict(decode=setup_decode, infer=setup_infer, train=setup_train)


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
