"""LTX-2.3 text path on its own: the V2 features and gates as pure functions, the real-size structure, the diffusers
folder format both ways, batching, input validation, and prompt encoding with the tiny Gemma."""

import math

import pytest
import torch

from ltx2_diffusers.models.layers import LTX2Attention, gate_heads
from ltx2_diffusers.models.text_connectors_ltx2 import (
    LTX2TextConnectors,
    per_token_rms_features,
    rescale_for_width,
)
from ltx2_diffusers.pipelines.text_encoding import LTX2PromptEncoder
from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

from .oracles_c23 import REAL_23, diffusers_ltx23_connectors, real_keys, tiny_ltx23_connectors
from .oracles_text import HIDDEN, LAYERS, random_hidden_states, tiny_connectors

T = 32
PROMPTS = ["a fox", "a red fox jumps over the lazy dog", "Rain on a tin roof, thunder far away. Night."]

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def test_per_token_rms_features_follow_the_formula_and_zero_the_pads():
    x = torch.tensor([[[[float("nan"), 9.0], [float("inf"), 9.0]],  # token 0 is padding: anything may be there
                       [[3.0, 1.0], [4.0, -1.0]],
                       [[0.0, 2.0], [2.0, 0.0]]]])  # [B=1, T=3, D=2, L=2]
    valid = torch.tensor([[False, True, True]])
    out = per_token_rms_features(x, valid)
    assert out.shape == (1, 3, 4)
    for t in (1, 2):
        for layer in range(2):
            rms = math.sqrt((x[0, t, 0, layer] ** 2 + x[0, t, 1, layer] ** 2).item() / 2 + 1e-6)
            for d in range(2):  # hidden-major / layer-minor
                assert out[0, t, d * 2 + layer].item() == pytest.approx(x[0, t, d, layer].item() / rms, abs=1e-6)
    assert out[0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_rescale_for_width_is_the_square_root_of_the_width_ratio():
    ones = torch.ones(2)
    assert rescale_for_width(ones, 4096, 3840)[0].item() == pytest.approx(1.0327955589886444)
    assert rescale_for_width(ones, 2048, 3840)[0].item() == pytest.approx(0.7302967433402214)


def test_head_gates_scale_each_head_by_twice_the_sigmoid():
    x = torch.arange(1.0, 7.0).view(1, 1, 6)  # 3 heads of width 2
    logits = torch.tensor([[[0.0, -100.0, math.log(3.0)]]])  # gates 1, 0, 1.5
    assert gate_heads(x, logits).flatten().tolist() == pytest.approx([1.0, 2.0, 0.0, 0.0, 7.5, 9.0])


def test_the_gate_also_scales_the_value_only_path_and_zero_logits_change_nothing():
    torch.manual_seed(0)
    attn = LTX2Attention(8, 2, 4, apply_gated_attention=True)
    x = torch.randn(2, 3, 8)
    assert attn.to_gate_logits.weight.shape == (2, 8)
    with torch.no_grad():
        got = attn(x, value_only=True)  # spatio-temporal guidance: the value path, still gated
        torch.testing.assert_close(got, attn.to_out(gate_heads(attn.to_v(x), attn.to_gate_logits(x))), rtol=0,
                                   atol=1e-6)
        plain = LTX2Attention(8, 2, 4)
        plain.load_state_dict({k: v for k, v in attn.state_dict().items() if "gate" not in k})
        assert (attn(x) - plain(x)).abs().max() > 1e-3
        torch.nn.init.zeros_(attn.to_gate_logits.weight)
        torch.nn.init.zeros_(attn.to_gate_logits.bias)
        torch.testing.assert_close(attn(x), plain(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Structure and the diffusers folder format
# ----------------------------------------------------------------------------------------------------------------


def test_real_size_ltx23_connectors_match_diffusers_keys_and_parameter_count():
    with torch.device("meta"):
        model = LTX2TextConnectors(**REAL_23)
    assert sum(p.numel() for p in model.parameters()) == 3_172_227_584
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in real_keys("DIFFUSERS").items()}  # 262 tensors
    assert model.embedding_dims == (4096, 2048) and model.register_multiple == 128
    assert model.num_text_encoder_layers == 48 and not hasattr(model, "text_proj_in")
    with torch.device("meta"):
        released = LTX2TextConnectors()
    assert sum(p.numel() for p in released.parameters()) == 1_431_475_200 and released.embedding_dims == (3840, 3840)


def test_loads_a_diffusers_ltx23_folder_unchanged_and_diffusers_loads_ours(tmp_path):
    reference = diffusers_ltx23_connectors(seed=3)
    reference.save_pretrained(tmp_path / "theirs")
    ours, info = LTX2TextConnectors.from_pretrained(tmp_path / "theirs", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert ours.config.per_modality_projections and ours.config.video_gated_attn and ours.embedding_dims == (48, 16)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    ours.save_pretrained(tmp_path / "ours")
    back, info = type(reference).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert back.config.per_modality_projections and back.config.audio_hidden_dim == 16


# ----------------------------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------------------------


def test_batch_equals_single_prompt_runs_and_streams_have_their_own_widths():
    model = tiny_ltx23_connectors()
    hidden, mask = random_hidden_states([3, 17, 32], tokens=32)
    with torch.no_grad():
        batched = model(hidden, mask)
        for i in range(3):
            single = model(tuple(h[i:i + 1] for h in hidden), mask[i:i + 1])
            for got, want in zip(batched, single):
                assert (got[i:i + 1] - want).abs().max().item() <= 1e-6
    assert batched.video_embeds.shape == (3, 32, 48) and batched.audio_embeds.shape == (3, 32, 16)
    assert batched.video_embeds.abs().mean() > 0.1 and bool((batched.attention_mask == 1).all())


def test_gates_and_both_projections_matter():
    model = tiny_ltx23_connectors()
    hidden, mask = random_hidden_states([5, 16], tokens=16)
    with torch.no_grad():
        before = model(hidden, mask)
        model.audio_connector.transformer_blocks[0].attn1.to_gate_logits.bias.add_(1.0)
        model.video_text_proj_in.bias.add_(0.5)
        after = model(hidden, mask)
    assert (before.video_embeds - after.video_embeds).abs().max() > 1e-2
    assert (before.audio_embeds - after.audio_embeds).abs().max() > 1e-2


def test_padding_content_even_non_finite_never_reaches_the_output():
    model = tiny_ltx23_connectors()
    hidden, mask = random_hidden_states([5, 11], tokens=16)
    for junk in (float("nan"), float("inf")):
        other = tuple(torch.where(mask[..., None].bool(), h, torch.full_like(h, junk)) for h in hidden)
        with torch.no_grad():
            for got, want in zip(model(hidden, mask), model(other, mask)):
                torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("model_builder", [tiny_connectors, tiny_ltx23_connectors])
def test_non_finite_hidden_states_at_real_tokens_raise(model_builder):
    hidden, mask = random_hidden_states([5, 16], tokens=16)
    hidden[1][1, 12, 3] = float("inf")
    with pytest.raises(ValueError, match="inf/NaN values at unpadded tokens"):
        model_builder()(hidden, mask)


# ----------------------------------------------------------------------------------------------------------------
# Prompt encoding with the tiny Gemma
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prompt_encoder():
    connectors = tiny_ltx23_connectors(seed=1)
    return LTX2PromptEncoder(tiny_gemma3(HIDDEN, LAYERS, seed=0), tiny_gemma_tokenizer(), connectors,
                             max_sequence_length=T)


def test_prompt_encoding_is_batch_correct_at_each_streams_width(prompt_encoder):
    prompt_encoder.clear_cache()
    batched = prompt_encoder.encode(PROMPTS)
    assert batched.video_embeds.shape == (3, T, 48) and batched.audio_embeds.shape == (3, T, 16)
    for i, prompt in enumerate(PROMPTS):
        prompt_encoder.clear_cache()
        single = prompt_encoder.encode(prompt)
        for got, want in zip(batched, single):
            assert (got[i:i + 1] - want).abs().max().item() <= 1e-6
    assert (batched.video_embeds[0] - batched.video_embeds[1]).abs().max() > 0.1


def test_encode_prompt_with_guidance_and_reused_embeddings(prompt_encoder):
    positive, negative = prompt_encoder.encode_prompt(PROMPTS[:2], negative_prompt="blurry", num_videos_per_prompt=2)
    assert positive.video_embeds.shape == negative.video_embeds.shape == (4, T, 48)
    assert positive.audio_embeds.shape == negative.audio_embeds.shape == (4, T, 16)
    again, again_negative = prompt_encoder.encode_prompt(prompt_embeds=positive, negative_prompt_embeds=negative)
    torch.testing.assert_close(again.audio_embeds, positive.audio_embeds, rtol=0, atol=0)
    torch.testing.assert_close(again_negative.video_embeds, negative.video_embeds, rtol=0, atol=0)
    cached = prompt_encoder.encode(PROMPTS[1])  # from the cache
    torch.testing.assert_close(cached.audio_embeds, positive.audio_embeds[2:3], rtol=0, atol=0)


@pytest.mark.parametrize("change, message", [
    ("swap", r"video_embeds \[B, T, 48\], audio_embeds \[B, T, 16\]"),
    ("ltx20", r"got shapes \(1, 32, 32\), \(1, 32, 32\)"),
    ("nan", "must be finite floating-point tensors"),
])
def test_prompt_embeds_of_the_wrong_widths_or_values_raise(prompt_encoder, change, message):
    video, audio, mask = prompt_encoder.encode("a fox")
    if change == "swap":
        embeds = (audio, video, mask)
    elif change == "ltx20":
        embeds = (torch.zeros(1, T, HIDDEN), torch.zeros(1, T, HIDDEN), mask)
    else:
        embeds = (video.clone().fill_(float("nan")), audio, mask)
    with pytest.raises(ValueError, match=message):
        prompt_encoder.encode_prompt(prompt_embeds=embeds, do_classifier_free_guidance=False)
