"""LTX-2 joint audio+video diffusion as a first-class Diffusers package."""

from .models import (
    LTX2AudioAutoencoder,
    LTX2AudioVideoTransformer,
    LTX2LatentUpsampler,
    LTX2TextConnectors,
    LTX2TextEmbeddings,
    LTX2TransformerOutput,
    LTX2VideoAutoencoder,
    LTX2VideoTransformer3DModel,
    LTX2Vocoder,
    LTX2VocoderWithBWE,
    VideoTiling,
    audio_coordinates,
    audio_latent_length,
    log_mel_spectrogram,
    video_coordinates,
)
from .pipelines import (
    DISTILLED_SIGMAS,
    STAGE_2_DISTILLED_SIGMAS,
    ImageCondition,
    LTX2AudioVideoPipeline,
    LTX2PipelineOutput,
    LTX2PromptEncoder,
    TokenTiling,
    encode_prompt,
)
from .schedulers import LTX2Scheduler

__version__ = "0.1.0.dev0"

__all__ = [
    "DISTILLED_SIGMAS",
    "STAGE_2_DISTILLED_SIGMAS",
    "ImageCondition",
    "LTX2AudioVideoPipeline",
    "LTX2LatentUpsampler",
    "LTX2PipelineOutput",
    "LTX2VideoAutoencoder",
    "VideoTiling",
    "LTX2AudioAutoencoder",
    "LTX2AudioVideoTransformer",
    "LTX2VideoTransformer3DModel",
    "LTX2PromptEncoder",
    "LTX2Scheduler",
    "LTX2TextConnectors",
    "LTX2TextEmbeddings",
    "LTX2TransformerOutput",
    "LTX2Vocoder",
    "LTX2VocoderWithBWE",
    "TokenTiling",
    "audio_coordinates",
    "audio_latent_length",
    "encode_prompt",
    "log_mel_spectrogram",
    "video_coordinates",
]
