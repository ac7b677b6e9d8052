"""Where the time of an exported Pix2Seq decoder step goes: ONNX Runtime's profiler over a greedy decode.

Decodes every object slot of one random image (``--batch`` copies) with the runtime, once without profiling (the
ms/token of the bound decode loop, numpy token selection included) and once with ``SessionOptions.enable_profiling``
on the decoder-step session, then sums the profiler's kernel times per operator type and per graph node.  The
profiler adds its own cost to every node, so its totals exceed the unprofiled step; read the shares.

Example:
    python tools/deployment/profile_onnx.py work_dirs/onnx_r50_640 --decoder int8 --threads 1 --out profile.json
"""
import argparse
import collections
import json
import os
import statistics
import tempfile
import time

import numpy as np

from pix2seq_mmdet.deploy.runtime import Pix2SeqRuntime
from pix2seq_mmdet.deploy.sessions import make_session_options


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Profile the decoder step of a Pix2Seq ONNX export')
    parser.add_argument('model_dir', help='folder written by tools/deployment/pytorch2onnx.py')
    parser.add_argument('--decoder', choices=('fp32', 'int8'), default='fp32')
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime intra-op threads (0: its default)')
    parser.add_argument('--batch', type=int, default=1, help='images per decode (the export\'s batch if fixed)')
    parser.add_argument('--repeats', type=int, default=3, help='unprofiled decodes (median reported)')
    parser.add_argument('--top', type=int, default=12, help='operator types and nodes listed')
    parser.add_argument('--out', help='write the summary to this JSON file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    detector = Pix2SeqRuntime(args.model_dir, decoder=args.decoder, num_threads=args.threads)
    batch = detector.static_batch or args.batch
    height, width = detector.meta['preprocess']['pad_size']
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    encoded = detector.encode(detector.preprocess([image] * batch)[0])
    options = dict(strategy='greedy', stop_at_eos=False)
    tokens = detector.vocab.seq_len
    detector.decode(encoded, **options)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        detector.decode(encoded, **options)
        times.append(time.perf_counter() - start)
    ms_per_token = 1000 * statistics.median(times) / tokens

    with tempfile.TemporaryDirectory() as work_dir:
        session_options = make_session_options(args.threads)
        session_options.enable_profiling = True
        session_options.profile_file_prefix = os.path.join(work_dir, 'decoder')
        profiled = Pix2SeqRuntime(args.model_dir, decoder=args.decoder, session_options=session_options)
        profiled_encoded = profiled.encode(profiled.preprocess([image] * batch)[0])
        profiled.decode(profiled_encoded, **options)
        with open(profiled.decoder.session.end_profiling()) as file:
            events = json.load(file)
        profiled.encoder_session.end_profiling()
    runs = [event['dur'] for event in events if event.get('name') == 'model_run']
    by_type, by_node, count = collections.Counter(), collections.Counter(), collections.Counter()
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            by_type[event['args']['op_name']] += event['dur']
            by_node[event['name'][:-len('_kernel_time')]] += event['dur']
            count[event['args']['op_name']] += 1
    steps = len(runs)
    kernel_us = sum(by_type.values()) / steps
    summary = dict(
        model_dir=args.model_dir, decoder=args.decoder, threads=args.threads, batch=batch, tokens=tokens,
        unprofiled_ms_per_token=ms_per_token, profiled_steps=steps,
        profiled_model_run_us_median=statistics.median(runs), profiled_kernel_us_per_step=kernel_us,
        nodes_per_step=sum(count.values()) // steps,
        op_types=[dict(op=op, us_per_step=total / steps, share=total / steps / kernel_us,
                       nodes=count[op] // steps) for op, total in by_type.most_common()],
        top_nodes=[dict(node=node, us_per_step=total / steps) for node, total in by_node.most_common(args.top)])
    print(f'{args.decoder}, batch {batch}, {args.threads or "default"} thread(s): {ms_per_token:.3f} ms/token '
          f'unprofiled; profiled: model_run {summary["profiled_model_run_us_median"]:.0f} us, kernels '
          f'{kernel_us:.0f} us per step in {summary["nodes_per_step"]} nodes')
    for row in summary['op_types'][:args.top]:
        print(f'  {row["op"]:28s} {row["nodes"]:4d} nodes {row["us_per_step"]:8.1f} us  {100 * row["share"]:5.1f} %')
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(summary, file, indent=2)


if __name__ == '__main__':
    main()
