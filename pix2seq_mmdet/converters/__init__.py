"""Converters of released official weights (google-research/pix2seq TF2 checkpoints) to this package's models."""
from .official import (ConversionError, build_model, checkpoint_meta, convert_official_variables,
                       find_official_config, load_model_config, official_model_options, official_sources,
                       read_checkpoint, read_tf_checkpoint, reinit_class_tokens)

__all__ = [
    'ConversionError', 'build_model', 'checkpoint_meta', 'convert_official_variables', 'find_official_config',
    'load_model_config', 'official_model_options', 'official_sources', 'read_checkpoint', 'read_tf_checkpoint',
    'reinit_class_tokens'
]
