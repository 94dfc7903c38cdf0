"""The LTX-2 vocoder generator: stereo 16 kHz-grid log-mel -> waveform (HiFi-GAN V1 for LTX-2.0, BigVGAN-v2 inside
LTX-2.3's bandwidth extension; §3.3.1).

The two 64-bin mel channels are stacked into 128 input channels (left channel's bins first). ``conv_in`` (k 7) widens
them to ``hidden_channels``; transposed-conv stages upsample (LTX-2.0: 6·5·2·2·2 = 240, one 10 ms mel frame -> 240
samples at 24 kHz) while halving the width (floor division), each followed by parallel residual blocks (kernels 3, 7,
11; dilations 1, 3, 5) whose outputs are **averaged**; then a final activation, ``conv_out`` (k 7) to 2 channels and
an optional ``tanh`` / clamp. The activations are either LeakyReLU (LTX-2.0: slope 0.1 before every upsampler and in
the residual blocks, PyTorch's default 0.01 at the end) or anti-aliased SnakeBeta (BigVGAN-v2, ``act_fn="snakebeta"``:
no activation before the upsamplers, the final one always anti-aliased). The 16 kHz mel caps the content at 8 kHz
whatever the output rate; ``output_sampling_rate`` in the config is the rate to write the audio with.

Precision: the vocoder always runs in float32. ``from_pretrained(..., torch_dtype=torch.bfloat16)`` keeps its weights
in float32 (``_keep_in_fp32_modules``), ``.to(dtype)`` / ``.half()`` / ``.bfloat16()`` leave the dtype alone (device
moves still happen), and inputs are upcast, so a bf16 pipeline gets a float32 waveform.

Every layer is a fixed-size filter, so long clips are vocoded exactly in chunks with a symmetric margin that covers
the receptive field, computed from the config (:func:`vocoder_context_frames`, :meth:`LTX2Vocoder.enable_tiling`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import logging
from torch import nn

from .audio_processing import plan_chunks
from .strict_loading import StrictLoadingMixin
from .vocoder_layers import ACTIVATIONS, ResBlock, antialias_reach, make_activation, same_conv_reach

logger = logging.get_logger(__name__)

FINAL_ACTIVATIONS = ("tanh", "clamp", None)

# ----------------------------------------------------------------------------------------------------------------
# Receptive field
# ----------------------------------------------------------------------------------------------------------------


def vocoder_reach(
    upsample_factors: list[int],
    upsample_kernel_sizes: list[int],
    resnet_kernel_sizes: list[int],
    resnet_dilations: list[list[int]],
    in_kernel: int = 7,
    out_kernel: int = 7,
    activation_reach: float = 0.0,
    final_activation_reach: float = 0.0,
) -> float:
    """Mel frames on either side that one output sample can depend on: the reach of every layer in samples at its
    stage, divided by that stage's upsampling so far. ``activation_reach`` is the reach of each residual-block
    activation and ``final_activation_reach`` that of the final one, in samples (0 when point-wise)."""
    reach = float(same_conv_reach(in_kernel))
    rate = 1
    widest = max(sum(2 * activation_reach + same_conv_reach(k, d) + same_conv_reach(k) for d in dil)
                 for k, dil in zip(resnet_kernel_sizes, resnet_dilations))  # one residual block
    for factor, kernel in zip(upsample_factors, upsample_kernel_sizes):
        reach += math.ceil(kernel / factor) / rate
        rate *= factor
        reach += widest / rate
    return reach + (final_activation_reach + same_conv_reach(out_kernel)) / rate


def vocoder_context_frames(*args, **kwargs) -> int:
    """:func:`vocoder_reach` (same arguments) rounded up, plus one frame of slack."""
    return math.ceil(vocoder_reach(*args, **kwargs)) + 1


# ----------------------------------------------------------------------------------------------------------------
# Shared by the vocoders
# ----------------------------------------------------------------------------------------------------------------


def mel_channels_first(mel: torch.Tensor, in_channels: int, time_last: bool = False) -> torch.Tensor:
    """Validates a log-mel ``[B, C, T, M]`` (``[B, C, M, T]`` with ``time_last``), ``C · M = in_channels``, and
    returns it as ``[B, C · M, T]``, channel-major, in its own dtype."""
    x = mel
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] * x.shape[3 - time_last] != in_channels or \
            not x.is_floating_point() or x.shape[2 + time_last] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"the vocoder takes a float mel spectrogram [batch, channels, frames, bins] with channels * bins = "
            f"{in_channels} (the audio VAE's decode output, e.g. [1, 2, 501, 64]), got {shape}."
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the mel spectrogram holds NaN or infinite values; check the audio latents / VAE decode "
                         "that produced it (the vocoder would turn them into a broken waveform).")
    x = x if time_last else x.transpose(2, 3)  # [B, C, M, T]
    return x.flatten(1, 2)  # [B, C·M, T]


class Float32Only:
    """Mixin for a ``ModelMixin`` that must stay in float32: dtype casts are ignored (logged), device moves happen."""

    def to(self, *args, **kwargs):  # noqa: ANN201
        """``nn.Module.to`` for devices; a cast away from float32 is ignored (logged)."""
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None and dtype != torch.float32:
            logger.info(f"{type(self).__name__} stays in float32 (asked for {dtype}); only the device changes.")
        if device is None and memory_format is None:
            return self
        moves = {"device": device, "non_blocking": non_blocking}
        if memory_format is not None:
            moves["memory_format"] = memory_format
        return super().to(**moves)

    def half(self, *args):  # noqa: ANN201
        logger.info(f"{type(self).__name__} stays in float32; .half() is ignored.")
        return self

    def bfloat16(self, *args):  # noqa: ANN201
        logger.info(f"{type(self).__name__} stays in float32; .bfloat16() is ignored.")
        return self


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


class LTX2Vocoder(Float32Only, StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""LTX-2 vocoder generator: log-mel ``[B, 2, T, 64]`` -> waveform ``[B, 2, T · prod(upsample_factors)]``.

    Loads diffusers-format ``vocoder/`` folders unchanged (config keys and parameter names of
    ``diffusers.pipelines.ltx2.LTX2Vocoder``); the defaults are the released LTX-2.0 HiFi-GAN (55.6 M parameters,
    24 kHz). With ``act_fn="snakebeta", antialias=True`` it is the BigVGAN-v2 generator of LTX-2.3
    (:class:`~ltx2_diffusers.models.vocoder_bwe_ltx2.LTX2VocoderWithBWE` holds two of them).

    Args:
        in_channels: mel channels × bins stacked (2 × 64 = 128).
        hidden_channels: width after ``conv_in`` (1024); halved (floor division) by every upsampling stage.
        out_channels: waveform channels (2).
        upsample_kernel_sizes / upsample_factors: transposed-conv kernels and strides per stage
            (16, 15, 8, 4, 4 / 6, 5, 2, 2, 2).
        resnet_kernel_sizes / resnet_dilations: the parallel residual blocks of every stage (3, 7, 11; 1, 3, 5).
        act_fn: ``"leaky_relu"`` (LTX-2.0), ``"snakebeta"`` (BigVGAN-v2) or ``"snake"`` (SnakeBeta without ``beta``
            in the residual blocks; the final activation is a SnakeBeta, as in diffusers).
        leaky_relu_negative_slope: slope of the inner LeakyReLUs (0.1); the final one uses 0.01.
        antialias / antialias_ratio / antialias_kernel_size: run the residual-block activations at ``ratio`` × the
            rate between Kaiser-sinc filters of ``kernel_size`` taps (snake activations only; their final activation
            is always anti-aliased).
        final_act_fn: ``"tanh"``, ``"clamp"`` (to [-1, 1]) or ``None``.
        final_bias: ``conv_out`` has a bias.
        output_sampling_rate: rate of the waveform in Hz (24000); write the audio with this rate.
    """

    _keep_in_fp32_modules = ["conv_in", "upsamplers", "resnets", "act_out", "conv_out"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        hidden_channels: int = 1024,
        out_channels: int = 2,
        upsample_kernel_sizes: list[int] = (16, 15, 8, 4, 4),
        upsample_factors: list[int] = (6, 5, 2, 2, 2),
        resnet_kernel_sizes: list[int] = (3, 7, 11),
        resnet_dilations: list[list[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        act_fn: str = "leaky_relu",
        leaky_relu_negative_slope: float = 0.1,
        antialias: bool = False,
        antialias_ratio: int = 2,
        antialias_kernel_size: int = 12,
        final_act_fn: str | None = "tanh",
        final_bias: bool = True,
        output_sampling_rate: int = 24000,
    ) -> None:
        super().__init__()
        if act_fn not in ACTIVATIONS:
            raise ValueError(f"act_fn must be one of {ACTIVATIONS}, got {act_fn!r}.")
        if act_fn == "leaky_relu" and antialias:
            raise ValueError("antialias=True needs act_fn 'snakebeta' or 'snake' (BigVGAN-v2); anti-aliased "
                             "LeakyReLUs are no LTX vocoder (diffusers 0.42.1 also builds them wrongly).")
        if act_fn != "leaky_relu" and not 1 <= antialias_ratio <= antialias_kernel_size:
            raise ValueError(f"the anti-aliasing filters need 1 <= antialias_ratio <= antialias_kernel_size, got "
                             f"{antialias_ratio} and {antialias_kernel_size} (LTX-2.3: 2 and 12).")
        if len(upsample_kernel_sizes) != len(upsample_factors) or not upsample_factors:
            raise ValueError(f"upsample_kernel_sizes {list(upsample_kernel_sizes)} and upsample_factors "
                             f"{list(upsample_factors)} must have the same, non-zero length.")
        if len(resnet_kernel_sizes) != len(resnet_dilations) or not resnet_kernel_sizes:
            raise ValueError(f"resnet_kernel_sizes {list(resnet_kernel_sizes)} and resnet_dilations "
                             f"{[list(d) for d in resnet_dilations]} must have the same, non-zero length.")
        if hidden_channels // 2 ** len(upsample_factors) < 1:
            raise ValueError(f"hidden_channels ({hidden_channels}) is halved by each of the {len(upsample_factors)} "
                             f"upsampling stages and would reach 0; pass at least {2 ** len(upsample_factors)}.")
        if final_act_fn not in FINAL_ACTIVATIONS:
            raise ValueError(f"final_act_fn must be one of {FINAL_ACTIVATIONS}, got {final_act_fn!r}.")

        self.conv_in = nn.Conv1d(in_channels, hidden_channels, 7, padding=3)
        self.upsamplers = nn.ModuleList()
        self.resnets = nn.ModuleList()
        act = dict(act_fn=act_fn, negative_slope=leaky_relu_negative_slope, antialias=antialias,
                   antialias_ratio=antialias_ratio, antialias_kernel_size=antialias_kernel_size)
        width = hidden_channels
        for factor, kernel in zip(upsample_factors, upsample_kernel_sizes):
            self.upsamplers.append(nn.ConvTranspose1d(width, width // 2, kernel, stride=factor,
                                                      padding=(kernel - factor) // 2))
            width //= 2
            self.resnets.extend(ResBlock(width, k, list(d), **act)
                                for k, d in zip(resnet_kernel_sizes, resnet_dilations))
        if act_fn == "leaky_relu":
            self.act_out = nn.LeakyReLU()  # PyTorch's default slope 0.01, as the reference
        else:
            self.act_out = make_activation("snakebeta", width, antialias=True, ratio=antialias_ratio,
                                           kernel_size=antialias_kernel_size)
        self.conv_out = nn.Conv1d(width, out_channels, 7, padding=3, bias=final_bias)

        self.upsample_factor = math.prod(upsample_factors)  # waveform samples per mel frame
        self.use_tiling = False
        self.tile_mel_frames = 1000  # 10 s of audio per vocoded chunk
        smooth = 0.0 if act_fn == "leaky_relu" else antialias_reach(antialias_ratio, antialias_kernel_size)
        self._reach = vocoder_reach(list(upsample_factors), list(upsample_kernel_sizes), list(resnet_kernel_sizes),
                                    [list(d) for d in resnet_dilations], activation_reach=smooth if antialias else 0.0,
                                    final_activation_reach=smooth)
        self._context = math.ceil(self._reach) + 1
        # chunks line up only if every stage maps n frames to exactly factor·n samples
        self._chunkable = all((k - f) % 2 == 0 for k, f in zip(upsample_kernel_sizes, upsample_factors))

    # -- long clips ---------------------------------------------------------------------------------------------

    def enable_tiling(self, tile_mel_frames: int | None = None) -> None:
        r"""Vocode long spectrograms in chunks of ``tile_mel_frames`` frames (default 1000 = 10 s).

        Each chunk is run with a margin of mel frames on both sides that covers the receptive field (22 frames for
        LTX-2.0) and only its own samples are kept, so the result equals the whole run up to float rounding.
        """
        if tile_mel_frames is not None:
            if int(tile_mel_frames) != tile_mel_frames or tile_mel_frames < 1:
                raise ValueError(f"tile_mel_frames must be a positive integer, got {tile_mel_frames!r}.")
            self.tile_mel_frames = int(tile_mel_frames)
        if not self._chunkable:
            raise ValueError("this vocoder config has a stage whose (kernel - factor) is odd, so chunks would not "
                             "line up; vocode whole spectrograms instead.")
        self.use_tiling = True

    def disable_tiling(self) -> None:
        """Vocode every spectrogram in one run."""
        self.use_tiling = False

    # -- forward ------------------------------------------------------------------------------------------------

    def _synthesize(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, T]`` float32 -> ``[B, out_channels, T · upsample_factor]``, no checks, no chunks."""
        x = self.conv_in(x)  # [B, hidden, T]
        per_stage = len(self.resnets) // len(self.upsamplers)
        leaky = self.config.act_fn == "leaky_relu"  # BigVGAN has its activations inside the blocks only
        for i, upsample in enumerate(self.upsamplers):
            if leaky:
                x = F.leaky_relu(x, self.config.leaky_relu_negative_slope)
            x = upsample(x)  # [B, width/2, T·factor]
            branches = self.resnets[i * per_stage:(i + 1) * per_stage]
            x = torch.stack([block(x) for block in branches]).mean(dim=0)
        x = self.conv_out(self.act_out(x))  # [B, out, T·u]
        if self.config.final_act_fn == "tanh":
            return torch.tanh(x)
        return x.clamp(-1.0, 1.0) if self.config.final_act_fn == "clamp" else x

    def forward(self, hidden_states: torch.Tensor, time_last: bool = False) -> torch.Tensor:
        r"""Mel spectrogram -> waveform.

        Args:
            hidden_states: ``[B, C, T, M]`` log-mel (``[B, C, M, T]`` with ``time_last``), ``C · M = in_channels``;
                any float dtype (computed in float32).
            time_last: the last dimension is time.

        Returns:
            ``[B, out_channels, T · prod(upsample_factors)]`` float32 waveform at ``config.output_sampling_rate``.
        """
        x = mel_channels_first(hidden_states, self.config.in_channels, time_last).to(self.conv_in.weight)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if not self.use_tiling or x.shape[2] <= self.tile_mel_frames:
                return self._synthesize(x)
            u = self.upsample_factor
            pieces = []
            for c in plan_chunks(x.shape[2], self.tile_mel_frames, self._context, self._context):
                wave = self._synthesize(x[:, :, c.read_start:c.read_stop])  # [B, out, (read_stop-read_start)·u]
                pieces.append(wave[:, :, (c.start - c.read_start) * u:(c.stop - c.read_start) * u])
            return torch.cat(pieces, dim=2)  # [B, out, T·u]
