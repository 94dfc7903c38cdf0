"""Original LTX-2 checkpoints -> diffusers-format video VAE and latent upsampler: rename tables, configs, strict apply.

The single file stores the video VAE under ``vae.``: ``vae.encoder.*``, ``vae.decoder.*`` and the latent statistics
``vae.per_channel_statistics.*``. The reference numbers its encoder and decoder blocks in one flat list each, mixing
residual stacks and re-samplers; diffusers groups every re-sampler with the residual stack next to it:

* encoder (input side first): ``down_blocks.{2k}`` -> ``down_blocks.{k}`` (its residual blocks),
  ``down_blocks.{2k+1}`` -> ``down_blocks.{k}.downsamplers.0``, the last one -> ``mid_block``;
* decoder (built from the header's list *reversed*, so index 0 is the input side): ``up_blocks.0`` -> ``mid_block``,
  ``up_blocks.{2k+1}`` -> ``up_blocks.{k}.upsamplers.0``, ``up_blocks.{2k+2}`` -> ``up_blocks.{k}``.

The header lists the decoder blocks from the output side, as diffusers' ``decoder_layers_per_block`` does, so those
lists carry over in order while the block *indices* above are counted from the input side.

The x2 latent upsampler is a separate file whose keys already have the diffusers names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .common import check_state_dict, rename_parts, select_and_rename

VAE_PREFIX = "vae."
STATISTICS_PREFIX = "per_channel_statistics."

# statistics name -> diffusers buffer
STATISTICS_RENAMES: dict[str, str] = {"mean-of-means": "latents_mean", "std-of-means": "latents_std"}
# statistics the file carries but no model uses
IGNORED_STATISTICS: frozenset[str] = frozenset({"channel", "mean-of-stds", "mean-of-stds_over_std-of-means"})

# original name part -> diffusers name part
VAE_PART_RENAMES: dict[str, str] = {
    "res_blocks": "resnets",
    "last_time_embedder": "time_embedder",
    "last_scale_shift_table": "scale_shift_table",
}

# header block name -> diffusers re-sampling type
ENCODER_DOWNSAMPLE_TYPES: dict[str, str] = {
    "compress_space_res": "spatial",
    "compress_time_res": "temporal",
    "compress_all_res": "spatiotemporal",
}
DECODER_UPSAMPLE_TYPES: dict[str, str] = {
    "compress_space": "spatial",
    "compress_time": "temporal",
    "compress_all": "spatiotemporal",
}
_STRIDES = {"spatial": (1, 2, 2), "temporal": (2, 1, 1), "spatiotemporal": (2, 2, 2)}

# the x2 upsampler file already uses the diffusers names
LATENT_UPSAMPLER_RENAMES: dict[str, str] = {}


def encoder_block_renames(num_blocks: int) -> dict[int, str]:
    """Original encoder block index -> diffusers module path, for ``num_blocks`` (odd) flat blocks."""
    table = {2 * k: f"down_blocks.{k}" for k in range(num_blocks // 2)}
    table.update({2 * k + 1: f"down_blocks.{k}.downsamplers.0" for k in range(num_blocks // 2)})
    table[num_blocks - 1] = "mid_block"
    return table


def decoder_block_renames(num_blocks: int) -> dict[int, str]:
    """Original decoder block index (input side first) -> diffusers module path, for ``num_blocks`` (odd) blocks."""
    table = {0: "mid_block"}
    for k in range((num_blocks - 1) // 2):
        table[2 * k + 1] = f"up_blocks.{k}.upsamplers.0"
        table[2 * k + 2] = f"up_blocks.{k}"
    return table


# The LTX-2.0 tables (9 encoder blocks, 7 decoder blocks; LTX-2.3 adds decoder blocks 7 and 8).
LTX2_ENCODER_BLOCK_RENAMES = encoder_block_renames(9)
LTX2_DECODER_BLOCK_RENAMES = decoder_block_renames(7)

# ----------------------------------------------------------------------------------------------------------------
# Video VAE
# ----------------------------------------------------------------------------------------------------------------


def _block_count(keys: Sequence[str], prefix: str) -> int:
    indices = {int(k[len(prefix):].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def rename_video_vae_key(key: str, encoder_blocks: Mapping[int, str], decoder_blocks: Mapping[int, str],
                         prefix: str = VAE_PREFIX) -> str | None:
    """Diffusers name of an original ``vae.*`` key; ``None`` for keys outside the VAE or ignored statistics."""
    if not key.startswith(prefix):
        return None
    name = key[len(prefix):]
    if name.startswith(STATISTICS_PREFIX):
        stat = name[len(STATISTICS_PREFIX):]
        return None if stat in IGNORED_STATISTICS else STATISTICS_RENAMES.get(stat, name)
    parts = name.split(".")
    if parts[0] in ("encoder", "decoder") and len(parts) > 2 and parts[1] in ("down_blocks", "up_blocks"):
        table = encoder_blocks if parts[0] == "encoder" else decoder_blocks
        index = int(parts[2])
        if index in table:
            parts = [parts[0], *table[index].split("."), *parts[3:]]
    return rename_parts(parts, VAE_PART_RENAMES)


def convert_video_vae_state_dict(
    original: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None,
    prefix: str = VAE_PREFIX,
) -> dict[str, torch.Tensor]:
    """Selects and renames the video VAE tensors of an original checkpoint (strictly checked against ``expected``).

    ``vae.per_channel_statistics.{channel, mean-of-stds, ...}`` are dropped (see ``IGNORED_STATISTICS``); any other
    key under ``vae.`` must land on a model tensor, else ``check_state_dict`` raises a ``ValueError`` listing it.
    """
    keys = list(original)
    encoder_blocks = encoder_block_renames(_block_count(keys, prefix + "encoder.down_blocks."))
    decoder_blocks = decoder_block_renames(_block_count(keys, prefix + "decoder.up_blocks."))
    return select_and_rename(original, lambda key: rename_video_vae_key(key, encoder_blocks, decoder_blocks, prefix),
                             "video VAE", f"starts with {prefix!r}", expected)


def _blocks(header: Mapping[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    blocks = header.get(name)
    if not blocks:
        raise ValueError(f"the VAE header has no {name!r} list; pass the checkpoint's config['vae'] block.")
    parsed = [(b, {"num_layers": p} if isinstance(p, int) else dict(p)) for b, p in blocks]
    if len(parsed) % 2 == 0 or any((b == "res_x") != (i % 2 == 0) for i, (b, _) in enumerate(parsed)):
        raise ValueError(f"{name} must alternate res_x and re-sampling blocks, starting and ending with res_x; got "
                         f"{[b for b, _ in parsed]}.")
    return parsed


def _resample_type(name: str, table: Mapping[str, str], which: str) -> str:
    if name not in table:
        raise ValueError(f"{which} block {name!r} has no diffusers equivalent; supported: {sorted(table)}.")
    return table[name]


def video_vae_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], prefix: str = VAE_PREFIX
) -> dict[str, Any]:
    """Diffusers ``AutoencoderKLLTX2Video`` config from the header's ``vae`` block and the tensors' shapes.

    Widths come from the shapes; whether the decoder is timestep-conditioned comes from the presence of
    ``vae.decoder.last_time_embedder.*``; a header without ``spatial_padding_mode`` means ltx-core's defaults
    (encoder zeros, decoder reflect).
    """
    for key, allowed in (("dims", 3), ("norm_layer", "pixel_norm"), ("latent_log_var", "uniform")):
        if header.get(key, allowed) != allowed:
            raise ValueError(f"vae {key}={header[key]!r} is not supported by the diffusers format; it needs "
                             f"{allowed!r}.")
    encoder = _blocks(header, "encoder_blocks")
    decoder = _blocks(header, "decoder_blocks")
    enc, dec = prefix + "encoder.", prefix + "decoder."

    down_types = [_resample_type(b, ENCODER_DOWNSAMPLE_TYPES, "encoder") for b, _ in encoder[1::2]]
    block_out = [
        state_dict[f"{enc}down_blocks.{2 * k + 1}.conv.conv.weight"].shape[0] * math.prod(_STRIDES[kind])
        for k, kind in enumerate(down_types)
    ]
    up_blocks = decoder[1::2]  # output side first
    up_types = [_resample_type(b, DECODER_UPSAMPLE_TYPES, "decoder") for b, _ in up_blocks]
    last = len(decoder) - 1  # reference index = last - header index
    decoder_out = [state_dict[f"{dec}up_blocks.{last - (2 * k + 1)}.conv.conv.weight"].shape[1]
                   for k in range(len(up_blocks))]
    spatial = sum(_STRIDES[t][1] == 2 for t in down_types)
    temporal = sum(_STRIDES[t][0] == 2 for t in down_types)
    patch = header.get("patch_size", 4)
    padding = header.get("spatial_padding_mode")
    return {
        "in_channels": header.get("in_channels", 3),
        "out_channels": header.get("out_channels", 3),
        "latent_channels": state_dict[dec + "conv_in.conv.weight"].shape[1],
        "block_out_channels": block_out,
        "down_block_types": ["LTX2VideoDownBlock3D"] * len(down_types),
        "decoder_block_out_channels": decoder_out,
        "layers_per_block": [p["num_layers"] for _, p in encoder[0::2]],
        "decoder_layers_per_block": [p["num_layers"] for _, p in decoder[0::2]],
        "spatio_temporal_scaling": [True] * len(down_types),
        "decoder_spatio_temporal_scaling": [True] * len(up_types),
        "decoder_inject_noise": [bool(p.get("inject_noise", False)) for _, p in decoder[0::2]],
        "downsample_type": down_types,
        "upsample_type": list(reversed(up_types)),  # diffusers lists these from the input side
        "upsample_residual": [bool(p.get("residual", False)) for _, p in up_blocks],
        "upsample_factor": [int(p.get("multiplier", 1)) for _, p in up_blocks],
        "timestep_conditioning": any(k.startswith(dec + "last_time_embedder.") for k in state_dict),
        "patch_size": patch,
        "patch_size_t": 1,
        "encoder_causal": True,
        "decoder_causal": bool(header.get("causal_decoder", False)),
        "encoder_spatial_padding_mode": padding or "zeros",
        "decoder_spatial_padding_mode": padding or "reflect",
        "spatial_compression_ratio": patch * 2**spatial,
        "temporal_compression_ratio": 2**temporal,
    }


# ----------------------------------------------------------------------------------------------------------------
# Latent upsampler
# ----------------------------------------------------------------------------------------------------------------


def convert_latent_upsampler_state_dict(
    original: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None
) -> dict[str, torch.Tensor]:
    """Renames (``LATENT_UPSAMPLER_RENAMES``) and strictly checks the tensors of an upsampler file."""
    converted = {rename_parts(k, LATENT_UPSAMPLER_RENAMES): v for k, v in original.items()}
    if expected is not None:
        check_state_dict(converted, expected, "latent upsampler")
    return converted


def latent_upsampler_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Diffusers ``LTX2LatentUpsamplerModel`` config from the upsampler file's header and its tensors' shapes.

    The layout (rational resampler or plain) is read from the keys, the widths and depth from the shapes.
    """
    initial = state_dict["initial_conv.weight"]
    blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith("res_blocks.")}
    rational = "upsampler.conv.weight" in state_dict
    if rational == ("upsampler.0.weight" in state_dict):
        raise ValueError("the upsampler file must hold exactly one of upsampler.conv.* (rational resampler) and "
                         "upsampler.0.* (plain).")
    return {
        "in_channels": initial.shape[1],
        "mid_channels": initial.shape[0],
        "num_blocks_per_stage": len(blocks),
        "dims": initial.ndim - 2,
        "spatial_upsample": bool(header.get("spatial_upsample", True)),
        "temporal_upsample": bool(header.get("temporal_upsample", False)),
        "rational_spatial_scale": float(header.get("spatial_scale", 2.0)),
        "use_rational_resampler": rational,
    }
