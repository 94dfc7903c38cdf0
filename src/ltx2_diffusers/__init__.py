"""LTX-2 joint audio+video diffusion as a first-class Diffusers package."""

from .models import LTX2AudioVideoTransformer, LTX2TransformerOutput, audio_coordinates, video_coordinates

__version__ = "0.1.0.dev0"

__all__ = [
    "LTX2AudioVideoTransformer",
    "LTX2TransformerOutput",
    "audio_coordinates",
    "video_coordinates",
]
