"""The transformer rename table: original single-file names -> diffusers names, strictly checked."""

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.conversion import (
    TRANSFORMER_PREFIX,
    check_state_dict,
    convert_transformer_state_dict,
    expected_shapes,
    original_transformer_key,
    rename_transformer_key,
    transformer_config_from_original,
)

from .oracles import LTXModelConfigurator, ltxcore_header

HEADER_19B = ltxcore_header(
    num_layers=48, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096,
    audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048, caption_channels=3840,
)


@pytest.fixture(scope="module")
def original_19b_shapes() -> dict[str, torch.Size]:
    """Every transformer tensor of the 19B single file, as ltx-core 1.0.0 names them (built on the meta device)."""
    with torch.device("meta"):
        reference = LTXModelConfigurator.from_config({"transformer": HEADER_19B})
    shapes = {TRANSFORMER_PREFIX + k: v.shape for k, v in reference.state_dict().items()}
    # connector tensors share the prefix in the real file and must be left to the connectors component
    shapes[TRANSFORMER_PREFIX + "video_embeddings_connector.learnable_registers"] = torch.Size([128, 3840])
    return shapes


def test_19b_original_names_map_one_to_one_onto_our_model(original_19b_shapes):
    fake = {k: torch.empty(s, device="meta") for k, s in original_19b_shapes.items()}
    config = transformer_config_from_original(HEADER_19B, fake)
    with torch.device("meta"):
        ours = LTX2AudioVideoTransformer(**config)
    converted = convert_transformer_state_dict(fake, expected_shapes(ours))  # strict: raises on any mismatch
    assert len(converted) == 3510
    assert config == {**config, "num_layers": 48, "audio_in_channels": 128, "caption_channels": 3840,
                      "rope_type": "split", "rope_double_precision": True,
                      "cross_attn_timestep_scale_multiplier": 1000}


def test_rename_examples_and_inverse():
    cases = {
        "patchify_proj.weight": "proj_in.weight",
        "audio_adaln_single.emb.timestep_embedder.linear_1.bias":
            "audio_time_embed.emb.timestep_embedder.linear_1.bias",
        "av_ca_a2v_gate_adaln_single.linear.weight": "av_cross_attn_video_a2v_gate.linear.weight",
        "transformer_blocks.7.scale_shift_table_a2v_ca_audio":
            "transformer_blocks.7.audio_a2v_cross_attn_scale_shift_table",
        "transformer_blocks.0.audio_to_video_attn.q_norm.weight":
            "transformer_blocks.0.audio_to_video_attn.norm_q.weight",
        "transformer_blocks.3.ff.net.0.proj.weight": "transformer_blocks.3.ff.net.0.proj.weight",
    }
    for original, ours in cases.items():
        assert rename_transformer_key(TRANSFORMER_PREFIX + original) == ours
        assert original_transformer_key(ours) == TRANSFORMER_PREFIX + original
    assert rename_transformer_key("model.diffusion_model.audio_embeddings_connector.learnable_registers") is None
    assert rename_transformer_key("vae.encoder.conv_in.conv.weight") is None


def test_strict_check_names_missing_unexpected_and_mismatched():
    expected = {"a.weight": (2, 2), "b.weight": (3,)}
    with pytest.raises(ValueError) as info:
        check_state_dict({"a.weight": torch.zeros(2, 3), "c.weight": torch.zeros(1)}, expected, "transformer")
    text = str(info.value)
    assert "missing: b.weight" in text and "unexpected: c.weight" in text and "a.weight: checkpoint (2, 3)" in text


def test_no_transformer_tensors_is_a_clear_error():
    with pytest.raises(ValueError, match="model.diffusion_model."):
        convert_transformer_state_dict({"vae.encoder.conv_in.conv.weight": torch.zeros(1)})
