"""Audio oracles: an independent numpy/scipy log-mel, tiny diffusers 0.42.1 audio models, and tiny ltx-core 1.0.0
audio models (imported lazily, so the tests that only need numpy or diffusers run without ltx-core)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

# ----------------------------------------------------------------------------------------------------------------
# Independent log-mel (numpy + scipy, float64)
# ----------------------------------------------------------------------------------------------------------------


def _numpy_hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    step = 200.0 / 3
    logstep = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f / step, 1000.0 / step + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep)


def _numpy_mel_to_hz(m: np.ndarray) -> np.ndarray:
    step = 200.0 / 3
    logstep = np.log(6.4) / 27.0
    return np.where(m < 1000.0 / step, m * step, 1000.0 * np.exp(logstep * (m - 1000.0 / step)))


def numpy_slaney_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``[n_fft/2 + 1, n_mels]`` slaney-scale, slaney-normalised triangles, built from ramps between mel edges."""
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = _numpy_mel_to_hz(np.linspace(_numpy_hz_to_mel(fmin), _numpy_hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.T


def numpy_log_mel(waveform: np.ndarray, sr: int = 16000, n_fft: int = 1024, hop: int = 160, n_mels: int = 64,
                  fmin: float = 0.0, fmax: float = 8000.0, floor: float = 1e-5) -> np.ndarray:
    """``[..., N] -> [..., T, n_mels]``: centred reflect-padded frames, periodic Hann, |rfft|, mel, natural log."""
    from scipy.signal import get_window

    x = np.asarray(waveform, dtype=np.float64)
    pad = n_fft // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    n_frames = 1 + (xp.shape[-1] - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # [T, n_fft]
    frames = xp[..., index] * get_window("hann", n_fft, fftbins=True)
    magnitude = np.abs(np.fft.rfft(frames, axis=-1))  # [..., T, F]
    mel = magnitude @ numpy_slaney_filterbank(sr, n_fft, n_mels, fmin, fmax)
    return np.log(np.maximum(mel, floor))


# ----------------------------------------------------------------------------------------------------------------
# Seeded weights
# ----------------------------------------------------------------------------------------------------------------


def random_init_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded weights of a realistic scale (fan-in scaled) for every parameter; returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(noise / math.sqrt(p[0].numel()) if p.ndim > 1 else 0.1 * noise)
    return model


def random_statistics(features: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature (mean, std) with std well away from 1 and mean away from 0, so a swapped convention shows."""
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(features, generator=g), torch.exp(0.4 * torch.randn(features, generator=g))


# ----------------------------------------------------------------------------------------------------------------
# diffusers 0.42.1
# ----------------------------------------------------------------------------------------------------------------

# real block structure, tiny widths: packed width base_channels = latent_channels · mel_bins / 4 = 2 · 16
TINY_VAE = dict(base_channels=32, ch_mult=(1, 2, 4), num_res_blocks=2, latent_channels=2, mel_bins=64)
TINY_VOCODER = dict(hidden_channels=64)


def diffusers_audio_vae(seed: int = 0, **config) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTX2Audio

    model = random_init_(AutoencoderKLLTX2Audio(**{**TINY_VAE, **config}), seed)
    mean, std = random_statistics(model.latents_mean.numel())
    model.latents_mean.copy_(mean)
    model.latents_std.copy_(std)
    return model.eval()


def diffusers_vocoder(seed: int = 0, **config) -> torch.nn.Module:
    from diffusers.pipelines.ltx2 import LTX2Vocoder

    return random_init_(LTX2Vocoder(**{**TINY_VOCODER, **config}), seed).eval()


# ----------------------------------------------------------------------------------------------------------------
# ltx-core 1.0.0 (original layout, normalisation inside encoder and decoder)
# ----------------------------------------------------------------------------------------------------------------


def ltxcore_audio_header(**ddconfig) -> dict:
    """The LTX-2 ``audio_vae`` header block (19B values) with ``ddconfig`` overrides."""
    dd = {"double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "in_channels": 2, "out_ch": 2,
          "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
          "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"}
    dd.update(ddconfig)
    return {"model": {"params": {"ddconfig": dd, "sampling_rate": 16000}},
            "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
                              "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000}}}


def ltxcore_vocoder_header(**overrides) -> dict:
    """The LTX-2 ``vocoder`` header block (19B values) with overrides."""
    header = {"resblock": "1", "stereo": True, "upsample_initial_channel": 1024, "upsample_rates": [6, 5, 2, 2, 2],
              "upsample_kernel_sizes": [16, 15, 8, 4, 4], "resblock_kernel_sizes": [3, 7, 11],
              "resblock_dilation_sizes": [[1, 3, 5]] * 3, "output_sampling_rate": 24000}
    header.update(overrides)
    return header


def ltxcore_audio_modules(header: dict, device: str = "cpu") -> tuple[torch.nn.Module, torch.nn.Module]:
    """ltx-core (AudioEncoder, AudioDecoder) built from an ``audio_vae`` header block."""
    pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
    import ltx_core.loader  # noqa: F401  (import order: avoids ltx-core's circular import)
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, AudioEncoderConfigurator

    with torch.device(device):
        return (AudioEncoderConfigurator.from_config({"audio_vae": header}),
                AudioDecoderConfigurator.from_config({"audio_vae": header}))


def ltxcore_vocoder(header: dict, device: str = "cpu") -> torch.nn.Module:
    pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
    import ltx_core.loader  # noqa: F401
    from ltx_core.model.audio_vae import VocoderConfigurator

    with torch.device(device):
        return VocoderConfigurator.from_config({"vocoder": header})


def original_audio_state_dict(encoder: torch.nn.Module, decoder: torch.nn.Module,
                              vocoder: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The single-file layout: ``audio_vae.{encoder,decoder}.*``, one shared ``audio_vae.per_channel_statistics.*``
    (taken from the encoder) and ``vocoder.*``."""
    state = {}
    for part, module in (("encoder", encoder), ("decoder", decoder)):
        for k, v in module.state_dict().items():
            if k.startswith("per_channel_statistics."):
                state["audio_vae." + k] = v
            else:
                state[f"audio_vae.{part}.{k}"] = v
    if vocoder is not None:
        state.update({"vocoder." + k: v for k, v in vocoder.state_dict().items()})
    return state


def tiny_ltxcore_audio(seed: int = 0, **ddconfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Seeded tiny ltx-core encoder and decoder sharing one set of statistics (``ch = z_channels · 16``)."""
    dd = {"ch": 32, "z_channels": 2, **ddconfig}
    encoder, decoder = ltxcore_audio_modules(ltxcore_audio_header(**dd))
    random_init_(encoder, seed)
    random_init_(decoder, seed + 1)
    mean, std = random_statistics(dd["ch"])
    with torch.no_grad():
        for module in (encoder, decoder):
            module.per_channel_statistics.get_buffer("mean-of-means").copy_(mean)
            module.per_channel_statistics.get_buffer("std-of-means").copy_(std)
    return encoder.eval(), decoder.eval()


def tiny_ltxcore_vocoder(seed: int = 2, **overrides) -> torch.nn.Module:
    return random_init_(ltxcore_vocoder(ltxcore_vocoder_header(upsample_initial_channel=64, **overrides)), seed).eval()
