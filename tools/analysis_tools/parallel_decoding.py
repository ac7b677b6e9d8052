"""Token-by-token against parallel box decoding of the same checkpoint (a model trained with
``model.head.block_decoding``), side by side on a config's test set.

    python tools/analysis_tools/parallel_decoding.py CONFIG CHECKPOINT [--thresholds 0 0.5] [--out result.json] \
        [--cfg-options k=v ...]

Every test batch is encoded once; the decoder then runs token by token (``test_cfg.parallel=False``) and in blocks
(``parallel=True``, once per ``--thresholds`` value of ``parallel_threshold``), the runs interleaved batch by batch
so that a busy moment of the machine falls on all of them. Each run's predictions are scored with the config's test
evaluator (mmdet's ``CocoMetric``); reported: its metrics, the decoder's milliseconds per image (encoder excluded,
post-processing included), and its sequential decoder steps per batch (one per token, or one per object plus four
per object decoded again token by token; a step decodes the whole batch).
"""
import argparse
import copy
import json
import time
from typing import Dict, List

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner, load_checkpoint

from pix2seq_mmdet.models import DecodingConfig


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Token-by-token against parallel decoding of one checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--thresholds', type=float, nargs='+', default=[0.0],
                        help='parallel_threshold values of the parallel runs (0: never fall back)')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='key=value overrides of the config')
    return parser.parse_args(argv)


def count_calls(head) -> Dict[str, int]:
    """Wrap ``head.forward_step`` to count its calls."""
    counter = {'calls': 0}
    original = head.forward_step

    def counted(*args, **kwargs):
        counter['calls'] += 1
        return original(*args, **kwargs)

    head.forward_step = counted
    return counter


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = cfg.get('work_dir', 'work_dirs/parallel_decoding')
    runner = Runner.from_cfg(cfg)
    model = runner.model.eval()
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    base = vars(model.head.decoding_cfg)
    modes = [('token by token', DecodingConfig(**dict(base, parallel=False)))] + [
        (f'parallel, threshold {threshold:g}',
         DecodingConfig(**dict(base, parallel=True, parallel_threshold=threshold))) for threshold in args.thresholds]
    evaluators = [copy.deepcopy(runner.test_evaluator) for _ in modes]
    for evaluator in evaluators:
        evaluator.dataset_meta = runner.test_dataloader.dataset.metainfo
    seconds, calls, detections = [0.0] * len(modes), [0] * len(modes), [0] * len(modes)
    counter = count_calls(model.head)
    images = batches = 0
    with torch.no_grad():
        for batch in runner.test_dataloader:
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            memory, memory_mask = model.encode(inputs, samples)
            images += len(samples)
            batches += 1
            for index, (_, decoding_cfg) in enumerate(modes):
                model.head.decoding_cfg = decoding_cfg
                counter['calls'] = 0
                start = time.perf_counter()
                results = model.head.predict(memory, memory_mask, copy.deepcopy(samples))
                seconds[index] += time.perf_counter() - start
                calls[index] += counter['calls']
                detections[index] += sum(len(result) for result in results)
                evaluators[index].process(data_samples=model.add_pred_to_datasample(copy.deepcopy(samples), results),
                                          data_batch=batch)
    report = []
    for (name, _), evaluator, total, count, found in zip(modes, evaluators, seconds, calls, detections):
        metrics = evaluator.evaluate(images)
        report.append(dict(decoding=name, ms_per_image=1000 * total / images, decoder_steps_per_batch=count / batches,
                           detections_per_image=found / images,
                           **{key: float(value) for key, value in metrics.items()}))
    for row in report:
        print(json.dumps(row))
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, images=images, batches=batches,
                           batch_size=runner.test_dataloader.batch_size, torch=torch.__version__,
                           threads=torch.get_num_threads(), rows=report), file, indent=1)
    return report


if __name__ == '__main__':
    main()
