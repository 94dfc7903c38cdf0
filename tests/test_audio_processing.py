"""Audio front end (resampler, stereo handling, log-mel) and the pure token/length/packing/chunking functions."""

import math

import numpy as np
import pytest
import torch

from ltx2_diffusers.models import audio_processing as ap

from .oracles_audio import numpy_log_mel, numpy_slaney_filterbank


def _tones(sample_rate: int, samples: int, freqs=(440.0, 1000.0, 3100.0), amps=(0.3, 0.5, 0.2)) -> torch.Tensor:
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    return sum(a * torch.sin(2 * math.pi * f * t + 0.7 * i) for i, (f, a) in enumerate(zip(freqs, amps)))


# ----------------------------------------------------------------------------------------------------------------
# Log-mel vs an independent numpy/scipy computation
# ----------------------------------------------------------------------------------------------------------------


def test_filterbank_matches_numpy_slaney():
    ours = ap.slaney_mel_filterbank(513, 16000, 64, 0.0, 8000.0).numpy()
    ref = numpy_slaney_filterbank(16000, 1024, 64, 0.0, 8000.0)
    assert ours.shape == (513, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)
    assert (ours.sum(0) > 0).all()  # no empty band


def test_log_mel_matches_numpy_reference():
    g = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(2, 2, 16000, generator=g)  # [B, 2, N] float32, energy in every band
    wave[1, :, 6000:9000] = 0.0  # silence exercises the 1e-5 floor
    ours = ap.log_mel_spectrogram(wave, 16000)
    ref = numpy_log_mel(wave.double().numpy())
    assert ours.shape == (2, 2, 101, 64) and ours.dtype == torch.float32
    assert np.abs(ours.numpy() - ref).max() <= 1e-4
    assert ours[1, :, 45:50].max().item() == pytest.approx(math.log(1e-5))  # the floor is reached in the silence


def test_log_mel_float64_matches_numpy_on_tones():
    # pure tones leave bands with tiny energy, where float32 rounding dominates the log: compare in float64
    wave = torch.stack([_tones(16000, 12000), _tones(16000, 12000, freqs=(150.0, 5000.0, 7900.0))])  # [2, N]
    ours = ap.log_mel_spectrogram(wave, 16000)
    assert ours.dtype == torch.float64 and ours.shape == (1, 2, 76, 64)
    assert np.abs(ours[0].numpy() - numpy_log_mel(wave.numpy())).max() <= 1e-8


def test_log_mel_resamples_and_duplicates_mono():
    wave44 = _tones(44100, 22050)  # 0.5 s mono at 44.1 kHz, float64
    ours = ap.log_mel_spectrogram(wave44, 44100)
    wave16 = ap.resample(wave44, 44100, 16000)
    assert wave16.shape[-1] == 8000
    assert ours.shape == (1, 2, 51, 64)
    assert torch.allclose(ours[0, 0], ours[0, 1], atol=1e-12)  # mono is duplicated, not averaged away
    assert np.abs(ours[0, 0].numpy() - numpy_log_mel(wave16.numpy())).max() <= 1e-8
    # and the resampled spectrum is the 16 kHz one: away from the (zero-padded) ends it matches a native recording
    native = numpy_log_mel(_tones(16000, 8000).numpy())
    assert np.abs(ours[0, 0, 10:-10].numpy() - native[10:-10]).max() < 0.05


# ----------------------------------------------------------------------------------------------------------------
# Resampler
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 24000, 44100, 48000, 96000])
def test_resample_reproduces_band_limited_tones(rate):
    samples = rate // 2
    out = ap.resample(_tones(rate, samples).float(), rate, 16000)
    assert out.shape[-1] == math.ceil(samples * 16000 / rate)
    ideal = _tones(16000, out.shape[-1]).float()
    inner = slice(400, -400)  # the edges are zero padded
    assert (out[inner] - ideal[inner]).abs().max() < 1e-4


def test_resample_rejects_content_above_the_new_nyquist():
    wave = _tones(48000, 24000, freqs=(9000.0, 12000.0), amps=(0.5, 0.5)).float()
    out = ap.resample(wave, 48000, 16000)
    assert out[400:-400].abs().max() < 1e-4  # ≈ -80 dB: no alias folds back into 0–8 kHz


def test_resample_identity_dc_batch_and_dtype():
    x = torch.randn(2, 2, 1000)
    assert ap.resample(x, 16000, 16000) is x
    dc = ap.resample(torch.ones(3, 4410, dtype=torch.float64), 44100, 16000)
    assert dc.dtype == torch.float64 and dc.shape == (3, 1600)
    assert (dc[:, 100:-100] - 1).abs().max() < 1e-6
    y = ap.resample(x, 48000, 16000)
    assert y.shape == (2, 2, 334) and torch.allclose(y[1, 0], ap.resample(x[1, 0], 48000, 16000))


def test_resample_blockwise_path_matches_polyphase(monkeypatch):
    x = torch.randn(2, 4410)
    polyphase = ap.resample(x, 44100, 16000)
    monkeypatch.setattr(ap, "_MAX_FILTER_BANK", 0)
    blockwise = ap.resample(x, 44100, 16000)
    assert (polyphase - blockwise).abs().max() < 1e-5
    odd = ap.resample(_tones(44057, 44057 // 4).float(), 44057, 16000)  # gcd 1: always blockwise
    ideal = _tones(16000, odd.shape[-1]).float()
    assert (odd[400:-400] - ideal[400:-400]).abs().max() < 1e-4


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "waveform, match",
    [
        (torch.zeros(1, 2, 0), "empty"),
        (torch.zeros(0, 2, 1000), "empty"),
        (torch.tensor([0.0, float("nan"), 0.0] * 400), "NaN"),
        (torch.tensor([0.0, float("inf")] * 600), "NaN or infinite"),
        (torch.zeros(1, 1, 2, 1000), r"\[batch, channels, samples\]"),
        (torch.tensor(0.5), r"\[batch, channels, samples\]"),
        (torch.zeros(1, 6, 2000), "6 channels"),
        (torch.zeros(3, 2000), "3 channels"),
        (torch.zeros(2, 2000, dtype=torch.int16), "32768"),
        (np.zeros((2, 2000)), "torch.Tensor"),
        (torch.zeros(2, 400), "too short"),
    ],
)
def test_bad_waveforms_raise_clear_errors(waveform, match):
    with pytest.raises(ValueError, match=match):
        ap.log_mel_spectrogram(waveform, 16000)


@pytest.mark.parametrize("rate", [0, -16000, float("nan"), 22050.5, True, "16k", None])
def test_bad_sample_rates_raise(rate):
    with pytest.raises(ValueError, match="sample_rate"):
        ap.log_mel_spectrogram(torch.zeros(2, 2000), rate)


def test_accepted_layouts():
    mono = torch.randn(3000)
    a = ap.stereo_waveform(mono)
    assert a.shape == (1, 2, 3000) and torch.equal(a[0, 0], a[0, 1])
    assert ap.stereo_waveform(mono[None]).shape == (1, 2, 3000)
    assert ap.stereo_waveform(torch.randn(4, 1, 3000)).shape == (4, 2, 3000)
    stereo = torch.randn(2, 3000)
    assert torch.equal(ap.stereo_waveform(stereo)[0], stereo)
    assert ap.check_sample_rate(44100.0) == 44100


# ----------------------------------------------------------------------------------------------------------------
# Token and length arithmetic, packing, chunk plans
# ----------------------------------------------------------------------------------------------------------------


def test_token_counts_and_lengths():
    assert ap.audio_latent_length(121, 24) == 126
    assert ap.audio_latent_length(121, 25) == 121
    assert ap.audio_latent_length(9, 24) == 9  # 0.375 s · 25 = 9.375
    assert ap.audio_latent_length(24, 24.0) == 25
    assert ap.mel_frames_for_latents(126) == 501
    assert ap.mel_frames_for_latents(126, causal=False) == 504
    assert ap.mel_frames_for_latents(1) == 1
    assert ap.waveform_length(126) == 120240  # 5.01 s at 24 kHz
    assert ap.waveform_length(9, samples_per_mel_frame=480) == 33 * 480
    assert ap.mel_frames_for_samples(16000) == 101
    assert ap.latents_for_mel_frames(101) == 26 and ap.latents_for_mel_frames(501) == 126
    assert ap.latents_for_mel_frames(101, causal=False) == 25
    for frames in (1, 2, 5, 97, 501):  # encode then decode the causal grid: 4 ⌈T/4⌉ - 3 ≤ T
        latents = ap.latents_for_mel_frames(frames)
        assert frames <= ap.mel_frames_for_latents(latents) + 3


@pytest.mark.parametrize("call", [
    lambda: ap.audio_latent_length(0, 24),
    lambda: ap.audio_latent_length(121, 0),
    lambda: ap.audio_latent_length(121.5, 24),
    lambda: ap.mel_frames_for_latents(0),
    lambda: ap.plan_chunks(10, 0, 2),
    lambda: ap.unpack_audio_latents(torch.zeros(1, 5, 30), 16),
    lambda: ap.pack_audio_latents(torch.zeros(1, 5, 30)),
])
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_packing_is_channel_major_and_round_trips():
    x = torch.randn(2, 8, 5, 16)
    tokens = ap.pack_audio_latents(x)
    assert tokens.shape == (2, 5, 128)
    assert torch.equal(tokens[1, 3, 3 * 16 + 7], x[1, 3, 3, 7])  # feature c·F + f
    assert torch.equal(ap.unpack_audio_latents(tokens, 16), x)
    mean, std = torch.randn(128), torch.rand(128) + 0.5
    normalized = ap.normalize_audio_tokens(tokens, mean, std)
    assert torch.allclose(normalized[0, 0], (tokens[0, 0] - mean) / std)
    assert torch.allclose(ap.denormalize_audio_tokens(normalized, mean, std), tokens, atol=1e-6)


def test_chunk_plan_covers_the_sequence_once():
    chunks = ap.plan_chunks(23, 5, 3, 2)
    assert [(c.start, c.stop) for c in chunks] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert chunks[0].read_start == 0 and chunks[1].read_start == 2 and chunks[1].read_stop == 12
    assert chunks[-1].read_stop == 23
    assert ap.plan_chunks(4, 10, 3) == [ap.Chunk(0, 4, 0, 4)]
