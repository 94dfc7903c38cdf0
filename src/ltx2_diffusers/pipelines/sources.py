"""Encoding what a call gives: condition images, and the video / audio clips that are held or retaken.

Every function takes the model it runs (the video or audio VAE) explicitly and returns packed, normalised tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from .conditioning import ImageCondition, PerSampleImages, preprocess_frames, preprocess_image
from .latents import VideoLatentShape, pack_video_latents
from .media import window_mask


@dataclass(frozen=True)
class SourceTokens:
    """The clean, normalised tokens of a given clip and which of them are held (not regenerated).

    Args:
        clean: ``[1, T, C]`` packed normalised latents (zeros where the clip does not reach).
        held: ``[T]`` bool, True for tokens kept as given.
    """

    clean: torch.Tensor
    held: torch.Tensor


@dataclass(frozen=True)
class EncodedCondition:
    """A condition's packed latent ``[1 or B, F'·H'·W', C]`` at one stage's size (``F'`` latent frames: 1 for an
    image), its pixel frame and strength."""

    tokens: torch.Tensor
    frame_index: int
    strength: float
    latent_frames: int = 1


def encode_pixels(vae: LTX2VideoAutoencoder, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, 3, F, H, W]`` pixels in [-1, 1] -> packed normalised latents (the posterior's mode)."""
    return pack_video_latents(vae.normalize_latents(vae.encode(pixels.to(vae.dtype)).latent_dist.mode()))


def encode_conditions(
    vae: LTX2VideoAutoencoder, conditions: tuple[ImageCondition, ...], shape: VideoLatentShape, crf: int,
    device: torch.device,
) -> list[EncodedCondition]:
    """Each condition preprocessed (images: H.264 at their ``crf`` or the call's, resized and centre-cropped; clips:
    resized and cropped) to the size of ``shape`` and encoded; per-sample frame-0 images give ``[B, H'·W', C]``."""
    scale = vae.spatial_compression_ratio
    height, width = shape.height * scale, shape.width * scale

    def encode_image(image: object, image_crf: int) -> torch.Tensor:
        pixels = preprocess_image(image, height, width, image_crf).to(device).view(1, 3, 1, height, width)
        return encode_pixels(vae, pixels)  # [1, H'·W', C]

    encoded = []
    for condition in conditions:
        image_crf = crf if condition.crf is None else condition.crf
        image = condition.image
        if isinstance(image, PerSampleImages):
            distinct: dict[int, torch.Tensor] = {}  # one encode per distinct image object
            for im in image.images:
                if id(im) not in distinct:
                    distinct[id(im)] = encode_image(im, image_crf)
            tokens = torch.cat([distinct[id(im)] for im in image.images])  # [B, H'·W', C]
        elif getattr(image, "ndim", 3) == 4:  # a clip [F, H, W, 3]
            pixels = preprocess_frames(image, height, width).unsqueeze(0).to(device)  # [1, 3, F, h, w]
            tokens = encode_pixels(vae, pixels)  # [1, F'·H'·W', C]
        else:
            tokens = encode_image(image, image_crf)
        frames = tokens.shape[1] // (shape.height * shape.width)
        encoded.append(EncodedCondition(tokens, condition.frame_index, condition.strength, frames))
    return encoded


def encode_video_source(
    vae: LTX2VideoAutoencoder, pixels: torch.Tensor, shape: VideoLatentShape, frame_bounds: torch.Tensor,
    window: tuple[float, float] | None, device: torch.device,
) -> SourceTokens:
    """``[F, 3, H, W]`` pixels in [-1, 1] (``F = 8k+1`` up to the clip's frames) -> the clip's video tokens.

    Latent frames the source reaches are held, except those whose time span (``frame_bounds`` ``[F', 2]`` seconds)
    overlaps the retake ``window``; the rest of the clip (an extension) is generated.
    """
    x = pixels.permute(1, 0, 2, 3).unsqueeze(0).to(device)  # [1, 3, F, H, W]
    tokens = encode_pixels(vae, x)
    clean = torch.zeros(1, shape.num_tokens, shape.channels, device=device, dtype=tokens.dtype)
    clean[:, : tokens.shape[1]] = tokens
    source_frames = (pixels.shape[0] - 1) // vae.temporal_compression_ratio + 1
    held = torch.arange(shape.frames) < source_frames  # [F']
    if window is not None:
        held &= ~window_mask(frame_bounds.cpu(), *window)
    return SourceTokens(clean, held.repeat_interleave(shape.height * shape.width).to(device))


def encode_audio_source(
    audio_vae: LTX2AudioAutoencoder, waveform: torch.Tensor, sample_rate: float, num_tokens: int,
    token_bounds: torch.Tensor, window: tuple[float, float] | None, device: torch.device,
) -> SourceTokens:
    """``[2, N]`` waveform -> the clip's audio tokens: the encoded audio cut to ``num_tokens`` (held, except tokens
    whose time span ``token_bounds`` ``[L, 2]`` overlaps the retake ``window``); tokens past the end of a shorter
    clip are generated."""
    mel = audio_vae.mel_spectrogram(waveform.to(device), sample_rate)  # [1, 2, T, M]
    latents = audio_vae.encode(mel.to(audio_vae.dtype)).latent_dist.mode()
    tokens = audio_vae.normalize_latents(latents)[:, :num_tokens]  # [1, L, C·M]
    clean = torch.zeros(1, num_tokens, tokens.shape[-1], device=device, dtype=tokens.dtype)
    clean[:, : tokens.shape[1]] = tokens
    held = torch.arange(num_tokens) < tokens.shape[1]
    if window is not None:
        held &= ~window_mask(token_bounds.cpu(), *window)
    return SourceTokens(clean, held.to(device))
