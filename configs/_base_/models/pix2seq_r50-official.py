# Pix2Seq R50 exactly as the official code (google-research/pix2seq, configs/config_det_finetune.py with the 'resnet'
# architecture), for converted official weights (tools/model_converters/pix2seq_tf2mmdet.py, docs/official_weights.md):
# input in [0, 1] (no mean/std) padded with 0.3 at the bottom/right to the fixed frame, the TF 'SAME' stem max-pool,
# the official 2-D sine-cosine positions (encoder, and again at the decoder width before the memory MLP), LayerNorm eps
# 1e-6 everywhere, and the official 3000-token vocabulary (classes at 100 + COCO category id, 1000 coordinate bins).
# The backbone is not initialised from torchvision: the converted checkpoint (load_from) holds it.
_base_ = './pix2seq_r50.py'
model = dict(
    data_preprocessor=dict(
        pad_size=(640, 640), mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], bgr_to_rgb=True, pad_value=0.3),
    backbone=dict(type='Pix2SeqResNet', stem_pool='tf_same', init_cfg=None),
    neck=dict(norm_eps=1e-6),
    encoder=dict(norm_eps=1e-6),
    positional_encoding=dict(_delete_=True, type='Pix2SeqSinCosPositionalEncoding', embed_dims=256),
    memory_positional_encoding=dict(type='Pix2SeqSinCosPositionalEncoding', embed_dims=256),
    # proj_mlp of the official model: hidden width = decoder width x the ENCODER's mlp ratio (256 x 4)
    memory_proj=dict(mode='mlp', ffn_dims=1024),
    head=dict(
        tokenizer=dict(num_classes=80, num_bins=1000, max_objects=100, layout='official', class_ids='coco'),
        norm_eps=1e-6),
    # the official evaluation: nucleus sampling, top-p 0.4, temperature 1, all 100 slots
    test_cfg=dict(strategy='nucleus', top_p=0.4, temperature=1.0, top_k=0, stop_at_eos=False))
