"""Vocoder layers: windowed-sinc filters, anti-aliased (BigVGAN-v2) activations and the multi-dilation residual block.

Leaves first: the filter taps are pure functions; :class:`UpSample1d` / :class:`DownSample1d` apply them per channel;
:class:`AntiAliasAct1d` runs a point-wise activation at twice the rate (upsample -> activation -> downsample) so the
harmonics it creates are low-passed instead of folding back; :class:`ResBlock` is the residual block of both vocoder
generations (LeakyReLU for LTX-2.0's HiFi-GAN, anti-aliased SnakeBeta for LTX-2.3's BigVGAN-v2).

Module and buffer names follow ``diffusers.pipelines.ltx2.vocoder`` so diffusers-format checkpoints load unchanged:
the Kaiser filters are persistent ``filter`` buffers (the checkpoint's values win), the Hann resampler's is not.

Receptive fields: every layer here is a fixed-size filter, so an output sample depends only on input samples within a
fixed distance, its *reach*. The ``*_reach`` functions give that distance in input samples (one side, the larger of
the two), from the same padding arithmetic the layers use; the vocoders sum them to size the margins of chunked runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("leaky_relu", "snake", "snakebeta")

# ----------------------------------------------------------------------------------------------------------------
# Filter taps (pure)
# ----------------------------------------------------------------------------------------------------------------


def kaiser_beta(half_taps: int, half_width: float) -> float:
    """Kaiser window ``beta`` for a low-pass whose transition band is ``4 · half_width`` wide (Kaiser's formulas,
    from the stop-band attenuation in dB that ``half_taps`` taps on each side achieve)."""
    attenuation = 2.285 * (half_taps - 1) * math.pi * 4 * half_width + 7.95
    if attenuation > 50.0:
        return 0.1102 * (attenuation - 8.7)
    if attenuation >= 21.0:
        return 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    return 0.0


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """``[kernel_size]`` Kaiser-windowed sinc low-pass, ``cutoff`` in cycles per sample (0 .. 0.5), taps summing to 1.

    Taps sit symmetrically around the kernel's centre (half-integer positions for an even size); ``cutoff == 0``
    gives all zeros. Always float32 (``from_pretrained(torch_dtype=...)`` builds models under another default dtype).
    """
    if not 0.0 <= cutoff <= 0.5:
        raise ValueError(f"cutoff must be in [0, 0.5] cycles per sample, got {cutoff}.")
    f32 = torch.float32
    beta = kaiser_beta(kernel_size // 2, half_width)
    window = torch.kaiser_window(kernel_size, periodic=False, beta=beta, dtype=f32)
    position = torch.arange(kernel_size, dtype=f32) - (kernel_size - 1) / 2  # [K]
    if cutoff == 0.0:
        return torch.zeros(kernel_size, dtype=f32)
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * position)
    return taps / taps.sum()


def hann_sinc_filter1d(ratio: int, rolloff: float = 0.99, zero_crossings: int = 6) -> torch.Tensor:
    """``[2 · width · ratio + 1]`` interpolation filter of a ×``ratio`` resampler, ``width = ceil(zero_crossings /
    rolloff)``: a sinc with its cutoff at ``rolloff`` × the input Nyquist rate under a squared-cosine (Hann) window
    that reaches zero after ``zero_crossings`` crossings (torchaudio's ``sinc_interp_hann`` design). Float32."""
    width = math.ceil(zero_crossings / rolloff)
    taps = torch.arange(2 * width * ratio + 1, dtype=torch.float32)
    time = (taps / ratio - width) * rolloff  # in input samples, × rolloff
    window = torch.cos(time.clamp(-zero_crossings, zero_crossings) * math.pi / zero_crossings / 2) ** 2
    return torch.sinc(time) * window * rolloff / ratio


def _upsample_pads(ratio: int, kernel_size: int, window_type: str) -> tuple[int, int, int]:
    """(replicate padding of the input, crop left, crop right of the transposed convolution's output)."""
    if window_type == "hann":
        width = (kernel_size - 1) // (2 * ratio)
        return width, 2 * width * ratio, kernel_size - ratio
    pad = kernel_size // ratio - 1
    return pad, pad * ratio + (kernel_size - ratio) // 2, pad * ratio + (kernel_size - ratio + 1) // 2


def _downsample_pads(kernel_size: int) -> tuple[int, int]:
    return kernel_size // 2 + kernel_size % 2 - 1, kernel_size // 2


def upsample_reach(ratio: int, kernel_size: int, window_type: str = "kaiser") -> float:
    """Input samples on either side that one output sample of :class:`UpSample1d` can depend on."""
    pad, crop_left, _ = _upsample_pads(ratio, kernel_size, window_type)
    offset = crop_left - pad * ratio  # output m reads input samples i with i·ratio in [m + offset - K + 1, m + offset]
    return max(offset, kernel_size - 1 - offset) / ratio


def downsample_reach(ratio: int, kernel_size: int) -> float:
    """Reach of :class:`DownSample1d` in samples of its (low) output rate."""
    left, _ = _downsample_pads(kernel_size)
    return max(left, kernel_size - 1 - left) / ratio


def antialias_reach(ratio: int, kernel_size: int) -> float:
    """Reach of :class:`AntiAliasAct1d` in samples of its (input = output) rate."""
    return upsample_reach(ratio, kernel_size) + downsample_reach(ratio, kernel_size)


def replicate_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """``F.pad(x, (left, right), mode="replicate")`` on the last dim, as one concatenation (several times faster on
    CPU than the padding kernel for long sequences)."""
    return torch.cat([x[..., :1].expand(*x.shape[:-1], left), x, x[..., -1:].expand(*x.shape[:-1], right)], dim=-1)


def same_conv_reach(kernel_size: int, dilation: int = 1) -> int:
    """Reach of a stride-1 ``padding="same"`` convolution (the larger side for even spans)."""
    span = dilation * (kernel_size - 1)
    return span - span // 2


# ----------------------------------------------------------------------------------------------------------------
# Resampling layers
# ----------------------------------------------------------------------------------------------------------------


class UpSample1d(nn.Module):
    """×``ratio`` per-channel interpolation: replicate padding, a transposed convolution with ``filter`` (× ratio to
    keep the gain), cropped to exactly ``ratio ·`` the input length.

    ``window_type="kaiser"``: BigVGAN's anti-aliasing filter (``kernel_size`` taps, default ``6 · ratio``), persistent.
    ``window_type="hann"``: the resampler of the bandwidth extension (``hann_sinc_filter1d``), pass
    ``persistent=False`` as diffusers does (it is never stored in checkpoints).
    """

    def __init__(self, ratio: int = 2, kernel_size: int | None = None, window_type: str = "kaiser",
                 persistent: bool = True) -> None:
        super().__init__()
        if window_type not in ("kaiser", "hann"):
            raise ValueError(f"window_type must be 'kaiser' or 'hann', got {window_type!r}.")
        self.ratio = ratio
        if window_type == "hann":
            taps = hann_sinc_filter1d(ratio)
        else:
            size = 6 * ratio if kernel_size is None else kernel_size
            taps = kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, size)
        self.kernel_size = taps.numel()
        self.pad, self.crop_left, self.crop_right = _upsample_pads(ratio, self.kernel_size, window_type)
        self.register_buffer("filter", taps.view(1, 1, -1), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = replicate_pad(x, self.pad, self.pad)  # [B, C, N + 2·pad]
        taps = self.filter.to(x).expand(channels, -1, -1)
        x = self.ratio * F.conv_transpose1d(x, taps, stride=self.ratio, groups=channels)
        return x[..., self.crop_left:x.shape[-1] - self.crop_right]  # [B, C, N·ratio]


class DownSample1d(nn.Module):
    """Anti-aliased ÷``ratio``: replicate padding, then the Kaiser low-pass ``filter`` with stride ``ratio``."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        self.ratio = ratio
        self.kernel_size = 6 * ratio if kernel_size is None else kernel_size
        self.pad_left, self.pad_right = _downsample_pads(self.kernel_size)
        self.register_buffer("filter", kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, self.kernel_size).view(1, 1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = replicate_pad(x, self.pad_left, self.pad_right)
        return F.conv1d(x, self.filter.to(x).expand(channels, -1, -1), stride=self.ratio, groups=channels)


# ----------------------------------------------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------------------------------------------


class SnakeBeta(nn.Module):
    """Periodic activation ``x + sin²(α·x) / (β + 1e-9)`` with per-channel ``α = exp(alpha)``, ``β = exp(beta)``
    (log-scale parameters); without ``beta`` (plain Snake) the amplitude is ``α`` as well. Channels on dim 1."""

    def __init__(self, channels: int, use_beta: bool = True) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.register_parameter("beta", nn.Parameter(torch.zeros(channels)) if use_beta else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.exp()[:, None]  # [C, 1]
        amplitude = self.beta.exp()[:, None] if self.beta is not None else alpha
        return x + torch.sin(x * alpha).pow(2) * (1.0 / (amplitude + 1e-9))


class AntiAliasAct1d(nn.Module):
    """``downsample(act(upsample(x)))``: a point-wise activation applied at ``ratio`` × the rate (BigVGAN-v2)."""

    def __init__(self, act: nn.Module, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.upsample = UpSample1d(ratio, kernel_size)
        self.act = act
        self.downsample = DownSample1d(ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))  # [B, C, N] -> [B, C, N·ratio] -> [B, C, N]


def make_activation(act_fn: str, channels: int, negative_slope: float = 0.1, antialias: bool = False,
                    ratio: int = 2, kernel_size: int = 12) -> nn.Module:
    """The activation module of one vocoder layer: ``leaky_relu``, ``snake`` (SnakeBeta without ``beta``) or
    ``snakebeta``, wrapped in :class:`AntiAliasAct1d` when ``antialias``."""
    if act_fn == "leaky_relu":
        act: nn.Module = nn.LeakyReLU(negative_slope)
    elif act_fn in ("snake", "snakebeta"):
        act = SnakeBeta(channels, use_beta=act_fn == "snakebeta")
    else:
        raise ValueError(f"act_fn must be one of {ACTIVATIONS}, got {act_fn!r}.")
    return AntiAliasAct1d(act, ratio, kernel_size) if antialias else act


# ----------------------------------------------------------------------------------------------------------------
# Residual block
# ----------------------------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1 / BigVGAN AMPBlock1: ``x += conv2(act2(conv1(act1(x))))`` for each dilation (``conv1``
    dilated, both ``padding="same"``)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int], act_fn: str = "leaky_relu",
                 negative_slope: float = 0.1, antialias: bool = False, antialias_ratio: int = 2,
                 antialias_kernel_size: int = 12) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding="same") for d in dilations
        )
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding="same") for _ in dilations)
        act_args = (act_fn, channels, negative_slope, antialias, antialias_ratio, antialias_kernel_size)
        self.acts1 = nn.ModuleList(make_activation(*act_args) for _ in dilations)
        self.acts2 = nn.ModuleList(make_activation(*act_args) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for act1, conv1, act2, conv2 in zip(self.acts1, self.convs1, self.acts2, self.convs2):
            x = x + conv2(act2(conv1(act1(x))))
        return x
