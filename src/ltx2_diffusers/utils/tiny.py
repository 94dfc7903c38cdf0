"""A tiny, random-weight, fully offline LTX-2 pipeline with the real component structure (demo, tests, CI).

``version="2.0"`` builds LTX-2.0's structure (HiFi-GAN vocoder at 24 kHz, text contexts at the Gemma width);
``version="2.3"`` LTX-2.3's (gated attention, text cross-attention AdaLN, per-stream text projections and gated
connectors, the 2.3 video VAE layout, BigVGAN-v2 + bandwidth-extension vocoder at 48 kHz, plain x2 upsampler).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .tiny_gemma import tiny_connectors_config, tiny_gemma3, tiny_gemma_tokenizer

VIDEO_LATENT_CHANNELS = 8
AUDIO_LATENT_CHANNELS, MEL_BINS = 2, 64
TEXT_WIDTH = 32


def _seeded_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Deterministic weights of a realistic scale (the global RNG is left untouched)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("timestep_scale_multiplier"):
                p.fill_(1000.0)
            elif "scale_shift_table" in name or "learnable_registers" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(math.prod(p.shape[1:])))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("latents_std"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith("latents_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
    return model.eval()


VERSIONS = ("2.0", "2.3")


def fill_mel_stft_(vocoder: torch.nn.Module) -> torch.nn.Module:
    """Realistic STFT and mel bases for an ``LTX2VocoderWithBWE`` (real checkpoints supply them; construction leaves
    zeros): a periodic-Hann-windowed DFT (real rows, then imaginary rows) and a slaney mel filterbank over 0 .. half
    the first stage's rate."""
    from ..models.audio_processing import slaney_mel_filterbank

    stft = vocoder.mel_stft.stft_fn
    n_fft, mels = stft.forward_basis.shape[-1], vocoder.mel_stft.mel_basis.shape[0]
    with torch.device("cpu"):  # computed on the CPU whatever the default device (e.g. a meta-device build)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        t = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * t / n_fft  # [bins, n_fft]
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        mel = slaney_mel_filterbank(n_fft // 2 + 1, vocoder.config.input_sampling_rate, mels).T  # [mels, bins]
    with torch.no_grad():
        stft.forward_basis.copy_(torch.cat([angle.cos() * window, -angle.sin() * window])[:, None])
        stft.inverse_basis.copy_(torch.cat([angle.cos(), angle.sin()])[:, None] / n_fft)
        vocoder.mel_stft.mel_basis.copy_(mel)
    return vocoder


def _tame_vocoder_(vocoder: torch.nn.Module) -> torch.nn.Module:
    """Residual branches x 0.2 and output convolutions x 0.1: random BigVGAN-v2 stacks otherwise amplify their input
    so much that the waveform sits on the [-1, 1] clamp and rounding differences grow a thousandfold."""
    with torch.no_grad():
        for name, p in vocoder.named_parameters():
            if ".convs2." in name:
                p.mul_(0.2)
            elif ".conv_out." in name:
                p.mul_(0.1)
    return vocoder


def _tiny_models_23(audio_token_width: int) -> dict[str, torch.nn.Module]:
    """LTX-2.3's structure at tiny widths (video 2 x 16, audio 2 x 8, 2 blocks)."""
    from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
    from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
    from ..models.latent_upsampler_ltx2 import LTX2LatentUpsampler
    from ..models.text_connectors_ltx2 import LTX2TextConnectors
    from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
    from ..models.vocoder_bwe_ltx2 import LTX2VocoderWithBWE
    from .tiny_gemma import tiny_ltx23_connectors_config

    transformer = LTX2AudioVideoTransformer(
        in_channels=VIDEO_LATENT_CHANNELS, out_channels=VIDEO_LATENT_CHANNELS, num_layers=2,
        num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
        audio_in_channels=audio_token_width, audio_out_channels=audio_token_width, audio_num_attention_heads=2,
        audio_attention_head_dim=8, audio_cross_attention_dim=16, caption_channels=TEXT_WIDTH,
        gated_attn=True, audio_gated_attn=True, cross_attn_mod=True, audio_cross_attn_mod=True,
        use_prompt_embeddings=False, perturbed_attn=True,
    )
    vae = LTX2VideoAutoencoder(
        latent_channels=VIDEO_LATENT_CHANNELS, block_out_channels=(16, 32, 64, 64), layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True,) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(16, 32, 32, 64), decoder_layers_per_block=(1, 1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True,) * 4, decoder_inject_noise=(False,) * 5,
        upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"), upsample_residual=(False,) * 4,
        upsample_factor=(2, 2, 1, 2), encoder_spatial_padding_mode="zeros", decoder_spatial_padding_mode="zeros",
        spatial_compression_ratio=32, temporal_compression_ratio=8,
    )
    audio_vae = LTX2AudioAutoencoder(base_channels=audio_token_width, ch_mult=(1, 2, 4), num_res_blocks=1,
                                     latent_channels=AUDIO_LATENT_CHANNELS, mel_bins=MEL_BINS)
    vocoder = LTX2VocoderWithBWE(in_channels=2 * MEL_BINS, hidden_channels=64, bwe_in_channels=2 * 64,
                                 bwe_hidden_channels=32, final_act_fn="clamp")
    connectors = LTX2TextConnectors(**tiny_ltx23_connectors_config(TEXT_WIDTH, num_layers=2, video_hidden_dim=32,
                                                                   audio_hidden_dim=16))
    latent_upsampler = LTX2LatentUpsampler(in_channels=VIDEO_LATENT_CHANNELS, mid_channels=32, num_blocks_per_stage=1,
                                           use_rational_resampler=False)
    return dict(transformer=transformer, vae=vae, audio_vae=audio_vae, vocoder=vocoder, connectors=connectors,
                latent_upsampler=latent_upsampler)


def tiny_components(seed: int = 0, version: str = "2.0") -> dict[str, Any]:
    """Every component of :class:`~ltx2_diffusers.LTX2AudioVideoPipeline`, tiny (a few MB) and seeded, with the
    structure of LTX-``version`` (``"2.0"`` or ``"2.3"``)."""
    if version not in VERSIONS:
        raise ValueError(f"version={version!r}: pass one of {list(VERSIONS)}.")
    from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
    from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
    from ..models.latent_upsampler_ltx2 import LTX2LatentUpsampler
    from ..models.text_connectors_ltx2 import LTX2TextConnectors
    from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
    from ..models.vocoder_ltx2 import LTX2Vocoder
    from ..schedulers.scheduling_ltx2 import LTX2Scheduler

    audio_token_width = AUDIO_LATENT_CHANNELS * MEL_BINS // 4
    if version == "2.3":
        models = _tiny_models_23(audio_token_width)
        components = {name: _seeded_(model, seed + i) for i, (name, model) in enumerate(models.items())}
        _tame_vocoder_(fill_mel_stft_(components["vocoder"]))
        components.update(scheduler=LTX2Scheduler(), text_encoder=tiny_gemma3(TEXT_WIDTH, num_layers=2, seed=seed),
                          tokenizer=tiny_gemma_tokenizer())
        return components
    transformer = LTX2AudioVideoTransformer(
        in_channels=VIDEO_LATENT_CHANNELS, out_channels=VIDEO_LATENT_CHANNELS, num_layers=2,
        num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
        audio_in_channels=audio_token_width, audio_out_channels=audio_token_width, audio_num_attention_heads=2,
        audio_attention_head_dim=8, audio_cross_attention_dim=16, caption_channels=TEXT_WIDTH,
    )
    vae = LTX2VideoAutoencoder(
        latent_channels=VIDEO_LATENT_CHANNELS, block_out_channels=(16, 32, 64, 128), layers_per_block=(1, 1, 1, 1, 1),
        decoder_block_out_channels=(16, 32, 64), decoder_layers_per_block=(1, 1, 1, 1),
    )
    audio_vae = LTX2AudioAutoencoder(base_channels=audio_token_width, ch_mult=(1, 2, 4), num_res_blocks=1,
                                     latent_channels=AUDIO_LATENT_CHANNELS, mel_bins=MEL_BINS)
    vocoder = LTX2Vocoder(hidden_channels=32)
    connectors = LTX2TextConnectors(**tiny_connectors_config(TEXT_WIDTH, num_layers=2))
    latent_upsampler = LTX2LatentUpsampler(in_channels=VIDEO_LATENT_CHANNELS, mid_channels=32, num_blocks_per_stage=1)
    models = dict(transformer=transformer, vae=vae, audio_vae=audio_vae, vocoder=vocoder, connectors=connectors,
                  latent_upsampler=latent_upsampler)
    components = {name: _seeded_(model, seed + i) for i, (name, model) in enumerate(models.items())}
    components.update(scheduler=LTX2Scheduler(), text_encoder=tiny_gemma3(TEXT_WIDTH, num_layers=2, seed=seed),
                      tokenizer=tiny_gemma_tokenizer())
    return components


def tiny_pipeline(seed: int = 0, version: str = "2.0") -> Any:  # noqa: ANN401
    """A ready :class:`~ltx2_diffusers.LTX2AudioVideoPipeline` of tiny random components (no downloads) with the
    structure of LTX-``version`` (``"2.0"`` or ``"2.3"``)."""
    from ..pipelines.pipeline_ltx2_audio_video import LTX2AudioVideoPipeline

    return LTX2AudioVideoPipeline(**tiny_components(seed, version))
