"""What the pipeline's components must agree on, read from their configs (never their weights).

Each check is a pair of numbers two components must share; a mismatch would otherwise fail deep inside a forward pass
(text widths, latent channels) or, worse, run and give wrong results (RoPE time positions, audio length per mel
frame). ``PipelineFacts`` records :func:`component_mismatches` of the loaded components (every call) or of a folder's
config files (``PipelineFacts.from_folder``, before ``ltx2-diffusers generate`` loads weights), and the plan raises
:func:`check_fit` before any model runs.
"""

from __future__ import annotations

import torch


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
    scales = (vae.temporal_compression_ratio, vae.spatial_compression_ratio, vae.spatial_compression_ratio)
    if tuple(c.vae_scale_factors) != scales:
        problems.append(f"the transformer places video tokens with vae_scale_factors={tuple(c.vae_scale_factors)} "
                        f"(RoPE positions) but the VAE compresses (time, height, width) by {scales}")
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
    grid = (c.audio_sampling_rate, c.audio_hop_length, c.audio_scale_factor)
    vae_grid = (a.sample_rate, a.mel_hop_length, audio_vae.temporal_compression_ratio)
    if grid != vae_grid:
        problems.append(f"the transformer times audio tokens with (sampling rate, hop, compression) {grid} (RoPE "
                        f"positions) but the audio VAE's mel grid is {vae_grid}")
    rate, per_frame = vocoder.config.output_sampling_rate, vocoder.upsample_factor
    if per_frame * a.sample_rate != rate * a.mel_hop_length:
        problems.append(f"the vocoder makes {per_frame} samples at {rate} Hz per mel frame "
                        f"({1000 * per_frame / rate:g} ms) but the audio VAE's mel frames last "
                        f"{1000 * a.mel_hop_length / a.sample_rate:g} ms (hop {a.mel_hop_length} at "
                        f"{a.sample_rate} Hz)")
    return problems


def component_mismatches(
    *, transformer: torch.nn.Module, vae: torch.nn.Module, audio_vae: torch.nn.Module, vocoder: torch.nn.Module,
    connectors: torch.nn.Module, latent_upsampler: torch.nn.Module | None = None,
) -> list[str]:
    """Every disagreement between the components, one sentence each (empty: they fit together)."""
    return (_text(transformer, connectors) + _video(transformer, vae, latent_upsampler)
            + _audio(transformer, audio_vae, vocoder))


def check_fit(problems: list[str] | tuple[str, ...]) -> None:
    """A ``ValueError`` listing every disagreement :func:`component_mismatches` found (nothing when there is none)."""
    if problems:
        raise ValueError(f"The pipeline's components do not fit together: {'; '.join(problems)}. Load every "
                         f"component from one model's folder (LTX-2.0 and LTX-2.3 components do not mix).")
