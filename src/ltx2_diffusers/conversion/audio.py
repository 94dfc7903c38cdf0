"""Original LTX-2 single file -> diffusers-format audio VAE and vocoder: rename tables, configs, strict apply.

The single file stores the audio VAE under ``audio_vae.`` (``encoder.*``, ``decoder.*`` and one shared
``per_channel_statistics``) and the LTX-2.0 HiFi-GAN vocoder under ``vocoder.``. The audio VAE keeps its names except
for the statistics; the vocoder renames four name parts. LTX-2.3's vocoder with bandwidth extension
(``vocoder.vocoder.*``, ``vocoder.bwe_generator.*``, ``vocoder.mel_stft.*``) is rejected with a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .common import inverted, rename_parts, select_and_rename

AUDIO_VAE_PREFIX = "audio_vae."
VOCODER_PREFIX = "vocoder."

# whole original key (after the prefix) -> diffusers key
AUDIO_VAE_RENAMES: dict[str, str] = {
    "per_channel_statistics.mean-of-means": "latents_mean",
    "per_channel_statistics.std-of-means": "latents_std",
}
# statistics some files carry that no component reads
AUDIO_VAE_DROPPED: tuple[str, ...] = (
    "per_channel_statistics.channel",
    "per_channel_statistics.mean-of-stds",
    "per_channel_statistics.mean-of-stds_over_std-of-means",
)
# original name part -> diffusers name part (LTX-2.0 vocoder)
VOCODER_RENAMES: dict[str, str] = {
    "conv_pre": "conv_in",
    "ups": "upsamplers",
    "resblocks": "resnets",
    "conv_post": "conv_out",
}
_BWE_PARTS = ("vocoder", "bwe_generator", "mel_stft")
_INVERSE_AUDIO_VAE = inverted(AUDIO_VAE_RENAMES)
_INVERSE_VOCODER = inverted(VOCODER_RENAMES)

# ----------------------------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------------------------


def rename_audio_vae_key(key: str, prefix: str = AUDIO_VAE_PREFIX) -> str | None:
    """Diffusers name of an original audio-VAE key, or ``None`` if the key is not an audio-VAE tensor (or unused)."""
    if not key.startswith(prefix):
        return None
    name = key[len(prefix):]
    if name in AUDIO_VAE_DROPPED:
        return None
    return AUDIO_VAE_RENAMES.get(name, name)


def original_audio_vae_key(key: str, prefix: str = AUDIO_VAE_PREFIX) -> str:
    """Inverse of :func:`rename_audio_vae_key`."""
    return prefix + _INVERSE_AUDIO_VAE.get(key, key)


def rename_vocoder_key(key: str, prefix: str = VOCODER_PREFIX) -> str | None:
    """Diffusers name of an original LTX-2.0 vocoder key, or ``None`` if the key is not a vocoder tensor."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split(".")
    if parts[0] in _BWE_PARTS:
        raise ValueError(
            f"{key!r} belongs to LTX-2.3's vocoder with bandwidth extension, which this package does not convert; "
            f"use an LTX-2.0 checkpoint."
        )
    return rename_parts(parts, VOCODER_RENAMES)


def original_vocoder_key(key: str, prefix: str = VOCODER_PREFIX) -> str:
    """Inverse of :func:`rename_vocoder_key`."""
    return prefix + rename_parts(key, _INVERSE_VOCODER)


# ----------------------------------------------------------------------------------------------------------------
# State dicts
# ----------------------------------------------------------------------------------------------------------------


def _convert(original: Mapping[str, torch.Tensor], rename: Any, prefix: str, component: str,  # noqa: ANN401
             expected: Mapping[str, torch.Size | tuple[int, ...]] | None) -> dict[str, torch.Tensor]:
    return select_and_rename(original, lambda key: rename(key, prefix), component, f"starts with {prefix!r}",
                             expected)


def convert_audio_vae_state_dict(
    original: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None,
    prefix: str = AUDIO_VAE_PREFIX,
) -> dict[str, torch.Tensor]:
    """Selects and renames the audio-VAE tensors of an original checkpoint (strictly checked against ``expected``,
    name -> shape of the target model, when given: missing, unexpected or mis-shaped keys raise a ``ValueError``)."""
    return _convert(original, rename_audio_vae_key, prefix, "audio_vae", expected)


def convert_vocoder_state_dict(
    original: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None,
    prefix: str = VOCODER_PREFIX,
) -> dict[str, torch.Tensor]:
    """Selects and renames the vocoder tensors of an original checkpoint (strict against ``expected`` when given)."""
    return _convert(original, rename_vocoder_key, prefix, "vocoder", expected)


# ----------------------------------------------------------------------------------------------------------------
# Configs (header values where shapes cannot tell, shapes everywhere else)
# ----------------------------------------------------------------------------------------------------------------


def _indices(state_dict: Mapping[str, torch.Tensor], stem: str) -> list[int]:
    """Sorted distinct integers ``i`` of keys ``stem + "{i}." ...``."""
    return sorted({int(k[len(stem):].split(".")[0]) for k in state_dict if k.startswith(stem)})


def audio_vae_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], prefix: str = AUDIO_VAE_PREFIX
) -> dict[str, Any]:
    """Diffusers audio-VAE config from the original header's ``audio_vae`` block and the tensors' shapes.

    Widths, depths, attention placement and the normalisation type are read from the tensors (ltx-core's defaults
    for absent header keys, e.g. mid-block attention on, would not match the released files).
    """
    params = header.get("model", {}).get("params", {})
    dd = params.get("ddconfig", {})
    pre = header.get("preprocessing", {})
    sd = state_dict
    p = prefix
    base, in_channels = sd[p + "encoder.conv_in.conv.weight"].shape[:2]
    levels = _indices(sd, p + "encoder.down.")
    latent = sd[p + "decoder.conv_in.conv.weight"].shape[1]
    resolution = dd.get("resolution", 256)
    attention = tuple(resolution // 2**lv for lv in levels if p + f"encoder.down.{lv}.attn.0.q.weight" in sd)
    return {
        "base_channels": base,
        "output_channels": sd[p + "decoder.conv_out.conv.weight"].shape[0],
        "ch_mult": tuple(sd[p + f"encoder.down.{lv}.block.0.conv1.conv.weight"].shape[0] // base for lv in levels),
        "num_res_blocks": len(_indices(sd, p + "encoder.down.0.block.")),
        "attn_resolutions": attention or None,
        "in_channels": in_channels,
        "resolution": resolution,
        "latent_channels": latent,
        "norm_type": "group" if p + "encoder.norm_out.weight" in sd else "pixel",
        "causality_axis": dd.get("causality_axis", "height"),
        "dropout": dd.get("dropout", 0.0),
        "mid_block_add_attention": p + "encoder.mid.attn_1.q.weight" in sd,
        "sample_rate": params.get("sampling_rate", 16000),
        "mel_hop_length": pre.get("stft", {}).get("hop_length", 160),
        "is_causal": pre.get("stft", {}).get("causal", True),
        "mel_bins": dd.get("mel_bins") or pre.get("mel", {}).get("n_mel_channels", 64),
        "double_z": sd[p + "encoder.conv_out.conv.weight"].shape[0] == 2 * latent,
    }


def vocoder_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], prefix: str = VOCODER_PREFIX
) -> dict[str, Any]:
    """Diffusers vocoder config from the original header's ``vocoder`` block and the tensors' shapes.

    Strides and dilations cannot be read from shapes and come from the header (LTX-2.0 values when absent); the
    input width is read from ``conv_pre`` (ltx-core hard-wires it to 128).
    """
    if "bwe" in header or header.get("resblock", "1") != "1":
        raise ValueError("Only the LTX-2.0 vocoder (resblock '1', no 'bwe' block) is supported.")
    sd = state_dict
    p = prefix
    hidden, in_channels = sd[p + "conv_pre.weight"].shape[:2]
    stages = _indices(sd, p + "ups.")
    per_stage = len(_indices(sd, p + "resblocks.")) // len(stages)
    factors = list(header.get("upsample_rates", [6, 5, 2, 2, 2]))
    if len(factors) != len(stages):
        raise ValueError(f"the header lists {len(factors)} upsample rates; the checkpoint has {len(stages)} stages.")
    return {
        "in_channels": in_channels,
        "hidden_channels": hidden,
        "out_channels": sd[p + "conv_post.weight"].shape[0],
        "upsample_kernel_sizes": [sd[p + f"ups.{i}.weight"].shape[2] for i in stages],
        "upsample_factors": factors,
        "resnet_kernel_sizes": [sd[p + f"resblocks.{j}.convs1.0.weight"].shape[2] for j in range(per_stage)],
        "resnet_dilations": [list(d) for d in header.get("resblock_dilation_sizes", [[1, 3, 5]] * per_stage)],
        "final_act_fn": "tanh" if header.get("use_tanh_at_final", True) else "clamp",
        "final_bias": p + "conv_post.bias" in sd,
        "output_sampling_rate": header.get("output_sampling_rate", 24000),
    }
