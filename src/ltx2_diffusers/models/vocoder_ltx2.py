"""The LTX-2 vocoder: stereo 16 kHz-grid log-mel -> 24 kHz stereo waveform (HiFi-GAN V1, doubled width; §3.3.1).

The two 64-bin mel channels are stacked into 128 input channels (left channel's bins first). ``conv_in`` (k 7) widens
them to 1024; five transposed-conv stages upsample by 6·5·2·2·2 = 240 (one 10 ms mel frame -> 240 samples at
24 kHz) while halving the width, each preceded by LeakyReLU(0.1) and followed by three parallel residual blocks
(kernels 3, 7, 11; dilations 1, 3, 5) whose outputs are **averaged**. A final LeakyReLU with PyTorch's default slope
0.01 (not the inner 0.1), ``conv_out`` (k 7) to 2 channels and ``tanh`` give the waveform. The 16 kHz mel caps the
content at 8 kHz even though the output rate is 24 kHz; ``output_sampling_rate`` in the config is the rate to write
the audio with.

Precision: the vocoder always runs in float32. ``from_pretrained(..., torch_dtype=torch.bfloat16)`` keeps its weights
in float32 (``_keep_in_fp32_modules``), ``.to(dtype)`` / ``.half()`` / ``.bfloat16()`` leave the dtype alone (device
moves still happen), and inputs are upcast, so a bf16 pipeline gets a float32 waveform.

Every layer is a fixed-size convolution, so long clips are vocoded exactly in chunks with a symmetric margin that
covers the receptive field (:meth:`LTX2Vocoder.enable_tiling`).
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

logger = logging.get_logger(__name__)

FINAL_ACTIVATIONS = ("tanh", "clamp", None)

# ----------------------------------------------------------------------------------------------------------------
# Receptive field
# ----------------------------------------------------------------------------------------------------------------


def vocoder_context_frames(
    upsample_factors: list[int],
    upsample_kernel_sizes: list[int],
    resnet_kernel_sizes: list[int],
    resnet_dilations: list[list[int]],
    in_kernel: int = 7,
    out_kernel: int = 7,
) -> int:
    """Mel frames on each side that one output sample can depend on, rounded up plus one: the reach of every
    convolution in samples at its stage, divided by that stage's upsampling so far."""
    reach = (in_kernel - 1) / 2
    rate = 1
    widest = max(sum(d * (k - 1) // 2 + (k - 1) // 2 for d in dil) for k, dil in
                 zip(resnet_kernel_sizes, resnet_dilations))  # one residual block: convs1 (dilated) + convs2
    for factor, kernel in zip(upsample_factors, upsample_kernel_sizes):
        reach += math.ceil(kernel / factor) / rate
        rate *= factor
        reach += widest / rate
    reach += (out_kernel - 1) / 2 / rate
    return math.ceil(reach) + 1


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: ``x += conv2(lrelu(conv1(lrelu(x))))`` for each dilation (``conv1`` dilated)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int], negative_slope: float) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding="same") for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding="same") for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            h = conv1(F.leaky_relu(x, self.negative_slope))
            x = x + conv2(F.leaky_relu(h, self.negative_slope))
        return x


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


class LTX2Vocoder(ModelMixin, ConfigMixin):
    r"""LTX-2 (2.0) HiFi-GAN vocoder: log-mel ``[B, 2, T, 64]`` -> waveform ``[B, 2, T · 240]`` at 24 kHz.

    Loads diffusers-format ``vocoder/`` folders unchanged (config keys and parameter names of
    ``diffusers.pipelines.ltx2.LTX2Vocoder``); the defaults are the released LTX-2 model (55.6 M parameters).

    Args:
        in_channels: mel channels × bins stacked (2 × 64 = 128).
        hidden_channels: width after ``conv_in`` (1024); halved by every upsampling stage.
        out_channels: waveform channels (2).
        upsample_kernel_sizes / upsample_factors: transposed-conv kernels and strides per stage
            (16, 15, 8, 4, 4 / 6, 5, 2, 2, 2).
        resnet_kernel_sizes / resnet_dilations: the parallel residual blocks of every stage (3, 7, 11; 1, 3, 5).
        act_fn: ``"leaky_relu"`` (the only activation of the LTX-2.0 vocoder).
        leaky_relu_negative_slope: slope of the inner LeakyReLUs (0.1); the final one uses 0.01.
        antialias / antialias_ratio / antialias_kernel_size: anti-aliased activations of later vocoders; must be off.
        final_act_fn: ``"tanh"``, ``"clamp"`` (to [-1, 1]) or ``None``.
        final_bias: ``conv_out`` has a bias.
        output_sampling_rate: rate of the waveform in Hz (24000); write the audio with this rate.

    The snake / anti-aliased BigVGAN variant (the inner vocoder of LTX-2.3's bandwidth extension) is not implemented:
    such configs raise a ``ValueError``.
    """

    _keep_in_fp32_modules = ["conv_in", "upsamplers", "resnets", "conv_out"]

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
        if act_fn != "leaky_relu" or antialias:
            raise ValueError(
                f"LTX2Vocoder implements the LTX-2.0 HiFi-GAN (act_fn='leaky_relu', antialias=False); got "
                f"act_fn={act_fn!r}, antialias={antialias}. The snake/anti-aliased BigVGAN vocoder of LTX-2.3 is not "
                f"supported here."
            )
        if len(upsample_kernel_sizes) != len(upsample_factors):
            raise ValueError(f"upsample_kernel_sizes {list(upsample_kernel_sizes)} and upsample_factors "
                             f"{list(upsample_factors)} must have the same length.")
        if len(resnet_kernel_sizes) != len(resnet_dilations):
            raise ValueError(f"resnet_kernel_sizes {list(resnet_kernel_sizes)} and resnet_dilations "
                             f"{[list(d) for d in resnet_dilations]} must have the same length.")
        if hidden_channels % 2 ** len(upsample_factors):
            raise ValueError(f"hidden_channels ({hidden_channels}) must be divisible by 2^{len(upsample_factors)} "
                             f"(one halving per upsampling stage).")
        if final_act_fn not in FINAL_ACTIVATIONS:
            raise ValueError(f"final_act_fn must be one of {FINAL_ACTIVATIONS}, got {final_act_fn!r}.")

        self.conv_in = nn.Conv1d(in_channels, hidden_channels, 7, padding=3)
        self.upsamplers = nn.ModuleList()
        self.resnets = nn.ModuleList()
        width = hidden_channels
        for factor, kernel in zip(upsample_factors, upsample_kernel_sizes):
            self.upsamplers.append(nn.ConvTranspose1d(width, width // 2, kernel, stride=factor,
                                                      padding=(kernel - factor) // 2))
            width //= 2
            self.resnets.extend(ResBlock(width, k, list(d), leaky_relu_negative_slope)
                                for k, d in zip(resnet_kernel_sizes, resnet_dilations))
        self.conv_out = nn.Conv1d(width, out_channels, 7, padding=3, bias=final_bias)

        self.upsample_factor = math.prod(upsample_factors)  # waveform samples per mel frame
        self.use_tiling = False
        self.tile_mel_frames = 1000  # 10 s of audio per vocoded chunk
        self._context = vocoder_context_frames(list(upsample_factors), list(upsample_kernel_sizes),
                                               list(resnet_kernel_sizes), [list(d) for d in resnet_dilations])
        # chunks line up only if every stage maps n frames to exactly factor·n samples
        self._chunkable = all((k - f) % 2 == 0 for k, f in zip(upsample_kernel_sizes, upsample_factors))

    # -- float32 only -------------------------------------------------------------------------------------------

    def to(self, *args, **kwargs) -> LTX2Vocoder:
        """``nn.Module.to`` for devices; a cast away from float32 is ignored (logged)."""
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None and dtype != torch.float32:
            logger.info(f"LTX2Vocoder stays in float32 (asked for {dtype}); only the device changes.")
        if device is None and memory_format is None:
            return self
        moves = {"device": device, "non_blocking": non_blocking}
        if memory_format is not None:
            moves["memory_format"] = memory_format
        return super().to(**moves)

    def half(self, *args) -> LTX2Vocoder:
        logger.info("LTX2Vocoder stays in float32; .half() is ignored.")
        return self

    def bfloat16(self, *args) -> LTX2Vocoder:
        logger.info("LTX2Vocoder stays in float32; .bfloat16() is ignored.")
        return self

    # -- long clips ---------------------------------------------------------------------------------------------

    def enable_tiling(self, tile_mel_frames: int | None = None) -> None:
        r"""Vocode long spectrograms in chunks of ``tile_mel_frames`` frames (default 1000 = 10 s).

        Each chunk is run with a margin of mel frames on both sides that covers the receptive field (22 frames for
        LTX-2) and only its own samples are kept, so the result equals the whole run up to float rounding.
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
        x = self.conv_in(x)  # [B, hidden, T]
        per_stage = len(self.resnets) // len(self.upsamplers)
        for i, upsample in enumerate(self.upsamplers):
            x = upsample(F.leaky_relu(x, self.config.leaky_relu_negative_slope))  # [B, width/2, T·factor]
            branches = self.resnets[i * per_stage:(i + 1) * per_stage]
            x = torch.stack([block(x) for block in branches]).mean(dim=0)
        x = self.conv_out(F.leaky_relu(x))  # PyTorch's default slope 0.01, as the reference
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
        x = hidden_states
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] * x.shape[3 - time_last] != \
                self.config.in_channels or not x.is_floating_point() or x.shape[2 + time_last] < 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"the vocoder takes a float mel spectrogram [batch, channels, frames, bins] with channels * bins = "
                f"{self.config.in_channels} (the audio VAE's decode output, e.g. [1, 2, 501, 64]), got {shape}."
            )
        x = x if time_last else x.transpose(2, 3)  # [B, C, M, T]
        x = x.flatten(1, 2).to(self.conv_in.weight)  # [B, C·M, T], channel-major; float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            if not self.use_tiling or x.shape[2] <= self.tile_mel_frames:
                return self._synthesize(x)
            u = self.upsample_factor
            pieces = []
            for c in plan_chunks(x.shape[2], self.tile_mel_frames, self._context, self._context):
                wave = self._synthesize(x[:, :, c.read_start:c.read_stop])  # [B, out, (read_stop-read_start)·u]
                pieces.append(wave[:, :, (c.start - c.read_start) * u:(c.stop - c.read_start) * u])
            return torch.cat(pieces, dim=2)  # [B, out, T·u]
