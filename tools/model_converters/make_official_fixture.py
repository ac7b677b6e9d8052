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
MULTI_TASKS = ('object_detection@coco/2017_object_detection+instance_segmentation@coco/2017_instance_segmentation'
               '+keypoint_detection@coco/2017_keypoint_detection')


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


TINY_DECODER = dict(num_decoder_layers=2, dim_att_dec=32, dim_mlp_dec=128, num_heads_dec=2, max_seq_len=32)
TINY_RESNET = dict(resnet_depth=50, resnet_width_multiplier=0.125, num_encoder_layers=2, dim_att=48, dim_mlp=96,
                   num_heads=4, **TINY_DECODER)
# 'arch': the architecture_config_map entry copied into config.model (what editing encoder_variant does); 'tasks':
# the official tasks of the config (detection alone: config_det_finetune.py; more: config_multi_task.py)
VARIANTS = {
    'tiny': dict(arch='resnet', image_size=(100, 72), max_instances=5, raw_hw=(50, 30), model=TINY_RESNET),
    'r50': dict(arch='resnet', image_size=(640, 640), max_instances=100, raw_hw=(480, 640), model=dict()),
    # the tiny model with the R50-C4 variant (three block groups, stride 16), to check that mapping too
    'tiny_c4': dict(arch='resnet', image_size=(100, 72), max_instances=5, raw_hw=(50, 30),
                    model=dict(TINY_RESNET, resnet_variant='c4')),
    # the released R50-C4 architecture (architecture_config_map['resnet-c']) at 640 px, 100 objects
    'r50_c4': dict(arch='resnet-c', image_size=(640, 640), max_instances=100, raw_hw=(480, 640), model=dict()),
    # a reduced ViT (patch 8, 12 x 8 patches: a non-square grid), the released ViT-B and ViT-L at 640 px
    'tiny_vit': dict(arch='vit-b', image_size=(96, 64), max_instances=5, raw_hw=(50, 30), model=dict(
        patch_size=8, num_encoder_layers=2, dim_att=48, dim_mlp=192, num_heads=4, **TINY_DECODER)),
    'vit_b': dict(arch='vit-b', image_size=(640, 640), max_instances=100, raw_hw=(480, 640), model=dict()),
    'vit_l': dict(arch='vit-l', image_size=(640, 640), max_instances=100, raw_hw=(480, 640), model=dict()),
    # the multi-task model (config_multi_task.py: 35000 tokens, detection, instance segmentation and keypoint
    # prompts), reduced and at the released ViT-B size
    'tiny_multitask': dict(arch='vit-b', image_size=(96, 64), max_instances=5, raw_hw=(50, 30),
                           tasks=MULTI_TASKS, task_options=dict(instance_segmentation=dict(max_points_per_object=16)),
                           model=dict(
                               patch_size=8, num_encoder_layers=2, dim_att=48, dim_mlp=192, num_heads=4,
                               num_decoder_layers=2, dim_att_dec=16, dim_mlp_dec=64, num_heads_dec=2,
                               max_seq_len=48)),
    'multitask_vit_b': dict(arch='vit-b', image_size=(640, 640), max_instances=100, raw_hw=(480, 640),
                            tasks=MULTI_TASKS, model=dict()),
}
# the reference's logits (cut to the columns ``logit_columns`` for the 35000-token multi-task vocabulary, to keep the
# fixture small)
LOGIT_KEYS = ('logits_first5', 'infer_logits_all', 'teacher_forced_logits', 'synth_logits', 'segmentation_logits',
              'keypoint_logits')
# token groups given a shared direction in structure_embeddings, so that greedy decoding of the random model writes
# objects: the class tokens of ids 1..90 (COCO's category ids are among them) and the coordinate tokens 1000..1999
CLASS_ROWS, COORD_ROWS = (101, 191), (1000, 2000)


def official_config(variant: dict):
    """The official config of a variant, as the official code's own config files build it."""
    from configs import config_det_finetune, config_multi_task, transform_configs
    from configs.config_base import architecture_config_map
    tasks = variant.get('tasks')
    config = (config_multi_task.get_config(f'{tasks},{variant["arch"]}') if tasks
              else config_det_finetune.get_config())
    for key, value in architecture_config_map[variant['arch']].items():  # what editing encoder_variant does
        config.model[key] = value
    config.model.pretrained_ckpt = ''
    if 'resnet_width_multiplier' in variant['model']:
        del config.model['resnet_width_multiplier']  # ConfigDict is type-locked (int -> float)
    config.model.update(variant['model'])
    image_size, max_instances = variant['image_size'], variant['max_instances']
    config.model.image_size = image_size
    for task in config.tasks:
        task.image_size = image_size
        task.update(variant.get('task_options', {}).get(task.name, {}))
    config.tasks[0].max_instances_per_image = max_instances
    config.tasks[0].max_instances_per_image_test = max_instances
    config.tasks[0].eval_transforms = transform_configs.get_object_detection_eval_transforms(
        image_size, max_instances)
    config.task = config.tasks[0]
    return config


def randomise(model, generator) -> None:
    """Randomise the statistics, affine parameters, biases and embeddings the official initialisation leaves
    degenerate (see the module docstring)."""
    import numpy as np
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


def structure_embeddings(model, generator, position_scale: float, token_scale: float, position_noise: float) -> None:
    """Give the class tokens, the coordinate tokens and the decoder positions shared directions so that the random
    model writes objects when decoding greedily: the class rows of the tied token embedding get ``token_scale`` x a
    random unit vector ``u_class``, the coordinate rows ``token_scale`` x ``u_coord``, and each learned decoder
    position ``position_scale`` x the vector of the token it predicts (``u_class`` where the next token is an
    object's class, ``u_coord`` elsewhere) plus ``position_noise`` x a random unit vector of its own (with tied
    embeddings the input token favours itself as the next one; a distinct random part per position breaks the
    repetition).  Within a group the random parts choose the token."""
    import numpy as np
    decoder = model.decoder
    embedding, positions = decoder.token_embedding, decoder.seq_pos_emb
    dims = embedding.shape[-1]
    directions = generator.normal(0, 1, (2, dims))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    token_values = embedding.numpy()
    token_values[slice(*CLASS_ROWS)] += token_scale * directions[0]
    token_values[slice(*COORD_ROWS)] += token_scale * directions[1]
    embedding.assign(token_values)
    position_values = positions.numpy()
    predicts_class = (np.arange(len(position_values)) % 5) == 4  # position i predicts token i + 1
    noise = generator.normal(0, 1, position_values.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    position_values += position_scale * directions[np.where(predicts_class, 0, 1)] + position_noise * noise
    positions.assign(position_values)


def instance_sequences(config, task_utils, tf, generator, np) -> dict:
    """Official teacher-forcing inputs of an instance segmentation and a keypoint prompt on one synthetic object
    (``task_utils.build_instance_prompt_seq`` + ``build_instance_response_seq_from_points``, as the official tasks'
    ``preprocess_batched``): a 12-point polygon in two parts joined by a separator, and 17 keypoints of which 5 are
    invisible."""
    task_ids = {task.name: task.vocab_id for task in config.tasks}
    bins, shift = config.task.quantization_bins, config.model.coord_vocab_shift
    box = np.array([0.2, 0.15, 0.7, 0.8], np.float32)
    label = np.int64(18)
    polygon = generator.uniform(0, 1, (12, 2)).astype(np.float32)
    polygon[6] = -2.  # SEPARATOR_FLOAT
    keypoints = generator.uniform(0, 1, (17, 2)).astype(np.float32)
    keypoints[generator.choice(17, 5, replace=False)] = -3.  # INVISIBLE_FLOAT
    result = dict(instance_box_yxyx01=box, instance_label=np.array(label), polygon_points=polygon,
                  keypoint_points=keypoints)
    for name, task, points in (('segmentation', 'instance_segmentation', polygon),
                               ('keypoint', 'keypoint_detection', keypoints)):
        prompt = task_utils.build_instance_prompt_seq(task_ids[task], tf.constant(box[None, None]),
                                                      tf.constant(np.array([[label]], np.int64)), bins, shift)
        response = task_utils.build_instance_response_seq_from_points(
            tf.constant(points.reshape(1, 1, -1)), tf.constant(np.array([[label]], np.int64)), bins, shift)
        result[f'{name}_input'] = tf.concat([prompt, response], -1).numpy()[0, 0, :-1].astype(np.int64)
    return result


def make_fixture(args) -> None:
    install_shims(args.official_code)
    import numpy as np
    import tensorflow as tf
    from data import transforms as transforms_lib
    from models import ar_model  # noqa: F401 registers 'encoder_ar_decoder'
    from models import model as model_lib
    from tasks import task_utils

    variant = VARIANTS[args.variant]
    tf.keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    config = official_config(variant)
    max_instances = variant['max_instances']
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
    randomise(model, generator)
    structure_embeddings(model, generator, args.position_scale, args.token_scale, args.position_noise)
    trainer.optimizer.iterations.assign(0)
    prefix = trainer.checkpoint_manager.save(0)
    variables = model_variables(prefix)
    np.savez_compressed(os.path.join(args.out_dir, 'variables.npz'), **variables)
    print(f'checkpoint {prefix}: {len(variables)} model variables, '
          f'{sum(int(np.prod(value.shape)) for value in variables.values())} parameters')

    start = time.time()
    reference = dict(raw_image_uint8=raw, image=example['image'].numpy().astype(np.float32),
                     unpadded_image_size=example['unpadded_image_size'].numpy())
    encoded, hidden = model.encoder(images, training=False, ret_list=True)
    if config.model.resnet_variant == 'c1':  # ViT: the patch embedding, then its LayerNorm
        patches = model.encoder.stem_conv(images)
        reference['patch_embedding'] = patches.numpy()[0]
        batch, height, width, channels = patches.shape
        stem = model.encoder.stem_ln(tf.reshape(patches, [batch, height * width, channels]))
    else:
        backbone = hidden[-1]
        reference['backbone_feature'] = backbone.numpy()[0]
        for index, stage in enumerate(hidden):
            reference[f'resnet_block_group{index + 1}'] = stage.numpy()[0]
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
    reference.update(
        stem_ln_out=stem.numpy()[0], encoder_vis_pos_emb=np.asarray(model.encoder.vis_pos_emb),
        encoder_output=encoded.numpy()[0], proj_vis_pos_emb=np.asarray(model.vis_pos_emb),
        memory=memory.numpy()[0], prompt_token=np.array(config.task.vocab_id), logits_first5=logits[:5],
        greedy_tokens=tokens.astype(np.int64), greedy_top1_top2_margin=(ordered[:, -1] - ordered[:, -2]),
        infer_logits_all=logits, teacher_forced_input=teacher_input, teacher_forced_logits=teacher_logits,
        synth_input=synth_input, synth_logits=synth_logits, decoded_classes=classes.numpy()[0],
        decoded_boxes_yxyx01=boxes.numpy()[0], decoded_scores=scores.numpy()[0])
    if len(config.tasks) > 1:
        reference.update(instance_sequences(config, task_utils, tf, np.random.RandomState(11), np))
        for name in ('segmentation', 'keypoint'):
            sequence = tf.constant(reference[f'{name}_input'][None])
            reference[f'{name}_logits'] = model(images, sequence, training=False).numpy()[0]
    vocab_size = logits.shape[-1]
    if vocab_size > 3000:  # the multi-task vocabulary: every detection/v2 token and every 64th text token
        columns = np.concatenate([np.arange(3000), np.arange(3000, vocab_size, 64)])
        reference['logit_columns'] = columns
        for key in LOGIT_KEYS:
            if key in reference:
                reference[key] = reference[key][..., columns]
    np.savez_compressed(os.path.join(args.out_dir, 'reference.npz'),
                        **{key: np.asarray(value) for key, value in reference.items()})
    margins = reference['greedy_top1_top2_margin']
    class_tokens = tokens[4::5]
    print(json.dumps(dict(seconds=round(time.time() - start, 1), min_greedy_margin=float(margins.min()),
                          positions_margin_below_1e3=np.nonzero(margins < 1e-3)[0].tolist(),
                          class_tokens_at_class_positions=int(((class_tokens >= CLASS_ROWS[0])
                                                               & (class_tokens < CLASS_ROWS[1])).sum()),
                          coordinate_tokens=int(((tokens >= COORD_ROWS[0]) & (tokens < COORD_ROWS[1])).sum()),
                          greedy_head=tokens[:10].tolist()), indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-code', help='a checkout of google-research/pix2seq')
    parser.add_argument('--variant', choices=sorted(VARIANTS), default='tiny')
    parser.add_argument('--out-dir', default='tests/data/official_tiny')
    parser.add_argument('--checkpoint-dir', help='also keep the TF checkpoint here (default: a temporary folder)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--position-scale', type=float, default=8.0, help='see structure_embeddings')
    parser.add_argument('--token-scale', type=float, default=3.0, help='see structure_embeddings')
    parser.add_argument('--position-noise', type=float, default=6.0, help='see structure_embeddings')
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
