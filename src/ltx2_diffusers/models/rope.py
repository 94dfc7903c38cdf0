"""LTX-2 rotary position embeddings and token coordinates, as pure functions.

LTX-2's RoPE is not the textbook one. For a stream with ``n`` position axes and inner width ``D``:

* every token carries a ``[start, end)`` interval per axis; its position is the interval centre ``p``,
  normalised by the axis maximum ``M`` and centred: ``u = 2 p / M - 1`` in ``[-1, 1]``;
* ``K = D // (2 n)`` frequencies ``ω_k = (π/2) θ^(k / (K-1))`` *increase* from ``π/2`` to ``θ π/2``;
* angles ``φ = ω_k u`` are laid out frequency-major, axis-minor: ``[φ(0,t), φ(0,y), φ(0,x), φ(1,t), ...]``;
* missing entries up to ``D/2`` are identity rotations at the *front* of the list.

Two layouts place these angles on the channels of a query/key:

* ``"split"`` (every LTX-2 checkpoint): the ``D/2`` angles are cut into one contiguous slice per head; within a
  head of width ``d`` channel ``j`` rotates with channel ``j + d/2``.
* ``"interleaved"``: each angle rotates an adjacent channel pair ``(2j, 2j+1)`` across the whole inner width.

Video axes are (time in seconds, y in pixels, x in pixels); audio has one time axis in seconds; the audio<->video
cross-attention uses the time axis of each stream only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ROPE_TYPES = ("split", "interleaved")


@dataclass(frozen=True)
class RotaryTable:
    """Cosines and sines for one stream's query or key, in the layout their ``rope_type`` asks for.

    ``split``: ``cos``/``sin`` are ``[B, T, H, d/2]`` where ``H`` groups the inner width into slices of width
    ``d``. ``interleaved``: ``[B, T, D]`` with every value repeated for the channel pair it rotates.
    """

    cos: torch.Tensor
    sin: torch.Tensor
    rope_type: str


def rope_frequencies(num_axes: int, inner_dim: int, theta: float, double_precision: bool = True) -> torch.Tensor:
    """Increasing angular frequencies ``(π/2) θ^(k/(K-1))``, ``K = inner_dim // (2 num_axes)``; float32 ``[K]``.

    With ``double_precision`` the grid is evaluated in float64 and rounded once, as the LTX-2 checkpoints were
    trained; otherwise it is evaluated in float32 (up to ~5e-3 rad apart at the top frequency).
    """
    count = inner_dim // (2 * num_axes)
    if count < 1:
        raise ValueError(f"inner_dim={inner_dim} is too small for {num_axes} RoPE axes; need at least {2 * num_axes}.")
    dtype = torch.float64 if double_precision else torch.float32
    exponents = torch.linspace(0.0, 1.0, count, dtype=dtype)
    return (torch.pow(torch.tensor(theta, dtype=dtype), exponents) * (math.pi / 2)).to(torch.float32)


def rope_angles(coords: torch.Tensor, max_positions: tuple[float, ...], frequencies: torch.Tensor) -> torch.Tensor:
    """Angles for tokens with ``[start, end)`` coordinates.

    Args:
        coords: ``[B, n_axes, T, 2]`` interval bounds per axis (any float dtype; the centre and normalisation are
            computed in that dtype, as the reference does).
        max_positions: the normaliser ``M`` of each axis.
        frequencies: ``[K]`` float32 frequencies from :func:`rope_frequencies`.

    Returns:
        ``[B, T, K * n_axes]`` float32 angles, frequency-major / axis-minor.
    """
    if coords.ndim != 4 or coords.shape[-1] != 2:
        raise ValueError(f"coords must have shape [batch, axes, tokens, 2], got {tuple(coords.shape)}.")
    if coords.shape[1] != len(max_positions):
        raise ValueError(f"coords have {coords.shape[1]} axes but {len(max_positions)} maximum positions were given.")
    centre = (coords[..., 0] + coords[..., 1]) / 2.0  # [B, n, T]
    fraction = torch.stack([centre[:, i] / m for i, m in enumerate(max_positions)], dim=-1)  # [B, T, n]
    centred = fraction * 2 - 1
    angles = frequencies.to(coords.device) * centred.unsqueeze(-1)  # [B, T, n, K] (float32 by promotion)
    return angles.transpose(-1, -2).flatten(2)  # [B, T, K * n]


def rotary_table(
    angles: torch.Tensor, inner_dim: int, num_heads: int, rope_type: str, dtype: torch.dtype
) -> RotaryTable:
    """Lays ``[B, T, A]`` angles out for queries/keys of width ``inner_dim`` (identity padding at the front)."""
    cos, sin = angles.cos(), angles.sin()
    batch, tokens, count = angles.shape
    if rope_type == "split":
        pad = inner_dim // 2 - count
        if pad < 0 or (inner_dim // 2) % num_heads:
            raise ValueError(f"cannot split {count} RoPE angles over {num_heads} heads of total width {inner_dim}.")
        cos = torch.cat([cos.new_ones(batch, tokens, pad), cos], dim=-1)
        sin = torch.cat([sin.new_zeros(batch, tokens, pad), sin], dim=-1)
        shape = (batch, tokens, num_heads, inner_dim // (2 * num_heads))
        return RotaryTable(cos.reshape(shape).to(dtype), sin.reshape(shape).to(dtype), rope_type)
    if rope_type == "interleaved":
        pad = inner_dim - 2 * count
        cos = torch.cat([cos.new_ones(batch, tokens, pad), cos.repeat_interleave(2, dim=-1)], dim=-1)
        sin = torch.cat([sin.new_zeros(batch, tokens, pad), sin.repeat_interleave(2, dim=-1)], dim=-1)
        return RotaryTable(cos.to(dtype), sin.to(dtype), rope_type)
    raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}.")


def apply_rotary(x: torch.Tensor, table: RotaryTable) -> torch.Tensor:
    """Rotates ``[B, T, D]`` queries or keys by ``table``."""
    if table.rope_type == "split":
        batch, tokens, width = x.shape
        heads, half = table.cos.shape[-2:]
        pairs = x.reshape(batch, tokens, heads, 2, half)  # [B, T, H, 2, d/2]
        first, second = pairs[..., 0, :], pairs[..., 1, :]
        rotated = torch.stack(
            (first * table.cos - second * table.sin, second * table.cos + first * table.sin), dim=-2
        )
        return rotated.reshape(batch, tokens, width)
    pairs = x.unflatten(-1, (-1, 2))  # [B, T, D/2, 2]
    swapped = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (-x1, x0) per pair
    return x * table.cos + swapped * table.sin


# ----------------------------------------------------------------------------------------------------------------
# Token coordinates
# ----------------------------------------------------------------------------------------------------------------


def video_coordinates(
    latent_frames: int,
    latent_height: int,
    latent_width: int,
    fps: float,
    batch_size: int = 1,
    *,
    scale_factors: tuple[int, int, int] = (8, 32, 32),
    causal_offset: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[B, 3, F*H*W, 2]`` pixel-space ``[start, end)`` bounds of every video token, time in seconds.

    Tokens are ordered (frame, row, column). A latent frame ``f`` covers pixel frames ``[8f - 7, 8f + 1)`` clamped
    at 0 (the causal VAE encodes frame 0 alone), divided by ``fps``; rows and columns cover ``[32 i, 32 i + 32)``.

    The bounds are computed in float32 and then cast to ``dtype``. The reference pipelines keep them in the latent
    dtype, so bf16 runs round the time axis (e.g. 5.0417 s -> 5.03125 s); pass ``dtype=torch.float32`` for exact
    positions, or the latent dtype to reproduce the reference bit for bit.
    """
    for name, value in (("latent_frames", latent_frames), ("latent_height", latent_height),
                        ("latent_width", latent_width), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}.")
    scale_t, scale_h, scale_w = scale_factors
    grid = torch.meshgrid(
        torch.arange(latent_frames, device=device),
        torch.arange(latent_height, device=device),
        torch.arange(latent_width, device=device),
        indexing="ij",
    )
    starts = torch.stack([g.flatten() for g in grid])  # [3, N]
    scale = torch.tensor([scale_t, scale_h, scale_w], device=starts.device).view(3, 1, 1)
    bounds = (torch.stack((starts, starts + 1), dim=-1) * scale).float()  # [3, N, 2]
    bounds[0] = (bounds[0] + causal_offset - scale_t).clamp(min=0) / fps
    return bounds.unsqueeze(0).expand(batch_size, -1, -1, -1).to(dtype)


def audio_coordinates(
    num_tokens: int,
    batch_size: int = 1,
    *,
    sampling_rate: int = 16000,
    hop_length: int = 160,
    downsample_factor: int = 4,
    causal_offset: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[B, 1, T, 2]`` float32 ``[start, end)`` times in seconds of every audio token.

    Token ``j`` covers mel frames ``[max(4j - 3, 0), 4j + 1)`` of 10 ms each (causal audio VAE, 16 kHz, hop 160).
    Audio positions always stay float32, as in the reference.
    """
    if int(num_tokens) != num_tokens or num_tokens < 0:
        raise ValueError(f"num_tokens must be a non-negative integer, got {num_tokens!r}.")
    index = torch.arange(num_tokens + 1, dtype=torch.float32, device=device)
    mel_frame = (index * downsample_factor + causal_offset - downsample_factor).clip(min=0)
    seconds = mel_frame * hop_length / sampling_rate  # [T + 1]
    bounds = torch.stack((seconds[:-1], seconds[1:]), dim=-1)  # [T, 2]
    return bounds.view(1, 1, num_tokens, 2).expand(batch_size, -1, -1, -1)


class CoordinatePreparer:
    """diffusers' coordinate entry points, bound to a transformer: its pipelines call
    ``transformer.rope.prepare_video_coords(...)`` and ``transformer.audio_rope.prepare_audio_coords(...)``.

    ``model`` is anything with this package's ``video_coordinates`` / ``audio_coordinates`` methods. Coordinates
    come back in float32, as diffusers builds them.
    """

    def __init__(self, model: object) -> None:
        self.model = model

    def prepare_video_coords(self, batch_size: int, num_frames: int, height: int, width: int,
                             device: torch.device | str | None, fps: float = 24.0) -> torch.Tensor:
        """``[B, 3, F·H·W, 2]`` bounds of the latent grid ``num_frames × height × width``."""
        return self.model.video_coordinates(num_frames, height, width, fps, batch_size, torch.float32, device)

    def prepare_audio_coords(self, batch_size: int, num_frames: int, device: torch.device | str | None,
                             shift: int = 0) -> torch.Tensor:
        """``[B, 1, num_frames, 2]`` bounds of audio latent frames ``shift .. shift + num_frames - 1``."""
        if int(shift) != shift or shift < 0:
            raise ValueError(f"shift must be a non-negative integer, got {shift!r}.")
        return self.model.audio_coordinates(num_frames + shift, batch_size, device)[:, :, shift:]
