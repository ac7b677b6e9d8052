"""Regenerate the official-weights parity fixture (tests/data/official_tiny/) with the official TF code.

Runs in a separate TensorFlow environment, never in this package's: the official google-research/pix2seq code at
commit eabd4e98f65f7627a0e727d11a4b9cbba916283d (2023-05-22, unmodified) under tensorflow-cpu 2.21.0, tf-keras
2.21.0, ml_collections 1.1.0, absl-py, einops (no torch)::

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 \\
        ml_collections absl-py einops
    git clone https://github.com/google-research/pix2seq /tmp/pix2seq  # then check out the commit above
    /tmp/tfenv/bin/python tools/model_converters/make_official_fixture.py --official-code /tmp/pix2seq \\
        --variant tiny --out-dir tests/data/official_tiny

No official file is patched.  Before importing the official code this script (1) sets ``TF_USE_LEGACY_KERAS=1`` so
that ``tf.keras`` is Keras 2 (tf-keras), the authors' Keras, whose layers give the released checkpoints' variable keys
(Keras 3 cannot build the official model), ``TF_ENABLE_ONEDNN_OPTS=0`` and enables op determinism (two runs are
bit-identical); (2) puts stub modules for ``tensorflow_addons`` (dead for TF 2.21; imported by
``architectures/resnet.py`` for GroupNorm and ``models/model_utils.py`` for LAMB, neither used here) and
``matplotlib`` (imported by ``utils.py`` for ``colorize``) in ``sys.modules``.

What it does (the official code builds, saves and runs everything):

1. ``configs/config_det_finetune.get_config()`` with every key of ``architecture_config_map['resnet']`` copied into
   ``config.model`` (what editing ``encoder_variant = 'resnet'`` does), ``pretrained_ckpt=''``.  ``tiny``: frame
   100 x 72 (not square, not a multiple of 32: exercises the SAME max-pool, ceil grid sizes and the row/column
   layout of the position code), ResNet-50 at width 0.125, encoder 2 layers x 48 wide (mlp 96, 4 heads), decoder
   2 layers x 32 wide (mlp 128, 2 heads; different widths exercise the projections), ``max_seq_len`` 32, 5 objects,
   the official vocabulary (3000 tokens, 1000 bins).  ``tiny_c4``: the same with the ``c4`` ResNet variant (the
   R50-C4 models' backbone: three block groups, stride 16).  ``r50``: the released R50 architecture at 640 px,
   100 objects.  ``r50_c4``: the released R50-C4 architecture (``architecture_config_map['resnet-c']``: the ``c4``
   ResNet-50, encoder 12 layers x 512 wide, decoder 8 layers x 512 wide, 16 heads) at 640 px, 100 objects.
2. The model is built by the official ``ARTrainer`` (seed 0, ``tf.keras.utils.set_random_seed``), all variables
   created by one ``model.infer`` call.
3. Randomisation (the official initialisation is degenerate for a parity test: last BN gamma of every residual branch
   0, BN statistics 0/1, LayerNorm affine identity, biases 0; kernels keep the official initialisers), with
   ``np.random.RandomState(1234)`` in ``model.variables`` order: BN moving_mean ~ N(0, 0.1), moving_variance ~
   U(0.5, 1.5), every gamma (BN and LN) ~ U(0.5, 1.5), every beta ~ N(0, 0.1), every bias (``outp_bias`` included)
   ~ N(0, 0.02), ``token_embedding`` and ``seq_pos_embedding`` ~ N(0, 2 / sqrt(dim)) (logits of std ~2 instead of
   ~0.1, so greedy decoding has margins).
4. The checkpoint is saved by the official trainer's own ``CheckpointManager`` (the released files' key scheme).
5. Reference outputs, on one synthetic image (``RandomState(0)`` uint8, 50 x 30 for tiny, 480 x 640 for r50 and
   r50_c4) through the official eval transforms (x/255, antialiased bilinear resize into the frame, pad with 0.3 at
   the bottom/right): the preprocessed image (feed it as is), ResNet outputs, encoder tokens and output, the memory,
   greedy ``model.infer`` (``top_k=1``) tokens and logits, teacher-forced logits on the greedy and on a synthetic
   detection sequence, and the official ``decode_object_seq_to_bbox`` of the greedy output.

Outputs in ``--out-dir``: ``variables.npz`` (the checkpoint's model variables, keyed by checkpoint key, read back
with ``tf.train.load_checkpoint``), ``reference.npz``, ``config.json`` (the whole official config, as the released
checkpoints store it) and, with ``--checkpoint-dir``, the TF checkpoint itself.  Tiny: about 3 MB, 15 s on 2 cores.

``--dump-checkpoint CKPT OUT.npz`` instead writes the model variables of any TF checkpoint (e.g. a released one) to a
``.npz`` that ``pix2seq_tf2mmdet.py`` converts without TensorFlow.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import types

MODEL_PREFIX = 'model/'


def install_shims(official_code: str) -> None:
    """Environment and stub modules so the unmodified official code imports under TF 2.21 (see the docstring)."""
    os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

    def stub(name: str) -> types.ModuleType:
        module = types.ModuleType(name)

        def missing(*args, **kwargs):
            raise ImportError(f'{name} is a stub (not installed)')

        module.__getattr__ = lambda attribute: missing
        sys.modules[name] = module
        return module

    addons = stub('tensorflow_addons')
    addons.layers, addons.optimizers = stub('tensorflow_addons.layers'), stub('tensorflow_addons.optimizers')
    matplotlib = stub('matplotlib')
    matplotlib.cm = stub('matplotlib.cm')
    sys.path.insert(0, official_code)


def model_variables(prefix: str) -> dict:
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)
            if name.startswith(MODEL_PREFIX) and '.OPTIMIZER_SLOT' not in name
            and name.endswith('/.ATTRIBUTES/VARIABLE_VALUE')}


def dump_checkpoint(checkpoint: str, out: str) -> None:
    import numpy as np
    import tensorflow as tf
    prefix = tf.train.latest_checkpoint(checkpoint) if os.path.isdir(checkpoint) else checkpoint
    variables = model_variables(prefix)
    np.savez(out, **variables)
    print(f'{len(variables)} model variables of {prefix} -> {out}')


VARIANTS = {
    'tiny': dict(image_size=(100, 72), max_instances=5, raw_hw=(50, 30), model=dict(
        resnet_depth=50, resnet_width_multiplier=0.125, num_encoder_layers=2, dim_att=48, dim_mlp=96, num_heads=4,
        num_decoder_layers=2, dim_att_dec=32, dim_mlp_dec=128, num_heads_dec=2, max_seq_len=32)),
    'r50': dict(image_size=(640, 640), max_instances=100, raw_hw=(480, 640), model=dict()),
    # the tiny model with the R50-C4 variant (three block groups, stride 16), to check that mapping too
    'tiny_c4': dict(image_size=(100, 72), max_instances=5, raw_hw=(50, 30), model=dict(
        resnet_variant='c4', resnet_depth=50, resnet_width_multiplier=0.125, num_encoder_layers=2, dim_att=48,
        dim_mlp=96, num_heads=4, num_decoder_layers=2, dim_att_dec=32, dim_mlp_dec=128, num_heads_dec=2,
        max_seq_len=32)),
    # the released R50-C4 architecture (architecture_config_map['resnet-c']) at 640 px, 100 objects
    'r50_c4': dict(image_size=(640, 640), max_instances=100, raw_hw=(480, 640), model=dict(
        resnet_variant='c4', num_encoder_layers=12, dim_att=512, dim_mlp=2048, num_heads=16, num_decoder_layers=8,
        dim_att_dec=512, dim_mlp_dec=2048, num_heads_dec=16)),
}


def make_fixture(args) -> None:
    install_shims(args.official_code)
    import numpy as np
    import tensorflow as tf
    from configs import config_det_finetune
    from configs.config_base import architecture_config_map
    from data import transforms as transforms_lib
    from models import ar_model  # noqa: F401 registers 'encoder_ar_decoder'
    from models import model as model_lib
    from tasks import task_utils

    variant = VARIANTS[args.variant]
    tf.keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    config = config_det_finetune.get_config()
    for key, value in architecture_config_map['resnet'].items():
        config.model[key] = value
    config.model.pretrained_ckpt = ''
    if 'resnet_width_multiplier' in variant['model']:
        del config.model['resnet_width_multiplier']  # ConfigDict is type-locked (int -> float)
    config.model.update(variant['model'])
    image_size, max_instances = variant['image_size'], variant['max_instances']
    config.model.image_size = image_size
    config.task.image_size = image_size
    config.task.max_instances_per_image = max_instances
    config.task.max_instances_per_image_test = max_instances
    config.task.eval_transforms = config_det_finetune.transform_configs.get_object_detection_eval_transforms(
        image_size, max_instances)
    config.tasks = [config.task]
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, 'config.json'), 'w') as file:
        file.write(config.to_json_best_effort(indent=2))

    rng = np.random.RandomState(0)
    raw = rng.randint(0, 256, size=variant['raw_hw'] + (3, ), dtype=np.uint8)
    example = {'image': tf.image.convert_image_dtype(tf.constant(raw), tf.float32),
               'bbox': tf.zeros([0, 4], tf.float32), 'label': tf.zeros([0], tf.int64),
               'area': tf.zeros([0], tf.float32), 'is_crowd': tf.zeros([0], tf.bool)}
    for transform_config in config.task.eval_transforms:
        example = transforms_lib.TransformRegistry.lookup(transform_config.name)(transform_config).process_example(
            example)
    images = example['image'][tf.newaxis]

    checkpoint_dir = args.checkpoint_dir or tempfile.mkdtemp(prefix='pix2seq_official_')
    trainer = model_lib.TrainerRegistry.lookup(config.model.name)(
        config, num_train_examples=118287, train_steps=1000, model_dir=checkpoint_dir)
    model = trainer.model
    prompt = task_utils.build_prompt_seq_from_task_id(config.task.vocab_id, prompt_shape=(1, 1))
    model.infer(images, prompt, max_seq_len=3, top_k=1)  # creates every variable

    generator = np.random.RandomState(1234)
    for variable in model.variables:
        name, shape = variable.name, variable.shape.as_list()
        if 'moving_mean' in name:
            value = generator.normal(0, 0.1, shape)
        elif 'moving_variance' in name:
            value = generator.uniform(0.5, 1.5, shape)
        elif name.endswith('gamma:0'):
            value = generator.uniform(0.5, 1.5, shape)
        elif name.endswith('beta:0'):
            value = generator.normal(0, 0.1, shape)
        elif name.endswith('bias:0'):
            value = generator.normal(0, 0.02, shape)
        elif name.endswith('token_embedding:0') or name.endswith('seq_pos_embedding:0'):
            value = generator.normal(0, 2. / np.sqrt(shape[-1]), shape)
        else:
            continue
        variable.assign(value.astype(np.float32))
    trainer.optimizer.iterations.assign(0)
    prefix = trainer.checkpoint_manager.save(0)
    variables = model_variables(prefix)
    np.savez_compressed(os.path.join(args.out_dir, 'variables.npz'), **variables)
    print(f'checkpoint {prefix}: {len(variables)} model variables, '
          f'{sum(int(np.prod(value.shape)) for value in variables.values())} parameters')

    start = time.time()
    encoded, hidden_stack = model.encoder(images, training=False, ret_list=True)
    backbone = hidden_stack[-1]
    batch, height, width, channels = backbone.shape
    tokens = tf.reshape(backbone, [batch, height * width, channels])
    stem = model.encoder.stem_ln(model.encoder.stem_projection(tokens))
    memory = model._encode_images(images, training=False)
    infer_len = max_instances * 5 + 1

    @tf.function
    def infer(images):
        return model.infer(images, prompt, encoded=None, max_seq_len=infer_len, temperature=1.0, top_k=1, top_p=1.0)

    tokens, logits, _ = infer(images)
    tokens, logits = tokens.numpy()[0], logits.numpy()[0]
    assert (logits.argmax(-1) == tokens).all(), 'greedy tokens are not the argmax of the logits'
    ordered = np.sort(logits, -1)
    teacher_input = np.concatenate([[config.task.vocab_id], tokens[:-1]]).astype(np.int64)
    teacher_logits = model(images, tf.constant(teacher_input[None]), training=False).numpy()[0]
    synth_generator, synth = np.random.RandomState(7), []
    for _ in range(max_instances):
        y0, x0 = synth_generator.randint(0, 600, 2)
        y1, x1 = y0 + synth_generator.randint(1, 400), x0 + synth_generator.randint(1, 400)
        synth += [config.model.coord_vocab_shift + min(int(c), 999) for c in (y0, x0, y1, x1)]
        synth += [100 + synth_generator.randint(1, 91)]
    synth_input = np.array([config.task.vocab_id] + synth[:-1], np.int64)
    synth_logits = model(images, tf.constant(synth_input[None]), training=False).numpy()[0]
    classes, boxes, scores = task_utils.decode_object_seq_to_bbox(
        tf.constant(logits[None]), tf.constant(tokens[None]), config.task.quantization_bins,
        config.model.coord_vocab_shift)
    reference = dict(
        raw_image_uint8=raw, image=example['image'].numpy().astype(np.float32),
        unpadded_image_size=example['unpadded_image_size'].numpy(), backbone_feature=backbone.numpy()[0],
        stem_ln_out=stem.numpy()[0], encoder_vis_pos_emb=np.asarray(model.encoder.vis_pos_emb),
        encoder_output=encoded.numpy()[0], proj_vis_pos_emb=np.asarray(model.vis_pos_emb),
        memory=memory.numpy()[0], prompt_token=np.array(config.task.vocab_id), logits_first5=logits[:5],
        greedy_tokens=tokens.astype(np.int64), greedy_top1_top2_margin=(ordered[:, -1] - ordered[:, -2]),
        infer_logits_all=logits, teacher_forced_input=teacher_input, teacher_forced_logits=teacher_logits,
        synth_input=synth_input, synth_logits=synth_logits, decoded_classes=classes.numpy()[0],
        decoded_boxes_yxyx01=boxes.numpy()[0], decoded_scores=scores.numpy()[0])
    for index, stage in enumerate(hidden_stack):
        reference[f'resnet_block_group{index + 1}'] = stage.numpy()[0]
    np.savez_compressed(os.path.join(args.out_dir, 'reference.npz'),
                        **{key: np.asarray(value) for key, value in reference.items()})
    margins = reference['greedy_top1_top2_margin']
    print(json.dumps(dict(seconds=round(time.time() - start, 1), min_greedy_margin=float(margins.min()),
                          positions_margin_below_1e3=np.nonzero(margins < 1e-3)[0].tolist(),
                          greedy_head=tokens[:10].tolist()), indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-code', help='a checkout of google-research/pix2seq')
    parser.add_argument('--variant', choices=sorted(VARIANTS), default='tiny')
    parser.add_argument('--out-dir', default='tests/data/official_tiny')
    parser.add_argument('--checkpoint-dir', help='also keep the TF checkpoint here (default: a temporary folder)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--dump-checkpoint', nargs=2, metavar=('CKPT', 'OUT_NPZ'),
                        help='only write the model variables of a TF checkpoint to a .npz')
    args = parser.parse_args()
    if args.dump_checkpoint:
        dump_checkpoint(*args.dump_checkpoint)
    elif not args.official_code:
        parser.error('--official-code is required to build the reference')
    else:
        make_fixture(args)


if __name__ == '__main__':
    main()
