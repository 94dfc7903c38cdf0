"""Original LTX-2 single-file checkpoint -> diffusers-format text connectors: rename table, config, strict apply.

The single file stores the feature projection(s) at the top level (``text_embedding_projection.aggregate_embed`` for
LTX-2.0, ``text_embedding_projection.{video,audio}_aggregate_embed`` for LTX-2.3) and the two connectors beside the
transformer (``model.diffusion_model.{video,audio}_embeddings_connector.``). Names are renamed part by part
(dot-separated), so a part is either renamed as a whole or kept.

Which feature extractor a file uses is written in the header's ``transformer`` block: LTX-2.3 sets four
``caption_proj*`` keys (:data:`V2_TEXT_PROJECTION_HEADER`); LTX-2.0 sets none of them.
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
    "video_aggregate_embed": "video_text_proj_in",
    "audio_aggregate_embed": "audio_text_proj_in",
    "video_embeddings_connector": "video_connector",
    "audio_embeddings_connector": "audio_connector",
    "transformer_1d_blocks": "transformer_blocks",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
}
_INVERSE_RENAMES = inverted(CONNECTORS_RENAMES)
_PROJECTIONS = ("aggregate_embed", "video_aggregate_embed", "audio_aggregate_embed")

# The header keys that select LTX-2.3's feature extractor (per-token RMS norm, one biased projection per stream) and
# the only values ltx-core 1.0.0 accepts; LTX-2.0 headers have none of them.
V2_TEXT_PROJECTION_HEADER: dict[str, bool] = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}
# ltx-core 1.0.0 takes the text encoder's width from its fixed Gemma-3-12B config, not from the file
GEMMA_3_12B_HIDDEN_SIZE = 3840


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
    prefix = TEXT_PROJECTION_PREFIX if name.split(".")[0] in _PROJECTIONS else CONNECTORS_PREFIX
    return prefix + name


def uses_v2_text_projection(header: Mapping[str, Any]) -> bool:
    """Whether the ``transformer`` header block selects LTX-2.3's feature extractor (all four
    :data:`V2_TEXT_PROJECTION_HEADER` keys with those values) or LTX-2.0's (none of them); anything else raises a
    ``ValueError`` naming the keys, as ltx-core 1.0.0 refuses such a file."""
    present = [k for k in V2_TEXT_PROJECTION_HEADER if k in header]
    if not present:
        return False
    expected = ", ".join(f"{k}={v}" for k, v in V2_TEXT_PROJECTION_HEADER.items())
    missing = [k for k in V2_TEXT_PROJECTION_HEADER if k not in header]
    if missing:
        raise ValueError(f"The header sets {', '.join(present)} but not {', '.join(missing)}: an LTX-2.3 header has "
                         f"all four ({expected}), an LTX-2.0 header none of them.")
    wrong = [f"{k}={header[k]!r} (expected {v!r})" for k, v in V2_TEXT_PROJECTION_HEADER.items() if header[k] != v]
    if wrong:
        raise ValueError(f"Unknown text-projection variant in the header: {', '.join(wrong)}. Only LTX-2.3's "
                         f"({expected}) and LTX-2.0's (none of these keys) exist.")
    return True


def convert_connectors_state_dict(
    original: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None
) -> dict[str, torch.Tensor]:
    """Selects and renames the text-projection and connector tensors of an original checkpoint.

    With ``expected`` (name -> shape of the target model), the result is checked strictly: no missing key, no
    unexpected key, no shape mismatch, else a ``ValueError`` that lists them.
    """
    where = f"starts with {TEXT_PROJECTION_PREFIX!r} or {CONNECTORS_PREFIX!r} + one of {CONNECTOR_STREAMS}"
    return select_and_rename(original, rename_connectors_key, "text-connector", where, expected)


def _header_value(header: Mapping[str, Any], stream: str, name: str, default: Any) -> Any:  # noqa: ANN401
    """``connector_<name>``; the audio connector reads ``audio_connector_<name>`` first (ltx-core's fallback)."""
    value = header.get(f"connector_{name}", default)
    return header.get(f"audio_connector_{name}", value) if stream == "audio" else value


def _stream_config(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], stream: str, gated: bool
) -> tuple[int, int, int, int | None]:
    """(heads, head_dim, layers, registers) of one connector, from the header and checked against the tensors."""
    prefix = f"{CONNECTORS_PREFIX}{stream}_embeddings_connector."
    block_prefix = prefix + "transformer_1d_blocks."
    blocks = {int(k[len(block_prefix):].split(".")[0]) for k in state_dict if k.startswith(block_prefix)}
    if not blocks:
        raise ValueError(f"The checkpoint has no {stream} connector blocks ({prefix}transformer_1d_blocks.*).")
    heads = _header_value(header, stream, "num_attention_heads", 30)
    head_dim = _header_value(header, stream, "attention_head_dim", 128)
    width = state_dict[block_prefix + "0.attn1.to_q.weight"].shape[0]
    if heads * head_dim != width:
        raise ValueError(f"The header gives the {stream} connector {heads} heads x {head_dim}, but its attention "
                         f"is {width} wide.")
    layers = _header_value(header, stream, "num_layers", None)
    if layers is not None and layers != len(blocks):
        raise ValueError(f"The header gives the {stream} connector {layers} layers, but the checkpoint has "
                         f"{len(blocks)} ({block_prefix}*).")
    gate = block_prefix + "0.attn1.to_gate_logits.weight"
    if (gate in state_dict) != gated:
        raise ValueError(f"connector_apply_gated_attention={gated} in the header, but the checkpoint "
                         f"{'lacks' if gated else 'has'} {gate}.")
    if gated and state_dict[gate].shape[0] != heads:
        raise ValueError(f"{gate} has shape {tuple(state_dict[gate].shape)}: {state_dict[gate].shape[0]} gates for "
                         f"{heads} heads.")
    registers = state_dict.get(prefix + "learnable_registers")
    # the tensor is the truth: ltx-core 1.0.0 ignores the header's register count
    return heads, head_dim, len(blocks), None if registers is None else registers.shape[0]


def _projection_config(header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], v2: bool
                       ) -> dict[str, Any]:
    """caption_channels, text_proj_in_factor, the projection widths and bias, from the projection tensors."""
    names = ("video_aggregate_embed", "audio_aggregate_embed") if v2 else ("aggregate_embed",)
    other = ("aggregate_embed",) if v2 else ("video_aggregate_embed", "audio_aggregate_embed")
    variant, other_variant = ("LTX-2.3 (the header's caption_proj* keys)", "LTX-2.0's") if v2 else (
        "LTX-2.0 (no caption_proj* keys in the header)", "LTX-2.3's")
    strays = sorted(k for k in state_dict for n in other if k.startswith(f"{TEXT_PROJECTION_PREFIX}{n}."))
    weights = [TEXT_PROJECTION_PREFIX + n + ".weight" for n in names]
    absent = [k for k in weights if k not in state_dict]
    if strays or absent:
        found = f"has {', '.join(strays)} ({other_variant})" if strays else f"has no {', '.join(absent)}"
        raise ValueError(f"The header describes {variant} text projections, but the checkpoint {found}.")
    shapes = [tuple(state_dict[k].shape) for k in weights]
    flat = shapes[0][1]
    if any(shape[1] != flat for shape in shapes):
        raise ValueError(f"The text projections {', '.join(weights)} read different input widths: {shapes}.")
    caption = header.get("caption_channels", GEMMA_3_12B_HIDDEN_SIZE) if v2 else shapes[0][0]
    if flat % caption:
        width = f"the text encoder's width {caption} (caption_channels)" if v2 else f"its output width {caption}"
        raise ValueError(f"{weights[0]} has shape {shapes[0]}: its input width {flat} is not a multiple of {width}.")
    if header.get("caption_channels", caption) != caption:
        raise ValueError(f"The header's caption_channels={header['caption_channels']} disagrees with {weights[0]} "
                         f"({caption} outputs).")
    biases = [TEXT_PROJECTION_PREFIX + n + ".bias" in state_dict for n in names]
    if len(set(biases)) > 1:
        raise ValueError(f"Of the text projections {', '.join(weights)} only some have a bias.")
    config = {"caption_channels": caption, "text_proj_in_factor": flat // caption, "proj_bias": biases[0],
              "per_modality_projections": v2}
    if v2:
        config.update(video_hidden_dim=shapes[0][0], audio_hidden_dim=shapes[1][0])
    return config


def connectors_config_from_original(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Diffusers connectors config from the original header's ``transformer`` block and the tensors' shapes.

    The feature extractor (LTX-2.0 or LTX-2.3) comes from the header (:func:`uses_v2_text_projection`) and must
    agree with the projection tensors present. The number of stacked hidden states (``text_proj_in_factor``, 49 for
    Gemma-3-12B) is not in the header: it is the projections' input width divided by the text encoder's width (the
    LTX-2.0 projection's output; for LTX-2.3 the header's ``caption_channels``, else Gemma-3-12B's 3840 as
    ltx-core 1.0.0 assumes). Connector heads and widths come from the header (the audio connector falls back to the
    video values), layer and register counts from the tensors. Keys the header omits take ltx-core 1.0.0's defaults
    (interleaved RoPE, float32 frequency grid, RoPE normaliser 1), because those are what the reference runs with.
    """
    v2 = uses_v2_text_projection(header)
    gated = header.get("connector_apply_gated_attention", False)
    if not isinstance(gated, bool):
        raise ValueError(f"connector_apply_gated_attention must be true or false, got {gated!r}.")
    config = _projection_config(header, state_dict, v2)
    video = _stream_config(header, state_dict, "video", gated)
    audio = _stream_config(header, state_dict, "audio", gated)
    widths = (config["video_hidden_dim"], config["audio_hidden_dim"]) if v2 else (config["caption_channels"],) * 2
    for stream, (heads, head_dim, _, _), width in zip(("video", "audio"), (video, audio), widths):
        if heads * head_dim != width:
            raise ValueError(f"The {stream} connector is {heads} x {head_dim} = {heads * head_dim} wide, but the text "
                             f"projection feeding it gives {width} channels.")
    return {
        "caption_channels": config["caption_channels"],
        "text_proj_in_factor": config["text_proj_in_factor"],
        "video_connector_num_attention_heads": video[0],
        "video_connector_attention_head_dim": video[1],
        "video_connector_num_layers": video[2],
        "video_connector_num_learnable_registers": video[3],
        "video_gated_attn": gated,
        "audio_connector_num_attention_heads": audio[0],
        "audio_connector_attention_head_dim": audio[1],
        "audio_connector_num_layers": audio[2],
        "audio_connector_num_learnable_registers": audio[3],
        "audio_gated_attn": gated,
        "connector_rope_base_seq_len": list(header.get("connector_positional_embedding_max_pos", [1]))[0],
        "rope_theta": header.get("positional_embedding_theta", 10000.0),
        "rope_double_precision": header.get("frequencies_precision", False) == "float64",
        "rope_type": header.get("rope_type", "interleaved"),
        "per_modality_projections": v2,
        "video_hidden_dim": config.get("video_hidden_dim", 4096),
        "audio_hidden_dim": config.get("audio_hidden_dim", 2048),
        "proj_bias": config["proj_bias"],
    }
