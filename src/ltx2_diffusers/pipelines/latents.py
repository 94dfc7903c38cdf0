"""Video latent arithmetic: pixel <-> latent shapes and token packing, as pure functions.

The video VAE maps ``8k+1`` frames of ``H × W`` pixels to ``k+1`` latent frames of ``H/32 × W/32`` (the first frame
is encoded alone). The transformer sees latents packed to ``[B, F·H·W, C]`` tokens in (frame, row, column) order.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class VideoLatentShape(NamedTuple):
    """Latent grid of a clip: ``frames × height × width`` latent cells with ``channels`` each."""

    frames: int
    height: int
    width: int
    channels: int = 128

    @property
    def num_tokens(self) -> int:
        return self.frames * self.height * self.width

    @classmethod
    def from_pixels(
        cls, num_frames: int, height: int, width: int, channels: int = 128, temporal_scale: int = 8,
        spatial_scale: int = 32,
    ) -> VideoLatentShape:
        """Latent grid for a pixel clip; ``ValueError`` naming the nearest valid sizes when it does not fit."""
        check_video_size(num_frames, height, width, temporal_scale, spatial_scale)
        return cls((num_frames - 1) // temporal_scale + 1, height // spatial_scale, width // spatial_scale, channels)

    def to_pixels(self, temporal_scale: int = 8, spatial_scale: int = 32) -> tuple[int, int, int]:
        """``(num_frames, height, width)`` in pixels."""
        return (self.frames - 1) * temporal_scale + 1, self.height * spatial_scale, self.width * spatial_scale


def check_video_size(num_frames: int, height: int, width: int, temporal_scale: int = 8, spatial_scale: int = 32
                     ) -> None:
    """``ValueError`` unless frames are ``8k+1`` and height/width positive multiples of 32 (never a silent crop)."""
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if (num_frames - 1) % temporal_scale:
        lower = (num_frames - 1) // temporal_scale * temporal_scale + 1
        raise ValueError(f"num_frames must be {temporal_scale}k+1 (e.g. 121), got {num_frames}; "
                         f"use {lower} or {lower + temporal_scale}.")
    for name, value in (("height", height), ("width", width)):
        if value % spatial_scale:
            lower = value // spatial_scale * spatial_scale
            options = f"{lower} or {lower + spatial_scale}" if lower else f"{spatial_scale}"
            raise ValueError(f"{name} must be a multiple of {spatial_scale}, got {value}; use {options}.")


def pack_video_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, H, W] -> [B, F·H·W, C]`` tokens in (frame, row, column) order."""
    if latents.ndim != 5:
        raise ValueError(
            f"video latents must be [batch, channels, frames, height, width], got {tuple(latents.shape)}."
        )
    return latents.flatten(2).transpose(1, 2)


def unpack_video_latents(tokens: torch.Tensor, shape: VideoLatentShape) -> torch.Tensor:
    """``[B, F·H·W, C] -> [B, C, F, H, W]``."""
    if tokens.ndim != 3 or tokens.shape[1:] != (shape.num_tokens, shape.channels):
        raise ValueError(f"packed video latents must be [batch, {shape.num_tokens}, {shape.channels}] for "
                         f"{shape}, got {tuple(tokens.shape)}.")
    return tokens.transpose(1, 2).unflatten(2, (shape.frames, shape.height, shape.width))
