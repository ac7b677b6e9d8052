"""Compare a converted official checkpoint with the official model's reference outputs.

    python tools/model_converters/check_official_parity.py REFERENCE.npz CONVERTED.pth \\
        --official-config config.json [--config CONFIG] [--token-limit N] [--out report.json]

``REFERENCE.npz``: written by ``make_official_fixture.py`` (the official model's preprocessed input and outputs);
``CONVERTED.pth``: ``pix2seq_tf2mmdet.py``'s conversion of the same checkpoint.  Prints the max absolute difference
of the ResNet output (ViT: the patch embedding), the stem, the encoder output, the decoder memory, the incremental
decoder's first-step logits, the teacher-forced logits over the official greedy sequence (against the official
decoder's logits), over a synthetic detection sequence and, for a multi-task model, over an instance segmentation and
a keypoint prompt (and whether this package writes the same prompt and response tokens), how many greedy tokens
agree (``--token-limit N``: also whether all tokens before position N agree, for references with near-tied logits
after it), and the detections read from the greedy sequence against the official post-processing's boxes, classes
and scores.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pix2seq_mmdet.converters import build_model, load_model_config, target_config_name
from pix2seq_mmdet.converters.parity import compare_with_reference, reference_outputs

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_CONFIGS = REPO_ROOT / 'configs' / 'official'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='Compare a converted official checkpoint with reference outputs')
    parser.add_argument('reference', help='reference .npz of make_official_fixture.py')
    parser.add_argument('checkpoint', help='converted .pth')
    parser.add_argument('--official-config', required=True, help='the official config.json of the checkpoint')
    parser.add_argument('--config', help='default: the configs/official config of the official config.json, as the '
                        'converter chooses it')
    parser.add_argument('--token-limit', type=int)
    parser.add_argument('--out', help='also write the report as JSON')
    args = parser.parse_args(argv)
    with open(args.official_config) as file:
        official_config = json.load(file)
    config = args.config or str(OFFICIAL_CONFIGS / target_config_name(official_config)[1])
    model = build_model(load_model_config(config, official_config))
    model.load_state_dict(torch.load(args.checkpoint, weights_only=True)['state_dict'], strict=True)
    with np.load(args.reference) as archive:
        reference = {key: archive[key] for key in archive.files}
    start = time.time()
    report = compare_with_reference(reference_outputs(model, reference), reference, args.token_limit,
                                    model.head.tokenizer)
    report['seconds'] = round(time.time() - start, 1)
    report['torch'] = torch.__version__
    report['threads'] = torch.get_num_threads()
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(report, file, indent=1)
    return report


if __name__ == '__main__':
    main()
