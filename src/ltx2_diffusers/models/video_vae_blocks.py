"""Building blocks of the LTX-2 video VAE: causal 3-D convolutions, residual blocks, re-samplers, encoder, decoder.

Module names follow the diffusers file format of ``AutoencoderKLLTX2Video`` (``conv_in.conv``, ``down_blocks.{i}
.resnets.{j}.conv1.conv``, ``downsamplers.0``, ``mid_block``, ``up_blocks.{i}.upsamplers.0`` ...), because the names
are what the published weights are called. The file reads bottom-up: pure functions -> layers -> blocks -> encoder
and decoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from .layers import TimestepEmbedding
from .video_vae_config import (
    Factors,
    check_decoder_widths,
    check_encoder_widths,
    encoder_layers,
    per_block,
    resample_stride,
    total_factors,
)

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def space_to_depth(x: torch.Tensor, factors: Factors, width_first: bool = False) -> torch.Tensor:
    """``[B, C, F·t, H·h, W·w] -> [B, C·t·h·w, F, H, W]``.

    The channel index is ``c·(t·h·w) + i_t·(h·w) + i_h·w + i_w``; with ``width_first`` (the VAE's input patching) the
    width sub-index comes before the height sub-index: ``c·(t·w·h) + i_t·(w·h) + i_w·h + i_h``.
    """
    b, c, f, h, w = x.shape
    pt, ph, pw = factors
    x = x.reshape(b, c, f // pt, pt, h // ph, ph, w // pw, pw)  # [B, C, F, t, H, h, W, w]
    order = (0, 1, 3, 7, 5, 2, 4, 6) if width_first else (0, 1, 3, 5, 7, 2, 4, 6)
    return x.permute(order).reshape(b, c * pt * ph * pw, f // pt, h // ph, w // pw)


def depth_to_space(x: torch.Tensor, factors: Factors, width_first: bool = False) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`: ``[B, C·t·h·w, F, H, W] -> [B, C, F·t, H·h, W·w]``."""
    b, cp, f, h, w = x.shape
    pt, ph, pw = factors
    c = cp // (pt * ph * pw)
    if width_first:
        x = x.reshape(b, c, pt, pw, ph, f, h, w).permute(0, 1, 5, 2, 6, 4, 7, 3)  # [B, C, F, t, H, h, W, w]
    else:
        x = x.reshape(b, c, pt, ph, pw, f, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c, f * pt, h * ph, w * pw)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Parameter-free RMS norm over the channel axis (dim 1) of ``[B, C, ...]``."""
    return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + eps)


def adaptive_rows(temb: torch.Tensor, table: torch.Tensor, rows: int) -> tuple[torch.Tensor, ...]:
    """``temb [B, rows·C, 1, 1, 1]`` + learned ``table [rows, C]`` -> ``rows`` tensors ``[B, C, 1, 1, 1]``."""
    values = temb.unflatten(1, (rows, -1)) + table.to(temb.dtype)[None, :, :, None, None, None]
    return values.unbind(1)


def _small_fp32_cpu_input(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and math.prod(x.shape[:4]) <= 20480
        and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    )


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------


class CausalConv3d(nn.Module):
    """3-D convolution padded by repeating edge frames in time and by ``spatial_padding_mode`` in space.

    Causal: the first frame is repeated ``k-1`` times in front. Non-causal: the first and last frames are each repeated
    ``(k-1)/2`` times. The weights live in ``conv`` (the file format's ``*.conv.weight``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int | Factors = 1,
        spatial_padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.time_pad = kernel_size - 1
        self.space_pad = kernel_size // 2
        self.spatial_padding_mode = spatial_padding_mode
        builtin = self.space_pad if spatial_padding_mode == "zeros" else 0
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=(0, builtin, builtin))

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        front, back = (self.time_pad, 0) if causal else (self.time_pad // 2, self.time_pad // 2)
        if front or back:
            edges = [x[:, :, :1].expand(-1, -1, front, -1, -1), x]
            if back:
                edges.append(x[:, :, -1:].expand(-1, -1, back, -1, -1))
            x = torch.cat(edges, dim=2)  # [B, C, F + k - 1, H, W]
        if self.spatial_padding_mode != "zeros" and self.space_pad:
            p = self.space_pad
            x = F.pad(x, (p, p, p, p, 0, 0), mode=self.spatial_padding_mode)
        if _small_fp32_cpu_input(x, self.conv.weight):
            # PyTorch sends batch-1 3x3x3 convolutions with N·C·F·H <= 20480 to its naive kernel, about 10x slower
            # than oneDNN on the small tiles of tiled decoding; call oneDNN directly (same result to fp32 rounding).
            c = self.conv
            return torch.mkldnn_convolution(x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups)
        return self.conv(x)


class ResnetBlock3d(nn.Module):
    """Pixel-norm -> SiLU -> causal conv, twice, plus the (projected) input.

    With ``timestep_conditioning`` each norm is followed by ``x (1 + scale) + shift`` from the block's timestep
    embedding plus the learned ``scale_shift_table`` (rows: shift1, scale1, shift2, scale2). With ``inject_noise`` a
    per-channel-scaled spatial noise map is added after each convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        eps: float = 1e-6,
        dropout: float = 0.0,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
        spatial_padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.dropout = dropout
        self.conv1 = CausalConv3d(in_channels, out_channels, spatial_padding_mode=spatial_padding_mode)
        self.conv2 = CausalConv3d(out_channels, out_channels, spatial_padding_mode=spatial_padding_mode)
        self.norm3 = self.conv_shortcut = None
        if in_channels != out_channels:
            self.norm3 = nn.LayerNorm(in_channels, eps=eps)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.per_channel_scale1 = self.per_channel_scale2 = None
        if inject_noise:
            self.per_channel_scale1 = nn.Parameter(torch.zeros(in_channels, 1, 1))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(in_channels, 1, 1))
        self.scale_shift_table = None
        if timestep_conditioning:
            self.scale_shift_table = nn.Parameter(torch.randn(4, in_channels) / in_channels**0.5)

    @staticmethod
    def _add_noise(x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        noise = randn_tensor(tuple(x.shape[-2:]), generator=generator, device=x.device, dtype=x.dtype)  # [H, W]
        return x + (noise[None] * scale.to(x.dtype))[None, :, None]  # [1, C, 1, H, W]

    def forward(
        self,
        x: torch.Tensor,
        temb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        causal: bool = True,
    ) -> torch.Tensor:
        h = pixel_norm(x)
        if self.scale_shift_table is not None:
            shift1, scale1, shift2, scale2 = adaptive_rows(temb, self.scale_shift_table, 4)
            h = h * (1 + scale1) + shift1
        h = self.conv1(F.silu(h), causal=causal)
        if self.per_channel_scale1 is not None:
            h = self._add_noise(h, self.per_channel_scale1, generator)
        h = pixel_norm(h)
        if self.scale_shift_table is not None:
            h = h * (1 + scale2) + shift2
        h = F.dropout(F.silu(h), p=self.dropout, training=self.training)
        h = self.conv2(h, causal=causal)
        if self.per_channel_scale2 is not None:
            h = self._add_noise(h, self.per_channel_scale2, generator)
        if self.norm3 is not None:
            x = self.conv_shortcut(self.norm3(x.movedim(1, -1)).movedim(-1, 1))
        return h + x


class Downsampler3d(nn.Module):
    """Causal conv to ``out/(t·h·w)`` channels then space-to-depth, plus a parameter-free skip.

    The skip is the space-to-depth of the input averaged over groups of channels. A temporal stride first duplicates
    frame 0, so ``1 + 2k`` frames become ``1 + k``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: Factors, spatial_padding_mode: str = "zeros"
                 ) -> None:
        super().__init__()
        self.stride = stride
        volume = math.prod(stride)
        self.group_size = in_channels * volume // out_channels
        self.conv = CausalConv3d(in_channels, out_channels // volume, spatial_padding_mode=spatial_padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] > 1:
            x = torch.cat([x[:, :, : self.stride[0] - 1], x], dim=2)  # [B, C, F + 1, H, W]
        skip = space_to_depth(x, self.stride)  # [B, C·t·h·w, F', H', W']
        skip = skip.unflatten(1, (-1, self.group_size)).mean(dim=2)  # [B, out, F', H', W']
        return space_to_depth(self.conv(x, causal=causal), self.stride) + skip


class Upsampler3d(nn.Module):
    """Causal conv to ``t·h·w·C/factor`` channels then depth-to-space; a temporal stride drops the first frame.

    With ``residual`` the input, depth-to-spaced and tiled ``t·h·w/factor`` times over channels, is added.
    """

    def __init__(
        self,
        in_channels: int,
        stride: Factors,
        residual: bool = False,
        upscale_factor: int = 1,
        spatial_padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.stride = stride
        self.residual = residual
        self.repeats = math.prod(stride) // upscale_factor
        self.conv = CausalConv3d(in_channels, in_channels * math.prod(stride) // upscale_factor,
                                 spatial_padding_mode=spatial_padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        drop = self.stride[0] - 1
        h = depth_to_space(self.conv(x, causal=causal), self.stride)[:, :, drop:]  # [B, C/f, F·t - drop, H·h, W·w]
        if self.residual:
            h = h + depth_to_space(x, self.stride).repeat(1, self.repeats, 1, 1, 1)[:, :, drop:]
        return h


# ----------------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------------


class _Checkpointed(nn.Module):
    """diffusers' ``gradient_checkpointing`` switch (set by ``enable_gradient_checkpointing``): :meth:`_run` recomputes
    ``module`` in the backward pass when it is on and gradients are being recorded. The class names of the VAE's
    modules are diffusers' (its checkpointing is applied to modules of these names)."""

    gradient_checkpointing = False

    def _run(self, module: nn.Module, *args: object) -> torch.Tensor:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)


class _ResnetStack(_Checkpointed):
    """Runs ``self.resnets``, each checkpointed when enabled (shared by the three block kinds)."""

    def _run_resnets(self, x: torch.Tensor, temb: torch.Tensor | None, generator: torch.Generator | None,
                     causal: bool) -> torch.Tensor:
        for resnet in self.resnets:
            x = self._run(resnet, x, temb, generator, causal)
        return x


class LTX2VideoDownBlock3D(_ResnetStack):
    """``num_layers`` residual blocks at ``in_channels``, then an optional down-sampler to ``out_channels``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        eps: float,
        downsample: bool,
        downsample_type: str,
        spatial_padding_mode: str,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock3d(in_channels, eps=eps, spatial_padding_mode=spatial_padding_mode) for _ in range(num_layers)]
        )
        self.downsamplers = None
        if downsample:
            stride = resample_stride(downsample_type)
            if downsample_type == "conv":
                sampler = CausalConv3d(in_channels, in_channels, stride=stride,
                                       spatial_padding_mode=spatial_padding_mode)
            else:
                sampler = Downsampler3d(in_channels, out_channels, stride, spatial_padding_mode)
            self.downsamplers = nn.ModuleList([sampler])

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        x = self._run_resnets(x, None, None, causal)
        for sampler in self.downsamplers or ():
            x = sampler(x, causal=causal)
        return x


class LTX2VideoMidBlock3d(_ResnetStack):
    """``num_layers`` residual blocks; with timestep conditioning they share one embedding of width ``4·C``."""

    def __init__(
        self,
        channels: int,
        num_layers: int,
        eps: float,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
        spatial_padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.time_embedder = TimestepEmbedding(4 * channels) if timestep_conditioning else None
        self.resnets = nn.ModuleList([
            ResnetBlock3d(channels, eps=eps, inject_noise=inject_noise, timestep_conditioning=timestep_conditioning,
                          spatial_padding_mode=spatial_padding_mode)
            for _ in range(num_layers)
        ])

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None, generator: torch.Generator | None = None,
                causal: bool = True) -> torch.Tensor:
        if self.time_embedder is not None:
            temb = self.time_embedder(temb.flatten(), x.dtype).view(x.shape[0], -1, 1, 1, 1)  # [B, 4C, 1, 1, 1]
        return self._run_resnets(x, temb, generator, causal)


class LTX2VideoUpBlock3d(_ResnetStack):
    """Optional channel-changing residual block, optional up-sampler, then ``num_layers`` residual blocks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        eps: float,
        upsample: bool,
        upsample_type: str,
        upsample_residual: bool,
        upscale_factor: int,
        inject_noise: bool,
        timestep_conditioning: bool,
        spatial_padding_mode: str,
    ) -> None:
        super().__init__()
        if timestep_conditioning and in_channels != out_channels:
            raise ValueError(
                f"a timestep-conditioned up block cannot change channels ({in_channels} -> {out_channels}); no LTX-2 "
                "checkpoint does this. Make decoder_block_out_channels / upsample_factor keep the width."
            )
        self.time_embedder = TimestepEmbedding(4 * in_channels) if timestep_conditioning else None
        self.conv_in = None
        if in_channels != out_channels:
            self.conv_in = ResnetBlock3d(in_channels, out_channels, eps=eps, inject_noise=inject_noise,
                                         spatial_padding_mode=spatial_padding_mode)
        self.upsamplers = None
        if upsample:
            self.upsamplers = nn.ModuleList([
                Upsampler3d(out_channels * upscale_factor, resample_stride(upsample_type), upsample_residual,
                            upscale_factor, spatial_padding_mode)
            ])
        self.resnets = nn.ModuleList([
            ResnetBlock3d(out_channels, eps=eps, inject_noise=inject_noise,
                          timestep_conditioning=timestep_conditioning, spatial_padding_mode=spatial_padding_mode)
            for _ in range(num_layers)
        ])

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None, generator: torch.Generator | None = None,
                causal: bool = True) -> torch.Tensor:
        if self.conv_in is not None:
            x = self.conv_in(x, None, generator, causal)
        if self.time_embedder is not None:
            temb = self.time_embedder(temb.flatten(), x.dtype).view(x.shape[0], -1, 1, 1, 1)  # [B, 4C, 1, 1, 1]
        for sampler in self.upsamplers or ():
            x = sampler(x, causal=causal)
        return self._run_resnets(x, temb, generator, causal)


# ----------------------------------------------------------------------------------------------------------------
# Encoder and decoder
# ----------------------------------------------------------------------------------------------------------------


class LTX2VideoEncoder3d(_Checkpointed):
    """Pixels ``[B, C, F, H, W]`` -> ``[B, latent+1, F', H', W']`` (latent means and one shared log-variance)."""

    def __init__(
        self,
        in_channels: int,
        latent_channels: int,
        block_out_channels: Sequence[int],
        layers_per_block: Sequence[int],
        spatio_temporal_scaling: bool | Sequence[bool],
        downsample_type: Sequence[str],
        patch_size: int,
        patch_size_t: int,
        eps: float,
        spatial_padding_mode: str,
    ) -> None:
        super().__init__()
        blocks = len(block_out_channels)
        layers, mid_layers = encoder_layers(layers_per_block, blocks)
        scaling = per_block(spatio_temporal_scaling, blocks, "spatio_temporal_scaling")
        kinds = per_block(downsample_type, blocks, "downsample_type")
        for kind in kinds:
            resample_stride(kind)
        check_encoder_widths(latent_channels, block_out_channels, scaling, kinds)
        self.patch = (patch_size_t, patch_size, patch_size)
        self.conv_in = CausalConv3d(in_channels * math.prod(self.patch), latent_channels,
                                    spatial_padding_mode=spatial_padding_mode)
        width = latent_channels
        self.down_blocks = nn.ModuleList()
        for out, num_layers, down, kind in zip(block_out_channels, layers, scaling, kinds):
            self.down_blocks.append(
                LTX2VideoDownBlock3D(width, out, num_layers, eps, down, kind, spatial_padding_mode))
            width = out
        self.mid_block = LTX2VideoMidBlock3d(width, mid_layers, eps, spatial_padding_mode=spatial_padding_mode)
        self.conv_out = CausalConv3d(width, latent_channels + 1, spatial_padding_mode=spatial_padding_mode)
        self.factors = total_factors(kinds, scaling, self.patch)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        x = space_to_depth(x, self.patch, width_first=True)  # [B, C·t·p·p, F, H/p, W/p]
        x = self.conv_in(x, causal=causal)
        for block in self.down_blocks:
            x = self._run(block, x, causal)
        x = self._run(self.mid_block, x, None, None, causal)
        return self.conv_out(F.silu(pixel_norm(x)), causal=causal)  # [B, latent + 1, F', H', W']


class LTX2VideoDecoder3d(_Checkpointed):
    """Latents ``[B, latent, F', H', W']`` -> pixels ``[B, C, 8(F'-1)+1, 32H', 32W']`` (for the LTX-2 layout).

    Per-block arguments follow the file format's convention: ``block_out_channels``, ``layers_per_block``,
    ``spatio_temporal_scaling``, ``inject_noise``, ``upsample_residual`` and ``upsample_factor`` are listed from the
    output side (the last entry of ``layers_per_block`` is the mid block), ``upsample_type`` from the input side.
    Lists longer than needed are read from their input-side end, as diffusers reads them (:func:`per_block`).
    """

    def __init__(
        self,
        latent_channels: int,
        out_channels: int,
        block_out_channels: Sequence[int],
        layers_per_block: Sequence[int],
        spatio_temporal_scaling: bool | Sequence[bool],
        upsample_type: Sequence[str],
        upsample_residual: bool | Sequence[bool],
        upsample_factor: Sequence[int],
        inject_noise: bool | Sequence[bool],
        timestep_conditioning: bool,
        patch_size: int,
        patch_size_t: int,
        eps: float,
        spatial_padding_mode: str,
    ) -> None:
        super().__init__()
        blocks = len(block_out_channels)

        def input_side_first(value: bool | Sequence, count: int, name: str) -> tuple:
            return tuple(reversed(per_block(value, count, name, from_end=True)))

        widths = tuple(reversed(block_out_channels))
        layers = input_side_first(tuple(layers_per_block), blocks + 1, "decoder_layers_per_block (the last entry is "
                                  "the mid block)")
        scaling = input_side_first(spatio_temporal_scaling, blocks, "decoder_spatio_temporal_scaling")
        noise = input_side_first(inject_noise, blocks + 1, "decoder_inject_noise (the last entry is the mid block)")
        residual = input_side_first(upsample_residual, blocks, "upsample_residual")
        factor = input_side_first(tuple(upsample_factor), blocks, "upsample_factor")
        kinds = per_block(tuple(upsample_type), blocks, "upsample_type")
        for kind in kinds:
            resample_stride(kind)
        if any(int(f) != f or f < 1 for f in factor):
            raise ValueError(f"upsample_factor entries must be positive integers, got {tuple(upsample_factor)}.")
        check_decoder_widths(widths[0], widths, factor, scaling)
        self.patch = (patch_size_t, patch_size, patch_size)

        width = widths[0]
        self.conv_in = CausalConv3d(latent_channels, width, spatial_padding_mode=spatial_padding_mode)
        self.mid_block = LTX2VideoMidBlock3d(width, layers[0], eps, noise[0], timestep_conditioning,
                                             spatial_padding_mode)
        self.up_blocks = nn.ModuleList()
        for i in range(blocks):
            block_in, width = width // factor[i], widths[i] // factor[i]
            self.up_blocks.append(LTX2VideoUpBlock3d(
                block_in, width, layers[i + 1], eps, scaling[i], kinds[i], residual[i], factor[i], noise[i + 1],
                timestep_conditioning, spatial_padding_mode))
        self.conv_out = CausalConv3d(width, out_channels * math.prod(self.patch),
                                     spatial_padding_mode=spatial_padding_mode)
        self.timestep_scale_multiplier = self.time_embedder = self.scale_shift_table = None
        if timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
            self.time_embedder = TimestepEmbedding(2 * width)
            self.scale_shift_table = nn.Parameter(torch.randn(2, width) / width**0.5)
        self.factors = total_factors(kinds, scaling, self.patch)

    def forward(
        self,
        z: torch.Tensor,
        temb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        x = self.conv_in(z, causal=causal)
        if self.timestep_scale_multiplier is not None:
            temb = temb * self.timestep_scale_multiplier.to(temb.dtype)  # [B]
        for block in (self.mid_block, *self.up_blocks):
            x = self._run(block, x, temb, generator, causal)
        x = pixel_norm(x)
        if self.time_embedder is not None:
            emb = self.time_embedder(temb.flatten(), x.dtype).view(x.shape[0], -1, 1, 1, 1)  # [B, 2C, 1, 1, 1]
            shift, scale = adaptive_rows(emb, self.scale_shift_table, 2)
            x = x * (1 + scale) + shift
        x = self.conv_out(F.silu(x), causal=causal)  # [B, C·t·p·p, F, H, W]
        return depth_to_space(x, self.patch, width_first=True)  # [B, C, F·t, H·p, W·p]
