# Pix2Seq R50 as the official code builds it (google-research/pix2seq, architectures/transformers.py and
# configs/config_det_finetune.py): ResNet-50 with trained BatchNorm -> feature dropout + per-position Linear +
# LayerNorm (TokenProjection) -> 6-layer encoder (d 256, FFN 1024, 8 heads) -> MLP memory projection -> 6-layer decoder
# of the same size; pre-norm; dropout 0.1 of the FFN hidden units, none of the attention weights, drop-path 0.1;
# learned decoder positions; output layer tied to the token embedding. COCO vocabulary: 80 classes, 2000 bins.
model = dict(
    type='Pix2Seq',
    # pads every batch to the fixed frame the coordinates are normalised to (the official pad_image_to_max_size)
    data_preprocessor=dict(
        type='Pix2SeqDataPreprocessor',
        pad_size=(1333, 1333),
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='TokenProjection', in_channels=[2048], out_channels=256, dropout=0.1),
    encoder=dict(
        num_layers=6, embed_dims=256, num_heads=8, ffn_dims=1024, dropout=0.1, drop_path=0.1, attn_dropout=0.0),
    positional_encoding=dict(type='SinePositionalEncoding', num_feats=128, normalize=True),
    # encoder output -> decoder width, positions added again and mixed in by a residual MLP (official dec_proj_mode)
    memory_proj=dict(mode='mlp'),
    head=dict(
        type='Pix2SeqHead',
        # the vocabulary, written once: the head builds the training sequences and reads the decoded ones with it
        tokenizer=dict(num_classes=80, num_bins=2000, max_objects=100),
        embed_dims=256,
        num_layers=6,
        num_heads=8,
        ffn_dims=1024,
        dropout=0.1,
        drop_path=0.1,
        attn_dropout=0.0),
    # sequence augmentation (official tasks/object_detection.py and data/data_utils.py: augment_bbox)
    train_cfg=dict(object_order='random', noise_mode='paper', noise_class_weight=1.0, eos_weight=0.1,
                   class_label_corruption='rand_n_fake_cls'),
    # decoding: nucleus sampling with top-p 0.4 over all 100 object slots, as the official config
    test_cfg=dict(strategy='nucleus', top_p=0.4, temperature=1.0, top_k=0, stop_at_eos=False, use_cache=True))
