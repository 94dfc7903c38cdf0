"""Original LTX-2 single-file checkpoint -> diffusers-format text connectors: rename table, config, strict apply.

The single file stores the feature projection at the top level (``text_embedding_projection.aggregate_embed``) and
the two connectors beside the transformer (``model.diffusion_model.{video,audio}_embeddings_connector.``). Names are
renamed part by part (dot-separated), so a part is either renamed as a whole or kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .common import inverted, rename_parts, select_and_rename

TEXT_PROJECTION_PREFIX = "text_embedding_projection."
CONNECTORS_PREFIX = "model.diffusion_model."
CONNECTOR_STREAMS = ("video_embeddings_connector", "audio_embeddings_connector")

# original name part -> diffusers name part
CONNECTORS_RENAMES: dict[str, str] = {
    "aggregate_embed": "text_proj_in",
    "video_embeddings_connector": "video_connector",
    "audio_embeddings_connector": "audio_connector",
    "transformer_1d_blocks": "transformer_blocks",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
}
_INVERSE_RENAMES = inverted(CONNECTORS_RENAMES)
_LTX23_PROJECTIONS = ("video_aggregate_embed", "audio_aggregate_embed")


def rename_connectors_key(key: str) -> str | None:
    """Diffusers name of an original connector/projection key, or ``None`` if the key belongs elsewhere."""
    if key.startswith(TEXT_PROJECTION_PREFIX):
        parts = key[len(TEXT_PROJECTION_PREFIX):].split(".")
    elif key.startswith(CONNECTORS_PREFIX) and key[len(CONNECTORS_PREFIX):].split(".")[0] in CONNECTOR_STREAMS:
        parts = key[len(CONNECTORS_PREFIX):].split(".")
    else:
        return None
    return rename_parts(parts, CONNECTORS_RENAMES)


def original_connectors_key(key: str) -> str:
    """Inverse of :func:`rename_connectors_key` (diffusers name -> original single-file name)."""
    name = rename_parts(key, _INVERSE_RENAMES)
    prefix = TEXT_PROJECTION_PREFIX if name.startswith("aggregate_embed.") else CONNECTORS_PREFIX
    return prefix + name


def _check_ltx20(original: Mapping[str, Any]) -> None:
    if any(k.startswith(TEXT_PROJECTION_PREFIX + p) for k in original for p in _LTX23_PROJECTIONS):
        raise ValueError("This checkpoint has per-stream text projections (video_/audio_aggregate_embed): it is an "
                         "LTX-2.3 checkpoint. These connectors implement LTX-2.0; use an LTX-2.0 (19B) file.")


def convert_connectors_state_dict(
    original: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None
) -> dict[str, torch.Tensor]:
    """Selects and renames the text-projection and connector tensors of an original checkpoint.

    With ``expected`` (name -> shape of the target model), the result is checked strictly: no missing key, no
    unexpected key, no shape mismatch, else a ``ValueError`` that lists them.
    """
    _check_ltx20(original)
    where = f"starts with {TEXT_PROJECTION_PREFIX!r} or {CONNECTORS_PREFIX!r} + one of {CONNECTOR_STREAMS}"
    return select_and_rename(original, rename_connectors_key, "text-connector", where, expected)


def _stream_config(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], stream: str
) -> tuple[int, int, int, int | None]:
    """(heads, head_dim, layers, registers) of one connector; layers and registers come from the tensors."""
    prefix = f"{CONNECTORS_PREFIX}{stream}_embeddings_connector."
    block_prefix = prefix + "transformer_1d_blocks."
    blocks = {int(k[len(block_prefix):].split(".")[0]) for k in state_dict if k.startswith(block_prefix)}
    if not blocks:
        raise ValueError(f"The checkpoint has no {stream} connector blocks ({prefix}transformer_1d_blocks.*).")
    heads = header.get("connector_num_attention_heads", 30)
    head_dim = header.get("connector_attention_head_dim", 128)
    if stream == "audio":
        heads = header.get("audio_connector_num_attention_heads", heads)
        head_dim = header.get("audio_connector_attention_head_dim", head_dim)
    width = state_dict[prefix + "transformer_1d_blocks.0.attn1.to_q.weight"].shape[0]
    if heads * head_dim != width:
        raise ValueError(f"The header gives the {stream} connector {heads} heads x {head_dim}, but its attention "
                         f"is {width} wide.")
    registers = state_dict.get(prefix + "learnable_registers")
    # the tensor is the truth: ltx-core 1.0.0 ignores the header's register count
    return heads, head_dim, len(blocks), None if registers is None else registers.shape[0]


def connectors_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Diffusers connectors config from the original header's ``transformer`` block and the tensors' shapes.

    The number of stacked hidden states (``text_proj_in_factor``, 49 for Gemma-3-12B) is not in the header: it is
    the projection's input width divided by its output width (the caption channels). Keys the header omits take
    ltx-core 1.0.0's defaults (interleaved RoPE, float32 frequency grid, RoPE normaliser 1), because those are what
    the reference runs with.
    """
    _check_ltx20(state_dict)
    if header.get("connector_apply_gated_attention", False):
        raise ValueError("connector_apply_gated_attention=True describes LTX-2.3 connectors; these implement LTX-2.0.")
    key = TEXT_PROJECTION_PREFIX + "aggregate_embed.weight"
    if key not in state_dict:
        raise ValueError(f"The checkpoint has no {key}: it holds no LTX-2.0 text projection.")
    caption, flat = state_dict[key].shape
    if flat % caption:
        raise ValueError(f"{key} has shape {tuple(state_dict[key].shape)}: its input width {flat} is not a multiple "
                         f"of its output width {caption}.")
    if header.get("caption_channels", caption) != caption:
        raise ValueError(f"The header's caption_channels={header['caption_channels']} disagrees with {key} "
                         f"({caption} outputs).")
    video = _stream_config(header, state_dict, "video")
    audio = _stream_config(header, state_dict, "audio")
    return {
        "caption_channels": caption,
        "text_proj_in_factor": flat // caption,
        "video_connector_num_attention_heads": video[0],
        "video_connector_attention_head_dim": video[1],
        "video_connector_num_layers": video[2],
        "video_connector_num_learnable_registers": video[3],
        "audio_connector_num_attention_heads": audio[0],
        "audio_connector_attention_head_dim": audio[1],
        "audio_connector_num_layers": audio[2],
        "audio_connector_num_learnable_registers": audio[3],
        "connector_rope_base_seq_len": list(header.get("connector_positional_embedding_max_pos", [1]))[0],
        "rope_theta": header.get("positional_embedding_theta", 10000.0),
        "rope_double_precision": header.get("frequencies_precision", False) == "float64",
        "rope_type": header.get("rope_type", "interleaved"),
        "proj_bias": TEXT_PROJECTION_PREFIX + "aggregate_embed.bias" in state_dict,
    }
