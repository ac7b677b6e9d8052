# Pix2Seq R50 as in the paper: ResNet-50 -> 1x1 projection -> 6-layer encoder (d 256, FFN 1024, 8 heads)
# -> 6-layer decoder of the same size; pre-norm; regularisation as the official detection config: dropout 0.1 of
# the FFN hidden units, none of the attention weights, drop-path 0.1 on residual branches; learned decoder positions;
# output layer tied to the token embedding. COCO vocabulary: 80 classes, 2000 bins (1333-px input).
# The training pipeline's Pix2SeqSequenceAug must use the same num_classes / num_bins / max_objects as the head.
model = dict(
    type='Pix2Seq',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        type='ChannelMapper',
        in_channels=[2048],
        kernel_size=1,
        out_channels=256,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=1),
    encoder=dict(
        num_layers=6, embed_dims=256, num_heads=8, ffn_dims=1024, dropout=0.1, drop_path=0.1, attn_dropout=0.0),
    positional_encoding=dict(type='SinePositionalEncoding', num_feats=128, normalize=True),
    # encoder output -> decoder width, positions added again and mixed in by a residual MLP (official dec_proj_mode)
    memory_proj=dict(mode='mlp'),
    head=dict(
        type='Pix2SeqHead',
        tokenizer=dict(num_classes=80, num_bins=2000, max_objects=100),
        embed_dims=256,
        num_layers=6,
        num_heads=8,
        ffn_dims=1024,
        dropout=0.1,
        drop_path=0.1,
        attn_dropout=0.0),
    # decoding: nucleus sampling with top-p 0.4 over all 100 object slots, as the paper
    test_cfg=dict(strategy='nucleus', top_p=0.4, temperature=1.0, top_k=0, beam_width=1, constrained=False,
                  stop_at_eos=False, use_cache=True, max_per_img=100))
