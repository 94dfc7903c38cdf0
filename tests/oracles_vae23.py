"""LTX-2.3 video VAE / x2 1.1 upscaler test data: the real-size headers, the real key lists (tests/data), tiny
2.3-style headers for the ltx-core oracle, and configs written the way diffusers writes them.

Nothing here imports ltx-core, so the real-size (meta device) tests run without it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

KEYS_FILE = Path(__file__).parent / "data" / "ltx23_vae_keys.txt"

# The 2.3 single file's config["vae"] block (reference/ltx23-facts.md section 2).
REAL_VAE_HEADER_23 = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "patch_size": 4, "norm_layer": "pixel_norm", "latent_log_var": "uniform", "causal_decoder": False,
    "timestep_conditioning": False, "decoder_base_channels": 128, "spatial_padding_mode": "zeros",
    "scaling_factor": 1.0,
    "encoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
                       ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
                       ["res_x", {"num_layers": 4}], ["compress_all_res", {"multiplier": 2}],
                       ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 1}],
                       ["res_x", {"num_layers": 2}]],
    "decoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space", {"multiplier": 2}],
                       ["res_x", {"num_layers": 6}], ["compress_time", {"multiplier": 2}],
                       ["res_x", {"num_layers": 4}], ["compress_all", {"multiplier": 1}],
                       ["res_x", {"num_layers": 2}], ["compress_all", {"multiplier": 2}],
                       ["res_x", {"num_layers": 2}]],
}

# ltx-2.3-spatial-upscaler-x2-1.1.safetensors header
REAL_UPSAMPLER_HEADER_23 = {"in_channels": 128, "mid_channels": 1024, "num_blocks_per_stage": 4, "dims": 3,
                            "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0,
                            "rational_resampler": False}

# What diffusers 0.42.1's converter writes for the 2.3 VAE (scripts/convert_ltx2_to_diffusers.py --version 2.3)
DIFFUSERS_VAE_CONFIG_23 = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128, "block_out_channels": (256, 512, 1024, 1024),
    "down_block_types": ("LTX2VideoDownBlock3D",) * 4, "decoder_block_out_channels": (256, 512, 512, 1024),
    "layers_per_block": (4, 6, 4, 2, 2), "decoder_layers_per_block": (4, 6, 4, 2, 2),
    "spatio_temporal_scaling": (True,) * 4, "decoder_spatio_temporal_scaling": (True,) * 4,
    "decoder_inject_noise": (False,) * 5,
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"), "upsample_residual": (False,) * 4,
    "upsample_factor": (2, 2, 1, 2), "timestep_conditioning": False, "patch_size": 4, "patch_size_t": 1,
    "resnet_norm_eps": 1e-6, "encoder_causal": True, "decoder_causal": False,
    "encoder_spatial_padding_mode": "zeros", "decoder_spatial_padding_mode": "zeros",
    "spatial_compression_ratio": 32, "temporal_compression_ratio": 8,
}


def tiny_diffusers_vae_config_23(latent: int = 8, **overrides) -> dict:
    """:data:`DIFFUSERS_VAE_CONFIG_23` at tiny widths and uneven depths (same block structure)."""
    config = {**DIFFUSERS_VAE_CONFIG_23, "latent_channels": latent,
              "block_out_channels": (2 * latent, 4 * latent, 8 * latent, 8 * latent),
              "decoder_block_out_channels": (2 * latent, 4 * latent, 4 * latent, 8 * latent),
              "layers_per_block": (1, 2, 1, 1, 2), "decoder_layers_per_block": (2, 1, 1, 2, 1)}
    config.update(overrides)
    return config


def vae_header_23(latent: int = 8, timestep_conditioning: bool = False, **overrides) -> dict:
    """The 2.3 ``vae`` header block with tiny widths (``decoder_base_channels``) and uneven depths."""
    header = copy.deepcopy(REAL_VAE_HEADER_23)
    header.update(latent_channels=latent, decoder_base_channels=latent, timestep_conditioning=timestep_conditioning)
    header["encoder_blocks"][0][1]["num_layers"] = 1
    header["encoder_blocks"][2][1]["num_layers"] = 2
    header["encoder_blocks"][4][1]["num_layers"] = 1
    header["encoder_blocks"][6][1]["num_layers"] = 1
    header["decoder_blocks"][0][1]["num_layers"] = 2
    header["decoder_blocks"][2][1]["num_layers"] = 1
    header["decoder_blocks"][4][1]["num_layers"] = 1
    header["decoder_blocks"][6][1]["num_layers"] = 1
    header["decoder_blocks"][8][1]["num_layers"] = 3
    header.update(overrides)
    return header


def key_sections(path: Path = KEYS_FILE) -> dict[str, dict[str, tuple[int, ...]]]:
    """Section title -> {tensor name: shape} of a key-list file ('###' titles, 'name<TAB>[shape]' lines)."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:].strip(), {})
        elif "\t" in line and current is not None:
            name, shape = line.split("\t")
            dims = shape.strip().strip("[]")
            current[name] = tuple(int(d) for d in dims.split(",") if d.strip())
    return sections


def meta_tensors(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}


__all__ = [
    "DIFFUSERS_VAE_CONFIG_23", "KEYS_FILE", "REAL_UPSAMPLER_HEADER_23", "REAL_VAE_HEADER_23", "key_sections",
    "meta_tensors", "tiny_diffusers_vae_config_23", "vae_header_23",
]
