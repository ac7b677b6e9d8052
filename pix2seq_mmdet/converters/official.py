"""The released official Pix2Seq TF2 checkpoints (google-research/pix2seq) as this package's state_dict.

The mapping works on a plain ``{checkpoint key: numpy array}`` dict, so that everything but reading a TF checkpoint
(:func:`read_tf_checkpoint`, the only function that imports TensorFlow) runs without TensorFlow.

Checkpoint keys are TF2 object-graph paths: ``model/<attribute path>/.ATTRIBUTES/VARIABLE_VALUE`` (see
``docs/official_weights.md``).  Only ``model/...`` values are read; optimizer slots (``.OPTIMIZER_SLOT``), the
optimizer's own variables, ``global_step`` and ``save_counter`` are skipped.  Every parameter of the target model is
derived from named official variables (:func:`official_sources`), so a conversion reports, in one error, every
checkpoint variable it did not use, every variable it needed but did not find and every shape mismatch.

Conversions (TF -> torch): convolution kernels HWIO -> OIHW; Dense kernels (in, out) -> ``Linear.weight`` (out, in);
Keras ``MultiHeadAttention`` q/k/v kernels (D, H, K) -> rows of the fused ``in_proj`` (3 H K, D), biases (H, K) ->
(H K, ); output kernels (H, K, D) -> (D, H K); BatchNorm gamma/beta/moving_mean/moving_variance -> weight/bias/
running_mean/running_var; LayerNorm gamma/beta -> weight/bias; the learned decoder positions (512 rows in the released
models) are cut to the model's ``5 * max_objects + 1``.
"""
import json
import os
import re
from glob import glob
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np
import torch

CHECKPOINT_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
MODEL_PREFIX = 'model/'
RESNET = 'encoder/resnet'
VIT = 'encoder'  # the official VisionTransformer is the model's encoder
ENCODER_LAYERS = 'encoder/transformer_encoder/enc_layers'
DECODER_LAYERS = 'decoder/decoder/dec_layers'
BN_NAMES = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'moving_mean', 'running_var': 'moving_variance'}
LN_NAMES = {'weight': 'gamma', 'bias': 'beta'}
# decoder variables made with add_weight(name='<layer name>/<name>'): the key holds '<layer name>.S<name>' ('.S' is an
# escaped '/'); the layer name is 'ar_decoder' in the official code, matched by suffix in case it was uniquified
DECODER_WEIGHTS = {'head.token_embed.weight': 'token_embedding', 'head.pos_embed.weight': 'seq_pos_embedding',
                   'head.output_bias': 'outp_bias'}
DEFAULT_DECODER_LAYER_NAME = 'ar_decoder'
SHOWN_PER_LIST = 20


class ConversionError(ValueError):
    """A checkpoint that does not map onto the model; the message lists every problem."""


# ------------------------------------------------------------------------------------------- reading checkpoints
def is_model_variable(key: str) -> bool:
    """Whether a checkpoint key holds a model variable (``model/...``, not an optimizer slot)."""
    return key.startswith(MODEL_PREFIX) and '.OPTIMIZER_SLOT' not in key and (
        key.endswith(CHECKPOINT_SUFFIX) or '/.ATTRIBUTES/' not in key)


def model_variables(variables: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Checkpoint values -> ``{short name: array}`` of the model variables, the short name without ``model/`` and
    ``/.ATTRIBUTES/VARIABLE_VALUE`` (``encoder/stem_ln/gamma``); everything else is dropped."""
    result = {}
    for key, value in variables.items():
        if is_model_variable(key):
            name = key[len(MODEL_PREFIX):]
            if name.endswith(CHECKPOINT_SUFFIX):
                name = name[:-len(CHECKPOINT_SUFFIX)]
            result[name] = np.asarray(value)
    return result


def find_checkpoint_prefix(path: str) -> str:
    """A checkpoint prefix (``.../ckpt-400000``), a directory holding one (the ``checkpoint`` file's latest, else the
    highest-numbered ``*.index``) or a ``.index`` / ``.data-*`` file -> the prefix."""
    if os.path.isdir(path):
        state = os.path.join(path, 'checkpoint')
        if os.path.isfile(state):
            with open(state) as file:
                match = re.search(r'^model_checkpoint_path:\s*"(.+)"', file.read(), re.MULTILINE)
            if match:
                prefix = match.group(1)
                return prefix if os.path.isabs(prefix) else os.path.join(path, prefix)
        indexes = glob(os.path.join(path, '*.index'))
        if not indexes:
            raise FileNotFoundError(f'no TF checkpoint (*.index) in {path}')

        def step(index_path: str) -> int:
            numbers = re.findall(r'\d+', os.path.basename(index_path))
            return int(numbers[-1]) if numbers else -1

        return max(indexes, key=step)[:-len('.index')]
    if path.endswith('.index'):
        return path[:-len('.index')]
    match = re.match(r'(.*)\.data-\d+-of-\d+$', path)
    return match.group(1) if match else path


def read_tf_checkpoint(path: str) -> Dict[str, np.ndarray]:
    """The model variables of a TF2 checkpoint (prefix or directory) as ``{checkpoint key: array}``; needs TensorFlow
    (``pip install -e .[convert]``), imported here only."""
    try:
        import tensorflow as tf
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('reading a TF checkpoint needs TensorFlow: pip install -e ".[convert]" (or convert a .npz '
                          'of the checkpoint\'s variables instead)') from error
    prefix = find_checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix) if is_model_variable(name)}


def read_checkpoint(path: str) -> Dict[str, np.ndarray]:
    """A TF checkpoint, or a ``.npz`` of ``{checkpoint key: array}`` (e.g. the test fixture) -> its model variables."""
    if path.endswith('.npz'):
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files if is_model_variable(key)}
    return read_tf_checkpoint(path)


def find_official_config(path: str) -> Optional[dict]:
    """The ``config.json`` stored beside a released checkpoint (in its directory), parsed, or None."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    candidate = os.path.join(folder, 'config.json')
    if os.path.isfile(candidate):
        with open(candidate) as file:
            return json.load(file)
    return None


# ------------------------------------------------------------------------------------- official config -> model
def _section(config: dict, name: str) -> dict:
    return config.get(name, {}) if isinstance(config.get(name), dict) else {}


def _task_sections(config: dict) -> List[dict]:
    """The task sections of an official config (``tasks``, else ``task``)."""
    return [task for task in config.get('tasks') or [_section(config, 'task')] if isinstance(task, dict)]


def official_tasks(config: dict) -> List[str]:
    """The official task names of a config, e.g. ``['object_detection']``."""
    return [task.get('name', 'object_detection') for task in _task_sections(config)]


def _official_task(config: dict, name: str) -> dict:
    """The section of task ``name`` (empty if the config has none)."""
    return next((task for task in _task_sections(config) if task.get('name') == name), {})


def official_model_options(config: dict) -> Dict[str, object]:
    """An official ``config.json`` (the whole config, or its ``model`` section) -> ``Config.merge_from_dict`` options
    (dotted keys under ``model.``) that size a model of ``configs/official`` like it: the encoder (ResNet depth,
    width and variant and the Transformer encoder; or the ViT's patch, width, depth and heads), the decoder's
    widths, depths and heads, the frame (``image_size``), the vocabulary size, and from the ``task`` sections the
    bins, the number of objects and the instance tasks (polygon points, keypoints; captioning is left out).  Fails on
    options this package does not implement (``c3``/``dc5`` variants, selective kernels, a class token, learned
    image positions, other decoder projections or position codes, coordinates not at 1000, other tasks)."""
    model = _section(config, 'model') or config
    task = _section(config, 'task')
    unsupported = []

    def expect(key: str, allowed: Iterable, default=None) -> None:
        value = model.get(key, default)
        if value not in allowed:
            unsupported.append(f'{key}={value!r} (supported: {", ".join(map(repr, allowed))})')

    expect('resnet_variant', ('standard', 'c4', 'c1'))
    expect('dec_proj_mode', ('mlp', ), 'mlp')
    expect('pos_encoding', ('sin_cos', ), 'sin_cos')
    expect('pos_encoding_dec', ('learned', ), 'learned')
    expect('use_cls_token', (False, ), False)
    expect('shared_decoder_embedding', (True, ), True)
    expect('decoder_output_bias', (True, ), True)
    expect('coord_vocab_shift', (1000, ), 1000)
    if int(model.get('vocab_size', 3000)) < 3000:
        unsupported.append(f'vocab_size={model["vocab_size"]} (supported: >= 3000)')
    if float(model.get('resnet_sk_ratio', 0) or 0) > 0:
        unsupported.append(f'resnet_sk_ratio={model["resnet_sk_ratio"]} (selective-kernel ResNets)')
    # captioning (the multi-task checkpoints) is left out: its text tokens stay in the vocabulary, unused
    tasks = [name for name in official_tasks(config) if name not in UNCONVERTED_TASKS]
    unknown_tasks = [name for name in tasks if name not in OFFICIAL_TASK_NAMES]
    if unknown_tasks:
        unsupported.append(f'tasks {unknown_tasks} (supported: {", ".join(OFFICIAL_TASK_NAMES)}, and '
                           f'{", ".join(UNCONVERTED_TASKS)} left out)')
    if unsupported:
        raise ConversionError('the official config uses options this package does not implement: '
                              + '; '.join(unsupported))
    dim_att, dim_att_dec = int(model['dim_att']), int(model['dim_att_dec'])
    options = _vit_options(model) if model['resnet_variant'] == 'c1' else _resnet_options(model)
    options.update({
        # the official code adds a second code, of the decoder width, before the memory MLP
        'model.memory_positional_encoding': dict(type='Pix2SeqSinCosPositionalEncoding', embed_dims=dim_att_dec),
        # the official proj_mlp uses the ENCODER's mlp ratio at the decoder width
        'model.memory_proj.ffn_dims': dim_att_dec * (int(model['dim_mlp']) // dim_att),
        'model.head.embed_dims': dim_att_dec,
        'model.head.num_layers': int(model['num_decoder_layers']),
        'model.head.num_heads': int(model['num_heads_dec']),
        'model.head.ffn_dims': int(model['dim_mlp_dec']),
        'model.head.tokenizer.vocab_size': int(model.get('vocab_size', 3000)),
    })
    image_size = model.get('image_size', task.get('image_size'))
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if image_size:
        options['model.data_preprocessor.pad_size'] = tuple(int(side) for side in image_size)
    for key in ('drop_path', 'drop_units'):
        if key in model:
            target = 'drop_path' if key == 'drop_path' else 'dropout'
            encoder = 'backbone' if model['resnet_variant'] == 'c1' else 'encoder'
            options[f'model.{encoder}.{target}'] = float(model[key])
            options[f'model.head.{target}'] = float(model[key])
    if 'drop_units' in model and model['resnet_variant'] != 'c1':
        options['model.neck.dropout'] = float(model['drop_units'])
    if 'quantization_bins' in task:
        options['model.head.tokenizer.num_bins'] = int(task['quantization_bins'])
    if 'max_instances_per_image_test' in task:
        options['model.head.tokenizer.max_objects'] = int(task['max_instances_per_image_test'])
    if len(tasks) > 1:
        options['model.head.tokenizer.tasks'] = tuple(OFFICIAL_TASK_NAMES[name] for name in tasks)
        segmentation = _official_task(config, 'instance_segmentation')
        keypoints = _official_task(config, 'keypoint_detection')
        if 'max_points_per_object' in segmentation:
            options['model.head.tokenizer.max_points_per_object'] = int(segmentation['max_points_per_object'])
        if 'max_points_per_object' in keypoints:
            options['model.head.tokenizer.num_keypoints'] = int(keypoints['max_points_per_object'])
    return options


def _resnet_options(model: dict) -> Dict[str, object]:
    """Options of the ResNet encoder (``ResNetTransformer``): backbone, stem projection, Transformer encoder."""
    width = float(model.get('resnet_width_multiplier', 1))
    base_channels = int(64 * width)
    stages = 3 if model['resnet_variant'] == 'c4' else 4
    dim_att = int(model['dim_att'])
    return {
        'model.backbone.depth': int(model['resnet_depth']),
        'model.backbone.base_channels': base_channels,
        'model.backbone.num_stages': stages,
        'model.backbone.strides': (1, 2, 2, 2)[:stages],
        'model.backbone.dilations': (1, ) * stages,
        'model.backbone.out_indices': (stages - 1, ),
        'model.neck.in_channels': [base_channels * 2**(stages - 1) * 4],
        'model.neck.out_channels': dim_att,
        'model.encoder.num_layers': int(model['num_encoder_layers']),
        'model.encoder.embed_dims': dim_att,
        'model.encoder.num_heads': int(model['num_heads']),
        'model.encoder.ffn_dims': int(model['dim_mlp']),
        'model.positional_encoding.embed_dims': dim_att,
    }


def _vit_options(model: dict) -> Dict[str, object]:
    """Options of the ViT encoder (``VisionTransformer``, ``resnet_variant='c1'``): :class:`Pix2SeqViT`."""
    return {
        'model.backbone.patch_size': int(model.get('patch_size', 16)),
        'model.backbone.embed_dims': int(model['dim_att']),
        'model.backbone.num_layers': int(model['num_encoder_layers']),
        'model.backbone.num_heads': int(model['num_heads']),
        'model.backbone.ffn_dims': int(model['dim_mlp']),
    }


# ------------------------------------------------------------------------------------ the released checkpoints
# the released architectures (official configs/config_base.py, architecture_config_map; the ViTs' patch size from the
# model section of configs/config_det_finetune.py)
OFFICIAL_ARCHITECTURES = {
    'r50': dict(resnet_variant='standard', resnet_depth=50, resnet_width_multiplier=1, num_encoder_layers=6,
                dim_att=256, dim_mlp=1024, num_heads=8, num_decoder_layers=6, dim_att_dec=256, dim_mlp_dec=1024,
                num_heads_dec=8),
    'r50-c4': dict(resnet_variant='c4', resnet_depth=50, resnet_width_multiplier=1, num_encoder_layers=12,
                   dim_att=512, dim_mlp=2048, num_heads=16, num_decoder_layers=8, dim_att_dec=512, dim_mlp_dec=2048,
                   num_heads_dec=16),
    'vit-b': dict(resnet_variant='c1', patch_size=16, num_encoder_layers=12, dim_att=768, dim_mlp=3072, num_heads=12,
                  num_decoder_layers=6, dim_att_dec=512, dim_mlp_dec=2048, num_heads_dec=16),
    'vit-l': dict(resnet_variant='c1', patch_size=16, num_encoder_layers=24, dim_att=1024, dim_mlp=4096, num_heads=16,
                  num_decoder_layers=8, dim_att_dec=512, dim_mlp_dec=2048, num_heads_dec=16),
}
# official task name -> this package's (Pix2SeqTokenizer.tasks)
OFFICIAL_TASK_NAMES = {'object_detection': 'detection', 'instance_segmentation': 'instance_segmentation',
                       'keypoint_detection': 'keypoints'}
# official tasks whose weights convert with the model but that this package does not run (captioning's text comes
# from a sentencepiece vocabulary kept in the authors' bucket)
UNCONVERTED_TASKS = ('captioning', )


class ReleasedCheckpoint(NamedTuple):
    """A checkpoint folder of the official README, the config of this package that runs it (``configs/official``)
    and its official COCO detection AP (None for the Objects365 pretraining)."""
    architecture: str
    kind: str
    frame: int
    folder: str
    config: str
    coco_ap: Optional[float]


def _released() -> Tuple[ReleasedCheckpoint, ...]:
    rows = []
    names = {'r50': 'resnet', 'r50-c4': 'resnetc', 'vit-b': 'vit_b', 'vit-l': 'vit_l'}
    coco_ap = {'r50': (39.1, 41.7, 42.6), 'r50-c4': (44.7, 46.9, 47.3), 'vit-b': (44.2, 46.5, 47.1),
               'vit-l': (47.6, 49.2, 50.0)}
    for architecture, name in names.items():
        fine_tune = ('pix2seq_r50-official-o365pre_8xb4_40e_coco-640.py' if architecture == 'r50' else
                     f'pix2seq_{architecture}-official-o365pre_8xb4_40e_coco-640.py')
        rows.append(ReleasedCheckpoint(architecture, 'objects365', 640,
                                       f'obj365_pretrain/{name}_640x640_b256_s400k', fine_tune, None))
        for frame, ap in zip((640, 1024, 1333), coco_ap[architecture]):
            config = (f'pix2seq_r50-official_8xb4_300e_coco-{frame}.py' if architecture == 'r50' else
                      f'pix2seq_{architecture}-official-o365pre_8xb4_40e_coco-{frame}.py')
            rows.append(ReleasedCheckpoint(architecture, 'coco', frame,
                                           f'coco_det_finetune/{name}_{frame}x{frame}', config, ap))
    for frame, ap in ((640, 44.2), (1024, 46.5)):
        rows.append(ReleasedCheckpoint('vit-b', 'multi-task', frame, f'multi_task/ckpt/vit_b_{frame}x{frame}',
                                       f'pix2seq-v2-multitask_vit-b-official_coco-{frame}.py', ap))
    return tuple(rows)


RELEASED_CHECKPOINTS = _released()


def target_config_name(config: dict) -> Tuple[Optional[ReleasedCheckpoint], str]:
    """The released checkpoint an official config describes (or None) and the file name, in ``configs/official``,
    of the config that runs it: the release's own, else the 640-px config of its family (ResNet, ResNet-C4, ViT;
    detection or multi-task), which :func:`official_model_options` then resizes like the official config."""
    release = identify_release(config)
    if release is not None:
        return release, release.config
    model = _section(config, 'model') or config
    if len(official_tasks(config)) > 1:
        return None, 'pix2seq-v2-multitask_vit-b-official_coco-640.py' if model.get('resnet_variant') == 'c1' else \
            'pix2seq_r50-official_8xb4_300e_coco-640.py'
    family = {'c1': 'vit-b', 'c4': 'r50-c4'}.get(model.get('resnet_variant'), 'r50')
    return None, next(release.config for release in RELEASED_CHECKPOINTS
                      if (release.architecture, release.kind, release.frame) == (family, 'coco', 640))


def official_architecture(config: dict) -> Optional[str]:
    """The released architecture (a key of :data:`OFFICIAL_ARCHITECTURES`) whose sizes an official config has, or
    None (another size: convertible into an explicit ``--config``)."""
    model = _section(config, 'model') or config
    for name, sizes in OFFICIAL_ARCHITECTURES.items():
        if all(key in model and model[key] == value for key, value in sizes.items()):
            return name
    return None


def identify_release(config: dict) -> Optional[ReleasedCheckpoint]:
    """The released checkpoint an official ``config.json`` describes (architecture from the model sizes; kind from
    the datasets and tasks: Objects365 pretraining, COCO fine-tune, or the multi-task model; the frame from
    ``image_size``), or None when no released folder has that config."""
    architecture = official_architecture(config)
    model = _section(config, 'model') or config
    image_size = model.get('image_size', _section(config, 'task').get('image_size'))
    frame = int(image_size if isinstance(image_size, int) else (image_size or [0])[0])
    datasets = [dataset.get('name', '') for dataset in (config.get('datasets') or [_section(config, 'dataset')])
                if isinstance(dataset, dict)]
    if any('objects365' in name or 'obj365' in name for name in datasets):
        kind = 'objects365'
    else:
        kind = 'multi-task' if len(official_tasks(config)) > 1 else 'coco'
    for release in RELEASED_CHECKPOINTS:
        if (release.architecture, release.kind, release.frame) == (architecture, kind, frame):
            return release
    return None


# --------------------------------------------------------------------------------------------- the key mapping
def _conv(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)


def _dense(kernel: np.ndarray) -> np.ndarray:
    return kernel.T


def _qkv_kernel(query: np.ndarray, key: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.concatenate([part.reshape(part.shape[0], -1).T for part in (query, key, value)])


def _qkv_bias(query: np.ndarray, key: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.concatenate([part.reshape(-1) for part in (query, key, value)])


def _attention_output(kernel: np.ndarray) -> np.ndarray:
    return kernel.reshape(-1, kernel.shape[-1]).T


def _identity(value: np.ndarray) -> np.ndarray:
    return value


Source = Tuple[List[str], Callable[..., np.ndarray]]


def _norm(prefix: str, attribute: str, names: Dict[str, str]) -> Optional[Source]:
    return ([f'{prefix}/{names[attribute]}'], _identity) if attribute in names else None


def _linear(prefix: str, attribute: str) -> Optional[Source]:
    if attribute == 'weight':
        return [f'{prefix}/kernel'], _dense
    if attribute == 'bias':
        return [f'{prefix}/bias'], _identity
    return None


def _attention(prefix: str, rest: str) -> Optional[Source]:
    parts = [f'{prefix}/_{part}_dense' for part in ('query', 'key', 'value')]
    return {
        'in_proj.weight': ([f'{part}/kernel' for part in parts], _qkv_kernel),
        'in_proj.bias': ([f'{part}/bias' for part in parts], _qkv_bias),
        'out_proj.weight': ([f'{prefix}/_output_dense/kernel'], _attention_output),
        'out_proj.bias': ([f'{prefix}/_output_dense/bias'], _identity),
    }.get(rest)


def _mlp(prefix: str, rest: str) -> Optional[Source]:
    """An official ``MLP(num_layers=1)`` (pre-LN residual FFN) as this package's ``FeedForwardBlock``."""
    module, _, attribute = rest.rpartition('.')
    if module == 'norm':
        return _norm(f'{prefix}/layernorms/0', attribute, LN_NAMES)
    if module in ('layers.0', 'layers.3'):
        return _linear(f'{prefix}/mlp_layers/0/{"dense1" if module == "layers.0" else "dense2"}', attribute)
    return None


def _transformer_layer(prefix: str, rest: str, decoder: bool) -> Optional[Source]:
    names = ({'self_attn': 'self_mha', 'self_attn_norm': 'self_ln', 'cross_attn': 'cross_mha',
              'cross_attn_norm': 'cross_ln'} if decoder else {'self_attn': 'mha', 'self_attn_norm': 'mha_ln'})
    module, _, tail = rest.partition('.')
    if module == 'ffn':
        return _mlp(f'{prefix}/mlp', tail)
    if module not in names:
        return None
    if module.endswith('_norm'):
        return _norm(f'{prefix}/{names[module]}', tail, LN_NAMES)
    return _attention(f'{prefix}/{names[module]}', tail)


def _vit_backbone(rest: str) -> Optional[Source]:
    """A :class:`Pix2SeqViT` parameter from the official ``VisionTransformer`` (the model's ``encoder``)."""
    module, _, attribute = rest.partition('.')
    if module == 'patch_embed':
        return {'weight': ([f'{VIT}/stem_conv/kernel'], _conv), 'bias': ([f'{VIT}/stem_conv/bias'], _identity)}.get(
            attribute)
    if module == 'stem_norm':
        return _norm(f'{VIT}/stem_ln', attribute, LN_NAMES)
    if rest.startswith('encoder.norm.'):
        return _norm(f'{VIT}/output_ln', rest[len('encoder.norm.'):], LN_NAMES)
    match = re.fullmatch(r'encoder\.layers\.(\d+)\.(.+)', rest)
    return _transformer_layer(f'{ENCODER_LAYERS}/{match.group(1)}', match.group(2), False) if match else None


def _backbone(rest: str) -> Optional[Source]:
    if rest.startswith(('patch_embed.', 'stem_norm.', 'encoder.')):
        return _vit_backbone(rest)
    module, _, attribute = rest.rpartition('.')
    if module == 'conv1' and attribute == 'weight':
        return [f'{RESNET}/initial_conv_relu_max_pool/0/conv2d/kernel'], _conv
    if module == 'bn1':
        return _norm(f'{RESNET}/initial_conv_relu_max_pool/2/bn', attribute, BN_NAMES)
    match = re.fullmatch(r'layer(\d+)\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])', module)
    if not match:
        return None
    group, block, part = int(match.group(1)) - 1, int(match.group(2)), match.group(3)
    prefix = f'{RESNET}/block_groups/{group}/layers/{block}'
    if part.startswith('downsample'):
        if part.endswith('0'):
            return ([f'{prefix}/projection_layers/0/conv2d/kernel'], _conv) if attribute == 'weight' else None
        return _norm(f'{prefix}/projection_layers/1/bn', attribute, BN_NAMES)
    index = int(part[-1]) - 1
    if part.startswith('conv'):
        return ([f'{prefix}/conv_relu_dropblock_layers/{(0, 3, 6)[index]}/conv2d/kernel'], _conv
                ) if attribute == 'weight' else None
    return _norm(f'{prefix}/conv_relu_dropblock_layers/{(1, 4, 7)[index]}/bn', attribute, BN_NAMES)


def official_sources(param: str, decoder_layer_name: str = DEFAULT_DECODER_LAYER_NAME) -> Optional[Source]:
    """The official variables (short names) a parameter of this package's official-architecture model is made of,
    and the function that combines them into the torch tensor; None if the parameter has no official counterpart.

    ``num_batches_tracked`` buffers have none (they are written as 0 by :func:`convert_official_variables`).
    """
    module, _, rest = param.partition('.')
    if module == 'backbone':
        return _backbone(rest)
    if module == 'neck':
        sub, _, attribute = rest.partition('.')
        if sub == 'proj':
            return _linear('encoder/stem_projection', attribute)
        if sub == 'norm':
            return _norm('encoder/stem_ln', attribute, LN_NAMES)
        return None
    if module == 'encoder':
        if rest.startswith('norm.'):
            return _norm('encoder/output_ln', rest[len('norm.'):], LN_NAMES)
        match = re.fullmatch(r'layers\.(\d+)\.(.+)', rest)
        return _transformer_layer(f'{ENCODER_LAYERS}/{match.group(1)}', match.group(2), False) if match else None
    if module == 'memory_proj':
        if rest.startswith('proj.0.'):
            return _linear('proj', rest[len('proj.0.'):])
        if rest.startswith('proj.1.'):
            return _norm('proj_ln', rest[len('proj.1.'):], LN_NAMES)
        if rest.startswith('mlp.'):
            return _mlp('proj_mlp', rest[len('mlp.'):])
        return None
    if module == 'head':
        if param in DECODER_WEIGHTS:
            return [f'decoder/{decoder_layer_name}.S{DECODER_WEIGHTS[param]}'], _identity
        if rest.startswith('norm.'):
            return _norm('decoder/output_ln', rest[len('norm.'):], LN_NAMES)
        match = re.fullmatch(r'layers\.(\d+)\.(.+)', rest)
        return _transformer_layer(f'{DECODER_LAYERS}/{match.group(1)}', match.group(2), True) if match else None
    return None


def _decoder_layer_name(names: Iterable[str]) -> str:
    """The layer name of the decoder's ``add_weight`` variables (``ar_decoder`` unless uniquified)."""
    for name in names:
        match = re.fullmatch(r'decoder/(.+)\.Stoken_embedding', name)
        if match:
            return match.group(1)
    return DEFAULT_DECODER_LAYER_NAME


def _listing(title: str, items: List[str]) -> str:
    shown = items[:SHOWN_PER_LIST]
    more = f'\n    ... and {len(items) - len(shown)} more' if len(items) > len(shown) else ''
    return f'  {title} ({len(items)}):\n' + '\n'.join(f'    {item}' for item in shown) + more


def convert_official_variables(variables: Dict[str, np.ndarray],
                               model_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official checkpoint variables -> a state_dict of the model whose ``state_dict()`` is ``model_state``.

    Args:
        variables (dict): ``{checkpoint key or short name: array}``; keys outside ``model/`` and optimizer slots are
            ignored (see :func:`model_variables`); a dict of short names only (no ``model/`` key) is read as such.
        model_state (dict): The target model's ``state_dict()`` (names and shapes; values unused).

    Returns:
        dict: ``{parameter name: float32 tensor}`` for every entry of ``model_state``.

    Raises:
        ConversionError: Listing every checkpoint variable left unused, every variable missing for a model
            parameter, every parameter without an official counterpart and every shape mismatch.
    """
    if not any(key.startswith(MODEL_PREFIX) for key in variables):  # short names only
        variables = {MODEL_PREFIX + key: value for key, value in variables.items()}
    official = model_variables(variables)
    decoder_layer_name = _decoder_layer_name(official)
    state, used = {}, set()
    missing, unmatched, mismatched = [], [], []
    for param, target in model_state.items():
        if param.endswith('num_batches_tracked'):
            state[param] = torch.zeros_like(target)
            continue
        sources = official_sources(param, decoder_layer_name)
        if sources is None:
            unmatched.append(f'{param} {tuple(target.shape)}')
            continue
        names, combine = sources
        absent = [name for name in names if name not in official]
        if absent:
            missing.extend(f'{name} (for {param} {tuple(target.shape)})' for name in absent)
            continue
        used.update(names)
        value = combine(*(official[name] for name in names))
        if param == 'head.pos_embed.weight' and value.ndim == 2 and value.shape[0] > target.shape[0]:
            value = value[:target.shape[0]]  # the released models learn 512 positions; we use 5 * max_objects + 1
        if tuple(value.shape) != tuple(target.shape):
            given = ', '.join(f'{name} {tuple(official[name].shape)}' for name in names)
            mismatched.append(f'{param}: model {tuple(target.shape)}, checkpoint gives {tuple(value.shape)} from '
                              f'{given}')
            continue
        state[param] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    unused = sorted(set(official) - used)
    problems = []
    if unused:
        problems.append(_listing('checkpoint variables not mapped to any model parameter', unused))
    if missing:
        problems.append(_listing('checkpoint variables missing (needed by a model parameter)', missing))
    if unmatched:
        problems.append(_listing('model parameters with no official counterpart (the model config is not the '
                                 'official architecture)', unmatched))
    if mismatched:
        problems.append(_listing('shape mismatches', mismatched))
    if problems:
        raise ConversionError(f'the official checkpoint ({len(official)} model variables) does not map onto this '
                              'model:\n' + '\n'.join(problems))
    return state


# ----------------------------------------------------------------------------------------- fine-tuning helpers
def reinit_class_tokens(state: Dict[str, torch.Tensor], tokenizer, std: float = 0.02,
                        generator: Optional[torch.Generator] = None) -> List[int]:
    """Re-initialise, in place, every class-token row of a converted official-layout state_dict, for fine-tuning on
    other classes: the rows of :attr:`~pix2seq_mmdet.models.Pix2SeqTokenizer.class_token_space` (tokens 100..999,
    every official class id, so no class of the source dataset keeps its learned embedding or logit bias) of
    ``head.token_embed.weight`` are drawn from a normal of std ``std`` truncated at 2 std (the official embedding
    initialiser, ``TruncatedNormal(0.02)``) and the same entries of ``head.output_bias`` are set to 0 (the official bias
    initialiser).  Every other weight (the special, FAKE and coordinate tokens, the positions, the whole network) is
    kept.

    Returns:
        list[int]: The re-initialised token ids.
    """
    if tokenizer.layout != 'official':
        raise ValueError('reinit_class_tokens expects the official layout (converted official weights)')
    rows = tokenizer.class_token_space
    embedding = state['head.token_embed.weight']
    fresh = torch.empty_like(embedding[rows])
    torch.nn.init.trunc_normal_(fresh, std=std, a=-2 * std, b=2 * std, generator=generator)
    embedding[rows] = fresh
    state['head.output_bias'][rows] = 0
    return list(range(rows.start, rows.stop))


# ------------------------------------------------------------------------------------------------ model building
def load_model_config(config_path: str, official_config: Optional[dict] = None,
                      cfg_options: Optional[dict] = None):
    """An mmengine ``Config`` of ``config_path``, resized like ``official_config`` (a ``config.json``; see
    :func:`official_model_options`) and updated with ``cfg_options``."""
    from mmengine.config import Config
    cfg = Config.fromfile(config_path)
    if official_config is not None:
        model = _section(official_config, 'model') or official_config
        expected = 'Pix2SeqViT' if model.get('resnet_variant') == 'c1' else 'Pix2SeqResNet'
        if cfg.model.backbone.type != expected:
            raise ConversionError(f'the official config is a {"ViT" if expected == "Pix2SeqViT" else "ResNet"} '
                                  f'model (resnet_variant={model.get("resnet_variant")!r}) but {config_path} builds a '
                                  f'{cfg.model.backbone.type} backbone; use a config of that architecture (see '
                                  'RELEASED_CHECKPOINTS, docs/official_weights.md)')
        cfg.merge_from_dict(official_model_options(official_config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg) -> torch.nn.Module:
    """The detector of an mmengine config (this package registered, mmdet's scope), in eval mode, on the CPU; its
    backbone is not initialised from pretrained weights."""
    import pix2seq_mmdet  # noqa: F401 registers the modules
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model_cfg = cfg.model.copy()
    model_cfg.backbone.init_cfg = None
    return MODELS.build(model_cfg).eval()


def checkpoint_meta(cfg, source: str, official_config: Optional[dict] = None) -> dict:
    """The ``meta`` of a converted checkpoint: its source and, for a COCO-id tokenizer, COCO's class names (what
    ``DetInferencer`` shows)."""
    meta = dict(converted_from=str(source), converter='tools/model_converters/pix2seq_tf2mmdet.py')
    if official_config is not None:
        meta['official_model_config'] = json.loads(json.dumps(_section(official_config, 'model') or official_config,
                                                              default=str))
    tokenizer_cfg = cfg.model.head.tokenizer
    if tokenizer_cfg.get('layout') == 'official' and tokenizer_cfg.get('class_ids') == 'coco':
        from mmdet.datasets import CocoDataset
        meta['dataset_meta'] = dict(classes=list(CocoDataset.METAINFO['classes']))
    return meta
