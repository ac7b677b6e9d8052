"""Converters of released official weights (google-research/pix2seq TF2 checkpoints) to this package's models."""
from .official import (OFFICIAL_ARCHITECTURES, RELEASED_CHECKPOINTS, ConversionError, ReleasedCheckpoint, build_model,
                       checkpoint_meta, convert_official_variables, find_official_config, identify_release,
                       load_model_config, official_architecture, official_model_options, official_sources,
                       read_checkpoint, read_tf_checkpoint, reinit_class_tokens, target_config_name)

__all__ = [
    'ConversionError', 'build_model', 'checkpoint_meta', 'convert_official_variables', 'find_official_config',
    'load_model_config', 'official_model_options', 'official_sources', 'read_checkpoint', 'read_tf_checkpoint',
    'reinit_class_tokens', 'OFFICIAL_ARCHITECTURES', 'RELEASED_CHECKPOINTS', 'ReleasedCheckpoint',
    'identify_release', 'official_architecture', 'target_config_name'
]
