"""Our transformer on its own: real-size structure, diffusers-model behaviour, and input validation."""

import math

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.models.layers import modulate, sinusoidal_embedding
from ltx2_diffusers.models.transformer_ltx2 import Modulation

TINY = dict(
    num_layers=2, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
    audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16, caption_channels=24,
    in_channels=16, out_channels=16, audio_in_channels=8, audio_out_channels=8,
)


def tiny_model(**overrides) -> LTX2AudioVideoTransformer:
    torch.manual_seed(0)
    return LTX2AudioVideoTransformer(**{**TINY, **overrides}).eval()


def tiny_inputs(batch=2, frames=2, height=2, width=3, audio_tokens=5, text=6):
    g = torch.Generator().manual_seed(0)
    return dict(
        hidden_states=torch.randn(batch, frames * height * width, 16, generator=g),
        audio_hidden_states=torch.randn(batch, audio_tokens, 8, generator=g),
        encoder_hidden_states=torch.randn(batch, text, 24, generator=g),
        audio_encoder_hidden_states=torch.randn(batch, text, 24, generator=g),
        timestep=torch.tensor([900.0, 400.0])[:batch], num_frames=frames, height=height, width=width,
    )


def test_default_config_is_the_19b_model():
    with torch.device("meta"):
        model = LTX2AudioVideoTransformer()
    assert sum(p.numel() for p in model.parameters()) == 18_876_174_592
    c = model.config
    assert (c.num_layers, c.num_attention_heads, c.attention_head_dim) == (48, 32, 128)
    assert (c.audio_num_attention_heads, c.audio_attention_head_dim, c.caption_channels) == (32, 64, 3840)
    assert c.rope_type == "split" and c.rope_double_precision and c.cross_attn_timestep_scale_multiplier == 1000
    assert len(model.state_dict()) == 3510


def test_sinusoid_is_cos_then_sin():
    emb = sinusoidal_embedding(torch.tensor([0.0, 1000.0]), dim=8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = [math.exp(-math.log(10000) * k / 4) for k in range(4)]
    torch.testing.assert_close(emb[1], torch.tensor([math.cos(1000 * f) for f in freqs]
                                                     + [math.sin(1000 * f) for f in freqs]))


def test_modulation_rows_add_table_and_gather_per_token():
    table = torch.arange(12.0).view(3, 4)
    values = torch.tensor([[[100.0] * 4] * 3, [[200.0] * 4] * 3])  # two distinct σ, 3 rows each
    per_token = Modulation(values, index=torch.tensor([[1, 0, 1]]))
    shift, scale = per_token.rows(table, 1, 3)
    assert shift.shape == (1, 3, 4)
    torch.testing.assert_close(shift[0, 0], table[1] + 200)
    torch.testing.assert_close(scale[0, 1], table[2] + 100)
    (gate,) = Modulation(values).rows(table, 2, 3)  # per sample: broadcast over tokens
    assert gate.shape == (2, 1, 4)
    torch.testing.assert_close(modulate(torch.ones(4), shift[0, 0], scale[0, 0]), (1 + scale[0, 0]) + shift[0, 0])


def test_forward_shapes_and_return_tuple():
    model = tiny_model()
    out = model(**tiny_inputs())
    assert out.sample.shape == (2, 12, 16) and out.audio_sample.shape == (2, 5, 8)
    video, audio = model(**tiny_inputs(), return_dict=False)
    torch.testing.assert_close(video, out.sample)


def test_constant_per_token_timestep_equals_per_sample_timestep():
    model = tiny_model()
    inputs = tiny_inputs()
    per_sample = model(**inputs).sample
    inputs["timestep"] = inputs["timestep"][:, None].expand(-1, 12)
    torch.testing.assert_close(model(**inputs).sample, per_sample, rtol=0, atol=1e-6)


def test_clean_tokens_change_the_output_of_per_token_timesteps():
    model = tiny_model()
    inputs = tiny_inputs()
    base = model(**inputs).sample
    per_token = inputs["timestep"][:, None].repeat(1, 12)
    per_token[:, :6] = 0.0  # first latent frame clean
    inputs["timestep"] = per_token
    assert (model(**inputs).sample - base).abs().max() > 1e-3


def test_all_ones_text_mask_is_dropped_and_masked_tokens_are_ignored():
    model = tiny_model()
    inputs = tiny_inputs()
    base = model(**inputs).sample
    ones = torch.ones(2, 6)
    torch.testing.assert_close(model(**inputs, encoder_attention_mask=ones).sample, base, rtol=0, atol=0)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]] * 2)
    masked = model(**inputs, encoder_attention_mask=mask).sample
    inputs["encoder_hidden_states"] = inputs["encoder_hidden_states"].clone()
    inputs["encoder_hidden_states"][:, 4:] = 1e3  # padded tokens must not matter
    torch.testing.assert_close(model(**inputs, encoder_attention_mask=mask).sample, masked, rtol=0, atol=1e-6)
    assert (masked - base).abs().max() > 1e-4


def test_isolation_removes_all_audio_influence_on_video():
    model = tiny_model()
    inputs = tiny_inputs()
    isolated = model(**inputs, isolate_modalities=True).sample
    inputs["audio_hidden_states"] = inputs["audio_hidden_states"] * 3
    torch.testing.assert_close(model(**inputs, isolate_modalities=True).sample, isolated, rtol=0, atol=0)
    assert (model(**inputs).sample - isolated).abs().max() > 1e-4


def test_batched_perturbations_equal_separate_calls():
    model = tiny_model()
    inputs = tiny_inputs()
    mixed = model(**inputs, spatio_temporal_guidance_blocks=[1], perturbation_mask=torch.tensor([0.0, 1.0]),
                  isolate_modalities=torch.tensor([False, True])).sample
    stg_all = model(**inputs, spatio_temporal_guidance_blocks=[1]).sample
    iso_all = model(**inputs, isolate_modalities=True).sample
    torch.testing.assert_close(mixed[0], stg_all[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[1], iso_all[1], rtol=0, atol=1e-6)
    # STG is active although the config says perturbed_attn=False (the LTX-2.0 folders' value)
    assert not model.config.perturbed_attn
    assert (stg_all - model(**inputs).sample).abs().max() > 1e-4


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        out = model(**tiny_inputs())
        (out.sample.square().mean() + out.audio_sample.square().mean()).backward()
        grads.append(model.transformer_blocks[0].attn1.to_q.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded, info = LTX2AudioVideoTransformer.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = tiny_inputs()
    torch.testing.assert_close(loaded(**inputs).sample, model(**inputs).sample, rtol=0, atol=0)


def test_diffusers_class_attributes():
    assert LTX2AudioVideoTransformer._no_split_modules == ["LTX2TransformerBlock"]
    assert LTX2AudioVideoTransformer._repeated_blocks == ["LTX2TransformerBlock"]
    assert "norm" in LTX2AudioVideoTransformer._skip_layerwise_casting_patterns
    assert LTX2AudioVideoTransformer._supports_gradient_checkpointing


# ----------------------------------------------------------------------------------------------------------------
# Bad input -> ValueError naming what to pass
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(hidden_states=torch.randn(2, 12, 15)), r"\[batch, tokens, 16\]"),
        (dict(hidden_states=torch.randn(12, 16)), r"\[batch, tokens, 16\]"),
        (dict(hidden_states=torch.ones(2, 12, 16, dtype=torch.long)), "floating-point"),
        (dict(audio_hidden_states=torch.randn(2, 5, 7)), r"\[batch, tokens, 8\]"),
        (dict(audio_hidden_states=torch.randn(3, 5, 8)), "batch 3 but hidden_states has batch 2"),
        (dict(timestep=torch.rand(3)), r"\[2\] or \[2, 12\]"),
        (dict(timestep=torch.rand(2, 11)), r"\[2\] or \[2, 12\]"),
        (dict(timestep=None), "timestep is required"),
        (dict(encoder_hidden_states=torch.randn(2, 6, 23)), r"\[2, text_tokens, 24\]"),
        (dict(audio_encoder_hidden_states=None), r"\[2, text_tokens, 24\]"),
        (dict(num_frames=3), "product is 12"),
        (dict(video_coords=torch.zeros(2, 2, 12, 2)), r"\[2, 3, 12, 2\]"),
        (dict(audio_coords=torch.zeros(2, 1, 4, 2)), r"\[2, 1, 5, 2\]"),
        (dict(sigma=torch.rand(2, 3)), r"sigma must be \[2\]"),
        (dict(spatio_temporal_guidance_blocks=[0.7]), r"integer block indices in \[0, 2\)"),
        (dict(audio_spatio_temporal_guidance_blocks="0"), r"audio_spatio_temporal_guidance_blocks must be a list"),
        (dict(isolate_modalities=torch.tensor([True, False, True])), r"\[2\] bool tensor"),
        (dict(encoder_attention_mask=torch.ones(2, 5)), r"\(2, 6\)"),
    ],
)
def test_bad_input_raises_clear_value_error(change, message):
    model = tiny_model()
    inputs = {**tiny_inputs(), **change}
    with pytest.raises(ValueError, match=message):
        model(**inputs)


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(use_keyframes_abs_pos_embedding=True), "use_keyframes_abs_pos_embedding=True describes an LTX version"),
        (dict(patch_size=2), "patch_size=1"),
        (dict(cross_attention_dim=64), "must equal the video width 32"),
        (dict(audio_cross_attention_dim=8), "must equal the audio width 16"),
        (dict(rope_type="standard"), "rope_type must be one of"),
    ],
)
def test_bad_config_raises_clear_value_error(config, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**config)


def test_stg_blocks_outside_the_model_perturb_nothing_as_in_diffusers(caplog):
    """diffusers' pipelines pass their default [28] to models of any depth: such indices name no block."""
    model = tiny_model()
    inputs = tiny_inputs()
    with torch.no_grad():
        plain = model(**inputs, return_dict=False)
        perturbed = model(**inputs, spatio_temporal_guidance_blocks=[0], return_dict=False)
        with caplog.at_level("WARNING"):
            outside = model(**inputs, spatio_temporal_guidance_blocks=[28, -1], return_dict=False)
    assert not torch.allclose(plain[0], perturbed[0])  # block 0 is perturbed: STG does act in this model
    assert torch.equal(plain[0], outside[0]) and torch.equal(plain[1], outside[1])
    assert "[-1, 28] name no block of this 2-block transformer" in caplog.text
