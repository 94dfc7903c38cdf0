"""Rough working-memory estimates of a call, from sizes and configs only, to refuse impossible calls up front.

The estimates count what grows with the clip (latents, activations of one transformer call, the VAE decode), not
the weights, and err towards large: a call is refused only when its estimate exceeds twice the device's memory,
i.e. when it could not run however the weights are offloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

# Live [T, width] activations of one transformer block (input, norm, q/k/v, attention output, 4x FFN hidden, ...).
ACTIVATION_WIDTHS = 12
# Stream tensors per token kept through sampling (latents, noise, clean, x0 of each pass, next latents, ...).
LATENT_COPIES = 10
# Live decoder tensors at the output resolution (input, output, residual) per element of the last stage.
DECODE_COPIES = 3
REFUSE_FACTOR = 2.0


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each phase's working set; ``peak`` is the largest."""

    denoise: int
    decode: int

    @property
    def peak(self) -> int:
        return max(self.denoise, self.decode)


def denoise_bytes(
    video_tokens: int, audio_tokens: int, video_width: int, audio_width: int, latent_channels: int,
    audio_channels: int, batch: int, passes_per_call: int, dtype_bytes: int, tile_tokens: int | None = None,
) -> int:
    """Working set of one denoising step: the streams' latents plus the activations of the largest transformer call
    (``passes_per_call`` guidance passes batched together, the video cut to ``tile_tokens`` when tiled)."""
    call_video = video_tokens if tile_tokens is None else min(tile_tokens, video_tokens)
    latents = batch * (video_tokens * latent_channels + audio_tokens * audio_channels) * 4 * LATENT_COPIES
    rows = batch * passes_per_call
    activations = rows * (call_video * video_width + audio_tokens * audio_width) * dtype_bytes * ACTIVATION_WIDTHS
    return latents + activations


def decode_bytes(
    frames: int, height: int, width: int, batch: int, channels_per_pixel: float, dtype_bytes: int,
    tile: tuple[int, int, int] | None = None,
) -> int:
    """Working set of the VAE decode of ``batch`` clips (one clip at a time when ``tile`` is given: the decoder then
    holds one tile of ``(frames, height, width)`` pixels) plus the decoded float32 videos."""
    pixels = frames * height * width
    work = (tile[0] * tile[1] * tile[2]) if tile is not None else batch * pixels
    return int(work * channels_per_pixel * dtype_bytes * DECODE_COPIES) + batch * pixels * 3 * 4


def check_memory(estimate: MemoryEstimate, capacity: int | None, what: str) -> None:
    """``ValueError`` when the estimate exceeds :data:`REFUSE_FACTOR` times the device's memory."""
    if capacity is None or estimate.peak <= REFUSE_FACTOR * capacity:
        return
    phase = "denoising" if estimate.denoise >= estimate.decode else "decoding"
    raise ValueError(
        f"{what} would need about {_gib(estimate.peak)} of working memory for {phase} (denoising "
        f"{_gib(estimate.denoise)}, decoding {_gib(estimate.decode)}, weights not counted), far more than this "
        f"device's {_gib(capacity)}. Generate fewer frames, a smaller size or fewer videos at once; use "
        f"upsample=True with refine_tiling, and decode_tiling=True."
    )


def _gib(value: int) -> str:
    return f"{value / 2**30:,.1f} GiB"
