"""Token-by-token against parallel box decoding of the same checkpoint (a model trained with
``model.head.block_decoding``), side by side on a config's test set.

    python tools/analysis_tools/parallel_decoding.py CONFIG CHECKPOINT [--out result.json] [--onnx EXPORT_DIR] \
        [--cfg-options k=v ...]

Every test batch is encoded once; the decoder then runs token by token (``test_cfg.parallel=False``), in blocks with
every drafted object verified (``parallel=True``) and in blocks with the drafts kept (``parallel_verify=False``),
the runs interleaved batch by batch so that a busy moment of the machine falls on all of them. Each run's
predictions are scored with the config's test evaluator (mmdet's ``CocoMetric``); reported: its metrics, the
decoder's milliseconds per image (encoder excluded, post-processing included), and its sequential decoder steps per
batch (one per token; in blocks one per object, plus the token steps and the repeated block step of every
correction, and the last object's check; a step decodes the whole batch).

``--onnx EXPORT_DIR`` (``tools/deployment/pytorch2onnx.py`` of the same checkpoint, its batch the test batch or
dynamic) adds the same runs in ONNX Runtime (``Pix2SeqRuntime``, as many intra-op threads as torch uses), after the
PyTorch runs (interleaved with them, ONNX Runtime's threads would compete with PyTorch's OpenMP threads, which spin
for a while after each operation): the encoder graph once per batch on the data preprocessor's output, then the
runtime's decoding loop, its runs interleaved batch by batch, timed the same way with the PyTorch runs' decoding
options (its post-processing by the head's ``tokens_to_instances``, untimed, so that the metrics are comparable).
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
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--onnx', metavar='EXPORT_DIR', help='also decode with this ONNX export of the checkpoint')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='key=value overrides of the config')
    return parser.parse_args(argv)


def count_calls(owner, *names: str) -> Dict[str, int]:
    """Wrap the methods ``names`` of ``owner`` to count their calls together."""
    counter = {'calls': 0}

    def counted(original):
        def method(*args, **kwargs):
            counter['calls'] += 1
            return original(*args, **kwargs)
        return method

    for name in names:
        setattr(owner, name, counted(getattr(owner, name)))
    return counter


class OnnxDecoding:
    """The runs of :func:`main` in ONNX Runtime: one export, per mode its time, steps and evaluator."""

    def __init__(self, export_dir: str, modes: list, evaluators: list) -> None:
        from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
        self.runtime = Pix2SeqRuntime(export_dir, num_threads=torch.get_num_threads())
        self.modes, self.evaluators = modes, evaluators
        self.seconds, self.calls = [0.0] * len(modes), [0] * len(modes)
        self.counter = count_calls(self.runtime.decoder, 'step', 'block_step')

    def decode(self, model, inputs, samples, batch) -> None:
        from pix2seq_mmdet.deploy.sampling import DecodingOptions
        encoded = self.runtime.encode(inputs.cpu().numpy())
        for index, (_, decoding_cfg) in enumerate(self.modes):
            self.counter['calls'] = 0
            start = time.perf_counter()
            tokens, class_probs, coords = self.runtime.decode(encoded, **{
                key: getattr(decoding_cfg, key) for key in DecodingOptions.__dataclass_fields__})
            self.seconds[index] += time.perf_counter() - start
            self.calls[index] += self.counter['calls']
            results = [model.head.tokens_to_instances(torch.from_numpy(seq), torch.from_numpy(probs), sample.metainfo,
                                                      True, torch.from_numpy(seq_coords))
                       for seq, probs, seq_coords, sample in zip(tokens, class_probs, coords, samples)]
            self.evaluators[index].process(data_samples=model.add_pred_to_datasample(copy.deepcopy(samples), results),
                                           data_batch=batch)


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
    modes = [('token by token', DecodingConfig(**dict(base, parallel=False))),
             ('parallel, verified', DecodingConfig(**dict(base, parallel=True, parallel_verify=True))),
             ('parallel, drafts kept', DecodingConfig(**dict(base, parallel=True, parallel_verify=False)))]
    evaluators = [copy.deepcopy(runner.test_evaluator) for _ in modes * (2 if args.onnx else 1)]
    for evaluator in evaluators:
        evaluator.dataset_meta = runner.test_dataloader.dataset.metainfo
    seconds, calls, detections = [0.0] * len(modes), [0] * len(modes), [0] * len(modes)
    counter = count_calls(model.head, 'forward_step')
    onnx = OnnxDecoding(args.onnx, modes, evaluators[len(modes):]) if args.onnx else None
    images = batches = 0
    onnx_batches = []
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
            if onnx is not None:
                onnx_batches.append((inputs, samples, batch))
        for inputs, samples, batch in onnx_batches:  # after PyTorch's: its idle threads spin for a while
            onnx.decode(model, inputs, samples, batch)
    runs = [(name, 'PyTorch', total, count) for (name, _), total, count in zip(modes, seconds, calls)]
    if onnx is not None:
        runs += [(name, 'ONNX Runtime', total, count)
                 for (name, _), total, count in zip(modes, onnx.seconds, onnx.calls)]
    report = []
    for index, ((name, backend, total, count), evaluator) in enumerate(zip(runs, evaluators)):
        metrics = evaluator.evaluate(images)
        row = dict(decoding=name, backend=backend, ms_per_image=1000 * total / images,
                   decoder_steps_per_batch=count / batches)
        if index < len(modes):
            row['detections_per_image'] = detections[index] / images
        report.append(dict(row, **{key: float(value) for key, value in metrics.items()}))
    for row in report:
        print(json.dumps(row))
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, images=images, batches=batches,
                           batch_size=runner.test_dataloader.batch_size, torch=torch.__version__,
                           threads=torch.get_num_threads(), onnx=args.onnx, rows=report), file, indent=1)
    return report


if __name__ == '__main__':
    main()
