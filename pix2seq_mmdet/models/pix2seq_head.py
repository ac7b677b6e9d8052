"""The Pix2Seq sequence head: a Transformer decoder over the token sequence, its loss and its prediction."""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_flip, get_box_tensor
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .box_memory import BoxMemory
from .decoding import (DecodingCache, DecodingConfig, StaticStep, block_attention_mask, decode_in_blocks,
                       decode_responses, decode_sequences)
from .instance_prediction import InstanceDecodingConfig, boxes_in_frame, distinct_boxes
from .instance_sequences import InstanceSegmentationSequences, InstanceSequences, KeypointSequences
from .keypoint_prediction import KeypointDecodingConfig
from .mask_prediction import MaskDecodingConfig
from .sequence_augmentation import SequenceAugmentation
from .tokenizer import TOKENS_PER_OBJECT, Pix2SeqTokenizer
from .transformer import TransformerLayer


# each instance task's training sequences and prediction options
INSTANCE_TASKS = dict(instance_segmentation=(InstanceSegmentationSequences, MaskDecodingConfig),
                      keypoints=(KeypointSequences, KeypointDecodingConfig))


@MODELS.register_module()
class Pix2SeqHead(BaseModule):
    """Autoregressive decoder that reads the encoder memory and writes ``[ymin, xmin, ymax, xmax, class]`` tokens.

    Pre-norm Transformer decoder with learned token and position embeddings; the output layer is tied to the token
    embedding and has its own bias.  Sizes are the paper's by default.

    The head owns the vocabulary: its tokenizer builds the training sequences (``train_cfg``, the sequence
    augmentation) and reads the decoded ones (``test_cfg``), so no other part of a config repeats it.

    Pix2Seq v2's instance tasks (in ``tokenizer.tasks``): the same decoder also learns, per ground-truth instance,
    the sequence ``[task, box, class] -> response`` of each task, and at inference answers a prompt per detected box
    (:mod:`~.instance_prediction`):

    * ``instance_segmentation``: the response is a polygon
      (:class:`~.instance_sequences.InstanceSegmentationSequences`, options in ``train_cfg.instance_segmentation``,
      logged and summed as ``loss_segm``); sampled polygons become ``pred_instances.masks`` (:mod:`~.mask_prediction`,
      options in ``test_cfg.instance_segmentation``);
    * ``keypoints``: the response is the object's keypoints (:class:`~.instance_sequences.KeypointSequences`,
      ``train_cfg.keypoints``, ``loss_keypoints``); they become ``pred_instances.keypoints`` (N, K, 2) and
      ``keypoint_scores`` (N, K) (:mod:`~.keypoint_prediction`, ``test_cfg.keypoints``).

    Args:
        tokenizer (dict): ``Pix2SeqTokenizer`` arguments (``num_classes``, ``num_bins``, ``max_objects``), written
            once per config.
        embed_dims (int): Decoder width ``D``.
        num_layers (int): Decoder layers.
        num_heads (int): Attention heads.
        ffn_dims (int): Feed-forward hidden width.
        dropout (float): Dropout of the FFN hidden units.
        drop_path (float): Stochastic depth rate of the residual branches.
        attn_dropout (float): Dropout of the attention weights (the official detection configs: 0).
        coord_target_sigma (float): Standard deviation, in bins, of a Gaussian soft target for coordinate tokens
            (a convergence option, not in the paper): the loss of a coordinate token becomes the cross-entropy
            against that Gaussian over the bins, so a prediction one bin off is nearly right, which teaches the
            order of the bins from the start (the logged ``coord_ce`` then includes the target's own entropy).
            0 (default): the paper's one-hot target.
        loss_bbox (dict, optional): An mmdet regression loss (e.g. ``dict(type='L1Loss', loss_weight=5.0)``, DETR's)
            on each real object's *expected box*: every coordinate the mean of its teacher-forced distribution over
            the coordinate tokens, normalised to [0, 1] as the target box (:meth:`expected_box_losses`).  A
            convergence option, not in the paper: the cross-entropy says only whether a coordinate hit its bin, this
            loss how far it is.  Logged and summed as ``loss_bbox``.  Default None.
        loss_iou (dict, optional): An mmdet IoU loss (e.g. ``dict(type='GIoULoss', loss_weight=2.0)``, DETR's) on
            the same expected boxes, whose cost of a one-bin error grows as the object shrinks.  Logged and summed as
            ``loss_iou``.  Default None.
        norm_eps (float): Epsilon of every LayerNorm of the decoder, the final one included (official: 1e-6; the
            default 1e-5 is torch's).
        block_decoding (dict, optional): Train the decoder to write a whole object in one step too (parallel box
            decoding, not in the paper): ``block_size`` (positions per block, default 5: an object) and
            ``loss_weight`` (default 1.0).  Besides the usual next-token loss, a query stream predicts every block's
            tokens from the real tokens before the block (:meth:`block_logits`), logged and summed as
            ``loss_block``; it adds one learned ``block_query`` embedding.  ``test_cfg.parallel=True`` then decodes
            one object per decoder step (:meth:`generate_in_blocks`).  Default None: the paper's decoder.
        box_memory (dict, optional): :class:`~.box_memory.BoxMemory` options (``size``): every instance task's
            sequence also reads ``size`` x ``size`` tokens of the detector's fine level sampled inside its prompt's
            box, after the image's memory (:meth:`prompt_memory`; the detector passes the level as ``fine_map``).
            Detection sequences do not.  Needs an instance task.  Default None: the official decoder's memory.
        train_cfg (dict, optional): :class:`~.sequence_augmentation.SequenceAugmentation` options (object order,
            noise, token weights, input corruption, sequences per image), and per instance task its sequences'
            options (``instance_segmentation``: :class:`~.instance_sequences.InstanceSegmentationSequences`,
            ``keypoints``: :class:`~.instance_sequences.KeypointSequences`).
        test_cfg (dict, optional): :class:`DecodingConfig` fields plus ``classes_per_box`` (default 1, the paper:
            each decoded box is one detection of its most probable class; ``k`` > 1 makes it ``k`` detections, one
            per class among its ``k`` most probable, each scored by that class's probability, as DETR-style
            detectors rank query x class pairs; ``'all'``: one per class) and ``max_per_img`` (default: every
            detection, ``max_objects * classes_per_box``), and per instance task its prediction options
            (``instance_segmentation``: :class:`~.mask_prediction.MaskDecodingConfig`, ``keypoints``:
            :class:`~.keypoint_prediction.KeypointDecodingConfig`).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, tokenizer: dict, embed_dims: int = 256, num_layers: int = 6,
                 num_heads: int = 8, ffn_dims: int = 1024, dropout: float = 0.1, drop_path: float = 0.1,
                 attn_dropout: float = 0.0, coord_target_sigma: float = 0.0, loss_bbox: Optional[dict] = None,
                 loss_iou: Optional[dict] = None, norm_eps: float = 1e-5,
                 block_decoding: Optional[dict] = None, box_memory: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.tokenizer = Pix2SeqTokenizer(**tokenizer)
        train_cfg, test_cfg = dict(train_cfg or {}), dict(test_cfg or {})
        for name, cfg in (('train_cfg', train_cfg), ('test_cfg', test_cfg)):
            for task in INSTANCE_TASKS:
                if task in cfg and task not in self.tokenizer.tasks:
                    raise ValueError(f'{name}.{task} is set but model.head.tokenizer.tasks {self.tokenizer.tasks!r} '
                                     f'has no \'{task}\'')
        # per configured instance task, its training sequences and its prediction options, in tokenizer order
        self.instance_sequences: Dict[str, InstanceSequences] = {}
        self.instance_decoding_cfgs: Dict[str, InstanceDecodingConfig] = {}
        for task in self.tokenizer.tasks[1:]:
            sequences_cls, decoding_cls = INSTANCE_TASKS[task]
            self.instance_sequences[task] = sequences_cls(self.tokenizer, **train_cfg.pop(task, {}))
            self.instance_decoding_cfgs[task] = decoding_cls(**test_cfg.pop(task, {}))
        if len({cfg.prompt_boxes for cfg in self.instance_decoding_cfgs.values()}) > 1:
            raise ValueError('test_cfg: every instance task must prompt with the same boxes (prompt_boxes), got '
                             + ', '.join(f'{task}: {cfg.prompt_boxes!r}'
                                         for task, cfg in self.instance_decoding_cfgs.items()))
        self.sequence_augmentation = SequenceAugmentation(self.tokenizer, **train_cfg)
        self.classes_per_box = test_cfg.pop('classes_per_box', 1)
        if self.classes_per_box == 'all':
            self.classes_per_box = self.tokenizer.num_classes
        if not (isinstance(self.classes_per_box, int) and 1 <= self.classes_per_box <= self.tokenizer.num_classes):
            raise ValueError(f'test_cfg.classes_per_box must be \'all\' or in [1, num_classes='
                             f'{self.tokenizer.num_classes}], got {self.classes_per_box!r}')
        self.max_per_img = test_cfg.pop('max_per_img', None) or self.tokenizer.max_objects * self.classes_per_box
        self.decoding_cfg = DecodingConfig(**test_cfg)
        self.num_heads = num_heads
        self.embed_dims = embed_dims
        self.ffn_dims = ffn_dims
        self.dropout = dropout
        self.drop_path = drop_path
        self.norm_eps = norm_eps
        if coord_target_sigma < 0:
            raise ValueError(f'Pix2SeqHead: coord_target_sigma must be >= 0 (bins), got {coord_target_sigma}')
        self.coord_target_sigma = coord_target_sigma
        self.loss_bbox = None if loss_bbox is None else MODELS.build(loss_bbox)
        self.loss_iou = None if loss_iou is None else MODELS.build(loss_iou)
        self.token_embed = nn.Embedding(self.tokenizer.vocab_size, embed_dims)
        self.pos_embed = nn.Embedding(self.tokenizer.num_positions, embed_dims)
        self.layers = nn.ModuleList(
            TransformerLayer(embed_dims, num_heads, ffn_dims, dropout, drop_path, attn_dropout, cross_attention=True,
                             norm_eps=norm_eps)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.output_bias = nn.Parameter(torch.zeros(self.tokenizer.vocab_size))
        self.block_size = self.block_loss_weight = None
        if block_decoding is not None:
            options = dict(block_decoding)
            self.block_size = int(options.pop('block_size', TOKENS_PER_OBJECT))
            self.block_loss_weight = float(options.pop('loss_weight', 1.0))
            if options:
                raise ValueError(f'block_decoding: unknown options {sorted(options)} (block_size, loss_weight)')
            if not 1 <= self.block_size <= TOKENS_PER_OBJECT:
                raise ValueError(f'block_decoding.block_size must be in [1, {TOKENS_PER_OBJECT}], got '
                                 f'{self.block_size}')
            self.block_query = nn.Parameter(torch.zeros(embed_dims))
        if box_memory is not None and not self.instance_sequences:
            raise ValueError('box_memory samples the fine level inside instance prompts\' boxes, but '
                             f'tokenizer.tasks {self.tokenizer.tasks!r} has no instance task')
        self.box_memory = None if box_memory is None else BoxMemory(**box_memory)
        if self.decoding_cfg.parallel and self.block_size != TOKENS_PER_OBJECT:
            raise ValueError('test_cfg.parallel decodes one object per step, which the decoder learns with '
                             f'block_decoding=dict(block_size={TOKENS_PER_OBJECT}); this head has '
                             f'block_decoding={None if self.block_size is None else dict(block_size=self.block_size)}'
                             ' (a checkpoint trained without it cannot decode in parallel)')

    def init_weights(self) -> None:
        super().init_weights()
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.token_embed.weight, std=0.02)
        nn.init.trunc_normal_(self.pos_embed.weight, std=0.02)
        if self.block_size is not None:
            nn.init.trunc_normal_(self.block_query, std=0.02)

    # ------------------------------------------------------------------ decoder
    def project_memory(self, memory: Tensor, memory_mask: Optional[Tensor], image_index: Optional[Tensor] = None,
                       row_memory: Optional[Tensor] = None) -> Tuple[List[Tuple[Tensor, Tensor]], Optional[Tensor]]:
        """(B, S, D) memory, optional (B, S) padding mask -> per layer the cross-attention keys and values, each
        (N, H, S, Dh), and the (N, 1, 1, S) bool attention mask (True: attend; None without padding mask), for N
        sequences reading image ``image_index`` (N,) each (default: one per image, N = B); the memory is projected
        once per image.  ``row_memory`` (N, R, D), each sequence's own tokens (:meth:`prompt_memory`), follows its
        image's: keys and values (N, H, S + R, Dh)."""
        memory_key_value = [layer.cross_attn.project_key_value(memory) for layer in self.layers]
        memory_attn_mask = None if memory_mask is None else ~memory_mask[:, None, None, :]
        if image_index is not None:
            memory_key_value = [(key.index_select(0, image_index), value.index_select(0, image_index))
                                for key, value in memory_key_value]
            if memory_attn_mask is not None:
                memory_attn_mask = memory_attn_mask.index_select(0, image_index)
        if row_memory is not None:
            if memory_attn_mask is not None:
                raise ValueError('row memory (box_memory) follows an unmasked memory: mask_padding must be False')
            row_key_value = [layer.cross_attn.project_key_value(row_memory) for layer in self.layers]
            memory_key_value = [(torch.cat([key, row_key], 2), torch.cat([value, row_value], 2))
                                for (key, value), (row_key, row_value) in zip(memory_key_value, row_key_value)]
        return memory_key_value, memory_attn_mask

    def prompt_memory(self, fine_map: Optional[Tensor], image_index: Tensor, input_tokens: Tensor,
                      frame_hw: Sequence[int]) -> Optional[Tensor]:
        """With ``box_memory``: the (N, size ** 2, D) tokens of the (B, D, h, w) ``fine_map`` sampled inside the box
        of each instance sequence's prompt (``input_tokens`` (N, T) from ``[task, ymin, xmin, ymax, xmax, class]``,
        image ``image_index`` (N,), boxes normalised to ``frame_hw``).  None without ``box_memory``."""
        if self.box_memory is None:
            return None
        if fine_map is None:
            raise ValueError('Pix2SeqHead: box_memory needs the detector\'s fine level (fine_map), which Pix2Seq '
                             'passes when its head has box_memory')
        boxes_yxyx = self.tokenizer.prompt_boxes(input_tokens).to(fine_map.dtype)
        return self.box_memory(fine_map, image_index, boxes_yxyx, frame_hw)

    def embed_tokens(self, tokens: Tensor, positions: Optional[Tensor] = None) -> Tensor:
        """(B, T) tokens at (T,) ``positions`` (default 0 .. T - 1) -> (B, T, D) token plus position embeddings."""
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.token_embed(tokens) + self.pos_embed(positions)

    def logits(self, hidden: Tensor) -> Tensor:
        """(B, T, D) decoder states -> (B, T, V) logits through the tied output layer."""
        return F.linear(self.norm(hidden), self.token_embed.weight, self.output_bias)

    @staticmethod
    def sequence_images(memory: Tensor, num_sequences: int) -> Optional[Tensor]:
        """The image each of ``num_sequences`` teacher-forced sequences reads when every image has the same number
        of them in consecutive rows (``train_cfg.sequences_per_image``): (N,) int64, or None for one per image."""
        sequences_per_image, rest = divmod(num_sequences, memory.shape[0])
        if rest:
            raise ValueError(f'{num_sequences} sequences for {memory.shape[0]} images: expected a multiple, or '
                             'image_index')
        if sequences_per_image == 1:
            return None
        return torch.arange(memory.shape[0], device=memory.device).repeat_interleave(sequences_per_image)

    def forward(self, memory: Tensor, memory_mask: Optional[Tensor], input_tokens: Tensor,
                image_index: Optional[Tensor] = None, row_memory: Optional[Tensor] = None) -> Tensor:
        """Teacher-forced decoding of whole sequences.

        Args:
            memory (Tensor): (B, S, D) encoder output projected to the decoder width.
            memory_mask (Tensor, optional): (B, S) bool, True at padded positions.
            input_tokens (Tensor): (N, T) int64, the task prompt first.
            image_index (Tensor, optional): (N,) int64, the image each sequence reads; default: N = B * K, K
                sequences per image in consecutive rows (``train_cfg.sequences_per_image``).  The memory is
                projected once per image.
            row_memory (Tensor, optional): (N, R, D), each sequence's own memory after its image's
                (:meth:`prompt_memory`).

        Returns:
            Tensor: (N, T, V) logits of the next token at every position.
        """
        if image_index is None:
            image_index = self.sequence_images(memory, input_tokens.shape[0])
        memory_key_value, memory_attn_mask = self.project_memory(memory, memory_mask, image_index, row_memory)
        hidden = self.embed_tokens(input_tokens)
        for layer, layer_memory in zip(self.layers, memory_key_value):
            hidden = layer(hidden, is_causal=True, memory_key_value=layer_memory, memory_attn_mask=memory_attn_mask)
        return self.logits(hidden)

    def block_logits(self, memory: Tensor, memory_mask: Optional[Tensor], input_tokens: Tensor) -> Tensor:
        """Teacher-forced logits of the block query stream (``block_decoding``): (N, L) input tokens -> (N, L, V).

        The decoder reads 2 L tokens, the real sequence then a query stream.  Query position ``p`` of the block that
        starts at ``s`` (blocks of ``block_size`` positions from 0) has the real token as input at ``s`` and the
        learned ``block_query`` elsewhere, and attends to the real tokens before ``s`` and to its block's queries up
        to itself (:func:`~.decoding.block_attention_mask`); the real stream is the usual causal decoder.  So the
        logits at ``p`` predict token ``p + 1`` from the real tokens before its block, as parallel decoding does;
        with blocks of one position they are the causal logits.
        """
        num_rows, length = input_tokens.shape
        image_index = self.sequence_images(memory, num_rows)
        memory_key_value, memory_attn_mask = self.project_memory(memory, memory_mask, image_index)
        positions = torch.arange(length, device=input_tokens.device)
        real = self.embed_tokens(input_tokens)
        block_start = positions % self.block_size == 0
        queries = torch.where(block_start[:, None], real, self.block_query + self.pos_embed(positions))
        hidden = torch.cat([real, queries], dim=1)  # (N, 2 L, D)
        attn_mask = block_attention_mask(length, self.block_size, input_tokens.device)[None, None]
        for layer, layer_memory in zip(self.layers, memory_key_value):
            hidden = layer(hidden, self_attn_mask=attn_mask, memory_key_value=layer_memory,
                           memory_attn_mask=memory_attn_mask)
        return self.logits(hidden[:, length:])

    def init_cache(self, memory: Tensor, memory_mask: Optional[Tensor], image_index: Optional[Tensor] = None,
                   max_len: Optional[int] = None, row_memory: Optional[Tensor] = None) -> DecodingCache:
        """Project the memory for every layer once and preallocate the self-attention buffers of ``max_len``
        positions (default: the detection sequence's) for one sequence per image, or per entry of ``image_index``,
        with each row's ``row_memory`` (see :meth:`project_memory`)."""
        memory_key_value, memory_attn_mask = self.project_memory(memory, memory_mask, image_index, row_memory)
        return DecodingCache.allocate(memory_key_value, memory_attn_mask, self.num_heads,
                                      self.embed_dims // self.num_heads, max_len or self.tokenizer.seq_len)

    def forward_step(self, tokens: Tensor, position: Union[int, Tensor], cache: DecodingCache,
                     query_mask: Optional[Tensor] = None) -> Tensor:
        """Incremental decoding: (B, T) tokens at ``position .. position + T - 1`` -> (B, T, V) logits.

        ``position`` is an ``int``, or a (1,) int64 tensor on the cache's device for static shapes (CUDA graphs;
        see :meth:`DecodingCache.seek`).  ``query_mask`` (T,) bool: positions whose input is the learned block query
        instead of their token (parallel decoding, :meth:`generate_in_blocks`).
        """
        cache.seek(position, tokens.shape[1])
        hidden = self.embed_tokens(tokens, cache.positions)
        if query_mask is not None:
            hidden = torch.where(query_mask[:, None], self.block_query + self.pos_embed(cache.positions), hidden)
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, memory_key_value=cache.memory_key_value[index],
                           memory_attn_mask=cache.memory_attn_mask, extend_cache=partial(cache.extend, index))
        return self.logits(hidden)

    def block_step(self, real: Tensor, position: Union[int, Tensor], cache: DecodingCache,
                   with_queries: bool = True) -> Tensor:
        """A step of parallel decoding (:func:`~.decoding.decode_in_blocks`): (B, T) real tokens at ``position ..``,
        followed by ``TOKENS_PER_OBJECT - 1`` positions that read the learned block query when ``with_queries`` ->
        (B, T (+ 4), V) logits at every position."""
        if not with_queries:
            return self.forward_step(real, position, cache)
        queries = TOKENS_PER_OBJECT - 1
        tokens = torch.cat([real, real.new_full((real.shape[0], queries), self.tokenizer.PAD)], dim=1)
        query_mask = torch.arange(tokens.shape[1], device=real.device) >= real.shape[1]
        return self.forward_step(tokens, position, cache, query_mask)

    # --------------------------------------------------------------------- loss
    def _token_cross_entropy(self, logits: Tensor, target_tokens: Tensor) -> Tensor:
        """(B, L, V) logits and (B, L) targets -> (B, L) cross-entropy; coordinate targets are Gaussian over the
        bins when ``coord_target_sigma`` > 0."""
        log_probs = logits.float().log_softmax(-1)
        token_ce = -log_probs.gather(-1, target_tokens[..., None]).squeeze(-1)
        if self.coord_target_sigma == 0:
            return token_ce
        tokenizer = self.tokenizer
        bins = torch.arange(tokenizer.num_bins, device=logits.device, dtype=log_probs.dtype)
        target_bins = tokenizer.bins(target_tokens)[..., None].to(log_probs.dtype)
        soft_target = (-0.5 * ((bins - target_bins) / self.coord_target_sigma)**2).softmax(-1)  # (B, L, bins)
        soft_ce = -(soft_target * log_probs[..., tokenizer.coordinates]).sum(-1)
        return torch.where(tokenizer.is_coord(target_tokens), soft_ce, token_ce)

    def loss(self, memory: Tensor, memory_mask: Optional[Tensor], batch_data_samples: SampleList,
             fine_map: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Weighted softmax cross-entropy over the vocabulary, normalised by the sum of the token weights, on the
        sequences :attr:`sequence_augmentation` builds from the data samples' ``gt_instances``, and each instance
        task's loss (its sequences reading ``fine_map`` (B, D, h, w) inside their boxes with ``box_memory``).

        Returns ``loss`` (the optimised value) and, for the log only, the weighted cross-entropy of the coordinate,
        class and EOS tokens (``coord_ce``, ``class_ce``, ``eos_ce``; not summed into the loss by mmengine since
        their names do not contain "loss").
        """
        input_tokens, target_tokens, token_weights = self.sequence_augmentation(batch_data_samples)
        logits = self(memory, memory_mask, input_tokens)
        token_ce = self._token_cross_entropy(logits, target_tokens) * token_weights
        # normalised by the weight sum averaged over the ranks (mmdet's reduce_mean, as DETR's num_total_pos), so the
        # DDP gradient equals a single process's on the global batch
        losses = dict(loss=token_ce.sum() / reduce_mean(token_weights.sum()).clamp(min=1e-6))
        parts = dict(coord_ce=self.tokenizer.is_coord(target_tokens), class_ce=self.tokenizer.is_class(target_tokens),
                     eos_ce=target_tokens == self.tokenizer.EOS)
        with torch.no_grad():
            for name, mask in parts.items():
                part_weights = token_weights * mask
                losses[name] = token_ce.detach().mul(mask).sum() / part_weights.sum().clamp(min=1e-6)
        if self.loss_bbox is not None or self.loss_iou is not None:
            losses.update(self.expected_box_losses(logits, target_tokens, token_weights))
        if self.block_size is not None:
            block_ce = self._token_cross_entropy(self.block_logits(memory, memory_mask, input_tokens),
                                                 target_tokens) * token_weights
            losses['loss_block'] = self.block_loss_weight * block_ce.sum() / reduce_mean(
                token_weights.sum()).clamp(min=1e-6)
        for sequences in self.instance_sequences.values():
            losses[sequences.loss_name] = self.instance_task_loss(sequences, memory, memory_mask, batch_data_samples,
                                                                  fine_map)
        return losses

    def expected_box_losses(self, logits: Tensor, target_tokens: Tensor, token_weights: Tensor) -> Dict[str, Tensor]:
        """``loss_bbox`` and ``loss_iou`` (those configured) of the real objects' expected boxes.

        Args:
            logits (Tensor): (N, L, V) teacher-forced logits of the detection sequences.
            target_tokens (Tensor): (N, L) their targets, object ``k`` at positions ``5k .. 5k + 4``.
            token_weights (Tensor): (N, L) their loss weights; an object is real where its first coordinate is a
                coordinate target of non-zero weight (noise objects' coordinates weigh 0).

        A real object's expected box is (R, 4) ``yxyx``, each coordinate the mean bin of the softmax over the
        coordinate tokens at its position divided by ``num_bins - 1``; the losses compare it with the target box
        (the IoU loss in ``xyxy``, the expected box's pairs ordered so that an inverted box stays a box) and average
        over the real objects of the batch (averaged over the ranks), as DETR's box losses average over its matched
        queries.
        """
        tokenizer = self.tokenizer
        num_slots, num_bins = tokenizer.max_objects, tokenizer.num_bins
        slots = slice(0, TOKENS_PER_OBJECT * num_slots)
        slot_targets = target_tokens[:, slots].reshape(-1, num_slots, TOKENS_PER_OBJECT)[..., :4]  # (N, M, 4)
        slot_weights = token_weights[:, slots].reshape(-1, num_slots, TOKENS_PER_OBJECT)[..., 0]
        real = tokenizer.is_coord(slot_targets[..., 0]) & (slot_weights > 0)  # (N, M)
        coord_logits = logits[:, slots, tokenizer.coordinates].float()
        coord_logits = coord_logits.reshape(-1, num_slots, TOKENS_PER_OBJECT, num_bins)[:, :, :4][real]  # (R, 4, bins)
        bin_values = torch.arange(num_bins, device=logits.device, dtype=torch.float32) / (num_bins - 1)
        expected = coord_logits.softmax(-1) @ bin_values  # (R, 4) yxyx
        target = tokenizer.dequantize(slot_targets[real])
        num_boxes = reduce_mean(real.sum().float()).clamp(min=1.0)
        losses = {}
        if self.loss_bbox is not None:
            losses['loss_bbox'] = self.loss_bbox(expected, target, avg_factor=num_boxes)
        if self.loss_iou is not None:
            ordered = torch.cat([torch.minimum(expected[:, :2], expected[:, 2:]),
                                 torch.maximum(expected[:, :2], expected[:, 2:])], -1)
            unit_frame = (1, 1)  # normalised boxes stay normalised
            losses['loss_iou'] = self.loss_iou(tokenizer.denormalize_boxes(ordered, unit_frame),
                                               tokenizer.denormalize_boxes(target, unit_frame), avg_factor=num_boxes)
        return losses

    def instance_task_loss(self, sequences: InstanceSequences, memory: Tensor, memory_mask: Optional[Tensor],
                           batch_data_samples: SampleList, fine_map: Optional[Tensor] = None) -> Tensor:
        """``loss_weight`` times the weighted cross-entropy of an instance task's ``sequences``, normalised by their
        weight sum (averaged over the ranks), as the official multi-task loss weighs each task's own normalised
        loss."""
        built = sequences(batch_data_samples, memory.device)
        if built is None:  # no usable instance in this batch: a zero that keeps the graph (and DDP) whole
            reduce_mean(memory.new_zeros(()))
            return memory.sum() * 0
        input_tokens, target_tokens, token_weights, image_index = built
        row_memory = self.prompt_memory(fine_map, image_index, input_tokens, frame_shape(batch_data_samples))
        logits = self(memory, memory_mask, input_tokens, image_index, row_memory)
        token_ce = self._token_cross_entropy(logits, target_tokens) * token_weights
        normaliser = reduce_mean(token_weights.sum()).clamp(min=1e-6)
        return sequences.loss_weight * token_ce.sum() / normaliser

    # ---------------------------------------------------------------- predict
    @torch.inference_mode()
    def generate(self, memory: Tensor, memory_mask: Optional[Tensor],
                 generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Autoregressive decoding with ``test_cfg``, in inference mode (no autograd bookkeeping per step).

        Args:
            memory (Tensor): (B, S, D) encoder output projected to the decoder width.
            memory_mask (Tensor, optional): (B, S) bool, True at padded positions.
            generator (torch.Generator, optional): Randomness of the sampling strategies.

        Returns:
            tuple: ``tokens`` (B, 5 * max_objects), ``class_probs`` (B, max_objects, C) and ``coords``
            (B, 5 * max_objects), the normalised coordinates read at the coordinate positions
            (:func:`~.decoding.decode_sequences`).
        """
        cfg = self.decoding_cfg
        if cfg.parallel:
            return self.generate_in_blocks(memory, memory_mask)
        beam_width = cfg.beam_width if cfg.strategy == 'beam' else 1
        if beam_width > 1:
            memory = memory.repeat_interleave(beam_width, dim=0)
            memory_mask = None if memory_mask is None else memory_mask.repeat_interleave(beam_width, dim=0)
        if cfg.use_cache:
            cache = self.init_cache(memory, memory_mask)

            def step(tokens: Tensor, position: Union[int, Tensor]) -> Tensor:
                return self.forward_step(tokens, position, cache)[:, -1]

            cuda_graph = cfg.cuda_graph and memory.is_cuda
            if cfg.compile or cuda_graph:
                static_step = torch.compile(step, fullgraph=True, dynamic=False) if cfg.compile else step
                step = StaticStep(static_step, memory.shape[0], memory.device, cuda_graph)
            reorder = cache.reorder
        else:
            prefix = memory.new_empty((memory.shape[0], 0), dtype=torch.long)

            def step(tokens: Tensor, position: int) -> Tensor:
                nonlocal prefix
                prefix = torch.cat([prefix, tokens], dim=1)
                return self(memory, memory_mask, prefix)[:, -1]

            def reorder(rows: Tensor) -> None:
                nonlocal prefix
                prefix = prefix[rows]

        return decode_sequences(step, memory.shape[0] // beam_width, memory.device, self.tokenizer, cfg,
                                reorder, generator)

    def generate_in_blocks(self, memory: Tensor, memory_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """Greedy decoding of one object per decoder step (``test_cfg.parallel``, a head trained with
        ``block_decoding``): :func:`~.decoding.decode_in_blocks` over :meth:`forward_step` with the key/value cache,
        every drafted object checked against the next step's token-by-token logits unless
        ``test_cfg.parallel_verify=False``.  Returns what :meth:`generate` does."""
        cache = self.init_cache(memory, memory_mask)

        def step(real: Tensor, position: int, with_queries: bool) -> Tensor:
            return self.block_step(real, position, cache, with_queries)

        return decode_in_blocks(step, memory.shape[0], memory.device, self.tokenizer, self.decoding_cfg)

    def predict(self, memory: Tensor, memory_mask: Optional[Tensor], batch_data_samples: SampleList,
                rescale: bool = True, fine_map: Optional[Tensor] = None) -> List[InstanceData]:
        """Decode and turn the sequences into detections (then answer the instance tasks' prompts, reading
        ``fine_map`` with ``box_memory``).

        Returns:
            list[InstanceData]: Per image ``bboxes`` (N, 4) xyxy, ``scores`` (N,), ``labels`` (N,), at most
            ``max_per_img``, sorted by score; in the original image's pixels when ``rescale``; with the instance
            tasks also ``masks`` (N, H, W) and ``keypoints`` (N, K, 2) with ``keypoint_scores`` (N, K).
        """
        tokens, class_probs, coords = self.generate(memory, memory_mask)
        results = [self.tokens_to_instances(seq, probs, sample.metainfo, rescale, seq_coords)
                   for seq, probs, seq_coords, sample in zip(tokens, class_probs, coords, batch_data_samples)]
        if self.instance_decoding_cfgs:
            results = self.predict_instance_tasks(memory, memory_mask, results, batch_data_samples, rescale,
                                                  fine_map=fine_map)
        return results

    def ground_truth_instances(self, batch_data_samples: SampleList, rescale: bool) -> List[InstanceData]:
        """The samples' ground-truth boxes (the original image's, as a test pipeline loads them) and labels as
        detections scored 1, in the coordinates :meth:`predict` reports (``rescale``)."""
        results = []
        for sample in batch_data_samples:
            gt = sample.gt_instances
            bboxes = get_box_tensor(gt.bboxes).float().reshape(-1, 4)
            if not rescale and 'scale_factor' in sample.metainfo:
                bboxes = bboxes * bboxes.new_tensor(sample.metainfo['scale_factor']).repeat(2)
            result = InstanceData()
            result.bboxes, result.labels, result.scores = bboxes, gt.labels.long(), bboxes.new_ones(len(bboxes))
            results.append(result)
        return results

    @torch.inference_mode()
    def predict_instance_tasks(self, memory: Tensor, memory_mask: Optional[Tensor], results: List[InstanceData],
                               batch_data_samples: SampleList, rescale: bool = True,
                               generator: Optional[torch.Generator] = None,
                               fine_map: Optional[Tensor] = None) -> List[InstanceData]:
        """Add each instance task's outputs to each image's detections (or, with ``prompt_boxes='ground_truth'``,
        replace the detections by the ground truth first): ``masks`` (N, H, W) bool, ``keypoints`` (N, K, 2) and
        ``keypoint_scores`` (N, K), with ``test_cfg.<task>``."""
        if any(cfg.prompt_boxes == 'ground_truth' for cfg in self.instance_decoding_cfgs.values()):
            results = self.ground_truth_instances(batch_data_samples, rescale)
        for task, cfg in self.instance_decoding_cfgs.items():
            answers = self.answer_prompts(task, memory, memory_mask, results, batch_data_samples, rescale, generator,
                                          fine_map)
            for result, sample, (responses, token_probs, boxes, slot) in zip(results, batch_data_samples, answers):
                outputs = cfg.outputs(responses, token_probs, boxes, self.tokenizer, sample.metainfo, rescale)
                for name, values in outputs.items():
                    not_answered = values.new_zeros((1, ) + values.shape[1:])  # row -1
                    result[name] = torch.cat([values, not_answered])[slot.cpu()].to(result.bboxes.device)
        return results

    def answer_prompts(self, task: str, memory: Tensor, memory_mask: Optional[Tensor], results: List[InstanceData],
                       batch_data_samples: SampleList, rescale: bool, generator: Optional[torch.Generator] = None,
                       fine_map: Optional[Tensor] = None) -> List[Tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Prompt ``task`` with each image's distinct detected boxes (:mod:`~.instance_prediction`) and decode
        ``num_samples`` responses each; all prompts and samples of the batch decode as one batch (or in batches of
        ``max_rows``).

        Returns:
            list[tuple]: Per image ``responses`` and their ``token_probs`` (K * S, L) on the CPU, samples of a box in
            consecutive rows, the K prompt ``boxes`` (K, 4) normalised ``yxyx`` of the frame, and for every
            detection the row of its box among the K (-1: not answered).
        """
        cfg, tokenizer = self.instance_decoding_cfgs[task], self.tokenizer
        prompts, boxes, image_index, slots, counts = [], [], [], [], []
        for index, (result, sample) in enumerate(zip(results, batch_data_samples)):
            rows, slot = distinct_boxes(result.bboxes, cfg.max_instances)
            boxes.append(boxes_in_frame(result.bboxes[rows], sample.metainfo, rescale, tokenizer))
            prompts.append(tokenizer.instance_prompts(boxes[-1], result.labels[rows], task))
            image_index += [index] * len(rows)
            slots.append(slot)
            counts.append(len(rows) * cfg.num_samples)
        prompts = torch.cat(prompts).repeat_interleave(cfg.num_samples, dim=0)
        image_index = torch.tensor(image_index, dtype=torch.long, device=memory.device)
        image_index = image_index.repeat_interleave(cfg.num_samples)
        response_len, constraint = cfg.response_len(tokenizer), cfg.constraint(tokenizer, memory.device)
        responses = [(prompts.new_zeros(0, response_len).cpu(), memory.new_zeros(0, response_len).cpu())]
        batch_rows = cfg.max_rows or max(len(prompts), 1)
        for start in range(0, len(prompts), batch_rows):
            rows = slice(start, start + batch_rows)
            row_memory = self.prompt_memory(fine_map, image_index[rows], prompts[rows],
                                            frame_shape(batch_data_samples))
            cache = self.init_cache(memory, memory_mask, image_index[rows], tokenizer.task_seq_len(task), row_memory)

            def step(tokens: Tensor, position: int, cache: DecodingCache = cache) -> Tensor:
                return self.forward_step(tokens, position, cache)[:, -1]

            answered = decode_responses(step, prompts[rows], response_len, tokenizer.EOS, tokenizer.PAD,
                                        cfg.decoding, constraint, generator)
            responses.append(tuple(part.cpu() for part in answered))
        tokens, token_probs = (torch.cat(parts).split(counts) for parts in zip(*responses))
        return list(zip(tokens, token_probs, boxes, slots))

    def tokens_to_instances(self, tokens: Tensor, class_probs: Tensor, img_meta: dict,
                            rescale: bool = True, coords: Optional[Tensor] = None) -> InstanceData:
        """One image's decoded tokens (5 K,) and class probabilities (K, C) -> detections, the boxes from ``coords``
        (5 K,), the coordinates decoding read (default: the tokens' bins).

        Slots whose coordinates are not coordinate tokens, whose class token is not a class, that come after EOS or
        whose box is empty (also once clipped to the image) are dropped.  Coordinates are normalised to the padded
        input (``pad_shape``, the fixed frame of :class:`~.data_preprocessor.Pix2SeqDataPreprocessor`), as in
        training; they are clipped to the image inside that frame (``img_shape``), so boxes wholly in the padding
        are dropped, un-flipped when the pipeline flipped the image, and divided by ``scale_factor`` when
        ``rescale``.
        """
        boxes_yxyx, _, valid = self.tokenizer.decode(tokens, coords)
        scores, labels = class_probs[valid].topk(self.classes_per_box, dim=-1)  # (K', k) each
        boxes_yxyx = boxes_yxyx[valid].repeat_interleave(self.classes_per_box, dim=0)
        scores, labels = scores.flatten(), labels.flatten()
        img_h, img_w = img_meta['img_shape'][:2]
        bboxes = self.tokenizer.denormalize_boxes(boxes_yxyx, img_meta.get('pad_shape', (img_h, img_w))[:2])
        bboxes[:, 0::2].clamp_(0, img_w)
        bboxes[:, 1::2].clamp_(0, img_h)
        inside = (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])  # boxes wholly in the padding: empty
        bboxes, scores, labels = bboxes[inside], scores[inside], labels[inside]
        if img_meta.get('flip', False):
            bboxes = bbox_flip(bboxes, (img_h, img_w), img_meta['flip_direction'])
        if rescale and 'scale_factor' in img_meta:
            bboxes = bboxes / bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
        order = scores.argsort(descending=True)[:self.max_per_img]
        results = InstanceData()
        results.bboxes, results.scores, results.labels = bboxes[order], scores[order], labels[order]
        return results


def frame_shape(batch_data_samples: SampleList) -> Tuple[int, int]:
    """The padded frame ``(H, W)`` the batch's boxes and tokens are normalised to (every image's, the data
    preprocessor's fixed frame)."""
    metainfo = batch_data_samples[0].metainfo
    return tuple(metainfo.get('pad_shape', metainfo['img_shape'])[:2])
