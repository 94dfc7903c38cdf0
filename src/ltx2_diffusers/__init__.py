"""LTX-2 joint audio+video diffusion as a first-class Diffusers package."""

from .models import (
    LTX2AudioAutoencoder,
    LTX2AudioVideoTransformer,
    LTX2TextConnectors,
    LTX2TextEmbeddings,
    LTX2TransformerOutput,
    LTX2Vocoder,
    audio_coordinates,
    audio_latent_length,
    log_mel_spectrogram,
    video_coordinates,
)
from .pipelines import LTX2PromptEncoder, encode_prompt
from .schedulers import LTX2Scheduler

__version__ = "0.1.0.dev0"

__all__ = [
    "LTX2AudioAutoencoder",
    "LTX2AudioVideoTransformer",
    "LTX2PromptEncoder",
    "LTX2Scheduler",
    "LTX2TextConnectors",
    "LTX2TextEmbeddings",
    "LTX2TransformerOutput",
    "LTX2Vocoder",
    "audio_coordinates",
    "audio_latent_length",
    "encode_prompt",
    "log_mel_spectrogram",
    "video_coordinates",
]
