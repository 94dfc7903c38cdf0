"""LTX-2 audio front end and audio-latent arithmetic, as pure torch functions (no torchaudio).

The audio VAE hears 16 kHz stereo log-mel spectrograms:

* any input rate is resampled to 16 kHz with a Kaiser-windowed sinc filter (:func:`resample`);
* mono is duplicated to two channels; more than two channels is an error (downmix first);
* STFT with ``n_fft`` 1024, hop 160, periodic Hann window of 1024, centred with reflect padding; magnitude (power 1);
* 64 mel bands over 0–8 kHz on the slaney mel scale with slaney (area) normalisation;
* natural log with a floor of ``1e-5`` -> ``[B, 2, T, 64]`` with ``T = samples // 160 + 1``.

Token arithmetic (:func:`audio_latent_length` ...): the VAE compresses 4× in time, so one latent token is 4 mel frames
= 40 ms (25 tokens/s); its causal decoder returns ``4 L - 3`` mel frames, and the vocoder turns each mel frame into
``prod(upsample_factors)`` output samples (240 at 24 kHz). Latents ``[B, C, L, F]`` are packed channel-major into
``[B, L, C·F]`` tokens, which is where the per-feature statistics apply.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

# ----------------------------------------------------------------------------------------------------------------
# Validation of raw waveforms
# ----------------------------------------------------------------------------------------------------------------


def check_sample_rate(sample_rate: int | float, name: str = "sample_rate") -> int:
    """A positive whole number of Hz as ``int``; anything else is a ``ValueError``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)):
        raise ValueError(f"{name} must be a positive number of Hz (e.g. 44100), got {sample_rate!r}.")
    if not math.isfinite(sample_rate) or sample_rate <= 0 or sample_rate != int(sample_rate):
        raise ValueError(f"{name} must be a positive whole number of Hz (e.g. 44100), got {sample_rate!r}.")
    return int(sample_rate)


def stereo_waveform(waveform: torch.Tensor) -> torch.Tensor:
    """Validates a waveform and returns it as float ``[B, 2, N]``.

    Accepted layouts: ``[N]`` (mono samples), ``[C, N]`` (channels, samples, as audio readers return them) and
    ``[B, C, N]``, with ``C`` 1 (duplicated to stereo) or 2. Integer PCM, empty, non-finite or >2-channel input raises
    a ``ValueError`` saying what to pass instead.
    """
    if not isinstance(waveform, torch.Tensor):
        raise ValueError(f"waveform must be a torch.Tensor [batch, channels, samples], got {type(waveform).__name__}.")
    if waveform.ndim not in (1, 2, 3):
        raise ValueError(
            f"waveform must be [samples], [channels, samples] or [batch, channels, samples], got shape "
            f"{tuple(waveform.shape)}."
        )
    if not waveform.is_floating_point():
        raise ValueError(
            f"waveform must be floating point in [-1, 1], got {waveform.dtype}; convert 16-bit PCM with "
            f"waveform.float() / 32768."
        )
    x = waveform.reshape((1,) * (3 - waveform.ndim) + tuple(waveform.shape))  # [B, C, N]
    batch, channels, samples = x.shape
    if batch == 0 or samples == 0:
        raise ValueError(f"waveform is empty (shape {tuple(waveform.shape)}); pass at least one sample.")
    if channels not in (1, 2):
        raise ValueError(
            f"LTX-2 audio is stereo: the waveform has {channels} channels (shape {tuple(waveform.shape)}). Pass mono "
            f"or stereo audio as [batch, channels, samples], downmixing multichannel audio to two channels first."
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("waveform contains NaN or infinite values; pass finite samples.")
    return x.expand(batch, 2, samples) if channels == 1 else x


# ----------------------------------------------------------------------------------------------------------------
# Resampling: Kaiser-windowed sinc, polyphase
# ----------------------------------------------------------------------------------------------------------------

RESAMPLE_ZERO_CROSSINGS = 24
RESAMPLE_ROLLOFF = 0.95
RESAMPLE_KAISER_BETA = 8.6
_MAX_FILTER_BANK = 1 << 22  # entries; above this the ratio is unusual and samples are filtered one by one


def _windowed_sinc(offset: torch.Tensor, cutoff: float, zero_crossings: int, beta: float) -> torch.Tensor:
    """Low-pass impulse response at ``offset`` input samples: ``2 c sinc(2 c x)`` times a Kaiser window whose half
    length covers ``zero_crossings`` zeros of the sinc (0 outside it)."""
    half = zero_crossings / (2.0 * cutoff)
    r = (offset / half).clamp(-1.0, 1.0)
    peak = torch.special.i0(torch.full((), beta, dtype=r.dtype, device=r.device))
    window = torch.special.i0(beta * torch.sqrt(1.0 - r * r)) / peak
    window = torch.where(offset.abs() <= half, window, torch.zeros_like(window))
    return 2.0 * cutoff * torch.sinc(2.0 * cutoff * offset) * window


def resample(
    waveform: torch.Tensor,
    orig_sample_rate: int,
    new_sample_rate: int,
    *,
    zero_crossings: int = RESAMPLE_ZERO_CROSSINGS,
    rolloff: float = RESAMPLE_ROLLOFF,
    beta: float = RESAMPLE_KAISER_BETA,
) -> torch.Tensor:
    """Band-limited resampling of ``[..., N]`` to ``[..., ceil(N · new / orig)]`` (float32 maths, float64 for
    float64 input; the input dtype comes out).

    Output sample ``j`` sits at input position ``τ_j = j · orig / new`` and is ``Σ_i x[i] h(i - τ_j)`` with ``h`` a
    Kaiser-windowed (β = 8.6, about -86 dB side lobes) sinc low-pass at ``rolloff`` × the lower Nyquist frequency,
    ``zero_crossings`` sinc zeros per side. Each phase's taps are normalised to sum to 1, so DC is kept exactly. With
    the defaults, 0–7 kHz of a 16 kHz output is flat to about 1e-4; the edges are zero padded. Rates are reduced by
    their gcd and computed as a polyphase ``conv1d`` (one filter per output phase); unusual ratios whose filter bank
    would be huge fall back to filtering output samples in blocks.

    Args:
        waveform: ``[..., N]`` float samples.
        orig_sample_rate / new_sample_rate: rates in Hz (positive whole numbers).
        zero_crossings: sinc zeros per side inside the window (filter length vs transition width).
        rolloff: cut-off as a fraction of the lower of the two Nyquist frequencies.
        beta: Kaiser window shape.
    """
    orig = check_sample_rate(orig_sample_rate, "orig_sample_rate")
    new = check_sample_rate(new_sample_rate, "new_sample_rate")
    if not 0.0 < rolloff <= 1.0 or zero_crossings < 1:
        raise ValueError(f"rolloff must be in (0, 1] and zero_crossings >= 1, got {rolloff} and {zero_crossings}.")
    if orig == new:
        return waveform
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    cutoff = 0.5 * rolloff * min(1.0, new / orig)  # cycles per input sample
    pad = math.ceil(zero_crossings / (2.0 * cutoff))
    lead = waveform.shape[:-1]
    length = waveform.shape[-1]
    x = waveform.reshape(-1, length)  # [M, N]
    x = x if x.dtype == torch.float64 else x.float()
    target = math.ceil(length * new / orig)
    if new * (orig + 2 * pad) <= _MAX_FILTER_BANK:
        out = _resample_polyphase(x, orig, new, cutoff, pad, zero_crossings, beta)
    else:
        out = _resample_blockwise(x, orig, new, cutoff, pad, zero_crossings, beta, target)
    return out[:, :target].reshape(*lead, target).to(waveform.dtype)


def _resample_polyphase(
    x: torch.Tensor, orig: int, new: int, cutoff: float, pad: int, zero_crossings: int, beta: float
) -> torch.Tensor:
    # phase p of every block of `orig` input samples yields output sample p at input offset p * orig / new
    phase = torch.arange(new, dtype=torch.float64) * orig / new  # [new]
    taps = torch.arange(-pad, orig + pad, dtype=torch.float64)  # [K]
    bank = _windowed_sinc(taps[None, :] - phase[:, None], cutoff, zero_crossings, beta)  # [new, K]
    bank = (bank / bank.sum(dim=1, keepdim=True)).to(x)
    padded = torch.nn.functional.pad(x[:, None], (pad, pad + orig))  # [M, 1, N + 2 pad + orig]
    blocks = torch.nn.functional.conv1d(padded, bank[:, None], stride=orig)  # [M, new, Q]
    return blocks.transpose(1, 2).reshape(x.shape[0], -1)  # [M, Q * new]


def _resample_blockwise(
    x: torch.Tensor, orig: int, new: int, cutoff: float, pad: int, zero_crossings: int, beta: float, target: int,
    block: int = 4096,
) -> torch.Tensor:
    padded = torch.nn.functional.pad(x, (pad, pad + 1))  # [M, N + 2 pad + 1]
    taps = torch.arange(-pad, pad + 1, device=x.device)  # [K]
    outs = []
    for start in range(0, target, block):
        j = torch.arange(start, min(start + block, target), dtype=torch.int64, device=x.device)  # [J]
        base = (j * orig) // new  # input sample at or before the output instant
        frac = (j * orig - base * new).double() / new  # [J] in [0, 1)
        weights = _windowed_sinc(taps[None, :].double() - frac[:, None], cutoff, zero_crossings, beta)  # [J, K]
        weights = (weights / weights.sum(dim=1, keepdim=True)).to(x)
        idx = base[:, None] + taps[None, :] + pad  # [J, K] into the padded signal
        outs.append((padded[:, idx] * weights).sum(-1))  # [M, J]
    return torch.cat(outs, dim=1)


# ----------------------------------------------------------------------------------------------------------------
# Log-mel spectrogram
# ----------------------------------------------------------------------------------------------------------------


def hz_to_mel_slaney(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic (27 mel per factor 6.4) above."""
    linear = hz * 3.0 / 200.0
    log = 15.0 + torch.log(hz.clamp(min=1e-10) / 1000.0) * 27.0 / math.log(6.4)
    return torch.where(hz >= 1000.0, log, linear)


def mel_to_hz_slaney(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel_slaney`."""
    return torch.where(mel >= 15.0, 1000.0 * torch.exp((mel - 15.0) * math.log(6.4) / 27.0), mel * 200.0 / 3.0)


def slaney_mel_filterbank(
    n_freqs: int, sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """``[n_freqs, n_mels]`` float64 triangular filters on the slaney mel scale, each scaled to unit area
    (``2 / (upper - lower)`` Hz), over STFT bins ``0 .. sample_rate / 2``."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_freqs, dtype=torch.float64)  # [n_freqs]
    edges_mel = torch.linspace(
        hz_to_mel_slaney(torch.tensor(float(f_min), dtype=torch.float64)).item(),
        hz_to_mel_slaney(torch.tensor(float(f_max), dtype=torch.float64)).item(),
        n_mels + 2,
        dtype=torch.float64,
    )
    edges = mel_to_hz_slaney(edges_mel)  # [n_mels + 2] Hz
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # [n_mels] each
    rising = (freqs[:, None] - lower) / (centre - lower)  # [n_freqs, n_mels]
    falling = (upper - freqs[:, None]) / (upper - centre)
    return torch.minimum(rising, falling).clamp(min=0.0) * (2.0 / (upper - lower))


def log_mel_spectrogram(
    waveform: torch.Tensor,
    sample_rate: int,
    *,
    target_sample_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 160,
    win_length: int | None = None,
    n_mels: int = 64,
    f_min: float = 0.0,
    f_max: float | None = None,
    log_floor: float = 1e-5,
) -> torch.Tensor:
    """Waveform -> the audio VAE's input, ``[B, 2, T, n_mels]`` with ``T = N_16k // hop_length + 1``; float32
    (float64 for float64 input).

    Args:
        waveform: ``[N]``, ``[C, N]`` or ``[B, C, N]`` float samples, mono or stereo (see :func:`stereo_waveform`).
        sample_rate: rate of ``waveform`` in Hz; resampled to ``target_sample_rate`` when different.
        target_sample_rate / n_fft / hop_length / win_length / n_mels / f_min / f_max: the LTX-2 analysis
            (16 kHz, 1024, 160, 1024, 64 mel over 0–8 kHz).
        log_floor: magnitudes are clamped to at least this before the natural log.
    """
    sample_rate = check_sample_rate(sample_rate)
    target_sample_rate = check_sample_rate(target_sample_rate, "target_sample_rate")
    win_length = n_fft if win_length is None else win_length
    x = stereo_waveform(waveform)  # [B, 2, N]
    x = x if x.dtype == torch.float64 else x.float()
    x = resample(x, sample_rate, target_sample_rate)
    batch, channels, samples = x.shape
    if samples <= n_fft // 2:
        raise ValueError(
            f"waveform too short: {samples} samples at {target_sample_rate} Hz; the centred STFT needs more than "
            f"{n_fft // 2} ({(n_fft // 2 + 1) / target_sample_rate * 1000:.0f} ms). Pass a longer clip."
        )
    window = torch.hann_window(win_length, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x.reshape(batch * channels, samples), n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    ).abs()  # [B*2, n_fft/2 + 1, T]
    bank = slaney_mel_filterbank(n_fft // 2 + 1, target_sample_rate, n_mels, f_min, f_max).to(x)  # [F, n_mels]
    mel = torch.matmul(spec.transpose(1, 2), bank)  # [B*2, T, n_mels]
    return torch.log(mel.clamp(min=log_floor)).reshape(batch, channels, -1, n_mels)  # [B, 2, T, n_mels]


# ----------------------------------------------------------------------------------------------------------------
# Token and length arithmetic
# ----------------------------------------------------------------------------------------------------------------


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return value


def _count(value: int, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def audio_latent_length(
    num_frames: int,
    frame_rate: float,
    *,
    sample_rate: int = 16000,
    hop_length: int = 160,
    temporal_compression: int = 4,
) -> int:
    """Audio tokens that accompany ``num_frames`` video frames at ``frame_rate`` fps: ``round(seconds · 25)``.

    Same arithmetic (and Python's round-half-to-even) as both references: 121 frames at 24 fps -> 126 tokens,
    at 25 fps -> 121.
    """
    _count(num_frames, "num_frames", 1)
    _positive(frame_rate, "frame_rate")
    duration = float(num_frames) / float(frame_rate)
    per_second = float(sample_rate) / float(hop_length) / float(temporal_compression)
    return round(duration * per_second)


def mel_frames_for_samples(num_samples: int, hop_length: int = 160) -> int:
    """Frames of the centred STFT of ``num_samples`` samples."""
    return _count(num_samples, "num_samples", 1) // hop_length + 1


def latents_for_mel_frames(mel_frames: int, temporal_compression: int = 4, causal: bool = True) -> int:
    """Latent frames the encoder makes from ``mel_frames``: each stride-2 stage keeps ``ceil(T / 2)`` rows when
    causal (2 rows of padding in front) and ``floor(T / 2)`` otherwise (101 -> 26, 501 -> 126)."""
    frames = _count(mel_frames, "mel_frames", 1)
    for _ in range(int(math.log2(temporal_compression))):
        frames = (frames + 1) // 2 if causal else frames // 2
    return frames


def mel_frames_for_latents(latent_length: int, temporal_compression: int = 4, causal: bool = True) -> int:
    """Mel frames the decoder returns for ``latent_length`` tokens: ``4 L - 3`` when causal, ``4 L`` otherwise."""
    length = _count(latent_length, "latent_length", 1)
    frames = length * temporal_compression
    return max(frames - (temporal_compression - 1), 1) if causal else frames


def waveform_length(
    latent_length: int, samples_per_mel_frame: int = 240, temporal_compression: int = 4, causal: bool = True
) -> int:
    """Output samples for ``latent_length`` tokens; ``samples_per_mel_frame`` is the vocoder's total upsampling
    (``prod(upsample_factors)``, 240 at 24 kHz). 126 tokens -> 501 mel frames -> 120,240 samples (5.01 s)."""
    return mel_frames_for_latents(latent_length, temporal_compression, causal) * samples_per_mel_frame


def pack_audio_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, L, F] -> [B, L, C·F]``, channel-major (feature ``c · F + f``), as the transformer sees audio."""
    if latents.ndim != 4:
        raise ValueError(f"audio latents must be [batch, channels, frames, mel_bins], got {tuple(latents.shape)}.")
    return latents.transpose(1, 2).flatten(2, 3)


def unpack_audio_latents(tokens: torch.Tensor, mel_bins: int) -> torch.Tensor:
    """Inverse of :func:`pack_audio_latents`: ``[B, L, C·F] -> [B, C, L, F]`` with ``F = mel_bins`` (16 for LTX-2)."""
    if tokens.ndim != 3 or tokens.shape[-1] % mel_bins:
        raise ValueError(
            f"audio tokens must be [batch, tokens, channels * {mel_bins}], got {tuple(tokens.shape)}."
        )
    return tokens.unflatten(2, (-1, mel_bins)).transpose(1, 2)


def normalize_audio_tokens(tokens: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-feature standardisation of packed ``[B, L, D]`` tokens: ``(x - mean) / std``."""
    return (tokens - mean.to(tokens)) / std.to(tokens)


def denormalize_audio_tokens(tokens: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_audio_tokens`: ``x · std + mean``."""
    return tokens * std.to(tokens) + mean.to(tokens)


# ----------------------------------------------------------------------------------------------------------------
# Chunk planning (decode long clips piece by piece)
# ----------------------------------------------------------------------------------------------------------------


class Chunk(NamedTuple):
    """Frames ``[start, stop)`` are kept from a run over the wider window ``[read_start, read_stop)``."""

    start: int
    stop: int
    read_start: int
    read_stop: int


def plan_chunks(length: int, chunk_size: int, context_before: int, context_after: int = 0) -> list[Chunk]:
    """Cuts ``[0, length)`` into consecutive chunks of ``chunk_size`` frames, each read with up to ``context_before``
    frames of history and ``context_after`` frames of look-ahead (clipped to the sequence)."""
    _count(length, "length", 1)
    _count(chunk_size, "chunk_size", 1)
    _count(context_before, "context_before")
    _count(context_after, "context_after")
    return [
        Chunk(s, min(s + chunk_size, length), max(s - context_before, 0), min(s + chunk_size + context_after, length))
        for s in range(0, length, chunk_size)
    ]
