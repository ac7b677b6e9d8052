"""Check of an export: ``onnx.checker`` on every graph, then ONNX Runtime against PyTorch on a random frame."""
from pathlib import Path
from typing import Dict, Union

import numpy as np
import torch
from torch import Tensor, nn

from .metadata import load_metadata
from .runtime import Pix2SeqRuntime
from .traced import EncoderModule


def torch_decoder_logits(head: nn.Module, memory: Tensor, tokens: Tensor) -> Tensor:
    """Teacher-forced incremental logits of the PyTorch head's static-shape step: (B, S, D) memory and (B, T) input
    tokens -> (B, T, V), one ``forward_step`` per position with a tensor position."""
    with torch.no_grad():
        cache = head.init_cache(memory, None)
        steps = [head.forward_step(tokens[:, t:t + 1], torch.tensor([t]), cache)[:, -1] for t in
                 range(tokens.shape[1])]
    return torch.stack(steps, dim=1)


def check_export(model: nn.Module, out_dir: Union[str, Path], steps: int = 6, seed: int = 0,
                 atol: float = 1e-4) -> Dict[str, float]:
    """``onnx.checker`` on every graph, then ONNX Runtime against PyTorch on a random frame: the encoder's outputs
    and ``steps`` decoder steps (teacher-forced on random tokens, the cache carried by the runtime's bound buffers);
    raises ``AssertionError`` when the fp32 logits differ by more than ``atol``.  Returns the largest absolute
    differences (the int8 decoder's against PyTorch too, for information)."""
    import onnx
    out_dir = Path(out_dir)
    meta = load_metadata(out_dir)
    for graph in meta['graphs'].values():
        onnx.checker.check_model(str(out_dir / graph['file']))
    model = model.cpu().eval()
    head = model.head
    batch = meta['batch_size']
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, *meta['preprocess']['pad_size'], generator=generator)
    runtime = Pix2SeqRuntime(out_dir)
    with torch.no_grad():
        expected = EncoderModule(model, meta['preprocess']['pad_size'])(image)
    encoded = runtime.encode(image.numpy())
    got = [encoded.memory] + encoded.memory_key_value
    result = dict(encoder_max_abs_diff=max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, expected)))
    steps = min(steps, head.tokenizer.seq_len)
    tokens = torch.randint(0, head.tokenizer.vocab_size, (batch, steps), generator=generator)
    tokens[:, 0] = head.tokenizer.BOS
    reference = torch_decoder_logits(head, expected[0], tokens).numpy()
    decoders = ['fp32'] + (['int8'] if 'decoder_step_int8' in meta['graphs'] else [])
    for decoder in decoders:
        step_runtime = runtime if decoder == 'fp32' else Pix2SeqRuntime(out_dir, decoder=decoder)
        step_runtime.decoder.start(encoded)
        logits = np.stack([step_runtime.decoder.step(tokens[:, t].numpy(), t).copy() for t in range(steps)], 1)
        result[f'{decoder}_logits_max_abs_diff'] = float(np.abs(logits - reference).max())
    if result['encoder_max_abs_diff'] > 1e-3 * max(1.0, float(np.abs(expected[0].numpy()).max())):
        raise AssertionError(f'encoder.onnx differs from PyTorch: {result}')
    if result['fp32_logits_max_abs_diff'] > atol:
        raise AssertionError(f'decoder_step.onnx logits differ from PyTorch by more than {atol}: {result}')
    return result
