"""Original LTX-2 single-file checkpoint -> diffusers-format transformer: rename table, config and strict apply.

The single file stores the transformer under ``model.diffusion_model.``; the text connectors live under the same
prefix (``video_embeddings_connector.`` / ``audio_embeddings_connector.``) and belong to the connectors component.
Names are renamed component by component (dot-separated parts), so the table is exact: a part is either renamed as a
whole or kept (``prompt_adaln_single`` is its own part, never touched by the ``adaln_single`` rule). LTX-2.0 and
LTX-2.3 files share the table; 2.3 adds ``prompt_adaln_single`` / ``audio_prompt_adaln_single`` and keeps
``to_gate_logits``, ``prompt_scale_shift_table`` and ``audio_prompt_scale_shift_table`` as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .common import inverted, rename_parts, select_and_rename
from .text import uses_v2_text_projection

TRANSFORMER_PREFIX = "model.diffusion_model."
CONNECTOR_PARTS = ("video_embeddings_connector", "audio_embeddings_connector")

# original name part -> diffusers name part
TRANSFORMER_RENAMES: dict[str, str] = {
    "patchify_proj": "proj_in",
    "audio_patchify_proj": "audio_proj_in",
    "adaln_single": "time_embed",
    "audio_adaln_single": "audio_time_embed",
    "prompt_adaln_single": "prompt_adaln",
    "audio_prompt_adaln_single": "audio_prompt_adaln",
    "av_ca_video_scale_shift_adaln_single": "av_cross_attn_video_scale_shift",
    "av_ca_audio_scale_shift_adaln_single": "av_cross_attn_audio_scale_shift",
    "av_ca_a2v_gate_adaln_single": "av_cross_attn_video_a2v_gate",
    "av_ca_v2a_gate_adaln_single": "av_cross_attn_audio_v2a_gate",
    "scale_shift_table_a2v_ca_video": "video_a2v_cross_attn_scale_shift_table",
    "scale_shift_table_a2v_ca_audio": "audio_a2v_cross_attn_scale_shift_table",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
}
_INVERSE_RENAMES = inverted(TRANSFORMER_RENAMES)


def rename_transformer_key(key: str, prefix: str = TRANSFORMER_PREFIX) -> str | None:
    """Diffusers name of an original transformer key, or ``None`` if the key is not a transformer tensor."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split(".")
    if parts[0] in CONNECTOR_PARTS:
        return None
    return rename_parts(parts, TRANSFORMER_RENAMES)


def original_transformer_key(key: str, prefix: str = TRANSFORMER_PREFIX) -> str:
    """Inverse of :func:`rename_transformer_key` (diffusers name -> original single-file name)."""
    return prefix + rename_parts(key, _INVERSE_RENAMES)


def convert_transformer_state_dict(
    original: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None,
    prefix: str = TRANSFORMER_PREFIX,
) -> dict[str, torch.Tensor]:
    """Selects and renames the transformer tensors of an original checkpoint.

    With ``expected`` (name -> shape of the target model), the result is checked strictly: no missing key, no
    unexpected key, no shape mismatch, else a ``ValueError`` that lists them.
    """
    return select_and_rename(original, lambda key: rename_transformer_key(key, prefix), "transformer",
                             f"starts with {prefix!r}", expected)


def _switch(header: Mapping[str, Any], key: str, in_tensors: bool, evidence: str) -> bool:
    """A boolean header switch (absent = ``False``, as in ltx-core), checked against the tensors it implies."""
    value = header.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"The header's {key} must be true or false, got {value!r}.")
    if value != in_tensors:
        raise ValueError(f"The header says {key}={value} but the checkpoint {'has' if in_tensors else 'lacks'} "
                         f"{evidence}: header and tensors disagree.")
    return value


def transformer_config_from_original(header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                                     prefix: str = TRANSFORMER_PREFIX) -> dict[str, Any]:
    """Diffusers transformer config from the original header's ``transformer`` block and the tensors' shapes.

    Keys the header omits take ltx-core 1.0.0's defaults (interleaved RoPE, float32 frequency grid, A<->V gate
    multiplier 1, no LTX-2.3 switch), because those are what the reference runs with; widths it cannot state are
    read from shapes. The LTX-2.3 switches (``apply_gated_attention``, ``cross_attention_adaln``, the four
    ``caption_proj*`` keys) must agree with the tensors present, else a ``ValueError`` says which.
    """
    h = dict(header)
    max_pos = list(h.get("positional_embedding_max_pos", [20, 2048, 2048]))
    audio_max_pos = list(h.get("audio_positional_embedding_max_pos", [20]))
    audio_in = state_dict[prefix + "audio_patchify_proj.weight"].shape[1]
    layers = {int(k[len(prefix):].split(".")[1]) for k in state_dict if k.startswith(prefix + "transformer_blocks.")}
    caption_key = prefix + "caption_projection.linear_1.weight"
    use_prompt_embeddings = not uses_v2_text_projection(h)
    if use_prompt_embeddings != (caption_key in state_dict):
        raise ValueError(f"The header's caption_proj* keys say the caption projection is "
                         f"{'in the transformer' if use_prompt_embeddings else 'in the text connectors'} but the "
                         f"checkpoint {'lacks' if use_prompt_embeddings else 'has'} {caption_key}.")
    caption = state_dict[caption_key].shape[1] if use_prompt_embeddings else h.get("caption_channels", 3840)
    gated = _switch(h, "apply_gated_attention", any(k.endswith(".to_gate_logits.weight") for k in state_dict),
                    "to_gate_logits tensors")
    cross_adaln = _switch(h, "cross_attention_adaln", prefix + "prompt_adaln_single.linear.weight" in state_dict,
                          "prompt_adaln_single")
    return {
        "in_channels": h.get("in_channels", 128),
        "out_channels": h.get("out_channels", 128),
        "num_attention_heads": h.get("num_attention_heads", 32),
        "attention_head_dim": h.get("attention_head_dim", 128),
        "cross_attention_dim": h.get("cross_attention_dim", 4096),
        "pos_embed_max_pos": max_pos[0],
        "base_height": max_pos[1],
        "base_width": max_pos[2],
        "audio_in_channels": audio_in,
        "audio_out_channels": h.get("audio_out_channels", 128),
        "audio_num_attention_heads": h.get("audio_num_attention_heads", 32),
        "audio_attention_head_dim": h.get("audio_attention_head_dim", 64),
        "audio_cross_attention_dim": h.get("audio_cross_attention_dim", 2048),
        "audio_pos_embed_max_pos": audio_max_pos[0],
        "num_layers": len(layers),
        "norm_eps": h.get("norm_eps", 1e-6),
        "caption_channels": caption,
        "rope_theta": h.get("positional_embedding_theta", 10000.0),
        "rope_double_precision": h.get("frequencies_precision", False) == "float64",
        "rope_type": h.get("rope_type", "interleaved"),
        "timestep_scale_multiplier": h.get("timestep_scale_multiplier", 1000),
        "cross_attn_timestep_scale_multiplier": h.get("av_ca_timestep_scale_multiplier", 1),
        "gated_attn": gated,
        "audio_gated_attn": gated,
        "cross_attn_mod": cross_adaln,
        "audio_cross_attn_mod": cross_adaln,
        "use_prompt_embeddings": use_prompt_embeddings,
        "perturbed_attn": gated or cross_adaln,  # diffusers' LTX-2.3 value (its STG needs it); no effect in ours
    }
