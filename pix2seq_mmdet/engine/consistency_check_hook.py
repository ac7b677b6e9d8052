"""Checks that the model, the data and a loaded checkpoint agree, run by :class:`ConsistencyCheckHook` before the first
training, validation or test step instead of failing (or silently mis-training) later.

* The dataset's ``metainfo.classes`` and the model's ``num_classes`` must match.
* Images with more objects than ``max_objects`` are reported once (the sequence keeps ``max_objects`` of them).
* A checkpoint must hold parameters of this model with the same shapes: another model's file, another vocabulary
  (``num_classes`` / ``num_bins``) or another ``max_objects`` is an error naming both values, where mmengine would
  only log a warning and train from randomly initialised embeddings.
"""
import re
import warnings

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import find_latest_checkpoint
from torch import nn

from ..models.tokenizer import TOKENS_PER_OBJECT, Pix2SeqTokenizer

VOCABULARY_PARAMETERS = ('head.token_embed.weight', 'head.output_bias')
POSITION_PARAMETER = 'head.pos_embed.weight'
BLOCK_QUERY_PARAMETER = 'head.block_query'  # the block objective's query (parallel box decoding)
SHOWN_MISMATCHES = 5


def _describe(tokenizer: Pix2SeqTokenizer) -> str:
    return (f'num_classes={tokenizer.num_classes}, num_bins={tokenizer.num_bins}, '
            f'max_objects={tokenizer.max_objects}')


def check_dataset_classes(dataset, tokenizer: Pix2SeqTokenizer, loader: str) -> None:
    """The dataset's class count must be the model's ``num_classes``."""
    classes = dataset.metainfo.get('classes')
    if classes is not None and len(classes) != tokenizer.num_classes:
        shown = ', '.join(map(str, classes[:5])) + (', ...' if len(classes) > 5 else '')
        raise ValueError(f'{loader}.dataset has {len(classes)} classes ({shown}) but model.head.tokenizer.num_classes '
                         f'is {tokenizer.num_classes}: set num_classes={len(classes)} in model.head.tokenizer, or '
                         "set the dataset's metainfo.classes")


def warn_about_truncated_sequences(dataset, tokenizer: Pix2SeqTokenizer) -> None:
    """One warning when images have more (non-ignored) objects than a sequence holds."""
    counts = [sum(not instance.get('ignore_flag', 0) for instance in dataset.get_data_info(index)['instances'])
              for index in range(len(dataset))]
    over = [count for count in counts if count > tokenizer.max_objects]
    if over:
        warnings.warn(f'{len(over)} of {len(counts)} training images have more than max_objects='
                      f'{tokenizer.max_objects} objects (up to {max(over)}); each training sequence keeps '
                      f'{tokenizer.max_objects} of them (the first after object_order): raise '
                      'model.head.tokenizer.max_objects to train on all of them')


def check_checkpoint_fits(checkpoint: dict, model: nn.Module, source: str) -> None:
    """A checkpoint's ``state_dict`` must hold this model's parameters with this model's shapes."""
    state = {re.sub(r'^module\.', '', name): value
             for name, value in checkpoint.get('state_dict', checkpoint).items()}
    expected = model.state_dict()
    shared = sorted(expected.keys() & state.keys())
    if not shared:
        raise ValueError(f'checkpoint {source} holds none of the parameters of this Pix2Seq model (its first keys: '
                         f'{list(state)[:3]}): it was saved from another model; initialise a backbone from it with '
                         'model.backbone.init_cfg instead')
    tokenizer = model.head.tokenizer
    for name in VOCABULARY_PARAMETERS:
        if name in state and state[name].shape[0] != tokenizer.vocab_size:
            classes = checkpoint.get('meta', {}).get('dataset_meta', {}).get('classes')
            trained_on = f', trained on {len(classes)} classes' if classes else ''
            raise ValueError(
                f'checkpoint {source} has a vocabulary of {state[name].shape[0]} tokens ({name} '
                f'{tuple(state[name].shape)}{trained_on}) but this model has {tokenizer.vocab_size} '
                f'({tokenizer.describe_vocabulary()}): set num_classes '
                'and num_bins (and tasks) of model.head.tokenizer to the checkpoint\'s; to fine-tune on '
                f'other classes, load a checkpoint without {", ".join(VOCABULARY_PARAMETERS)}')
    if POSITION_PARAMETER in state and state[POSITION_PARAMETER].shape[0] != tokenizer.num_positions:
        length = state[POSITION_PARAMETER].shape[0]
        if tokenizer.num_positions == tokenizer.seq_len:
            raise ValueError(f'checkpoint {source} was trained on sequences of {length} tokens (max_objects '
                             f'{(length - 1) // TOKENS_PER_OBJECT}) but this model uses {tokenizer.seq_len} '
                             f'(max_objects {tokenizer.max_objects}): set model.head.tokenizer.max_objects to the '
                             'checkpoint\'s')
        raise ValueError(f'checkpoint {source} embeds {length} sequence positions but this model embeds '
                         f'{tokenizer.num_positions} (the longest of {tokenizer.seq_len} for detection, max_objects '
                         f'{tokenizer.max_objects}, and {tokenizer.instance_seq_len} for instance segmentation, '
                         f'max_points_per_object {tokenizer.max_points_per_object}): set those of '
                         'model.head.tokenizer to the checkpoint\'s')
    if model.head.decoding_cfg.parallel and BLOCK_QUERY_PARAMETER not in state:
        raise ValueError(f'checkpoint {source} was trained without the block objective (no {BLOCK_QUERY_PARAMETER}): '
                         'it cannot decode one object per step; decode token by token (test_cfg.parallel=False) or '
                         'fine-tune it with model.head.block_decoding first')
    mismatched = [f'{name} {tuple(state[name].shape)} vs {tuple(expected[name].shape)}' for name in shared
                  if state[name].shape != expected[name].shape]
    if mismatched:
        more = ', ...' if len(mismatched) > SHOWN_MISMATCHES else ''
        raise ValueError(f'checkpoint {source} does not fit this model: {len(mismatched)} parameter(s) differ in '
                         f'shape (checkpoint vs model): {", ".join(mismatched[:SHOWN_MISMATCHES])}{more}; build the '
                         'model with the config the checkpoint was trained with')


def _model(runner) -> nn.Module:
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


@HOOKS.register_module()
class ConsistencyCheckHook(Hook):
    """Runs the checks of this module: the data before training, validation and testing start, and every checkpoint
    the runner loads (``load_from``, ``--resume``) before its weights are copied into the model."""
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        dataset, tokenizer = runner.train_dataloader.dataset, _model(runner).head.tokenizer
        check_dataset_classes(dataset, tokenizer, 'train_dataloader')
        warn_about_truncated_sequences(dataset, tokenizer)

    def before_val(self, runner) -> None:
        check_dataset_classes(runner.val_dataloader.dataset, _model(runner).head.tokenizer, 'val_dataloader')

    def before_test(self, runner) -> None:
        check_dataset_classes(runner.test_dataloader.dataset, _model(runner).head.tokenizer, 'test_dataloader')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # what Runner.load_or_resume loads: load_from (also set by --resume PATH), else the work dir's latest
        source = runner.cfg.get('load_from') or find_latest_checkpoint(runner.work_dir) or '(being loaded)'
        check_checkpoint_fits(checkpoint, _model(runner), source)
