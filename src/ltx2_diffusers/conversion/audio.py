"""Original LTX-2 single file -> diffusers-format audio VAE and vocoder: rename tables, configs, strict apply.

The single file stores the audio VAE under ``audio_vae.`` (``encoder.*``, ``decoder.*`` and one shared
``per_channel_statistics``) and the vocoder under ``vocoder.``. The audio VAE keeps its names except for the
statistics. LTX-2.0's HiFi-GAN vocoder renames four name parts. LTX-2.3's BigVGAN-v2 + bandwidth extension
(``vocoder.vocoder.*``, ``vocoder.bwe_generator.*``, ``vocoder.mel_stft.*``, announced by a nested
``{"vocoder", "bwe"}`` header block) renames the same parts inside both generators plus ``act_post -> act_out``,
and drops the ``lowpass`` level of ``downsample.lowpass.filter``; its ``mel_stft`` buffers keep their names.
Renames act on whole name parts, so ``ups`` never touches ``upsample``.
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
# inside the two generators of LTX-2.3's vocoder (``vocoder.vocoder.*``, ``vocoder.bwe_generator.*``)
BWE_GENERATOR_RENAMES: dict[str, str] = {**VOCODER_RENAMES, "act_post": "act_out"}
BWE_GENERATORS = ("vocoder", "bwe_generator")
BWE_MEL_STFT = "mel_stft"
# header keys of the nested LTX-2.3 block that the tensors cannot tell (never defaulted)
BWE_REQUIRED_HEADER_KEYS: tuple[str, ...] = (
    "vocoder.upsample_rates", "vocoder.resblock_dilation_sizes", "bwe.upsample_rates", "bwe.resblock_dilation_sizes",
    "bwe.hop_length", "bwe.input_sampling_rate", "bwe.output_sampling_rate",
)
# what ltx-core 1.0.0 checks in both nested blocks
BWE_REQUIRED_VALUES: dict[str, Any] = {"resblock": "AMP1", "stereo": True, "activation": "snakebeta"}
_INVERSE_AUDIO_VAE = inverted(AUDIO_VAE_RENAMES)
_INVERSE_VOCODER = inverted(VOCODER_RENAMES)
_INVERSE_BWE_GENERATOR = inverted(BWE_GENERATOR_RENAMES)

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
    """Diffusers name of an original vocoder key (LTX-2.0 or LTX-2.3), or ``None`` if the key is not a vocoder
    tensor."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split(".")
    if parts[0] == BWE_MEL_STFT:
        return ".".join(parts)
    if parts[0] in BWE_GENERATORS:
        inner = [p for i, p in enumerate(parts[1:]) if not (p == "lowpass" and parts[i] == "downsample")]
        return parts[0] + "." + rename_parts(inner, BWE_GENERATOR_RENAMES)
    return rename_parts(parts, VOCODER_RENAMES)


def original_vocoder_key(key: str, prefix: str = VOCODER_PREFIX) -> str:
    """Inverse of :func:`rename_vocoder_key`."""
    parts = key.split(".")
    if parts[0] == BWE_MEL_STFT:
        return prefix + key
    if parts[0] in BWE_GENERATORS:
        inner = rename_parts(parts[1:], _INVERSE_BWE_GENERATOR).split(".")
        if len(inner) > 1 and inner[-2:] == ["downsample", "filter"]:
            inner.insert(len(inner) - 1, "lowpass")
        return prefix + parts[0] + "." + ".".join(inner)
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

    A nested ``{"vocoder", "bwe"}`` block (LTX-2.3) gives an ``LTX2VocoderWithBWE`` config (see
    :func:`bwe_vocoder_config_from_original`); a flat block the LTX-2.0 ``LTX2Vocoder`` config: strides and dilations
    cannot be read from shapes and come from the header (LTX-2.0 values when absent); the input width is read from
    ``conv_pre`` (ltx-core hard-wires it to 128). :func:`vocoder_model_class` names the class.
    """
    if "bwe" in header:
        return bwe_vocoder_config_from_original(header, state_dict, prefix)
    if header.get("resblock", "1") != "1":
        raise ValueError(
            f"unknown vocoder variant: the header's vocoder block has resblock {header.get('resblock')!r} and no "
            f"'bwe' block. Supported: the LTX-2.0 vocoder (resblock '1') and LTX-2.3's nested 'vocoder' + 'bwe' "
            f"blocks (resblock 'AMP1')."
        )
    sd = state_dict
    p = prefix
    nested = sorted(k for k in sd if k.startswith(p) and k[len(p):].split(".")[0] in (*BWE_GENERATORS, BWE_MEL_STFT))
    if nested or p + "conv_pre.weight" not in sd:
        found = f"LTX-2.3's vocoder tensors ({nested[0]}, ...)" if nested else f"no {p}conv_pre.weight"
        raise ValueError(f"the header's vocoder block is flat (LTX-2.0's HiFi-GAN) but the checkpoint has {found}: "
                         f"header and tensors disagree (an LTX-2.3 header nests the block as "
                         f"{{'vocoder': ..., 'bwe': ...}}).")
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


def vocoder_model_class(header: Mapping[str, Any]) -> type:
    """The class a vocoder header block converts to: ``LTX2VocoderWithBWE`` for a nested ``bwe`` block (LTX-2.3),
    else ``LTX2Vocoder``."""
    from ..models.vocoder_bwe_ltx2 import LTX2VocoderWithBWE
    from ..models.vocoder_ltx2 import LTX2Vocoder

    return LTX2VocoderWithBWE if "bwe" in header else LTX2Vocoder


def _header_value(block: Mapping[str, Any], key: str, where: str) -> Any:  # noqa: ANN401
    if key not in block:
        raise ValueError(f"the checkpoint header lacks {where}[{key!r}], which the tensors cannot tell; pass an "
                         f"unmodified original LTX-2.3 checkpoint.")
    return block[key]


def _bwe_generator_config(block: Mapping[str, Any], sd: Mapping[str, torch.Tensor], stem: str, where: str
                          ) -> dict[str, Any]:
    """``LTX2Vocoder`` arguments of one BigVGAN-v2 generator (AMP blocks, anti-aliased SnakeBeta) under ``stem``."""
    for key, expected in BWE_REQUIRED_VALUES.items():
        if block.get(key) != expected:
            raise ValueError(
                f"unknown LTX-2.3 vocoder variant: {where}[{key!r}] is {block.get(key)!r}, the BigVGAN-v2 + "
                f"bandwidth-extension vocoder has {expected!r} (ltx-core 1.0.0 checks {dict(BWE_REQUIRED_VALUES)} in "
                f"both nested blocks)."
            )
    if stem + "conv_pre.weight" not in sd:
        raise ValueError(f"no {stem}conv_pre.weight in the checkpoint: the header announces LTX-2.3's vocoder with "
                         f"bandwidth extension, the tensors do not hold it.")
    hidden, in_channels = sd[stem + "conv_pre.weight"].shape[:2]
    stages = _indices(sd, stem + "ups.")
    per_stage = len(_indices(sd, stem + "resblocks.")) // max(len(stages), 1)
    factors = [int(f) for f in _header_value(block, "upsample_rates", where)]
    dilations = [[int(d) for d in ds] for ds in _header_value(block, "resblock_dilation_sizes", where)]
    if len(factors) != len(stages) or len(dilations) != per_stage:
        raise ValueError(f"{where} lists {len(factors)} upsample rates and {len(dilations)} dilation sets; the "
                         f"checkpoint has {len(stages)} stages of {per_stage} residual blocks under {stem!r}.")
    return {
        "in_channels": in_channels,
        "hidden_channels": hidden,
        "out_channels": sd[stem + "conv_post.weight"].shape[0],
        "upsample_kernel_sizes": [sd[stem + f"ups.{i}.weight"].shape[2] for i in stages],
        "upsample_factors": factors,
        "resnet_kernel_sizes": [sd[stem + f"resblocks.{j}.convs1.0.weight"].shape[2] for j in range(per_stage)],
        "resnet_dilations": dilations,
        "act_fn": "snakebeta",
        "antialias": True,
        "antialias_ratio": 2,  # ltx-core's Activation1d: x2 up and down
        "antialias_kernel_size": sd[stem + "act_post.upsample.filter"].shape[-1],
        "final_bias": stem + "conv_post.bias" in sd,
    }


def bwe_vocoder_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], prefix: str = VOCODER_PREFIX
) -> dict[str, Any]:
    """``LTX2VocoderWithBWE`` config from LTX-2.3's nested ``{"vocoder": ..., "bwe": ...}`` header block and the
    tensors' shapes.

    Both blocks must say ``resblock "AMP1"``, ``stereo true``, ``activation "snakebeta"`` (what ltx-core checks).
    Widths, kernels, the anti-aliasing filter size, biases, the STFT size and mel bins come from the tensors; rates,
    dilations and the hop from the header. The first stage ends as the reference builds it: ``tanh`` when
    ``use_tanh_at_final`` (default true) else a clamp to [-1, 1] (diffusers' own converter drops that clamp); the
    BWE generator never has a final activation. The STFT window is ``n_fft`` long (ltx-core ignores ``win_size``).
    """
    first_block, bwe_block = header.get("vocoder", {}), header["bwe"]
    sd = state_dict
    first = _bwe_generator_config(first_block, sd, prefix + "vocoder.", "config['vocoder']['vocoder']")
    second = _bwe_generator_config(bwe_block, sd, prefix + "bwe_generator.", "config['vocoder']['bwe']")
    n_fft = sd[prefix + "mel_stft.stft_fn.forward_basis"].shape[-1]
    mels = sd[prefix + "mel_stft.mel_basis"].shape[0]
    for key, value in (("n_fft", n_fft), ("num_mels", mels)):
        if key in bwe_block and bwe_block[key] != value:
            raise ValueError(f"config['vocoder']['bwe'][{key!r}] is {bwe_block[key]!r} but the mel_stft tensors "
                             f"have {value}.")
    where = "config['vocoder']['bwe']"
    return {
        **first,
        "final_act_fn": "tanh" if first_block.get("use_tanh_at_final", True) else "clamp",
        **{"bwe_" + k: v for k, v in second.items()},
        "bwe_final_act_fn": None,
        "filter_length": n_fft,
        "hop_length": _header_value(bwe_block, "hop_length", where),
        "window_length": n_fft,
        "num_mel_channels": mels,
        "input_sampling_rate": _header_value(bwe_block, "input_sampling_rate", where),
        "output_sampling_rate": _header_value(bwe_block, "output_sampling_rate", where),
    }
