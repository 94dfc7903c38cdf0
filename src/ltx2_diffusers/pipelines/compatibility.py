"""What the pipeline's components must agree on, read from their configs (never their weights).

Each check is a pair of numbers two components must share. A *mismatch* (text widths, latent channels, mel channels)
would fail deep inside a forward pass: the plan raises it (:func:`check_fit`) before any model runs. A *drift* (the
transformer's RoPE scale factors or audio grid against the VAEs', the vocoder's time per mel frame) runs, with token
positions or audio timing the model was not trained with; diffusers' pipelines run such component sets without a
word (its own test fixtures are built that way), so the plan runs them too and logs each drift once
(:func:`warn_drifts`). ``PipelineFacts`` records both, from the loaded components (every call) or from a folder's
config files (``PipelineFacts.from_folder``, before ``ltx2-diffusers generate`` loads weights).
"""

from __future__ import annotations

import functools

import torch
from diffusers.utils import logging

logger = logging.get_logger(__name__)


def _text(transformer: torch.nn.Module, connectors: torch.nn.Module) -> list[str]:
    widths, given = tuple(transformer.text_widths), tuple(connectors.embedding_dims)
    if widths == given:
        return []
    return [f"the text connectors give {given[0]} / {given[1]}-wide video / audio contexts but the transformer takes "
            f"{widths[0]} / {widths[1]} (transformer.text_widths; LTX-2.0 connectors give caption_channels to both, "
            f"LTX-2.3 connectors each stream's width)"]


def _video(transformer: torch.nn.Module, vae: torch.nn.Module, upsampler: torch.nn.Module | None) -> list[str]:
    c, latent = transformer.config, vae.config.latent_channels
    problems = []
    out_channels = c.out_channels if c.out_channels is not None else c.in_channels
    if (c.in_channels, out_channels) != (latent, latent):
        problems.append(f"the transformer takes / predicts {c.in_channels} / {out_channels} video latent channels but "
                        f"the VAE has {latent}")
    if upsampler is not None and upsampler.config.in_channels != latent:
        problems.append(f"the latent upsampler takes {upsampler.config.in_channels} channels but the VAE's latents "
                        f"have {latent}")
    return problems


def _audio(transformer: torch.nn.Module, audio_vae: torch.nn.Module, vocoder: torch.nn.Module) -> list[str]:
    c, a = transformer.config, audio_vae.config
    problems = []
    if a.mel_bins is not None:
        width = a.latent_channels * (a.mel_bins // audio_vae.mel_compression_ratio)
        out_channels = c.audio_out_channels if c.audio_out_channels is not None else c.audio_in_channels
        if (c.audio_in_channels, out_channels) != (width, width):
            problems.append(f"the transformer takes / predicts {c.audio_in_channels} / {out_channels}-wide audio "
                            f"tokens but the audio VAE makes {width} ({a.latent_channels} latent channels x "
                            f"{a.mel_bins // audio_vae.mel_compression_ratio} mel bins)")
        mel = a.output_channels * a.mel_bins
        if vocoder.config.in_channels != mel:
            problems.append(f"the vocoder reads {vocoder.config.in_channels} mel channels but the audio VAE decodes "
                            f"{a.output_channels} x {a.mel_bins} = {mel}")
    return problems


def _positions_and_timing(transformer: torch.nn.Module, vae: torch.nn.Module, audio_vae: torch.nn.Module,
                          vocoder: torch.nn.Module) -> list[str]:
    c, a = transformer.config, audio_vae.config
    drifts = []
    scales = (vae.temporal_compression_ratio, vae.spatial_compression_ratio, vae.spatial_compression_ratio)
    if tuple(c.vae_scale_factors) != scales:
        drifts.append(f"the transformer places video tokens with vae_scale_factors={tuple(c.vae_scale_factors)} "
                      f"(RoPE positions) but the VAE compresses (time, height, width) by {scales}")
    grid = (c.audio_sampling_rate, c.audio_hop_length, c.audio_scale_factor)
    vae_grid = (a.sample_rate, a.mel_hop_length, audio_vae.temporal_compression_ratio)
    if grid != vae_grid:
        drifts.append(f"the transformer times audio tokens with (sampling rate, hop, compression) {grid} (RoPE "
                      f"positions) but the audio VAE's mel grid is {vae_grid}")
    rate, per_frame = vocoder.config.output_sampling_rate, vocoder.upsample_factor
    if per_frame * a.sample_rate != rate * a.mel_hop_length:
        drifts.append(f"the vocoder makes {per_frame} samples at {rate} Hz per mel frame "
                      f"({1000 * per_frame / rate:g} ms) but the audio VAE's mel frames last "
                      f"{1000 * a.mel_hop_length / a.sample_rate:g} ms (hop {a.mel_hop_length} at "
                      f"{a.sample_rate} Hz)")
    return drifts


def component_mismatches(
    *, transformer: torch.nn.Module, vae: torch.nn.Module, audio_vae: torch.nn.Module, vocoder: torch.nn.Module,
    connectors: torch.nn.Module, latent_upsampler: torch.nn.Module | None = None,
) -> list[str]:
    """Every disagreement that would break a forward pass, one sentence each (empty: they fit together)."""
    return (_text(transformer, connectors) + _video(transformer, vae, latent_upsampler)
            + _audio(transformer, audio_vae, vocoder))


def component_drifts(
    *, transformer: torch.nn.Module, vae: torch.nn.Module, audio_vae: torch.nn.Module, vocoder: torch.nn.Module,
) -> list[str]:
    """Every disagreement that runs but places tokens or times audio unlike training, one sentence each."""
    return _positions_and_timing(transformer, vae, audio_vae, vocoder)


def check_fit(problems: list[str] | tuple[str, ...]) -> None:
    """A ``ValueError`` listing every disagreement :func:`component_mismatches` found (nothing when there is none)."""
    if problems:
        raise ValueError(f"The pipeline's components do not fit together: {'; '.join(problems)}. Load every "
                         f"component from one model's folder (LTX-2.0 and LTX-2.3 components do not mix).")


@functools.lru_cache(maxsize=32)
def warn_drifts(drifts: tuple[str, ...]) -> None:
    """Logs :func:`component_drifts` once per distinct set."""
    if drifts:
        logger.warning("The pipeline's components drift apart: %s. The call runs (as diffusers' would), but a "
                       "released model's components always agree: load every component from one model's folder.",
                       "; ".join(drifts))
