"""Tiny video-VAE and latent-upsampler oracles: ltx-core 1.0.0 modules in the original single-file layout, the
diffusers 0.42.1 classes, and ours, all on identical random weights (real block structure, tiny widths)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
import ltx_core.loader  # noqa: E402,F401  (import order: avoids ltx-core's circular import)
from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video  # noqa: E402
from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator  # noqa: E402

from ltx2_diffusers.conversion.common import expected_shapes  # noqa: E402
from ltx2_diffusers.conversion.video_vae import (  # noqa: E402
    convert_latent_upsampler_state_dict,
    convert_video_vae_state_dict,
    latent_upsampler_config_from_original,
    video_vae_config_from_original,
)
from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder  # noqa: E402
from ltx2_diffusers.models.latent_upsampler_ltx2 import LTX2LatentUpsampler  # noqa: E402

from .video_helpers import LATENT, random_init_, smooth_video, statistics  # noqa: E402


def vae_header(timestep_conditioning: bool = False, **overrides) -> dict:
    """An LTX-2.0-style ``config['vae']`` block with tiny widths and uneven depths (exposes block-order mistakes).

    Like the 19B header it has no ``spatial_padding_mode`` key (encoder zeros, decoder reflect).
    """
    header = {
        "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": LATENT, "patch_size": 4,
        "norm_layer": "pixel_norm", "latent_log_var": "uniform", "causal_decoder": False,
        "timestep_conditioning": timestep_conditioning, "decoder_base_channels": 8,
        "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}],
                           ["res_x", {"num_layers": 2}], ["compress_time_res", {"multiplier": 2}],
                           ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 2}],
                           ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 2}],
                           ["res_x", {"num_layers": 2}]],
        # output side first: the last res_x is the decoder's mid block
        "decoder_blocks": [["res_x", {"num_layers": 1, "inject_noise": False}],
                           ["compress_all", {"residual": True, "multiplier": 2}],
                           ["res_x", {"num_layers": 2, "inject_noise": False}],
                           ["compress_all", {"residual": True, "multiplier": 2}],
                           ["res_x", {"num_layers": 1, "inject_noise": False}],
                           ["compress_all", {"residual": True, "multiplier": 2}],
                           ["res_x", {"num_layers": 3, "inject_noise": False}]],
    }
    header.update(overrides)
    return header


def ltxcore_vae(header: dict, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """(encoder, decoder, original single-file state dict) with shared statistics and the file's extra stats keys."""
    encoder = random_init_(VideoEncoderConfigurator.from_config({"vae": header}), seed).eval()
    decoder = random_init_(VideoDecoderConfigurator.from_config({"vae": header}), seed + 1).eval()
    mean, std = statistics(header["latent_channels"])
    original = {}
    for part, module in (("encoder", encoder), ("decoder", decoder)):
        module.per_channel_statistics.get_buffer("mean-of-means").copy_(mean)
        module.per_channel_statistics.get_buffer("std-of-means").copy_(std)
        for k, v in module.state_dict().items():
            if not k.startswith("per_channel_statistics."):
                original[f"vae.{part}.{k}"] = v
    original["vae.per_channel_statistics.mean-of-means"] = mean.clone()
    original["vae.per_channel_statistics.std-of-means"] = std.clone()
    original["vae.per_channel_statistics.channel"] = torch.arange(header["latent_channels"])
    original["vae.per_channel_statistics.mean-of-stds"] = torch.ones(header["latent_channels"])
    return encoder, decoder, original


def our_vae_from_original(header: dict, original: dict) -> LTX2VideoAutoencoder:
    config = video_vae_config_from_original(header, original)
    ours = LTX2VideoAutoencoder(**config).eval()
    ours.load_state_dict(convert_video_vae_state_dict(original, expected_shapes(ours)), strict=True)
    return ours


def diffusers_vae_from_original(header: dict, original: dict) -> torch.nn.Module:
    diffusers = pytest.importorskip("diffusers")
    config = video_vae_config_from_original(header, original)
    theirs = diffusers.AutoencoderKLLTX2Video(**config).eval()
    theirs.load_state_dict(convert_video_vae_state_dict(original), strict=True)
    return theirs


def upsampler_header(**overrides) -> dict:
    header = {"in_channels": LATENT, "mid_channels": 32, "num_blocks_per_stage": 2, "dims": 3,
              "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": True}
    header.update(overrides)
    return header


def ltxcore_upsampler(header: dict, seed: int = 7) -> torch.nn.Module:
    return random_init_(LatentUpsamplerConfigurator.from_config(header), seed).eval()


def our_upsampler_from_original(header: dict, original: dict) -> LTX2LatentUpsampler:
    ours = LTX2LatentUpsampler(**latent_upsampler_config_from_original(header, original)).eval()
    ours.load_state_dict(convert_latent_upsampler_state_dict(original, expected_shapes(ours)), strict=True)
    return ours


__all__ = [
    "LATENT", "diffusers_vae_from_original", "ltxcore_upsampler", "ltxcore_vae", "our_upsampler_from_original",
    "our_vae_from_original", "random_init_", "smooth_video", "statistics", "upsample_video", "upsampler_header",
    "vae_header",
]
