from .rope import audio_coordinates, video_coordinates
from .text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings
from .transformer_ltx2 import LTX2AudioVideoTransformer, LTX2TransformerOutput

__all__ = [
    "LTX2AudioVideoTransformer",
    "LTX2TextConnectors",
    "LTX2TextEmbeddings",
    "LTX2TransformerOutput",
    "audio_coordinates",
    "video_coordinates",
]
