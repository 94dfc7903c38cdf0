from .audio_processing import (
    audio_latent_length,
    log_mel_spectrogram,
    pack_audio_latents,
    resample,
    unpack_audio_latents,
    waveform_length,
)
from .autoencoder_ltx2_audio import LTX2AudioAutoencoder
from .autoencoder_ltx2_video import LTX2VideoAutoencoder, denormalize_latents, normalize_latents
from .latent_upsampler_ltx2 import LTX2LatentUpsampler, upsample_normalized_latents
from .rope import audio_coordinates, video_coordinates
from .text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings
from .tiling import VideoTiling
from .transformer_ltx2 import LTX2AudioVideoTransformer, LTX2TransformerOutput, LTX2VideoTransformer3DModel
from .vocoder_bwe_ltx2 import LTX2VocoderWithBWE
from .vocoder_ltx2 import LTX2Vocoder

__all__ = [
    "LTX2LatentUpsampler",
    "LTX2VideoAutoencoder",
    "VideoTiling",
    "denormalize_latents",
    "normalize_latents",
    "upsample_normalized_latents",
    "LTX2AudioAutoencoder",
    "LTX2AudioVideoTransformer",
    "LTX2VideoTransformer3DModel",
    "LTX2TextConnectors",
    "LTX2TextEmbeddings",
    "LTX2TransformerOutput",
    "LTX2Vocoder",
    "LTX2VocoderWithBWE",
    "audio_coordinates",
    "audio_latent_length",
    "log_mel_spectrogram",
    "pack_audio_latents",
    "resample",
    "unpack_audio_latents",
    "video_coordinates",
    "waveform_length",
]
