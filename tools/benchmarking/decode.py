"""The ``decode`` section: the R50 head decoding from a random encoder memory, with the key/value cache or re-running
the whole decoder at every step, on CUDA also as a CUDA graph (eager or compiled step), on the CPU also in ONNX
Runtime (the exported decoder step, fp32 or int8)."""
import tempfile
from pathlib import Path
from typing import Callable

import torch
from mmdet.registry import MODELS

from pix2seq_mmdet.models import DecodingConfig
from .models import FEATURE_STRIDE, SEED, autocast, load_config

DECODERS = {'cpu': ('cached', 'full', 'ort', 'ort-int8'), 'cuda': ('cached', 'graphed', 'compiled', 'full')}
DEFAULT_DECODERS = {'cpu': ('cached', 'full'), 'cuda': DECODERS['cuda']}
ALL_DECODERS = ('cached', 'graphed', 'compiled', 'ort', 'ort-int8', 'full')  # table order
ORT_DECODERS = {'ort': False, 'ort-int8': True}  # name: int8


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
    from pix2seq_mmdet.deploy.export import export_decoder_step, quantize_int8, vocabulary_spec
    from pix2seq_mmdet.deploy.metadata import Vocabulary
    from pix2seq_mmdet.deploy.sampling import DecodingOptions, decode_tokens
    from pix2seq_mmdet.deploy.sessions import DecoderStep, EncoderOutputs, create_session, make_session_options
    batch, memory_len = memory.shape[:2]
    with tempfile.TemporaryDirectory(prefix='pix2seq_benchmark_') as work_dir:
        path = Path(work_dir) / 'decoder_step.onnx'
        export_decoder_step(head, path, batch, memory_len)
        if ORT_DECODERS[task['decoder']]:
            quantize_int8(path, path.with_name('decoder_step_int8.onnx'))
            path = path.with_name('decoder_step_int8.onnx')
        session = create_session(path, make_session_options(task['ort_threads']))
    geometry = dict(num_layers=len(head.layers), num_heads=head.num_heads, head_dims=head.embed_dims // head.num_heads,
                    embed_dims=head.embed_dims, cache_len=head.tokenizer.num_positions, memory_len=memory_len)
    encoded = EncoderOutputs(batch, geometry)
    with torch.no_grad():
        key_values, _ = head.project_memory(memory, None)
    for buffer, tensor in zip(encoded.memory_key_value, [tensor for pair in key_values for tensor in pair]):
        buffer[...] = tensor.numpy()
    decoder = DecoderStep(session, geometry, head.tokenizer.vocab_size, batch)
    vocab = Vocabulary(vocabulary_spec(head.tokenizer))
    options = DecodingOptions(strategy='greedy', stop_at_eos=False)

    def run():
        decoder.start(encoded)
        return decode_tokens(decoder.step, batch, vocab, options)

    return run
