"""LTX-2.3 text-connector conversion: the header selects the feature extractor, the real-size 2.3 original keys map
1:1 onto diffusers' 2.3 connector keys, and every inconsistency between header and tensors is a clear error."""

import pytest
import torch

from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.conversion.text import (
    connectors_config_from_original,
    convert_connectors_state_dict,
    original_connectors_key,
    rename_connectors_key,
    uses_v2_text_projection,
)
from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors

from .oracles_c23 import HEADER_23_REAL, REAL_23, V2_KEYS, real_keys


@pytest.fixture(scope="module")
def original_23() -> dict[str, torch.Tensor]:
    """The 262 text tensors of the real 2.3 single file (meta device)."""
    return real_keys("ORIGINAL")


def test_real_23_original_keys_map_one_to_one_onto_diffusers_connectors(original_23):
    config = connectors_config_from_original(HEADER_23_REAL, original_23)
    with torch.device("meta"):
        ours, released = LTX2TextConnectors(**config), LTX2TextConnectors(**REAL_23)
    assert {k: v for k, v in ours.config.items() if not k.startswith("_")} == {
        k: v for k, v in released.config.items() if not k.startswith("_")}
    converted = convert_connectors_state_dict(original_23, expected_shapes(ours))
    assert len(converted) == len(original_23) == 262
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in real_keys("DIFFUSERS").items()}
    for key in original_23:
        assert original_connectors_key(rename_connectors_key(key)) == key


def test_ltx23_names():
    projection = "text_embedding_projection.audio_aggregate_embed.bias"
    gate = "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.7.attn1.to_gate_logits.weight"
    assert rename_connectors_key(projection) == "audio_text_proj_in.bias"
    assert rename_connectors_key(gate) == "video_connector.transformer_blocks.7.attn1.to_gate_logits.weight"
    assert original_connectors_key("video_text_proj_in.weight") == (
        "text_embedding_projection.video_aggregate_embed.weight")


def test_the_header_selects_the_feature_extractor():
    assert uses_v2_text_projection({}) is False
    assert uses_v2_text_projection(dict(V2_KEYS)) is True
    partial = {k: v for k, v in V2_KEYS.items() if k != "caption_proj_input_norm"}
    with pytest.raises(ValueError, match="but not caption_proj_input_norm: an LTX-2.3 header has all four"):
        uses_v2_text_projection(partial)
    with pytest.raises(ValueError, match="caption_projection_first_linear=True"):
        uses_v2_text_projection({**V2_KEYS, "caption_projection_first_linear": True})


def test_audio_connector_falls_back_to_the_video_header_values(original_23):
    header = {k: v for k, v in HEADER_23_REAL.items() if not k.startswith("audio_connector_")}
    state = dict(original_23)  # an audio connector as wide as the video one, with 2 layers
    prefix = "model.diffusion_model.audio_embeddings_connector."
    for key in [k for k in state if k.startswith(prefix)]:
        del state[key]
    video = "model.diffusion_model.video_embeddings_connector."
    for key, value in original_23.items():
        if key.startswith(video) and (".transformer_1d_blocks." not in key or ".transformer_1d_blocks.0." in key
                                      or ".transformer_1d_blocks.1." in key):
            state[prefix + key[len(video):]] = value
    state["text_embedding_projection.audio_aggregate_embed.weight"] = torch.empty(4096, 188160, device="meta")
    state["text_embedding_projection.audio_aggregate_embed.bias"] = torch.empty(4096, device="meta")
    with pytest.raises(ValueError, match="header gives the audio connector 8 layers, but the checkpoint has 2"):
        connectors_config_from_original(header, state)
    config = connectors_config_from_original({**header, "audio_connector_num_layers": 2}, state)
    assert (config["audio_connector_num_attention_heads"], config["audio_connector_attention_head_dim"]) == (32, 128)
    assert (config["audio_connector_num_layers"], config["audio_hidden_dim"]) == (2, 4096)


@pytest.mark.parametrize("change, message", [
    ("v1-header", "LTX-2.0 .* but the checkpoint has text_embedding_projection.audio_aggregate_embed.bias"),
    ("v1-tensors", r"LTX-2.3 .* but the checkpoint has text_embedding_projection.aggregate_embed.weight \(LTX-2.0's"),
    ("no-video", "LTX-2.3 .* but the checkpoint has no text_embedding_projection.video_aggregate_embed.weight"),
    ("ungated", "connector_apply_gated_attention=False in the header, but the checkpoint has"),
    ("audio-width", "The audio connector is 32 x 64 = 2048 wide, but the text projection feeding it gives 1024"),
    ("one-bias", "only some have a bias"),
    ("caption", "not a multiple of the text encoder's width 4096"),
])
def test_ltx23_conversion_errors(original_23, change, message):
    state, header = dict(original_23), dict(HEADER_23_REAL)
    if change == "v1-header":
        header = {k: v for k, v in header.items() if k not in V2_KEYS}
    elif change == "v1-tensors":
        for stream in ("video", "audio"):
            for part in ("weight", "bias"):
                del state[f"text_embedding_projection.{stream}_aggregate_embed.{part}"]
        state["text_embedding_projection.aggregate_embed.weight"] = torch.empty(3840, 188160, device="meta")
    elif change == "no-video":
        del state["text_embedding_projection.video_aggregate_embed.weight"]
    elif change == "ungated":
        header["connector_apply_gated_attention"] = False
    elif change == "audio-width":
        state["text_embedding_projection.audio_aggregate_embed.weight"] = torch.empty(1024, 188160, device="meta")
    elif change == "one-bias":
        del state["text_embedding_projection.video_aggregate_embed.bias"]
    else:
        header["caption_channels"] = 4096
    with pytest.raises(ValueError, match=message):
        connectors_config_from_original(header, state)
