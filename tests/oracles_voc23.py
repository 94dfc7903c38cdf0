"""LTX-2.3 vocoder oracles: the nested ``{"vocoder", "bwe"}`` header, tiny ltx-core 1.0.0 ``VocoderWithBWE`` and
diffusers 0.42.1 ``LTX2VocoderWithBWE`` models with seeded weights and realistic STFT / mel bases.

The bases are buffers the checkpoint supplies (zeros after construction); here they are a DFT under a periodic Hann
window and a slaney mel filterbank, built independently with numpy, so the BWE sees a meaningful mel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .oracles_audio import numpy_slaney_filterbank, random_init_


def ltxcore_bwe_header(vocoder: dict | None = None, bwe: dict | None = None) -> dict:
    """The LTX-2.3 ``vocoder`` header block (real values, ltx23-facts §2) with per-stage overrides."""
    common = {"resblock": "AMP1", "stereo": True, "resblock_kernel_sizes": [3, 7, 11],
              "resblock_dilation_sizes": [[1, 3, 5]] * 3, "use_tanh_at_final": False, "activation": "snakebeta",
              "use_bias_at_final": False}
    first = {**common, "upsample_initial_channel": 1536, "upsample_rates": [5, 2, 2, 2, 2, 2],
             "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4]}
    second = {**common, "upsample_initial_channel": 512, "upsample_rates": [6, 5, 2, 2, 2],
              "upsample_kernel_sizes": [12, 11, 4, 4, 4], "apply_final_activation": False,
              "input_sampling_rate": 16000, "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512,
              "win_size": 512, "num_mels": 64}
    return {"vocoder": {**first, **(vocoder or {})}, "bwe": {**second, **(bwe or {})}}


# tiny widths, real structure (6 + 5 stages, 3 AMP blocks each, anti-aliased SnakeBeta)
TINY_BWE_HEADER = ltxcore_bwe_header({"upsample_initial_channel": 64}, {"upsample_initial_channel": 32})


def stft_bases(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[2·(n_fft/2+1), 1, n_fft]`` forward basis (real rows, then imaginary rows of a Hann-windowed DFT) and an
    inverse-like basis (the unwindowed DFT; stored by the checkpoints, unused)."""
    k = np.arange(n_fft // 2 + 1)[:, None]
    t = np.arange(n_fft)[None, :]
    angle = 2 * np.pi * k * t / n_fft
    window = np.hanning(n_fft + 1)[:-1]  # periodic
    forward = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])[:, None, :]
    inverse = np.concatenate([np.cos(angle), np.sin(angle)])[:, None, :] / n_fft
    return torch.from_numpy(forward).float(), torch.from_numpy(inverse).float()


def fill_mel_stft_(mel_stft: torch.nn.Module, sample_rate: int = 16000) -> None:
    """Writes realistic bases into a ``mel_stft`` module (ltx-core's or diffusers' layout: same names)."""
    n_fft = mel_stft.stft_fn.forward_basis.shape[-1]
    forward, inverse = stft_bases(n_fft)
    mel = numpy_slaney_filterbank(sample_rate, n_fft, mel_stft.mel_basis.shape[0], 0.0, sample_rate / 2).T
    with torch.no_grad():
        mel_stft.stft_fn.forward_basis.copy_(forward)
        mel_stft.stft_fn.inverse_basis.copy_(inverse)
        mel_stft.mel_basis.copy_(torch.from_numpy(mel).float())


def ltxcore_bwe(header: dict, device: str = "cpu") -> torch.nn.Module:
    pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
    import ltx_core.loader  # noqa: F401  (import order: avoids ltx-core's circular import)
    from ltx_core.model.audio_vae import VocoderConfigurator

    with torch.device(device):
        return VocoderConfigurator.from_config({"vocoder": header})


def seeded_bwe_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seeded weights that keep the waveform mostly inside [-1, 1] (so the clamps do not hide differences): fan-in
    scaled noise, residual branches (``convs2``) × 0.2 and the output convolutions × 0.1 (either layout's names);
    realistic STFT / mel bases. Returns ``model`` in eval mode."""
    random_init_(model, seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".convs2." in name:
                p.mul_(0.2)
            elif ".conv_post." in name or ".conv_out." in name:
                p.mul_(0.1)
    fill_mel_stft_(model.mel_stft)
    return model.eval()


def tiny_ltxcore_bwe(seed: int = 3, header: dict | None = None) -> torch.nn.Module:
    """Seeded tiny ltx-core ``VocoderWithBWE`` (anti-aliasing filters and resampler as constructed)."""
    return seeded_bwe_(ltxcore_bwe(header or TINY_BWE_HEADER), seed)


# diffusers' 2.3 converter config with tiny widths; `final_act_fn` as its converter writes it (no clamp)
TINY_DIFFUSERS_BWE = dict(hidden_channels=64, bwe_hidden_channels=32, final_act_fn=None)


def diffusers_bwe(seed: int = 5, **config) -> torch.nn.Module:
    from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE

    return seeded_bwe_(LTX2VocoderWithBWE(**{**TINY_DIFFUSERS_BWE, **config}), seed)


def bwe_input(frames: int, batch: int = 1, seed: int = 11) -> torch.Tensor:
    """A log-mel-like input ``[B, 2, T, 64]`` (values around ln(1e-2), some structure over time)."""
    g = torch.Generator().manual_seed(seed)
    return -4.0 + 1.5 * torch.randn(batch, 2, frames, 64, generator=g)
