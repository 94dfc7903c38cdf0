from .rope import audio_coordinates, video_coordinates
from .transformer_ltx2 import LTX2AudioVideoTransformer, LTX2TransformerOutput

__all__ = ["LTX2AudioVideoTransformer", "LTX2TransformerOutput", "audio_coordinates", "video_coordinates"]
