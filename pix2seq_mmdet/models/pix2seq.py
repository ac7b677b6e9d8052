"""The Pix2Seq detector: backbone -> projection neck -> Transformer encoder -> sequence head (or an encoder backbone,
e.g. a ViT, -> sequence head)."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from .loss_guard import guarded_log_vars
from .transformer import MemoryProjection, Pix2SeqEncoder


@MODELS.register_module()
class Pix2Seq(BaseDetector):
    """Pix2Seq: "A Language Modeling Framework for Object Detection" (Chen et al., ICLR 2022).

    Data flow (B images, feature map h x w, S = h * w, C encoder width, D decoder width)::

        extract_feat:     batch_inputs (B, 3, H, W) -> backbone -> neck -> feature (B, C, h, w)
        forward_encoder:  feature + 2-D positions -> flatten -> encoder (B, S, C) -> memory_proj (+ positions)
                          -> memory (B, S, D), memory_mask (B, S) or None
                          (fine_memory: + the neck's first level (B, C, h', w') -> fine_map (fine_memory_proj,
                          + positions) (B, D, h', w') -> memory (B, S + h' * w', D))
                          (no encoder: the backbone's feature is the encoder output, e.g. :class:`~.vit.Pix2SeqViT`)
        (encode = extract_feat, then forward_encoder)
        memory -> head.loss (teacher forcing on sequences built from gt_instances) | head.predict (autoregressive
        decoding) -> DetDataSample
        (head.box_memory: fine_map -> head.loss | head.predict, each instance sequence reading it inside its box)
        training only, with aux_head: encoder output (B, S, C) -> (B, C, h, w) -> aux_head.loss (dense boxes)
        training only, with aux_mask_head: encoder output (B, S, C) -> aux_mask_head.loss (the masks' pixels of
        every token's cell)

    Args:
        backbone (dict): Backbone config (e.g. mmdet ``ResNet``).
        neck (dict, optional): Projection to the encoder width (e.g. ``ChannelMapper`` with a 1x1 conv); its last
            output is used.  None: the backbone's last output is the feature.
        encoder (dict, optional): :class:`Pix2SeqEncoder` arguments.  None: the backbone already encodes the image
            (a Transformer backbone such as :class:`~.vit.Pix2SeqViT`, the official ViT models); its last output,
            of ``backbone.embed_dims`` channels, goes straight to ``memory_proj``.
        positional_encoding (dict, optional): 2-D positional encoding over the feature map, added before the
            encoder (mmdet's ``SinePositionalEncoding`` or ``LearnedPositionalEncoding``, or the official layout
            :class:`~.positional_encoding.Pix2SeqSinCosPositionalEncoding`); its output width must equal the
            encoder width.  Required with an encoder, refused without one.
        head (dict): :class:`Pix2SeqHead` config.
        memory_proj (dict): :class:`MemoryProjection` arguments between encoder and decoder; ``mode`` ``'mlp'``
            (default, the official detection setting) or ``'linear_p'`` add the feature map's positions, which
            then need the decoder width; ``'linear'`` does not.  The ``mlp`` block's ``ffn_dims``, ``dropout`` and
            ``drop_path`` and ``norm_eps`` default to the head's.
        memory_positional_encoding (dict, optional): The positions ``memory_proj`` adds, of the decoder width, as
            the official code computes a second code for the decoder side.  Default: the encoder's positions, which
            needs equal widths; required without an encoder when ``memory_proj`` adds positions.
        aux_head (dict, optional): A dense mmdet detection head (e.g. ``FCOSHead`` with one level, ``strides``
            the feature map's stride) trained on the encoder output reshaped to the feature map, beside the sequence
            loss, as Co-DETR's collaborative auxiliary heads (Zong et al., ICCV 2023): every memory token learns the
            class and box of the objects around it from the first step, which the decoder's cross-attention then
            reads.  Training only: prediction, export and the checkpoint's use at inference ignore it, and its
            losses are logged with an ``aux_`` prefix.  ``num_classes``, ``in_channels`` and ``feat_channels``
            default to the tokenizer's classes and the encoder width.  Default None: the paper's model.
        aux_mask_head (dict, optional): :class:`~.cell_mask_head.CellMaskHead` options (``stride``, the feature
            map's; ``loss_weight``), trained on the encoder output beside the sequence loss with the instance masks
            (the instance segmentation task's data): every memory token learns which pixels of its cell the masks
            cover.  ``in_channels`` defaults to the encoder width.  Training only, its loss logged as
            ``aux_loss_mask``.  Default None.
        fine_memory (bool): Also give the decoder the neck's first level, a finer feature map (e.g. stride 8 beside
            the encoder's stride 16), without passing it through the encoder: the memory is the encoder output's
            tokens followed by the fine level's, each projected by its own :class:`MemoryProjection` with its
            positions.  The cross-attention then reads outlines finer than the encoder's tokens (the instance
            segmentation task's polygons) for the cost of attending to more tokens.  Needs an encoder and a neck of
            two or more levels; not with ``mask_padding``.  Default False: the paper's single-level memory.  The
            head's ``box_memory`` reads the same projected level, inside each instance prompt's box only (it needs
            what ``fine_memory`` needs).
        fine_memory_proj (dict, optional): :class:`MemoryProjection` options of the fine level that differ from
            ``memory_proj``'s (e.g. ``mode='linear_p'``: no feed-forward block over the fine level's many tokens).
        mask_padding (bool): Keep the encoder and the decoder's cross-attention off the padding around each image
            (DETR's way). False (default): attend to the whole padded frame, as the official code does.
        train_cfg (dict, optional): The head's sequence augmentation options.
        test_cfg (dict, optional): The head's decoding options.
        data_preprocessor (dict, optional): :class:`~.data_preprocessor.Pix2SeqDataPreprocessor`, which pads every
            batch to the fixed frame the coordinates are normalised to.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, backbone: ConfigType, neck: OptConfigType, encoder: OptConfigType,
                 positional_encoding: OptConfigType, head: ConfigType, memory_proj: OptConfigType = None,
                 mask_padding: bool = False, memory_positional_encoding: OptConfigType = None,
                 aux_head: OptConfigType = None, aux_mask_head: OptConfigType = None, fine_memory: bool = False,
                 fine_memory_proj: OptConfigType = None, train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None, data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.mask_padding = mask_padding
        self.backbone = MODELS.build(backbone)
        self.neck = None if neck is None else MODELS.build(neck)
        if encoder is None:
            self._check_encoder_backbone(positional_encoding, memory_positional_encoding, memory_proj)
            self.encoder, self.positional_encoding = None, None
            self.encoder_dims = self.backbone.embed_dims
        else:
            if positional_encoding is None:
                raise ValueError('Pix2Seq: positional_encoding is required with an encoder (the positions added to '
                                 'the features before it)')
            self.encoder = Pix2SeqEncoder(**encoder)
            self.positional_encoding = MODELS.build(positional_encoding)
            self.encoder_dims = self.encoder.embed_dims
        self.head = MODELS.build(dict(head, train_cfg=train_cfg, test_cfg=test_cfg))
        memory_proj = dict(memory_proj or {})
        for key in ('ffn_dims', 'dropout', 'drop_path', 'norm_eps'):
            memory_proj.setdefault(key, getattr(self.head, key))
        self.memory_proj = MemoryProjection(self.encoder_dims, self.head.embed_dims, **memory_proj)
        self.memory_positional_encoding = (None if memory_positional_encoding is None else
                                           MODELS.build(memory_positional_encoding))
        self.fine_memory, self.fine_memory_proj = fine_memory, None
        if fine_memory or self.head.box_memory is not None:
            if self.encoder is None or self.neck is None or mask_padding:
                raise ValueError('Pix2Seq: fine_memory and head.box_memory read the neck\'s first level beside the '
                                 'encoder output, so they need an encoder and a neck, and do not mask padding '
                                 '(mask_padding=False)')
            self.fine_memory_proj = MemoryProjection(self.encoder_dims, self.head.embed_dims,
                                                     **dict(memory_proj, **(fine_memory_proj or {})))
        elif fine_memory_proj is not None:
            raise ValueError('Pix2Seq: fine_memory_proj is set, but neither fine_memory nor head.box_memory reads the '
                             'fine level')
        self.aux_head = None if aux_head is None else self._build_aux_head(aux_head)
        self.aux_mask_head = None if aux_mask_head is None else MODELS.build(
            dict(dict(type='CellMaskHead', in_channels=self.encoder_dims), **aux_mask_head))
        widths_differ = self.encoder_dims != self.head.embed_dims
        if self.memory_proj.uses_positions and widths_differ and self.memory_positional_encoding is None:
            raise ValueError(f'memory_proj mode {self.memory_proj.mode!r} adds the encoder\'s positions to the '
                             f'decoder memory, so the encoder width ({self.encoder_dims}) must equal the '
                             f'head\'s embed_dims ({self.head.embed_dims}); use mode \'linear\' or set '
                             'memory_positional_encoding otherwise')

    def _check_encoder_backbone(self, positional_encoding: OptConfigType, memory_positional_encoding: OptConfigType,
                                memory_proj: OptConfigType) -> None:
        """Without an encoder the backbone must be one (it gives ``embed_dims``) and the options that only apply
        to the detector's own encoder must be off."""
        if not hasattr(self.backbone, 'embed_dims'):
            raise ValueError(f'Pix2Seq: encoder=None needs a backbone that encodes the image itself and states its '
                             f'width as embed_dims (e.g. Pix2SeqViT); {type(self.backbone).__name__} does not')
        if positional_encoding is not None:
            raise ValueError('Pix2Seq: positional_encoding is added before the encoder; with encoder=None the '
                             'backbone places its own positions: set positional_encoding=None (and '
                             'memory_positional_encoding for the memory projection)')
        if self.mask_padding:
            raise ValueError('Pix2Seq: mask_padding masks the detector\'s encoder, and encoder=None has none')
        mode = (memory_proj or {}).get('mode', 'mlp')
        if mode != 'linear' and memory_positional_encoding is None:
            raise ValueError(f'Pix2Seq: memory_proj mode {mode!r} adds positions to the memory; with encoder=None '
                             'set memory_positional_encoding (e.g. Pix2SeqSinCosPositionalEncoding of the decoder '
                             'width, as the official ViT models)')

    def _build_aux_head(self, aux_head: ConfigType) -> nn.Module:
        """The auxiliary head, its classes and widths defaulting to the tokenizer's classes and the encoder width."""
        aux_head = dict(aux_head)
        num_classes = self.head.tokenizer.num_classes
        if aux_head.setdefault('num_classes', num_classes) != num_classes:
            raise ValueError(f'aux_head num_classes ({aux_head["num_classes"]}) must equal the tokenizer\'s '
                             f'({num_classes}); leave it out to take the tokenizer\'s')
        for key in ('in_channels', 'feat_channels'):
            aux_head.setdefault(key, self.encoder_dims)
        head = MODELS.build(aux_head)
        if len(getattr(head, 'strides', ())) != 1:
            raise ValueError('aux_head reads the single encoder feature map, so it needs exactly one entry in '
                             f'strides (the feature stride), got {getattr(head, "strides", None)!r}')
        return head

    def extract_feats(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) images -> the neck's levels (the backbone's without a neck), finest first."""
        features = self.backbone(batch_inputs)
        return tuple(features if self.neck is None else self.neck(features))

    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, D, h, w) projected feature map (the neck's last level)."""
        return self.extract_feats(batch_inputs)[-1]

    def fine_map(self, features: Tuple[Tensor, ...]) -> Optional[Tensor]:
        """The neck's first level (B, C, h', w') projected with its positions by ``fine_memory_proj`` -> (B, D, h',
        w'), what ``fine_memory`` adds to the memory and the head's ``box_memory`` samples; None without either."""
        if self.fine_memory_proj is None:
            return None
        if len(features) < 2:
            raise ValueError('Pix2Seq: fine_memory and head.box_memory need a neck of two or more levels (the '
                             f'backbone\'s out_indices and the neck\'s in_channels), got {len(features)}')
        fine_feature = features[0]
        batch_size, _, fine_h, fine_w = fine_feature.shape
        fine_mask = fine_feature.new_zeros((batch_size, fine_h, fine_w), dtype=torch.bool)
        encoding = self.memory_positional_encoding or self.positional_encoding
        positions = encoding(fine_mask).to(fine_feature.dtype).flatten(2).transpose(1, 2)
        tokens = self.fine_memory_proj(fine_feature.flatten(2).transpose(1, 2), positions)  # (B, h' * w', D)
        return tokens.transpose(1, 2).reshape(batch_size, -1, fine_h, fine_w)

    def forward_encoder(self, feature: Tensor, batch_data_samples: SampleList,
                        fine_map: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """Encode the feature map and project it for the decoder.

        Args:
            feature (Tensor): (B, C, h, w), :meth:`extract_feat`'s output.
            batch_data_samples (list[DetDataSample]): For ``img_shape`` and ``batch_input_shape``.
            fine_map (Tensor, optional): (B, D, h', w'), the projected finer level (``fine_memory``,
                :meth:`fine_map`): its h' * w' tokens follow the encoder's in the memory.

        Returns:
            tuple: ``memory`` (B, h * w, D), the decoder's input (B, h * w + h' * w', D with ``fine_map``);
            ``memory_mask`` (B, h * w) bool, True at positions that only cover padding (None unless ``mask_padding``
            and some image of the batch is padded); and the encoder output (B, h * w, C) before the projection (what
            the auxiliary heads read).
        """
        batch_size, _, feat_h, feat_w = feature.shape
        if self.mask_padding:
            batch_h, batch_w = batch_data_samples[0].metainfo['batch_input_shape']
            padded = torch.ones(batch_size, batch_h, batch_w, device=feature.device)
            for index, sample in enumerate(batch_data_samples):
                img_h, img_w = sample.metainfo['img_shape'][:2]
                padded[index, :img_h, :img_w] = 0
            mask = F.interpolate(padded[:, None], size=(feat_h, feat_w)).to(torch.bool).squeeze(1)
            memory_mask = mask.flatten(1) if bool(mask.any()) else None
        else:  # the whole frame is attended: an all-False mask only gives the positional encodings their shape
            mask = torch.zeros(batch_size, feat_h, feat_w, dtype=torch.bool, device=feature.device)
            memory_mask = None
        tokens = feature.flatten(2).transpose(1, 2)
        if self.encoder is None:  # the backbone is the encoder
            encoded, memory_positions = tokens, None
        else:
            memory_positions = self.positional_encoding(mask).to(feature.dtype).flatten(2).transpose(1, 2)
            encoded = self.encoder(tokens + memory_positions, memory_mask)
        if self.memory_positional_encoding is not None:
            memory_positions = self.memory_positional_encoding(mask).to(feature.dtype).flatten(2).transpose(1, 2)
        memory = self.memory_proj(encoded, memory_positions)
        if fine_map is not None:
            memory = torch.cat([memory, fine_map.flatten(2).transpose(1, 2)], dim=1)
        return memory, memory_mask, encoded

    def encode_levels(self, batch_inputs: Tensor, batch_data_samples: SampleList
                      ) -> Tuple[Tensor, Optional[Tensor], Tensor, Tensor, Optional[Tensor]]:
        """(B, 3, H, W) images -> ``memory``, ``memory_mask`` and the encoder output (:meth:`forward_encoder`),
        the encoder's feature map (B, C, h, w), and the ``fine_map`` (B, D, h', w') the head's ``box_memory``
        reads (None without it)."""
        features = self.extract_feats(batch_inputs)
        fine_map = self.fine_map(features)
        memory, memory_mask, encoded = self.forward_encoder(features[-1], batch_data_samples,
                                                            fine_map if self.fine_memory else None)
        return memory, memory_mask, encoded, features[-1], fine_map if self.head.box_memory is not None else None

    def encode(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Tuple[Tensor, Optional[Tensor]]:
        """(B, 3, H, W) images -> the decoder's ``memory`` (B, S, D) and ``memory_mask`` (B, S) or None
        (:meth:`encode_levels`): what the head's ``loss``, ``predict``, ``generate`` and ``init_cache`` take."""
        return self.encode_levels(batch_inputs, batch_data_samples)[:2]

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Teacher-forced loss on the sequences the head builds from the samples' ``gt_instances``, plus the
        auxiliary head's losses (``aux_`` prefix) when there is one."""
        memory, memory_mask, encoded, feature, fine_map = self.encode_levels(batch_inputs, batch_data_samples)
        losses = self.head.loss(memory, memory_mask, batch_data_samples, fine_map)
        if self.aux_head is not None:
            losses.update(self._aux_loss(encoded, feature.shape, batch_data_samples))
        if self.aux_mask_head is not None:
            losses.update({f'aux_{name}': value for name, value in self.aux_mask_head.loss(
                encoded, feature.shape[-2:], batch_data_samples).items()})
        return losses

    def _aux_loss(self, encoded: Tensor, feature_shape: torch.Size,
                  batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """The auxiliary dense head's losses on the encoder output (B, h * w, C) laid out as (B, C, h, w).

        The feature map of an input of H x W at stride s has ``ceil(H / s) x ceil(W / s)`` positions (a ResNet's
        strided convolutions round up), which the stride must give."""
        batch_size, channels, feat_h, feat_w = feature_shape
        stride = self.aux_head.strides[0]
        stride_h, stride_w = stride if isinstance(stride, (tuple, list)) else (stride, stride)
        batch_h, batch_w = batch_data_samples[0].metainfo['batch_input_shape']
        if (feat_h, feat_w) != (math.ceil(batch_h / stride_h), math.ceil(batch_w / stride_w)):
            raise ValueError(f'aux_head strides {self.aux_head.strides} do not fit the feature map: {feat_h} x '
                             f'{feat_w} features of a {batch_h} x {batch_w} input have stride '
                             f'{batch_h / feat_h:g} x {batch_w / feat_w:g}')
        feature_map = encoded.transpose(1, 2).reshape(batch_size, channels, feat_h, feat_w)
        return {f'aux_{name}': value for name, value in self.aux_head.loss((feature_map, ), batch_data_samples).items()}

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Decode detections; returns the data samples with ``pred_instances`` (bboxes, scores, labels)."""
        memory, memory_mask, _, _, fine_map = self.encode_levels(batch_inputs, batch_data_samples)
        results_list = self.head.predict(memory, memory_mask, batch_data_samples, rescale=rescale, fine_map=fine_map)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Tensor:
        """Teacher-forced logits (B, L, V) of training sequences built from the samples' ``gt_instances`` (mmdet's
        ``tensor`` mode)."""
        memory, memory_mask = self.encode(batch_inputs, batch_data_samples)
        input_tokens, _, _ = self.head.sequence_augmentation(batch_data_samples)
        return self.head(memory, memory_mask, input_tokens)

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """mmengine's loss parsing, with the log values averaged over the ranks and a non-finite loss stopping
        training before the update (:func:`~.loss_guard.guarded_log_vars`); mmengine's DDP wrapper
        calls this method too."""
        loss, log_vars = super().parse_losses(losses)
        return loss, guarded_log_vars(log_vars)
