"""The text-connector rename table: original single-file names -> diffusers names, strictly checked."""

import pytest
import torch

from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.conversion.text import (
    connectors_config_from_original,
    convert_connectors_state_dict,
    original_connectors_key,
    rename_connectors_key,
)
from ltx2_diffusers.conversion.transformer import rename_transformer_key
from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors

from .oracles_text import HEADER_19B_STYLE, ltxcore_processor, original_state_dict

HEADER_19B = {**HEADER_19B_STYLE, "connector_num_attention_heads": 30, "connector_attention_head_dim": 128,
              "caption_channels": 3840}


@pytest.fixture(scope="module")
def original_19b() -> dict[str, torch.Tensor]:
    """The 59 text tensors of the 19B single file, named as ltx-core 1.0.0's loader expects (meta device)."""
    with torch.device("meta"):
        reference = ltxcore_processor(HEADER_19B, registers=128, states=49)
    return original_state_dict(reference)


def test_19b_original_names_map_one_to_one_onto_the_released_config(original_19b):
    config = connectors_config_from_original(HEADER_19B, original_19b)
    with torch.device("meta"):
        ours = LTX2TextConnectors(**config)
        released = LTX2TextConnectors()
    assert {k: v for k, v in ours.config.items() if not k.startswith("_")} == {
        k: v for k, v in released.config.items() if not k.startswith("_")}
    converted = convert_connectors_state_dict(original_19b, expected_shapes(ours))
    assert len(converted) == len(original_19b) == 59
    assert converted["text_proj_in.weight"].shape == (3840, 188160)
    assert "video_connector.transformer_blocks.1.attn1.norm_k.weight" in converted
    for key in original_19b:
        assert original_connectors_key(rename_connectors_key(key)) == key


def test_connector_and_transformer_tables_split_the_single_file():
    connector = "model.diffusion_model.audio_embeddings_connector.transformer_1d_blocks.0.attn1.q_norm.weight"
    projection = "text_embedding_projection.aggregate_embed.weight"
    block = "model.diffusion_model.transformer_blocks.0.attn1.q_norm.weight"
    assert rename_connectors_key(connector) == "audio_connector.transformer_blocks.0.attn1.norm_q.weight"
    assert rename_connectors_key(projection) == "text_proj_in.weight"
    assert rename_connectors_key(block) is None and rename_connectors_key("vae.decoder.conv_in.conv.weight") is None
    assert rename_transformer_key(connector) is None and rename_transformer_key(projection) is None


def test_projection_factor_comes_from_the_weight_and_missing_header_keys_take_ltxcore_defaults(original_19b):
    small = {k: v for k, v in original_19b.items()}
    small["text_embedding_projection.aggregate_embed.weight"] = torch.empty(3840, 3840 * 35, device="meta")
    config = connectors_config_from_original({}, small)  # e.g. a 34-layer encoder's features
    assert config["text_proj_in_factor"] == 35 and config["caption_channels"] == 3840
    assert (config["rope_type"], config["rope_double_precision"], config["connector_rope_base_seq_len"]) == (
        "interleaved", False, 1)
    assert config["video_connector_num_learnable_registers"] == 128  # read from the tensor


def test_strict_conversion_reports_every_problem(original_19b):
    with torch.device("meta"):
        ours = LTX2TextConnectors()
    broken = dict(original_19b)
    del broken["model.diffusion_model.video_embeddings_connector.learnable_registers"]
    broken["model.diffusion_model.video_embeddings_connector.extra.weight"] = torch.empty(1, device="meta")
    with pytest.raises(ValueError, match="missing: video_connector.learnable_registers") as error:
        convert_connectors_state_dict(broken, expected_shapes(ours))
    assert "unexpected: video_connector.extra.weight" in str(error.value)


@pytest.mark.parametrize("change, message", [
    ("ltx23", "LTX-2.3"),
    ("nothing", "No text-connector tensors found"),
    ("factor", "not a multiple of its output width"),
    ("caption", "caption_channels=4096 disagrees"),
    ("heads", "24 heads x 128"),
])
def test_conversion_errors(original_19b, change, message):
    state, header = dict(original_19b), dict(HEADER_19B)
    if change == "ltx23":
        state["text_embedding_projection.video_aggregate_embed.weight"] = torch.empty(1, device="meta")
    elif change == "nothing":
        state = {"vae.decoder.conv_in.conv.weight": torch.empty(1, device="meta")}
    elif change == "factor":
        state["text_embedding_projection.aggregate_embed.weight"] = torch.empty(3840, 3841, device="meta")
    elif change == "caption":
        header["caption_channels"] = 4096
    else:
        header["connector_num_attention_heads"] = 24
    with pytest.raises(ValueError, match=message):
        if change == "nothing":
            convert_connectors_state_dict(state)
        else:
            connectors_config_from_original(header, state)
