"""Conversion of the original Lightricks LTX-2 checkpoints to the diffusers format."""

from .audio import (
    AUDIO_VAE_PREFIX,
    AUDIO_VAE_RENAMES,
    VOCODER_PREFIX,
    VOCODER_RENAMES,
    audio_vae_config_from_original,
    convert_audio_vae_state_dict,
    convert_vocoder_state_dict,
    original_audio_vae_key,
    original_vocoder_key,
    rename_audio_vae_key,
    rename_vocoder_key,
    vocoder_config_from_original,
)
from .common import check_state_dict, expected_shapes
from .text import (
    CONNECTORS_RENAMES,
    connectors_config_from_original,
    convert_connectors_state_dict,
    original_connectors_key,
    rename_connectors_key,
)
from .transformer import (
    TRANSFORMER_PREFIX,
    TRANSFORMER_RENAMES,
    convert_transformer_state_dict,
    original_transformer_key,
    rename_transformer_key,
    transformer_config_from_original,
)

__all__ = [
    "AUDIO_VAE_PREFIX",
    "AUDIO_VAE_RENAMES",
    "VOCODER_PREFIX",
    "VOCODER_RENAMES",
    "audio_vae_config_from_original",
    "convert_audio_vae_state_dict",
    "convert_vocoder_state_dict",
    "original_audio_vae_key",
    "original_vocoder_key",
    "rename_audio_vae_key",
    "rename_vocoder_key",
    "vocoder_config_from_original",
    "CONNECTORS_RENAMES",
    "connectors_config_from_original",
    "convert_connectors_state_dict",
    "original_connectors_key",
    "rename_connectors_key",
    "TRANSFORMER_PREFIX",
    "TRANSFORMER_RENAMES",
    "check_state_dict",
    "convert_transformer_state_dict",
    "expected_shapes",
    "original_transformer_key",
    "rename_transformer_key",
    "transformer_config_from_original",
]
