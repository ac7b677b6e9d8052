"""Check of an export: ``onnx.checker`` on every graph, then ONNX Runtime against PyTorch on a random frame."""
from pathlib import Path
from typing import Dict, List, Union

import numpy as np
import torch
from torch import Tensor, nn

from .metadata import TOKENS_PER_OBJECT, load_metadata
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


def torch_block_logits(head: nn.Module, memory: Tensor, tokens: Tensor) -> List[Tensor]:
    """The PyTorch head's first two block steps of parallel decoding (``decoding.decode_in_blocks``) on (B, 6)
    teacher-forced tokens, BOS and one object: BOS at position 0, then the object's five tokens at positions 1 .. 5,
    each followed by the ``TOKENS_PER_OBJECT - 1`` block queries -> their (B, 5, V) and (B, 9, V) logits."""
    with torch.no_grad():
        cache = head.init_cache(memory, None)
        return [head.block_step(real, torch.tensor([position]), cache)
                for real, position in ((tokens[:, :1], 0), (tokens[:, 1:], 1))]


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
    block_tokens = torch.randint(0, head.tokenizer.vocab_size, (batch, TOKENS_PER_OBJECT + 1), generator=generator)
    block_tokens[:, 0] = head.tokenizer.BOS
    check_blocks = 'decoder_block' in meta['graphs'] and head.tokenizer.num_positions >= 2 * TOKENS_PER_OBJECT
    block_reference = torch_block_logits(head, expected[0], block_tokens) if check_blocks else None
    decoders = ['fp32'] + (['int8'] if 'decoder_step_int8' in meta['graphs'] else [])
    for decoder in decoders:
        step_runtime = runtime if decoder == 'fp32' else Pix2SeqRuntime(out_dir, decoder=decoder)
        step_runtime.decoder.start(encoded)
        logits = np.stack([step_runtime.decoder.step(tokens[:, t].numpy(), t).copy() for t in range(steps)], 1)
        result[f'{decoder}_logits_max_abs_diff'] = float(np.abs(logits - reference).max())
        if check_blocks:  # the block step of parallel decoding
            step_runtime.decoder.start(encoded)
            block_logits = [step_runtime.decoder.block_step(block_tokens[:, :1].numpy(), 0).copy(),
                            step_runtime.decoder.block_step(block_tokens[:, 1:].numpy(), 1).copy()]
            result[f'{decoder}_block_logits_max_abs_diff'] = max(
                float(np.abs(got - want.numpy()).max()) for got, want in zip(block_logits, block_reference))
    if result['encoder_max_abs_diff'] > 1e-3 * max(1.0, float(np.abs(expected[0].numpy()).max())):
        raise AssertionError(f'encoder.onnx differs from PyTorch: {result}')
    checked = (('fp32_logits_max_abs_diff', 'decoder_step'), ('fp32_block_logits_max_abs_diff', 'decoder_block'))
    for key, graph in checked:
        if result.get(key, 0.0) > atol:
            raise AssertionError(f'{graph}.onnx logits differ from PyTorch by more than {atol}: {result}')
    return result
