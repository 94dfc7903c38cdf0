"""The LTX-2.3 vocoder: BigVGAN-v2 at 16 kHz, then a bandwidth extension (BWE) to 48 kHz (ltx23-facts §8).

1. ``vocoder`` (an :class:`LTX2Vocoder` with anti-aliased SnakeBeta activations) turns the stereo log-mel into a
   16 kHz waveform, ``prod(upsample_factors)`` = 160 samples per mel frame, clamped to [-1, 1] in the reference.
2. ``mel_stft`` takes a causal log-mel of that waveform per channel: right-padded to a multiple of ``hop_length``
   (80), left-padded by ``window_length - hop_length``, a strided convolution with ``forward_basis`` (DFT × window:
   real rows, then imaginary rows), magnitude, ``mel_basis`` @ magnitude, ``log(max(·, 1e-5))``. The bases are
   persistent buffers that come from the checkpoint (zeros until loaded, as in the reference and diffusers).
3. ``bwe_generator`` (another :class:`LTX2Vocoder`, no final activation) turns that mel into a residual at 48 kHz
   (``prod(bwe_upsample_factors)`` = 240 = hop × 3 samples per frame).
4. ``resampler`` (Hann-windowed sinc ×3, not stored in checkpoints) lifts the 16 kHz waveform to 48 kHz; the output is
   ``clamp(residual + resampled, -1, 1)``, ``3 ·`` the 16 kHz length: 480 samples per input mel frame.

Config keys, module and buffer names are those of ``diffusers.pipelines.ltx2.LTX2VocoderWithBWE`` (class defaults =
the released LTX-2.3 model, 128.5 M parameters). diffusers' converter writes ``final_act_fn=None`` for stage 1 while
the reference clamps; this class does what the config says (our converter writes ``"clamp"``).

Float32 only, like :class:`LTX2Vocoder`; long clips are vocoded exactly in chunks (:meth:`enable_tiling`), the margin
derived from the receptive fields of all four steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .audio_processing import plan_chunks
from .strict_loading import StrictLoadingMixin
from .vocoder_layers import UpSample1d, upsample_reach
from .vocoder_ltx2 import Float32Only, LTX2Vocoder, mel_channels_first

# ----------------------------------------------------------------------------------------------------------------
# Causal log-mel
# ----------------------------------------------------------------------------------------------------------------


class CausalSTFT(nn.Module):
    """Magnitude STFT as a strided convolution with stored bases; each frame sees only the past and its own hop."""

    def __init__(self, filter_length: int = 512, hop_length: int = 80, window_length: int = 512) -> None:
        super().__init__()
        self.hop_length = hop_length
        self.left_pad = max(0, window_length - hop_length)
        bins = filter_length // 2 + 1
        self.register_buffer("forward_basis", torch.zeros(2 * bins, 1, filter_length, dtype=torch.float32))
        self.register_buffer("inverse_basis", torch.zeros(2 * bins, 1, filter_length, dtype=torch.float32))  # unused

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[N, samples]`` -> magnitude ``[N, filter_length/2 + 1, frames]``."""
        x = F.pad(waveform[:, None], (self.left_pad, 0))  # [N, 1, left_pad + samples]
        spectrum = F.conv1d(x, self.forward_basis, stride=self.hop_length)  # [N, 2·bins, frames]
        real, imag = spectrum.chunk(2, dim=1)
        return torch.sqrt(real**2 + imag**2)


class MelSTFT(nn.Module):
    """Causal log-mel: :class:`CausalSTFT` magnitude, ``mel_basis`` projection, natural log floored at ``1e-5``."""

    def __init__(self, filter_length: int = 512, hop_length: int = 80, window_length: int = 512,
                 num_mel_channels: int = 64) -> None:
        super().__init__()
        self.stft_fn = CausalSTFT(filter_length, hop_length, window_length)
        self.register_buffer("mel_basis", torch.zeros(num_mel_channels, filter_length // 2 + 1, dtype=torch.float32))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[N, samples]`` -> log-mel ``[N, num_mel_channels, frames]``."""
        magnitude = self.stft_fn(waveform)  # [N, bins, frames]
        return torch.log(torch.clamp(torch.matmul(self.mel_basis.to(magnitude), magnitude), min=1e-5))


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------

# LTX2Vocoder arguments that both stages take, plain for the first one and with a "bwe_" prefix for the second
_GENERATOR_ARGS = (
    "in_channels", "hidden_channels", "out_channels", "upsample_kernel_sizes", "upsample_factors",
    "resnet_kernel_sizes", "resnet_dilations", "act_fn", "leaky_relu_negative_slope", "antialias", "antialias_ratio",
    "antialias_kernel_size", "final_act_fn", "final_bias",
)


class LTX2VocoderWithBWE(Float32Only, StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""LTX-2.3 vocoder: log-mel ``[B, 2, T, 64]`` -> waveform ``[B, 2, T · 480]`` at 48 kHz.

    Arguments without a prefix configure the 16 kHz BigVGAN-v2 ``vocoder``, those with ``bwe_`` the
    ``bwe_generator`` (see :class:`LTX2Vocoder` for each); ``filter_length`` / ``hop_length`` / ``window_length`` /
    ``num_mel_channels`` the causal log-mel between them; ``input_sampling_rate`` is the rate of the first stage and
    ``output_sampling_rate`` that of the output (a whole multiple of it; write the audio with this rate).
    """

    _keep_in_fp32_modules = ["vocoder", "bwe_generator", "mel_stft", "resampler"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        hidden_channels: int = 1536,
        out_channels: int = 2,
        upsample_kernel_sizes: list[int] = (11, 4, 4, 4, 4, 4),
        upsample_factors: list[int] = (5, 2, 2, 2, 2, 2),
        resnet_kernel_sizes: list[int] = (3, 7, 11),
        resnet_dilations: list[list[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        act_fn: str = "snakebeta",
        leaky_relu_negative_slope: float = 0.1,
        antialias: bool = True,
        antialias_ratio: int = 2,
        antialias_kernel_size: int = 12,
        final_act_fn: str | None = None,
        final_bias: bool = False,
        bwe_in_channels: int = 128,
        bwe_hidden_channels: int = 512,
        bwe_out_channels: int = 2,
        bwe_upsample_kernel_sizes: list[int] = (12, 11, 4, 4, 4),
        bwe_upsample_factors: list[int] = (6, 5, 2, 2, 2),
        bwe_resnet_kernel_sizes: list[int] = (3, 7, 11),
        bwe_resnet_dilations: list[list[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        bwe_act_fn: str = "snakebeta",
        bwe_leaky_relu_negative_slope: float = 0.1,
        bwe_antialias: bool = True,
        bwe_antialias_ratio: int = 2,
        bwe_antialias_kernel_size: int = 12,
        bwe_final_act_fn: str | None = None,
        bwe_final_bias: bool = False,
        filter_length: int = 512,
        hop_length: int = 80,
        window_length: int = 512,
        num_mel_channels: int = 64,
        input_sampling_rate: int = 16000,
        output_sampling_rate: int = 48000,
    ) -> None:
        super().__init__()
        for name in ("input_sampling_rate", "output_sampling_rate"):
            rate = self.config[name]
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
                raise ValueError(f"{name} must be a positive whole number of Hz, got {rate!r}.")
        if output_sampling_rate % input_sampling_rate:
            raise ValueError(f"output_sampling_rate ({output_sampling_rate}) must be a whole multiple of "
                             f"input_sampling_rate ({input_sampling_rate}) (the skip path resamples by that factor).")
        ratio = output_sampling_rate // input_sampling_rate
        if not 1 <= hop_length <= filter_length or max(0, window_length - hop_length) != filter_length - hop_length:
            raise ValueError(f"the causal STFT needs 1 <= hop_length <= filter_length and window_length == "
                             f"filter_length (one frame per hop), got hop {hop_length}, filter {filter_length}, "
                             f"window {window_length} (LTX-2.3: 80, 512, 512).")
        if bwe_in_channels != out_channels * num_mel_channels or bwe_out_channels != out_channels:
            raise ValueError(f"the BWE generator reads the {num_mel_channels}-bin mel of each of the {out_channels} "
                             f"waveform channels and adds a residual to them: pass bwe_in_channels = "
                             f"{out_channels * num_mel_channels} and bwe_out_channels = {out_channels}, got "
                             f"{bwe_in_channels} and {bwe_out_channels}.")
        if math.prod(bwe_upsample_factors) != hop_length * ratio or \
                any((k - f) % 2 for k, f in zip(bwe_upsample_kernel_sizes, bwe_upsample_factors)):
            raise ValueError(f"the BWE generator must give exactly hop_length x {ratio} = {hop_length * ratio} "
                             f"samples per mel frame to line up with the resampled waveform: "
                             f"prod(bwe_upsample_factors) = {math.prod(bwe_upsample_factors)} and every "
                             f"(kernel - factor) even, got factors {list(bwe_upsample_factors)}, kernels "
                             f"{list(bwe_upsample_kernel_sizes)}.")

        stages = {}
        for prefix, rate in (("", input_sampling_rate), ("bwe_", output_sampling_rate)):
            args = {name: self.config[prefix + name] for name in _GENERATOR_ARGS}
            try:
                stages[prefix] = LTX2Vocoder(**args, output_sampling_rate=rate)
            except ValueError as error:
                raise ValueError(f"{'the BWE generator (bwe_* arguments)' if prefix else 'the first stage'}: "
                                 f"{error}") from error
        self.vocoder, self.bwe_generator = stages[""], stages["bwe_"]
        self.mel_stft = MelSTFT(filter_length, hop_length, window_length, num_mel_channels)
        self.resampler = UpSample1d(ratio, window_type="hann", persistent=False)

        self.resample_ratio = ratio
        self.upsample_factor = self.vocoder.upsample_factor * ratio  # output samples per mel frame
        self.use_tiling = False
        self.tile_mel_frames = 1000  # 10 s of audio per vocoded chunk
        # chunk starts must fall on STFT frame boundaries: a multiple of `align` mel frames
        self._align = hop_length // math.gcd(self.vocoder.upsample_factor, hop_length)
        stft_reach = max(self.mel_stft.stft_fn.left_pad, filter_length - 1 - self.mel_stft.stft_fn.left_pad)
        bwe_reach = max(upsample_reach(ratio, self.resampler.kernel_size, "hann"),
                        stft_reach + self.bwe_generator._reach * hop_length)  # in 16 kHz samples
        context = math.ceil(self.vocoder._reach + bwe_reach / self.vocoder.upsample_factor) + 1
        self._context = -(-context // self._align) * self._align

    # -- long clips ---------------------------------------------------------------------------------------------

    def enable_tiling(self, tile_mel_frames: int | None = None) -> None:
        r"""Vocode long spectrograms in chunks of ``tile_mel_frames`` mel frames (default 1000 = 10 s; rounded up to
        whole STFT hops).

        Each chunk runs all four steps with a margin of mel frames on both sides that covers their receptive field
        and keeps only its own samples, so the result equals the whole run up to float rounding.
        """
        if tile_mel_frames is not None:
            if int(tile_mel_frames) != tile_mel_frames or tile_mel_frames < 1:
                raise ValueError(f"tile_mel_frames must be a positive integer, got {tile_mel_frames!r}.")
            self.tile_mel_frames = int(tile_mel_frames)
        if not self.vocoder._chunkable:
            raise ValueError("this vocoder config has a first-stage upsampler whose (kernel - factor) is odd, so "
                             "chunks would not line up; vocode whole spectrograms instead.")
        self.use_tiling = True

    def disable_tiling(self) -> None:
        """Vocode every spectrogram in one run."""
        self.use_tiling = False

    # -- forward ------------------------------------------------------------------------------------------------

    def _synthesize(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, T]`` float32 -> ``[B, out_channels, samples · ratio]`` at the output rate."""
        low = self.vocoder._synthesize(x)  # [B, C, N] at input_sampling_rate
        batch, channels, samples = low.shape
        low = F.pad(low, (0, -samples % self.config.hop_length))  # whole hops: [B, C, N']
        mel = self.mel_stft(low.flatten(0, 1))  # [B·C, M, N'/hop]
        residual = self.bwe_generator._synthesize(mel.unflatten(0, (batch, channels)).flatten(1, 2))  # [B, C, N'·r]
        wave = torch.clamp(residual + self.resampler(low), -1.0, 1.0)
        return wave[..., :samples * self.resample_ratio]  # [B, C, N·r]

    def forward(self, mel_spec: torch.Tensor, time_last: bool = False) -> torch.Tensor:
        r"""Mel spectrogram -> waveform at ``config.output_sampling_rate``.

        Args:
            mel_spec: ``[B, C, T, M]`` log-mel (``[B, C, M, T]`` with ``time_last``), ``C · M = in_channels``; any
                float dtype (computed in float32).
            time_last: the last dimension is time.

        Returns:
            ``[B, out_channels, T · upsample_factor]`` float32 waveform in [-1, 1] (480 samples per frame at 48 kHz).
        """
        x = mel_channels_first(mel_spec, self.config.in_channels, time_last).to(self.vocoder.conv_in.weight)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if not self.use_tiling or x.shape[2] <= self.tile_mel_frames:
                return self._synthesize(x)
            u = self.upsample_factor
            tile = -(-self.tile_mel_frames // self._align) * self._align
            pieces = []
            for c in plan_chunks(x.shape[2], tile, self._context, self._context):
                wave = self._synthesize(x[:, :, c.read_start:c.read_stop])  # [B, C, (read_stop-read_start)·u]
                pieces.append(wave[:, :, (c.start - c.read_start) * u:(c.stop - c.read_start) * u])
            return torch.cat(pieces, dim=2)  # [B, C, T·u]
