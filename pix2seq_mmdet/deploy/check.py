"""Check of an export: ``onnx.checker`` on every graph, then ONNX Runtime against PyTorch on a random frame."""
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from .instances import prompt_boxes
from .metadata import TOKENS_PER_OBJECT, load_metadata
from .runtime import Pix2SeqRuntime
from .traced import EncoderModule


def torch_decoder_logits(head: nn.Module, memory: Tensor, tokens: Tensor, image_index: Optional[Tensor] = None,
                         row_memory: Optional[Tensor] = None) -> Tensor:
    """Teacher-forced incremental logits of the PyTorch head's static-shape step: (B, S, D) memory and (N, T) input
    tokens (N = B, or rows reading images ``image_index`` with their ``row_memory``) -> (N, T, V), one
    ``forward_step`` per position with a tensor position."""
    with torch.no_grad():
        cache = head.init_cache(memory, None, image_index, row_memory=row_memory)
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


def box_memory_rows(model: nn.Module, image: Tensor, memory: Tensor, runtime: Pix2SeqRuntime, encoded,
                    steps: int, generator: torch.Generator) -> float:
    """The head's box memory: one instance row per image, its prompt's box drawn at random, teacher-forced for
    ``steps`` positions in PyTorch (:meth:`Pix2SeqHead.prompt_memory`) and in the runtime (the fine level's keys and
    values sampled in numpy) -> the largest absolute difference of their logits."""
    head, batch, pad_size = model.head, image.shape[0], tuple(runtime.meta['preprocess']['pad_size'])
    corners = torch.rand(batch, 2, 2, generator=generator).sort(dim=1).values  # (y, x) of two corners each
    prompts = head.tokenizer.instance_prompts(corners.flatten(1), torch.zeros(batch, dtype=torch.long),
                                              head.tokenizer.tasks[1])
    rows = torch.cat([prompts, torch.randint(0, head.tokenizer.vocab_size, (batch, steps), generator=generator)], 1)
    image_index = torch.arange(batch)
    sample = DetDataSample(metainfo=dict(batch_input_shape=pad_size, img_shape=pad_size, pad_shape=pad_size))
    with torch.no_grad():
        fine_map = model.encode_levels(image, [sample] * batch)[4]
        row_memory = head.prompt_memory(fine_map, image_index, rows, pad_size)
    reference = torch_decoder_logits(head, memory, rows, image_index, row_memory).numpy()
    runtime.decoder.start(encoded, image_index.numpy(), prompt_boxes(prompts.numpy(), runtime.vocab))
    logits = np.stack([runtime.decoder.step(rows[:, t].numpy(), t).copy() for t in range(rows.shape[1])], 1)
    return float(np.abs(logits - reference).max())


def check_export(model: nn.Module, out_dir: Union[str, Path], steps: int = 6, seed: int = 0,
                 atol: float = 1e-4) -> Dict[str, float]:
    """``onnx.checker`` on every graph, then ONNX Runtime against PyTorch on a random frame: the encoder's outputs
    and ``steps`` decoder steps (teacher-forced on random tokens, the cache carried by the runtime's bound buffers);
    with the head's box memory also instance rows reading it (:func:`box_memory_rows`); raises ``AssertionError``
    when the fp32 logits differ by more than ``atol``.  Returns the largest absolute
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
    got = [encoded.memory] + encoded.memory_key_value + encoded.fine_key_value
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
    if meta['geometry'].get('box_memory'):
        result['fp32_box_memory_logits_max_abs_diff'] = box_memory_rows(model, image, expected[0], runtime, encoded,
                                                                        steps, generator)
    if result['encoder_max_abs_diff'] > 1e-3 * max(1.0, float(np.abs(expected[0].numpy()).max())):
        raise AssertionError(f'encoder.onnx differs from PyTorch: {result}')
    checked = (('fp32_logits_max_abs_diff', 'decoder_step'), ('fp32_block_logits_max_abs_diff', 'decoder_block'),
               ('fp32_box_memory_logits_max_abs_diff', 'decoder_step'))
    for key, graph in checked:
        if result.get(key, 0.0) > atol:
            raise AssertionError(f'{graph}.onnx logits differ from PyTorch by more than {atol}: {result}')
    return result
