"""The state a denoising stage starts from, per stream: clean values, denoise mask, coordinates, and the noised
latents (pure tensor arithmetic; the encoders run in :mod:`~ltx2_diffusers.pipelines.sources`).

The reference's noiser is ``x = ε·(m·k) + clean·(1 - m·k)`` with the denoise mask ``m`` (1 generated, 0 held,
``1 - strength`` for a partial condition) and the noise scale ``k`` (1 from pure noise; the first σ of a
refinement).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .denoising import StreamInputs
from .latents import VideoLatentShape
from .sources import EncodedCondition, SourceTokens


@dataclass(frozen=True)
class StartingPoint:
    """One stream before noise: ``clean [B, T, C]``, ``mask [B, T]`` (1 = generated) and ``coords [B, axes, T, 2]``;
    ``given_tokens`` leading tokens came from the caller's latents."""

    clean: torch.Tensor
    mask: torch.Tensor
    coords: torch.Tensor
    given_tokens: int = 0


def _clean_and_mask(
    batch: int, tokens: int, channels: int, base: torch.Tensor | None, source: SourceTokens | None,
    dtype: torch.dtype, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean values ``[B, T, C]`` (``base`` copied, or zeros; held ``source`` tokens over them) and the mask."""
    clean = torch.zeros(batch, tokens, channels, device=device, dtype=dtype) if base is None else \
        base.to(device=device, dtype=dtype, copy=True)  # never write into the caller's tensor
    mask = torch.ones(batch, tokens, device=device)
    if source is not None:
        clean = torch.where(source.held.view(1, -1, 1), source.clean.to(dtype), clean)
        mask = mask.masked_fill(source.held.view(1, -1), 0.0)
    return clean, mask


def video_starting_point(
    shape: VideoLatentShape, batch: int, coords: torch.Tensor, base: torch.Tensor | None,
    source: SourceTokens | None, conditions: Sequence[EncodedCondition],
    keyframe_coords: Callable[..., torch.Tensor], dtype: torch.dtype, device: torch.device,
) -> StartingPoint:
    """Video tokens (the grid, then the appended latent frames of keyframe conditions).

    Held ``source`` tokens start clean with mask 0; a condition at frame 0 then replaces the first latent frames'
    tokens, any other adds ``F'·H'·W'`` tokens at ``keyframe_coords(frame_index, latent_frames=F')``
    ``[B, 3, F'·H'·W', 2]``. Condition tokens are ``[1, N, C]`` (shared) or ``[B, N, C]`` (one per video).
    """
    clean, mask = _clean_and_mask(batch, shape.num_tokens, shape.channels, base, source, dtype, device)
    extra_clean, extra_mask, extra_coords = [], [], []
    for condition in conditions:
        tokens = condition.tokens.to(device=device, dtype=dtype).expand(batch, -1, -1)  # [B, H'·W', C]
        if condition.frame_index == 0:
            count = tokens.shape[1]
            clean[:, :count], mask[:, :count] = tokens, 1.0 - condition.strength
        else:
            extra_clean.append(tokens)
            extra_mask.append(torch.full(tokens.shape[:2], 1.0 - condition.strength, device=device))
            extra_coords.append(keyframe_coords(condition.frame_index, latent_frames=condition.latent_frames)
                                .to(device))
    if extra_coords:  # float32 keyframe positions promote the (latent-dtype) grid ones, as in the reference
        coords = torch.cat([coords.float(), *extra_coords], dim=2)
    return StartingPoint(torch.cat([clean, *extra_clean], dim=1), torch.cat([mask, *extra_mask], dim=1), coords,
                         shape.num_tokens if base is not None else 0)


def audio_starting_point(
    num_tokens: int, channels: int, batch: int, coords: torch.Tensor, base: torch.Tensor | None,
    source: SourceTokens | None, dtype: torch.dtype, device: torch.device,
) -> StartingPoint:
    """Audio tokens: ``base`` latents (or zeros) with held ``source`` tokens over them."""
    clean, mask = _clean_and_mask(batch, num_tokens, channels, base, source, dtype, device)
    return StartingPoint(clean, mask, coords, num_tokens if base is not None else 0)


def noised(point: StartingPoint, noise: torch.Tensor, noise_scale: float | None) -> StreamInputs:
    """The noised stream: ``noise_scale`` ``None`` means 1, except that tokens of given latents (mask 1) then
    start as given. Held tokens keep a denoise mask (and their clean values) for the sampler."""
    clean, mask = point.clean, point.mask
    scale = mask.unsqueeze(-1) * (1.0 if noise_scale is None else noise_scale)
    start = (noise * scale + clean * (1 - scale)).to(clean.dtype)
    if point.given_tokens and noise_scale is None:
        as_given = torch.zeros_like(mask, dtype=torch.bool)
        as_given[:, : point.given_tokens] = mask[:, : point.given_tokens] == 1
        start = torch.where(as_given.unsqueeze(-1), clean, start)
    conditioned = bool((mask < 1).any())
    return StreamInputs(start, point.coords, context=None, denoise_mask=mask if conditioned else None,
                        clean=clean if conditioned else None)
