"""The LTX-2 audio VAE: stereo log-mel spectrogram <-> 8 × 16 latent per 40 ms (paper §3.3).

A 2-D convolutional VAE over (time, mel) with the two stereo channels as input channels. Every 3×3 convolution is
causal along one axis (``causality_axis="height"`` = time for LTX-2: two rows of zero padding in front), normalisation
is a parameter-free RMS over channels at each (time, mel) position, and there is no attention in the released model.
The encoder halves time and mel ``len(ch_mult) - 1`` times (64 mel × T -> 16 × ⌈T/4⌉) and predicts mean and
log-variance; the decoder mirrors it with nearest ×2 upsampling followed by a causal conv whose first row is dropped,
so ``L`` latents give ``4 L - 3`` mel frames.

Statistics: ``latents_mean`` / ``latents_std`` (``base_channels`` entries = 8 × 16) standardise the *packed* tokens
``[B, L, C·F]`` (channel-major) that the transformer sees; ``encode`` and ``decode`` work on un-normalised latents, as
in diffusers (ltx-core instead normalises inside its encoder and decoder).

Because every layer is causal in time and attention-free, long clips decode exactly in chunks: each chunk is decoded
with enough latent history to cover the decoder's receptive field, and only its own mel rows are kept
(:meth:`LTX2AudioAutoencoder.enable_tiling`).

The file reads bottom-up: padding rules -> layers -> encoder / decoder -> model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import AutoencoderMixin, DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import logging
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from .audio_processing import (
    denormalize_audio_tokens,
    log_mel_spectrogram,
    mel_frames_for_latents,
    normalize_audio_tokens,
    pack_audio_latents,
    plan_chunks,
    unpack_audio_latents,
)
from .strict_loading import StrictLoadingMixin

logger = logging.get_logger(__name__)

CAUSALITY_AXES = ("none", "width", "height", "width-compatibility")
NORM_TYPES = ("pixel", "group")
# The time and mel compression diffusers' ``AutoencoderKLLTX2Audio`` states for every config; its pipelines size the
# latents with it and its decoder crops / zero-pads the output to it. The released model (3 levels) compresses 4x.
DIFFUSERS_COMPRESSION = 4

# ----------------------------------------------------------------------------------------------------------------
# Padding rules (F.pad order: left, right, top, bottom; "height" = time, "width" = mel)
# ----------------------------------------------------------------------------------------------------------------


def conv_padding(kernel: int, axis: str) -> tuple[int, int, int, int]:
    """Zero padding that keeps a ``kernel``×``kernel`` stride-1 conv size-preserving, all of it in front along the
    causal axis and split evenly (extra at the back) along the other."""
    total = kernel - 1
    even = (total // 2, total - total // 2)
    if axis == "height":
        return (*even, total, 0)
    if axis in ("width", "width-compatibility"):
        return (total, 0, *even)
    return (*even, *even)


_DOWNSAMPLE_PADDING = {"none": (0, 1, 0, 1), "width": (2, 0, 0, 1), "height": (0, 1, 2, 0),
                       "width-compatibility": (1, 0, 0, 1)}


def time_context(axis: str) -> tuple[int, int]:
    """Rows of time context a 3×3 conv reads (before, after) under ``axis``."""
    return (2, 0) if axis == "height" else (1, 1)


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------


class PixelNorm(nn.Module):
    """Parameter-free RMS normalisation over channels at every (time, mel) position."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


def make_norm(norm_type: str, channels: int) -> nn.Module:
    return PixelNorm() if norm_type == "pixel" else nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class CausalConv2d(nn.Module):
    """Stride-1 conv with :func:`conv_padding`; the weights live in ``.conv`` (checkpoint names ``*.conv.weight``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, axis: str) -> None:
        super().__init__()
        self.padding = conv_padding(kernel_size, axis)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ResnetBlock(nn.Module):
    """norm -> SiLU -> conv -> norm -> SiLU -> dropout -> conv, plus a 1×1 ``nin_shortcut`` when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, norm_type: str, axis: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = make_norm(norm_type, in_channels)
        self.conv1 = CausalConv2d(in_channels, out_channels, 3, axis)
        self.norm2 = make_norm(norm_type, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = CausalConv2d(out_channels, out_channels, 3, axis)
        self.nin_shortcut = CausalConv2d(in_channels, out_channels, 1, axis) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all (time, mel) positions with 1×1 conv projections, residual."""

    def __init__(self, channels: int, norm_type: str) -> None:
        super().__init__()
        self.norm = make_norm(norm_type, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (proj(y).flatten(2).transpose(1, 2)[:, None] for proj in (self.q, self.k, self.v))  # [B, 1, HW, C]
        out = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3×3 conv after :data:`_DOWNSAMPLE_PADDING` (two rows in front along a causal time axis)."""

    def __init__(self, channels: int, axis: str) -> None:
        super().__init__()
        self.padding = _DOWNSAMPLE_PADDING[axis]
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class Upsample(nn.Module):
    """Nearest ×2, causal conv, then the first row (causal time) or column (causal mel) is dropped: ``n -> 2n - 1``."""

    def __init__(self, channels: int, axis: str) -> None:
        super().__init__()
        self.axis = axis
        self.conv = CausalConv2d(channels, channels, 3, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if self.axis == "height":
            return x[:, :, 1:]
        if self.axis == "width":
            return x[:, :, :, 1:]
        return x


class MidBlock(nn.Module):
    def __init__(self, channels: int, norm_type: str, axis: str, dropout: float, attention: bool) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, norm_type, axis, dropout)
        self.attn_1 = AttnBlock(channels, norm_type) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, norm_type, axis, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Level(nn.Module):
    """Resnet blocks at one resolution (each optionally followed by attention), then an optional resampler stored
    as ``downsample`` (encoder) or ``upsample`` (decoder)."""

    def __init__(self, widths: list[tuple[int, int]], norm_type: str, axis: str, dropout: float, attention: bool,
                 resampler: str | None) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(i, o, norm_type, axis, dropout) for i, o in widths)
        self.attn = nn.ModuleList(AttnBlock(o, norm_type) for _, o in widths) if attention else nn.ModuleList()
        if resampler == "down":
            self.downsample = Downsample(widths[-1][1], axis)
        elif resampler == "up":
            self.upsample = Upsample(widths[-1][1], axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[j](x)
        if hasattr(self, "downsample"):
            x = self.downsample(x)
        if hasattr(self, "upsample"):
            x = self.upsample(x)
        return x


def _widths(in_channels: int, out_channels: int, count: int) -> list[tuple[int, int]]:
    return [(in_channels if j == 0 else out_channels, out_channels) for j in range(count)]


# ----------------------------------------------------------------------------------------------------------------
# Encoder and decoder
# ----------------------------------------------------------------------------------------------------------------


class LTX2AudioEncoder(nn.Module):
    """``[B, in_channels, T, M] -> [B, 2·latent_channels (double_z) or latent_channels, T', M']`` (mean, logvar)."""

    def __init__(self, base_channels: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_resolutions: set[int],
                 in_channels: int, resolution: int, latent_channels: int, norm_type: str, axis: str, dropout: float,
                 mid_block_add_attention: bool, double_z: bool) -> None:
        super().__init__()
        self.conv_in = CausalConv2d(in_channels, base_channels, 3, axis)
        self.down = nn.ModuleList()
        width, res = base_channels, resolution
        for level, mult in enumerate(ch_mult):
            last = level == len(ch_mult) - 1
            self.down.append(Level(_widths(width, base_channels * mult, num_res_blocks), norm_type, axis, dropout,
                                   res in attn_resolutions, None if last else "down"))
            width, res = base_channels * mult, res if last else res // 2
        self.mid = MidBlock(width, norm_type, axis, dropout, mid_block_add_attention)
        self.norm_out = make_norm(norm_type, width)
        self.conv_out = CausalConv2d(width, 2 * latent_channels if double_z else latent_channels, 3, axis)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(mel)  # [B, base, T, M]
        for level in self.down:
            h = level(h)  # [B, base·mult, T/2^l, M/2^l]
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # [B, 2·latent, T', M']


class LTX2AudioDecoder(nn.Module):
    """``[B, latent_channels, L, M'] -> [B, output_channels, rows, M]`` (uncropped; the model crops to the target)."""

    def __init__(self, base_channels: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_resolutions: set[int],
                 output_channels: int, resolution: int, latent_channels: int, norm_type: str, axis: str,
                 dropout: float, mid_block_add_attention: bool) -> None:
        super().__init__()
        width = base_channels * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = CausalConv2d(latent_channels, width, 3, axis)
        self.mid = MidBlock(width, norm_type, axis, dropout, mid_block_add_attention)
        levels: list[Level] = []
        for level in reversed(range(len(ch_mult))):  # built deepest first, stored by level index
            out = base_channels * ch_mult[level]
            levels.insert(0, Level(_widths(width, out, num_res_blocks + 1), norm_type, axis, dropout,
                                   res in attn_resolutions, "up" if level else None))
            width, res = out, res * 2 if level else res
        self.up = nn.ModuleList(levels)
        self.norm_out = make_norm(norm_type, width)
        self.conv_out = CausalConv2d(width, output_channels, 3, axis)
        self.has_attention = mid_block_add_attention or any(len(lv.attn) for lv in self.up)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))  # [B, base·mult[-1], L, M']
        for level in reversed(self.up):
            h = level(h)  # time and mel: n -> 2n - 1 (causal axis) or 2n
        return self.conv_out(F.silu(self.norm_out(h)))  # [B, out, rows, M]


def decoder_time_context(num_levels: int, num_res_blocks: int, axis: str) -> tuple[int, int]:
    """Latent frames of (history, look-ahead) one decoder output row depends on, rounded up: the sum over every
    3×3 conv of its time reach divided by the time upsampling it runs at, plus one frame for nearest upsampling."""
    before, after = time_context(axis)
    reach = 1 + 4  # conv_in, mid block (2 resnets × 2 convs), at latent rate
    rate = 1
    for level in range(num_levels):
        reach += 2 * (num_res_blocks + 1) / rate
        if level < num_levels - 1:
            rate *= 2
            reach += 1 / rate  # the upsampler's conv
    reach += 1 / rate  # conv_out
    return math.ceil(reach * before) + 1, math.ceil(reach * after) + (1 if after else 0)


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


class LTX2AudioAutoencoder(StrictLoadingMixin, ModelMixin, AutoencoderMixin, ConfigMixin):
    r"""LTX-2 audio VAE: stereo 16 kHz log-mel ``[B, 2, T, 64]`` <-> latents ``[B, 8, ⌈T/4⌉, 16]``.

    Loads diffusers-format ``audio_vae/`` folders unchanged (config keys and parameter names of
    ``diffusers.AutoencoderKLLTX2Audio``); the defaults are the released LTX-2 model (53.2 M parameters).

    Args:
        base_channels: width of the first level (128); also the size of ``latents_mean`` / ``latents_std``, which
            must equal ``latent_channels · mel_bins / mel_compression_ratio`` (8 · 64 / 4) to normalise tokens.
        output_channels: decoded spectrogram channels (2, stereo).
        ch_mult: width multipliers per level (1, 2, 4); ``len(ch_mult) - 1`` stride-2 stages set both compression
            ratios (4).
        num_res_blocks: resnet blocks per encoder level (the decoder has one more per level).
        attn_resolutions: levels (named by ``resolution / 2^level``) that get attention after every block; none in
            LTX-2.
        in_channels: encoder input channels (2, stereo).
        resolution: nominal input size, only used to name levels in ``attn_resolutions``.
        latent_channels: latent channels (8); the encoder predicts twice as many with ``double_z``.
        norm_type: ``"pixel"`` (parameter-free RMS over channels) or ``"group"`` (GroupNorm(32), non-causal only).
        causality_axis: ``"height"`` (time, LTX-2), ``"width"``, ``"width-compatibility"`` or ``"none"``.
        dropout: dropout inside the resnet blocks.
        mid_block_add_attention: attention between the two mid resnets (off in LTX-2).
        sample_rate / mel_hop_length / mel_bins: the mel front end the model was trained on (16 kHz, 160, 64).
        is_causal: stored for compatibility; causality is set by ``causality_axis``.
        double_z: the encoder predicts mean and log-variance.

    ``temporal_compression_ratio`` and ``mel_compression_ratio`` are 4 for every config, as in diffusers, whose
    pipelines size audio latents with them; the network compresses by ``2^(len(ch_mult) - 1)`` (4 for the released
    3-level model). For other depths (e.g. diffusers' test config ``ch_mult=(1,)``) ``decode`` crops / zero-pads the
    decoder output to ``4 L - 3`` rows and ``mel_bins`` bins as diffusers does, and logs a warning at construction.
    With ``causality_axis="none"`` the decoder returns ``4 L`` frames, as ltx-core does (diffusers crops to ``4 L - 3``
    whatever the axis).
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        base_channels: int = 128,
        output_channels: int = 2,
        ch_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 2,
        attn_resolutions: tuple[int, ...] | None = None,
        in_channels: int = 2,
        resolution: int = 256,
        latent_channels: int = 8,
        norm_type: str = "pixel",
        causality_axis: str | None = "height",
        dropout: float = 0.0,
        mid_block_add_attention: bool = False,
        sample_rate: int = 16000,
        mel_hop_length: int = 160,
        is_causal: bool = True,
        mel_bins: int | None = 64,
        double_z: bool = True,
    ) -> None:
        super().__init__()
        axis = "none" if causality_axis is None else causality_axis
        if axis not in CAUSALITY_AXES:
            raise ValueError(f"causality_axis must be one of {CAUSALITY_AXES}, got {causality_axis!r}.")
        if norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}.")
        if norm_type == "group" and axis != "none":
            raise ValueError("norm_type='group' needs causality_axis='none' (group statistics would see the future).")
        if not ch_mult:
            raise ValueError("ch_mult must list at least one level, e.g. (1, 2, 4).")
        attn = set(attn_resolutions or ())
        kw = dict(base_channels=base_channels, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                  attn_resolutions=attn, resolution=resolution, latent_channels=latent_channels, norm_type=norm_type,
                  axis=axis, dropout=dropout, mid_block_add_attention=mid_block_add_attention)
        self.encoder = LTX2AudioEncoder(in_channels=in_channels, double_z=double_z, **kw)
        self.decoder = LTX2AudioDecoder(output_channels=output_channels, **kw)
        self.register_buffer("latents_mean", torch.zeros(base_channels), persistent=True)
        self.register_buffer("latents_std", torch.ones(base_channels), persistent=True)

        self.causality_axis = axis
        # what the pipelines read (diffusers' values) and what the network does
        self.temporal_compression_ratio = self.mel_compression_ratio = DIFFUSERS_COMPRESSION
        self.network_compression = 2 ** (len(ch_mult) - 1)
        if self.network_compression != DIFFUSERS_COMPRESSION:
            logger.warning(
                "ch_mult=%s compresses time and mel by %d, but diffusers' LTX-2 audio VAE (and its pipelines) assume "
                "%d: decode crops / zero-pads its output to %d·L - 3 rows and mel_bins bins, as diffusers does.",
                tuple(ch_mult), self.network_compression, DIFFUSERS_COMPRESSION, DIFFUSERS_COMPRESSION,
            )
        self.use_slicing = False
        self.use_tiling = False
        self.tile_latent_frames = 250  # 10 s of audio per decoded chunk
        self._decode_context = decoder_time_context(len(ch_mult), num_res_blocks, axis)

    # -- configuration of long-clip decoding ------------------------------------------------------------------

    def enable_tiling(self, tile_latent_frames: int | None = None) -> None:
        r"""Decode long clips in chunks of ``tile_latent_frames`` latent frames (default 250 = 10 s).

        Each chunk is decoded with the decoder's receptive field of history (and look-ahead when time is not
        causal) and only its own rows are kept, so the result equals the whole decode up to float rounding
        (measured ≤ 1e-5 in fp32) for attention-free models such as LTX-2. Models with attention blocks decode
        approximately (a warning is logged).
        """
        if tile_latent_frames is not None:
            if int(tile_latent_frames) != tile_latent_frames or tile_latent_frames < 1:
                raise ValueError(f"tile_latent_frames must be a positive integer, got {tile_latent_frames!r}.")
            self.tile_latent_frames = int(tile_latent_frames)
        self.use_tiling = True

    # -- front end and token statistics -------------------------------------------------------------------------

    def mel_spectrogram(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Waveform (``[N]``, ``[C, N]`` or ``[B, C, N]``, any rate, mono or stereo) -> float32 ``[B, 2, T, mel_bins]``
        with this model's front end (see :func:`~ltx2_diffusers.models.audio_processing.log_mel_spectrogram`)."""
        return log_mel_spectrogram(waveform, sample_rate, target_sample_rate=self.config.sample_rate,
                                   hop_length=self.config.mel_hop_length, n_mels=self.config.mel_bins or 64)

    def _check_token_width(self, width: int) -> None:
        if width != self.latents_mean.numel():
            raise ValueError(
                f"packed audio tokens have {width} features but latents_mean/latents_std have "
                f"{self.latents_mean.numel()}; this config needs base_channels = latent_channels * mel_bins / "
                f"{self.mel_compression_ratio}."
            )

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Un-normalised latents ``[B, C, L, F]`` -> packed, per-feature standardised tokens ``[B, L, C·F]``."""
        tokens = pack_audio_latents(latents)  # [B, L, C·F]
        self._check_token_width(tokens.shape[-1])
        return normalize_audio_tokens(tokens, self.latents_mean, self.latents_std)

    def denormalize_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_latents`: standardised tokens ``[B, L, C·F]`` -> latents ``[B, C, L, F]``."""
        if tokens.ndim != 3:
            raise ValueError(f"audio tokens must be [batch, tokens, features], got {tuple(tokens.shape)}.")
        self._check_token_width(tokens.shape[-1])
        latents = denormalize_audio_tokens(tokens, self.latents_mean, self.latents_std)
        return unpack_audio_latents(latents, tokens.shape[-1] // self.config.latent_channels)  # [B, C, L, F]

    # -- encode -------------------------------------------------------------------------------------------------

    def _check_input(self, x: torch.Tensor, channels: int, width: int | None, what: str, example: str) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels or x.shape[2] < 1 or (
            width is not None and x.shape[3] != width
        ):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{what} must be [batch, {channels}, frames >= 1, {width or 'bins'}] ({example}), "
                             f"got {shape}.")
        if not x.is_floating_point():
            raise ValueError(f"{what} must be floating point, got {x.dtype}.")

    @apply_forward_hook
    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        r"""Log-mel spectrogram -> posterior over un-normalised latents.

        Args:
            x: ``[B, in_channels, T, mel_bins]`` log-mel (see :meth:`mel_spectrogram`).
            return_dict: return an ``AutoencoderKLOutput`` instead of a tuple.

        Returns:
            ``latent_dist``: a ``DiagonalGaussianDistribution`` over ``[B, latent_channels, ⌈T/4⌉, mel_bins/4]``.
        """
        self._check_input(x, self.config.in_channels, self.config.mel_bins, "the mel spectrogram",
                          "use mel_spectrogram(waveform, sample_rate)")
        x = x.to(self.dtype)
        if self.use_slicing and x.shape[0] > 1:
            moments = torch.cat([self.encoder(part) for part in x.split(1)])
        else:
            moments = self.encoder(x)  # [B, 2·latent, L, F]
        if self.config.double_z:
            posterior = DiagonalGaussianDistribution(moments)
        else:
            posterior = DiagonalGaussianDistribution(torch.cat([moments, torch.zeros_like(moments)], 1),
                                                     deterministic=True)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    # -- decode -------------------------------------------------------------------------------------------------

    def _check_latent_bins(self, z: torch.Tensor) -> None:
        """Latents must have ``mel_bins / 4`` bins (what diffusers' pipelines pass), or what this network's encoder
        produces when it compresses differently."""
        allowed = None
        if self.config.mel_bins is not None:
            allowed = sorted({self.config.mel_bins // self.mel_compression_ratio,
                              -(-self.config.mel_bins // self.network_compression)})
        width = allowed[0] if allowed and len(allowed) == 1 else None
        self._check_input(z, self.config.latent_channels, width, "audio latents", "use denormalize_latents(tokens)")
        if allowed and z.shape[3] not in allowed:
            raise ValueError(f"audio latents must have {' or '.join(map(str, allowed))} mel bins on dim 3 "
                             f"([batch, {self.config.latent_channels}, frames, bins]), got {tuple(z.shape)}.")

    def _first_row(self, latent_index: int) -> int:
        """First output mel row that belongs to ``latent_index`` (its rows end where the next one's begin)."""
        f = self.temporal_compression_ratio
        return max(f * latent_index - (f - 1), 0) if self.causality_axis == "height" else f * latent_index

    def _fit(self, mel: torch.Tensor, rows: int) -> torch.Tensor:
        """Crops or zero-pads ``[B, C, rows', M']`` to ``[B, output_channels, rows, mel_bins]``."""
        bins = self.config.mel_bins or mel.shape[3]
        mel = mel[:, : self.config.output_channels, :rows, :bins]
        return F.pad(mel, (0, bins - mel.shape[3], 0, rows - mel.shape[2]))

    def _decode_whole(self, z: torch.Tensor) -> torch.Tensor:
        rows = mel_frames_for_latents(z.shape[2], self.temporal_compression_ratio, self.causality_axis != "none")
        return self._fit(self.decoder(z), rows)

    def _decode_chunked(self, z: torch.Tensor) -> torch.Tensor:
        if self.decoder.has_attention:
            logger.warning("The audio decoder has attention blocks: chunked decoding is approximate.")
        length = z.shape[2]
        total = mel_frames_for_latents(length, self.temporal_compression_ratio, self.causality_axis != "none")
        pieces = []
        for c in plan_chunks(length, self.tile_latent_frames, *self._decode_context):
            mel = self._decode_whole(z[:, :, c.read_start:c.read_stop])  # rows from latent read_start on
            offset = self.temporal_compression_ratio * c.read_start  # local row 0 is this global row
            start = self._first_row(c.start) - offset
            stop = (total if c.stop == length else self._first_row(c.stop)) - offset
            pieces.append(mel[:, :, start:stop])
        return torch.cat(pieces, dim=2)  # [B, out, total, mel_bins]

    @apply_forward_hook
    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        r"""Un-normalised latents -> log-mel spectrogram.

        Args:
            z: ``[B, latent_channels, L, mel_bins / 4]`` (use :meth:`denormalize_latents` on transformer tokens).
            return_dict: return a ``DecoderOutput`` instead of a tuple.

        Returns:
            ``sample``: ``[B, output_channels, 4 L - 3, mel_bins]`` (``4 L`` without a causal axis).
        """
        self._check_latent_bins(z)
        z = z.to(self.dtype)
        chunked = self.use_tiling and z.shape[2] > self.tile_latent_frames
        if chunked and self.network_compression != self.temporal_compression_ratio:
            logger.warning("Chunked decoding needs a decoder that expands time by %d; decoding whole.",
                           self.temporal_compression_ratio)
            chunked = False
        decode = self._decode_chunked if chunked else self._decode_whole
        if self.use_slicing and z.shape[0] > 1:
            mel = torch.cat([decode(part) for part in z.split(1)])
        else:
            mel = decode(z)
        return DecoderOutput(sample=mel) if return_dict else (mel,)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple:
        r"""Encode then decode a log-mel spectrogram.

        Args:
            sample: ``[B, in_channels, T, mel_bins]`` log-mel.
            sample_posterior: decode a sample of the posterior instead of its mode.
            return_dict: return a ``DecoderOutput`` instead of a tuple.
            generator: random generator for ``sample_posterior``.
        """
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)
