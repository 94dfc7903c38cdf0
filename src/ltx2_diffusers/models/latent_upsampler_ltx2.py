"""The LTX-2 latent upsampler: doubles the spatial (or temporal) resolution of *un-normalised* video latents.

Used between the two stages of multi-scale generation: stage-1 latents at half resolution are upsampled ×2 and
refined by stage 2. The network is a conv -> GroupNorm -> SiLU stem, residual blocks, a learned sub-pixel
up-sampler, residual blocks again and a conv back to the latent channels. Two file layouts exist for the ×2 spatial
model: the LTX-2.0 "rational resampler" (``upsampler.conv`` + the fixed blur buffer ``upsampler.blur_down.kernel``,
whose stride is 1 at ×2, i.e. no blur) and the plain LTX-2.3 one (``upsampler.0``); at ×2 they compute the same thing.

The transformer's latents are normalised; :func:`upsample_normalized_latents` un-normalises them with the VAE's
statistics, upsamples and normalises again, as the reference pipelines do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .autoencoder_ltx2_video import denormalize_latents, normalize_latents
from .strict_loading import StrictLoadingMixin
from .video_vae_blocks import depth_to_space

# ×scale = ×numerator by sub-pixel convolution, then ÷denominator by blurred striding
RATIONAL_SCALES: dict[float, tuple[int, int]] = {0.75: (3, 4), 1.5: (3, 2), 2.0: (2, 1), 4.0: (4, 1)}

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def binomial_kernel(size: int = 5) -> torch.Tensor:
    """Normalised 2-D binomial (Pascal-row) blur kernel ``[1, 1, size, size]``."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = row[:, None] * row[None, :]
    return (kernel / kernel.sum()).float()[None, None]


def pixel_shuffle_2d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``[N, C·f·f, H, W] -> [N, C, H·f, W·f]`` (channel index ``c·f² + i_h·f + i_w``)."""
    return depth_to_space(x.unsqueeze(2), (1, factor, factor)).squeeze(2)


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, H, W] -> [B·F, C, H, W]``."""
    return x.transpose(1, 2).flatten(0, 1)


def batch_to_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``[B·F, C, H, W] -> [B, C, F, H, W]``."""
    return x.unflatten(0, (batch, -1)).transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """conv -> GroupNorm(32) -> SiLU -> conv -> GroupNorm(32), added to the input, then SiLU."""

    def __init__(self, channels: int, dims: int = 3) -> None:
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.conv1 = conv(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.GroupNorm(32, channels)
        self.conv2 = conv(channels, channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h)) + x)


class BlurDownsample(nn.Module):
    """Depthwise binomial blur with stride ``stride`` over H, W of ``[N, C, H, W]`` (identity at stride 1)."""

    def __init__(self, stride: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.stride = stride
        self.register_buffer("kernel", binomial_kernel(kernel_size))  # persistent: part of the file format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x
        weight = self.kernel.to(x.dtype).expand(x.shape[1], 1, -1, -1)
        return F.conv2d(x, weight, stride=self.stride, padding=self.kernel.shape[-1] // 2, groups=x.shape[1])


class RationalResampler(nn.Module):
    """Per-frame spatial scaling by ``num/den``: conv to ``num²·C`` channels, pixel shuffle, blurred stride ``den``."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.num, den = RATIONAL_SCALES[scale]
        self.conv = nn.Conv2d(channels, self.num**2 * channels, kernel_size=3, padding=1)
        self.blur_down = BlurDownsample(den)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur_down(pixel_shuffle_2d(self.conv(x), self.num))  # [N, C, H·num/den, W·num/den]


class _SubPixel(nn.Module):
    """Parameter-free depth-to-space over time and/or space (the second entry of a plain up-sampler)."""

    def __init__(self, factors: tuple[int, int, int]) -> None:
        super().__init__()
        self.factors = factors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return pixel_shuffle_2d(x, self.factors[1])
        return depth_to_space(x, self.factors)


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


class LTX2LatentUpsampler(StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""
    Latent upsampler of LTX-2 (×2 spatial for the released models). Works on **un-normalised** latents; see
    :func:`upsample_normalized_latents` for the transformer's normalised ones. Loads diffusers-format
    ``latent_upsampler/`` folders of ``LTX2LatentUpsamplerModel`` unchanged; defaults are the LTX-2.0 ×2 values.

    Args:
        in_channels (`int`, defaults to 128): latent channels.
        mid_channels (`int`, defaults to 1024): working width, a multiple of 32 (GroupNorm with 32 groups).
        num_blocks_per_stage (`int`, defaults to 4): residual blocks before and after the up-sampler.
        dims (`int`, defaults to 3): 3 = 3-D convolutions over (F, H, W); 2 = per-frame 2-D convolutions.
        spatial_upsample (`bool`, defaults to `True`), temporal_upsample (`bool`, defaults to `False`): what to double.
            Temporal ×2 turns `F'` latent frames into `2F' - 1`.
        rational_spatial_scale (`float`, defaults to 2.0): spatial factor of the rational resampler (0.75, 1.5, 2, 4).
        use_rational_resampler (`bool`, defaults to `True`): LTX-2.0 layout (`upsampler.conv`, `upsampler.blur_down`)
            instead of the plain ×2 one (`upsampler.0`).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        mid_channels: int = 1024,
        num_blocks_per_stage: int = 4,
        dims: int = 3,
        spatial_upsample: bool = True,
        temporal_upsample: bool = False,
        rational_spatial_scale: float = 2.0,
        use_rational_resampler: bool = True,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}.")
        if mid_channels % 32:
            raise ValueError(f"mid_channels must be a multiple of 32 (GroupNorm with 32 groups), got {mid_channels}.")
        if not (spatial_upsample or temporal_upsample):
            raise ValueError("set spatial_upsample and/or temporal_upsample to True.")
        if temporal_upsample and dims == 2:
            raise ValueError("temporal upsampling needs dims=3.")
        rational = spatial_upsample and not temporal_upsample and use_rational_resampler
        if rational and float(rational_spatial_scale) not in RATIONAL_SCALES:
            raise ValueError(f"rational_spatial_scale must be one of {sorted(RATIONAL_SCALES)}, got "
                             f"{rational_spatial_scale}.")

        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.initial_conv = conv(in_channels, mid_channels, kernel_size=3, padding=1)
        self.initial_norm = nn.GroupNorm(32, mid_channels)
        self.res_blocks = nn.ModuleList([ResBlock(mid_channels, dims) for _ in range(num_blocks_per_stage)])
        if rational:
            self.upsampler = RationalResampler(mid_channels, float(rational_spatial_scale))
        else:
            factors = (2 if temporal_upsample else 1, 2 if spatial_upsample else 1, 2 if spatial_upsample else 1)
            # time needs a 3-D conv; space alone works per frame
            sub_conv = nn.Conv3d if temporal_upsample else nn.Conv2d
            self.upsampler = nn.Sequential(sub_conv(mid_channels, math.prod(factors) * mid_channels, 3, padding=1),
                                           _SubPixel(factors))
        self.post_upsample_res_blocks = nn.ModuleList(
            [ResBlock(mid_channels, dims) for _ in range(num_blocks_per_stage)]
        )
        self.final_conv = conv(mid_channels, in_channels, kernel_size=3, padding=1)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[1] != self.config.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the latent upsampler expects un-normalised latents [batch, {self.config.in_channels}, "
                             f"frames, height, width], got {shape}.")
        if isinstance(self.upsampler, RationalResampler):
            num, den = RATIONAL_SCALES[float(self.config.rational_spatial_scale)]
            if (x.shape[3] * num) % den or (x.shape[4] * num) % den:
                raise ValueError(f"at scale {self.config.rational_spatial_scale} the latent height and width times "
                                 f"{num} must be divisible by {den}, got {tuple(x.shape[3:])}.")

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        r"""
        Args:
            hidden_states (`torch.Tensor` of shape `[B, C, F, H, W]`): un-normalised latents.

        Returns:
            `torch.Tensor`: `[B, C, F, 2H, 2W]` for ×2 spatial (`[B, C, 2F - 1, ...]` with temporal upsampling).
        """
        self._check_input(hidden_states)
        batch = hidden_states.shape[0]
        per_frame = self.config.dims == 2
        x = frames_to_batch(hidden_states) if per_frame else hidden_states  # [B·F, C, H, W] or [B, C, F, H, W]
        x = F.silu(self.initial_norm(self.initial_conv(x)))
        for block in self.res_blocks:
            x = block(x)
        if self.config.temporal_upsample:
            x = self.upsampler(x)[:, :, 1:]  # [B, C, 2F - 1, H', W']: the first latent frame stands for one frame
        elif per_frame:
            x = self.upsampler(x)
        else:
            x = batch_to_frames(self.upsampler(frames_to_batch(x)), batch)  # [B, C, F, sH, sW]
        for block in self.post_upsample_res_blocks:
            x = block(x)
        x = self.final_conv(x)
        return batch_to_frames(x, batch) if per_frame else x


def upsample_normalized_latents(
    upsampler: LTX2LatentUpsampler,
    latents: torch.Tensor,
    latents_mean: torch.Tensor,
    latents_std: torch.Tensor,
    scaling_factor: float = 1.0,
) -> torch.Tensor:
    """Upsamples *normalised* latents: un-normalise with the VAE's statistics, upsample, normalise again.

    Args:
        upsampler: the latent upsampler.
        latents (`torch.Tensor` of shape `[B, C, F, H, W]`): normalised latents (the transformer's space).
        latents_mean, latents_std (`torch.Tensor` of shape `[C]`): the VAE's ``latents_mean`` / ``latents_std``.
        scaling_factor: the VAE's ``config.scaling_factor``.
    """
    raw = denormalize_latents(latents, latents_mean, latents_std, scaling_factor)
    return normalize_latents(upsampler(raw), latents_mean, latents_std, scaling_factor)
