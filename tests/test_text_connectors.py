"""Our text connectors on their own: real-size structure, the diffusers folder format, the pure functions, batching,
and input validation."""

import math

import pytest
import torch

from ltx2_diffusers.models.text_connectors_ltx2 import (
    LTX2TextConnectors,
    LTX2TextEmbeddings,
    connector_rotary,
    normalize_text_hidden_states,
    substitute_registers,
)

from .oracles_text import HIDDEN, LAYERS, diffusers_connectors, random_hidden_states, tiny_connectors


def test_default_config_is_the_released_model():
    with torch.device("meta"):
        model = LTX2TextConnectors()
    assert sum(p.numel() for p in model.parameters()) == 1_431_475_200
    assert len(model.state_dict()) == 59
    c = model.config
    assert (c.caption_channels, c.text_proj_in_factor, c.rope_type, c.connector_rope_base_seq_len) == (
        3840, 49, "split", 4096)
    assert model.num_text_encoder_layers == 48 and model.register_multiple == 128
    assert model.text_proj_in.bias is None
    assert model.video_connector.learnable_registers.shape == (128, 3840)


def test_real_size_state_dict_names_and_shapes_equal_diffusers():
    from diffusers.pipelines.ltx2 import LTX2TextConnectors as DiffusersConnectors

    with torch.device("meta"):
        ours, theirs = LTX2TextConnectors(), DiffusersConnectors(rope_type="split")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_loads_a_diffusers_saved_connectors_folder_unchanged(tmp_path):
    reference = diffusers_connectors(seed=3)
    reference.save_pretrained(tmp_path / "connectors")
    ours, info = LTX2TextConnectors.from_pretrained(tmp_path / "connectors", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert ours.config.video_connector_num_learnable_registers == 8 and ours.config.rope_type == "split"
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    # and the other way round: diffusers loads what we save
    ours.save_pretrained(tmp_path / "ours")
    back, info = type(reference).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []


def test_normalization_follows_the_formula_per_layer_over_valid_tokens():
    x = torch.tensor([[[[9.0, -9.0], [9.0, 9.0]],  # token 0 is padding: its values must not count
                       [[1.0, 10.0], [3.0, 20.0]],
                       [[2.0, 30.0], [6.0, 40.0]]]])  # [B=1, T=3, D=2, L=2]
    valid = torch.tensor([[False, True, True]])
    out = normalize_text_hidden_states(x, valid)
    assert out.shape == (1, 3, 4)
    for layer, values in enumerate(([1.0, 3.0, 2.0, 6.0], [10.0, 20.0, 30.0, 40.0])):
        mean, spread = sum(values) / (4 + 1e-6), max(values) - min(values)
        for t in (1, 2):
            for d in range(2):
                expected = 8 * (x[0, t, d, layer].item() - mean) / (spread + 1e-6)
                assert out[0, t, d * 2 + layer].item() == pytest.approx(expected, abs=1e-5)  # hidden-major
    assert out[0, 0].abs().max() == 0


def test_registers_fill_the_tail_by_absolute_position_and_valid_tokens_keep_their_order():
    tokens = torch.arange(8.0).view(1, 8, 1).repeat(3, 1, 1) + 100  # [3, 8, 1], value = 100 + position
    valid = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1],  # left padded, 3 tokens
                          [1, 1, 1, 1, 1, 1, 1, 1],  # full
                          [0, 1, 0, 1, 1, 0, 0, 1]], dtype=torch.bool)  # scattered
    registers = -torch.arange(1.0, 5.0).view(4, 1)  # R = 4: -1, -2, -3, -4
    out = substitute_registers(tokens, valid, registers)[..., 0]
    assert out[0].tolist() == [105, 106, 107, -4, -1, -2, -3, -4]
    assert out[1].tolist() == [100 + i for i in range(8)]
    assert out[2].tolist() == [101, 103, 104, 107, -1, -2, -3, -4]


def test_connector_rope_uses_the_bare_token_index_over_max_position():
    # theta 10 keeps the angles small enough for float32 to resolve the position convention exactly
    table = connector_rotary(tokens=3, inner_dim=8, num_heads=1, max_position=64.0, theta=10.0,
                             double_precision=True, rope_type="split", dtype=torch.float32, device=torch.device("cpu"))
    assert table.cos.shape == (1, 3, 1, 4)
    for p in range(3):
        for k in range(4):
            angle = (math.pi / 2) * 10.0 ** (k / 3) * (2 * p / 64 - 1)  # index p itself, not p + 1/2
            assert table.cos[0, p, 0, k].item() == pytest.approx(math.cos(angle), abs=1e-5)
            assert table.sin[0, p, 0, k].item() == pytest.approx(math.sin(angle), abs=1e-5)


def test_three_prompts_in_one_batch_equal_three_single_prompt_runs():
    model = tiny_connectors()
    hidden, mask = random_hidden_states([3, 17, 32], tokens=32)
    with torch.no_grad():
        batched = model(hidden, mask)
        for i in range(3):
            single = model(tuple(h[i:i + 1] for h in hidden), mask[i:i + 1])
            for got, want in zip(batched, single):
                assert (got[i:i + 1] - want).abs().max().item() <= 1e-6
    assert batched.video_embeds.abs().mean() > 0.1 and not torch.allclose(batched.video_embeds, batched.audio_embeds)
    assert batched.attention_mask.dtype == torch.int64 and bool((batched.attention_mask == 1).all())


def test_padding_content_never_reaches_the_output():
    model = tiny_connectors()
    hidden, mask = random_hidden_states([5, 11], tokens=16)
    other = tuple(torch.where(mask[..., None].bool(), h, torch.randn_like(h) * 50) for h in hidden)
    with torch.no_grad():
        for got, want in zip(model(hidden, mask), model(other, mask)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_sequence_stacked_and_packed_inputs_agree():
    model = tiny_connectors()
    hidden, mask = random_hidden_states([6, 16], tokens=16)
    stacked = torch.stack(hidden, dim=-1)  # [B, T, D, L]
    with torch.no_grad():
        reference = model(hidden, mask)
        for variant in (stacked, stacked.flatten(2)):  # packed: hidden-major / layer-minor
            for got, want in zip(model(variant, mask.bool()), reference):
                torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert isinstance(reference, LTX2TextEmbeddings)


def test_without_registers_pads_are_masked_zeroed_and_batching_still_exact():
    model = tiny_connectors(video_connector_num_learnable_registers=None,
                            audio_connector_num_learnable_registers=None)
    hidden, mask = random_hidden_states([4, 16, 9], tokens=16)
    with torch.no_grad():
        out = model(hidden, mask)
        single = model(tuple(h[:1] for h in hidden), mask[:1])
    torch.testing.assert_close(out.attention_mask, mask)
    assert out.video_embeds[0, :12].abs().max() == 0 and out.audio_embeds[0, :12].abs().max() == 0
    assert (out.video_embeds[:1] - single.video_embeds).abs().max() <= 1e-6


def test_gradient_checkpointing_gives_the_same_result():
    model = tiny_connectors().train()
    hidden, mask = random_hidden_states([7, 16], tokens=16)
    plain = model(hidden, mask).video_embeds
    model.enable_gradient_checkpointing()
    checkpointed = model(hidden, mask).video_embeds
    checkpointed.sum().backward()
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=1e-6)
    assert model.video_connector.learnable_registers.grad is not None


@pytest.mark.parametrize("case, message", [
    ("width", "hidden size 32 and 2 layers"),
    ("states", "3 stacked hidden states"),
    ("length", "multiple of the connectors' 8 learnable registers"),
    ("mask", "attention_mask must be a [2, 16] tensor"),
    ("padding_side", "padding_side must be 'left' or 'right'"),
])
def test_bad_inputs_raise_clear_errors(case, message):
    model = tiny_connectors()
    hidden, mask = random_hidden_states([3, 16], tokens=16)
    kwargs = {}
    if case == "width":
        hidden, mask = random_hidden_states([3, 16], tokens=16, width=40)  # e.g. another Gemma size
    elif case == "states":
        hidden = hidden[:2]
    elif case == "length":
        hidden, mask = random_hidden_states([3, 12], tokens=12)
    elif case == "mask":
        mask = mask[:, :8]
    else:
        kwargs["padding_side"] = "middle"
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model(hidden, mask, **kwargs)


@pytest.mark.parametrize("overrides, message", [
    ({"per_modality_projections": True}, "video connector width 2 x 16 = 32 must equal video_hidden_dim=4096"),
    ({"per_modality_projections": True, "video_hidden_dim": 32}, "audio connector .* audio_hidden_dim=2048"),
    ({"video_connector_num_attention_heads": 3}, "must equal caption_channels=32"),
    ({"audio_connector_num_learnable_registers": None}, "Both connectors must use learnable registers"),
    ({"rope_type": "spiral"}, "rope_type must be one of"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_connectors(**overrides)


def test_tiny_sizes_match_the_tiny_gemma():
    model = tiny_connectors()
    assert model.config.caption_channels == HIDDEN and model.num_text_encoder_layers == LAYERS
