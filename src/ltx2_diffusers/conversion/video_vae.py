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

# header block name -> diffusers re-sampling type (ltx-core's other blocks, e.g. "res_x_y", "attn_res_x",
# "compress_all_x_y" or an encoder "compress_time", have no diffusers equivalent and are refused)
ENCODER_DOWNSAMPLE_TYPES: dict[str, str] = {
    "compress_space_res": "spatial",
    "compress_time_res": "temporal",
    "compress_all_res": "spatiotemporal",
    "compress_all": "conv",  # a width-keeping stride-2 causal conv
}
DECODER_UPSAMPLE_TYPES: dict[str, str] = {
    "compress_space": "spatial",
    "compress_time": "temporal",
    "compress_all": "spatiotemporal",
}
# decoder blocks whose up-sampler can have a skip connection (ltx-core ignores "residual" on the others)
DECODER_RESIDUAL_BLOCKS: frozenset[str] = frozenset({"compress_all"})
RESIDUAL_BLOCK = "res_x"
TIME_EMBEDDER_PREFIX = "last_time_embedder."

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


def _blocks(header: Mapping[str, Any], name: str, table: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The header's ``[[block name, params], ...]`` list, checked against the diffusers layout: ``res_x`` stacks
    alternating with the re-samplers of ``table``, starting and ending with ``res_x``."""
    blocks = header.get(name)
    if not blocks:
        raise ValueError(f"the VAE header has no {name!r} list; pass the checkpoint's config['vae'] block.")
    try:
        parsed = [(b, {"num_layers": p} if isinstance(p, int) else dict(p)) for b, p in blocks]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a list of [block name, parameters] pairs, got {blocks!r}.") from error
    names = [b for b, _ in parsed]
    for i, block in enumerate(names):
        wanted = [RESIDUAL_BLOCK] if i % 2 == 0 else sorted(table)
        if block not in wanted:
            kind = "a residual stack" if i % 2 == 0 else "a re-sampler"
            raise ValueError(f"{name}[{i}] is {block!r}, but the diffusers layout needs {kind} there (one of "
                             f"{wanted}); the list must alternate res_x and re-sampling blocks, starting and ending "
                             f"with res_x. Got {names}.")
    if len(parsed) % 2 == 0:
        raise ValueError(f"{name} must end with a res_x stack (the mid block); got {names}.")
    return parsed


def _timestep_conditioning(header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], decoder: str) -> bool:
    """Whether the decoder is timestep-conditioned: the tensors decide; a header value that disagrees is an error
    (ltx-core reads a missing key as ``True``, so a missing key is not evidence)."""
    present = any(k.startswith(decoder + TIME_EMBEDDER_PREFIX) for k in state_dict)
    stated = header.get("timestep_conditioning")
    if stated is not None and bool(stated) != present:
        raise ValueError(f"the VAE header says timestep_conditioning={stated!r} but the checkpoint "
                         f"{'has' if present else 'has no'} {decoder}{TIME_EMBEDDER_PREFIX}* tensors; the file is "
                         f"inconsistent (fix the header's timestep_conditioning to {present}).")
    return present


def video_vae_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], prefix: str = VAE_PREFIX
) -> dict[str, Any]:
    """Diffusers ``AutoencoderKLLTX2Video`` config from the header's ``vae`` block and the tensors' shapes.

    Widths come from the shapes; whether the decoder is timestep-conditioned comes from the presence of
    ``vae.decoder.last_time_embedder.*`` (a header value that disagrees raises); a header without
    ``spatial_padding_mode`` means ltx-core's defaults (encoder zeros, decoder reflect). ``residual`` counts only on
    ``compress_all`` decoder blocks, as in ltx-core. Blocks without a diffusers equivalent raise a ``ValueError``.
    """
    from ..models.video_vae_config import STRIDES

    for key, allowed in (("dims", 3), ("norm_layer", "pixel_norm"), ("latent_log_var", "uniform")):
        if header.get(key, allowed) != allowed:
            raise ValueError(f"vae {key}={header[key]!r} is not supported by the diffusers format; it needs "
                             f"{allowed!r}.")
    encoder = _blocks(header, "encoder_blocks", ENCODER_DOWNSAMPLE_TYPES)
    decoder = _blocks(header, "decoder_blocks", DECODER_UPSAMPLE_TYPES)
    enc, dec = prefix + "encoder.", prefix + "decoder."
    timestep_conditioning = _timestep_conditioning(header, state_dict, dec)

    down_types = [ENCODER_DOWNSAMPLE_TYPES[b] for b, _ in encoder[1::2]]
    block_out, width = [], state_dict[enc + "conv_in.conv.weight"].shape[0]
    for k, kind in enumerate(down_types):
        if kind != "conv":  # a space-to-depth down-sampler's conv makes out / (t·h·w) channels
            width = state_dict[f"{enc}down_blocks.{2 * k + 1}.conv.conv.weight"].shape[0] * math.prod(STRIDES[kind])
        block_out.append(width)
    up_blocks = decoder[1::2]  # output side first
    up_types = [DECODER_UPSAMPLE_TYPES[b] for b, _ in up_blocks]
    last = len(decoder) - 1  # reference index = last - header index
    decoder_out = [state_dict[f"{dec}up_blocks.{last - (2 * k + 1)}.conv.conv.weight"].shape[1]
                   for k in range(len(up_blocks))]
    spatial = sum(STRIDES[t][1] == 2 for t in down_types)
    temporal = sum(STRIDES[t][0] == 2 for t in down_types)
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
        "upsample_residual": [b in DECODER_RESIDUAL_BLOCKS and bool(p.get("residual", False)) for b, p in up_blocks],
        "upsample_factor": [int(p.get("multiplier", 1)) for _, p in up_blocks],
        "timestep_conditioning": timestep_conditioning,
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


def _stated(header: Mapping[str, Any], key: str, found: Any, evidence: str) -> Any:
    """``found`` (read from the tensors), after checking that the header, if it states ``key``, agrees."""
    stated = header.get(key)
    if stated is not None and type(found)(stated) != found:
        raise ValueError(f"the upsampler header says {key}={stated!r} but its tensors say {found!r} ({evidence}); the "
                         f"file is inconsistent.")
    return found


def latent_upsampler_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Diffusers ``LTX2LatentUpsamplerModel`` config from the upsampler file's header and its tensors' shapes.

    The tensors decide the layout (rational resampler or plain), what is upsampled (the plain conv makes 4x channels
    for space, 2x for time, 8x for both) and the widths; the header supplies the rational scale's denominator. A
    header value that contradicts the tensors raises a ``ValueError`` (ltx-core would either fail to load the file or,
    for a plain layout with ``spatial_scale`` other than 2, silently upsample x2).
    """
    from ..models.latent_upsampler_ltx2 import RATIONAL_SCALES

    if "initial_conv.weight" not in state_dict:
        raise ValueError("not a latent upsampler file: it has no initial_conv.weight tensor.")
    initial = state_dict["initial_conv.weight"]
    mid = initial.shape[0]
    blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith("res_blocks.")}
    rational = "upsampler.conv.weight" in state_dict
    if rational == ("upsampler.0.weight" in state_dict):
        raise ValueError("the upsampler file must hold exactly one of upsampler.conv.* (rational resampler) and "
                         "upsampler.0.* (plain).")
    scale = float(header.get("spatial_scale", 2.0))
    if rational:
        num = round(math.sqrt(state_dict["upsampler.conv.weight"].shape[0] / mid))
        if float(scale) not in RATIONAL_SCALES or RATIONAL_SCALES[scale][0] != num:
            raise ValueError(f"the upsampler header says spatial_scale={scale} but upsampler.conv makes {num}x{num} "
                             f"sub-pixels; supported (scale: sub-pixels) pairs are "
                             f"{ {k: v[0] for k, v in RATIONAL_SCALES.items()} }.")
        spatial, temporal = True, False
    else:
        weight = state_dict["upsampler.0.weight"]
        expansion = weight.shape[0] // mid
        layouts = {(4, 4): (True, False), (8, 5): (True, True), (2, 5): (False, True)}  # (channels x, ndim)
        if (expansion, weight.ndim) not in layouts or weight.shape[0] % mid:
            raise ValueError(f"upsampler.0.weight has shape {tuple(weight.shape)} for mid_channels={mid}: not the "
                             f"plain x2 layout (Conv2d to 4x channels for space, Conv3d to 2x for time or 8x for "
                             f"both).")
        spatial, temporal = layouts[(expansion, weight.ndim)]
        if spatial and scale != 2.0:
            raise ValueError(f"the upsampler header says spatial_scale={scale}, but the plain layout (upsampler.0) "
                             f"always upsamples x2; refusing an inconsistent file.")
    evidence = "upsampler.conv.* tensors" if rational else "the upsampler.0 conv's shape"
    _stated(header, "spatial_upsample", spatial, evidence)
    _stated(header, "temporal_upsample", temporal, evidence)
    if spatial and not temporal:
        _stated(header, "rational_resampler", rational, evidence)
    return {
        "in_channels": initial.shape[1],
        "mid_channels": mid,
        "num_blocks_per_stage": len(blocks),
        "dims": _stated(header, "dims", initial.ndim - 2, "initial_conv.weight's shape"),
        "spatial_upsample": spatial,
        "temporal_upsample": temporal,
        "rational_spatial_scale": scale,
        "use_rational_resampler": rational,
    }
