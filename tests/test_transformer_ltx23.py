"""The LTX-2.3 transformer: structure, conversion of the 2.3 single-file names, and parity with ltx-core 1.0.0
(ground truth) and diffusers 0.42.1 on identical random weights, fp32."""

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.conversion import (
    TRANSFORMER_PREFIX,
    convert_transformer_state_dict,
    expected_shapes,
    original_transformer_key,
    rename_transformer_key,
    transformer_config_from_original,
)
from ltx2_diffusers.models.layers import gate_heads

from .oracles import (
    ISOLATE,
    BatchedPerturbationConfig,
    LTXModelConfigurator,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
    ltxcore_transformer,
    perturbations,
    random_init_,
    stg,
)
from .oracles_t23 import (
    DIFFUSERS_LTX23,
    LTX23_SWITCHES,
    av_inputs_23,
    diffusers_call,
    ltxcore_header_23,
    with_text_mask,
)

TOL = 1e-5
REAL_23 = dict(rope_type="split", **DIFFUSERS_LTX23)  # every other value: the real-size defaults
TINY_23 = dict(num_layers=2, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
               audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16,
               caption_channels=24, in_channels=16, out_channels=16, audio_in_channels=8, audio_out_channels=8,
               **DIFFUSERS_LTX23)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def _tiny_inputs(model: LTX2AudioVideoTransformer, batch: int = 2) -> dict:
    c = model.config
    g = torch.Generator().manual_seed(0)
    return dict(
        hidden_states=torch.randn(batch, 12, c.in_channels, generator=g),
        audio_hidden_states=torch.randn(batch, 5, c.audio_in_channels, generator=g),
        encoder_hidden_states=torch.randn(batch, 6, c.cross_attention_dim, generator=g),
        audio_encoder_hidden_states=torch.randn(batch, 6, c.audio_cross_attention_dim, generator=g),
        timestep=torch.tensor([900.0, 400.0])[:batch], num_frames=2, height=2, width=3,
    )


# ----------------------------------------------------------------------------------------------------------------
# Structure
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diffusers_real_23_shapes() -> dict[str, torch.Size]:
    """Name -> shape of every tensor of diffusers' real-size LTX-2.3 transformer (built on the meta device)."""
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        return expected_shapes(diffusers.LTX2VideoTransformer3DModel(**REAL_23))


def test_real_size_23_config_has_the_22b_transformer_and_diffusers_names(diffusers_real_23_shapes):
    with torch.device("meta"):
        ours = LTX2AudioVideoTransformer(**REAL_23)
    assert sum(p.numel() for p in ours.parameters()) == 18_988_838_144
    assert expected_shapes(ours) == diffusers_real_23_shapes  # same names, same shapes (4186 tensors)
    assert len(ours.state_dict()) == 4186
    assert ours.caption_projection is None and ours.time_embed.linear.out_features == 9 * 4096
    assert ours.transformer_blocks[0].audio_to_video_attn.to_gate_logits.weight.shape == (32, 4096)


def test_gate_heads_scales_each_head_by_twice_its_sigmoid():
    x = torch.arange(12.0).view(1, 2, 6)  # 2 tokens, 3 heads of width 2
    logits = torch.tensor([[[0.0, 100.0, -100.0], [float(torch.log(torch.tensor(3.0))), 0.0, 0.0]]])
    out = gate_heads(x, logits)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 1.0, 4.0, 6.0, 0.0, 0.0]))
    torch.testing.assert_close(out[0, 1], torch.tensor([6.0 * 1.5, 7.0 * 1.5, 8.0, 9.0, 10.0, 11.0]))


def test_zero_gate_logits_equal_the_ungated_model():
    torch.manual_seed(0)
    gated = LTX2AudioVideoTransformer(**TINY_23).eval()
    ungated = LTX2AudioVideoTransformer(**{**TINY_23, "gated_attn": False, "audio_gated_attn": False}).eval()
    state = gated.state_dict()
    ungated.load_state_dict({k: v for k, v in state.items() if "to_gate_logits" not in k}, strict=True)
    inputs = _tiny_inputs(gated)
    with torch.no_grad():
        before = gated(**inputs).sample
        for name, p in gated.named_parameters():
            if "to_gate_logits" in name:
                p.zero_()
        torch.testing.assert_close(gated(**inputs).sample, ungated(**inputs).sample, rtol=0, atol=1e-6)
    assert _max_diff(before, ungated(**inputs).sample) > 1e-3


def test_text_kv_modulation_follows_sigma_only_with_prompt_adaln():
    """``sigma`` drives the text K/V AdaLN through ``prompt_adaln``; without it (``use_prompt_adaln_single=False``)
    the modulation is the per-block table alone. A<->V is isolated so ``sigma`` has no other path to the video."""
    torch.manual_seed(0)
    outputs = {}
    for flag in (True, False):
        model = LTX2AudioVideoTransformer(**TINY_23, use_prompt_adaln_single=flag).eval()
        assert (model.prompt_adaln is not None) == flag
        inputs = {**_tiny_inputs(model), "isolate_modalities": True}
        with torch.no_grad():
            outputs[flag] = [model(**inputs, sigma=torch.tensor([s, 400.0])).sample for s in (900.0, 500.0)]
    assert _max_diff(*outputs[True]) > 1e-3
    assert _max_diff(*outputs[False]) == 0.0


def test_context_width_follows_use_prompt_embeddings():
    model = LTX2AudioVideoTransformer(**TINY_23).eval()
    assert model.text_widths == (32, 16)
    assert LTX2AudioVideoTransformer(**{**TINY_23, "use_prompt_embeddings": True}).text_widths == (24, 24)
    inputs = _tiny_inputs(model)
    with pytest.raises(ValueError, match=r"\[2, text_tokens, 32\]"):
        model(**{**inputs, "encoder_hidden_states": torch.randn(2, 6, 24)})
    with pytest.raises(ValueError, match=r"\[2, text_tokens, 16\]"):
        model(**{**inputs, "audio_encoder_hidden_states": torch.randn(2, 6, 24)})


# ----------------------------------------------------------------------------------------------------------------
# Conversion of the original 2.3 names
# ----------------------------------------------------------------------------------------------------------------

HEADER_23_REAL = ltxcore_header_23(
    num_layers=48, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096,
    audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048, caption_channels=3840,
)


def test_23_original_names_map_one_to_one_onto_diffusers_names(diffusers_real_23_shapes):
    """Every transformer tensor of the real-size 2.3 single file (ltx-core's meta build from the 2.3 header) maps
    onto diffusers' real-size 2.3 transformer, strictly, with shapes; the config we derive builds the same model."""
    with torch.device("meta"):
        reference = LTXModelConfigurator.from_config({"transformer": HEADER_23_REAL})
    fake = {TRANSFORMER_PREFIX + k: v for k, v in reference.state_dict().items()}
    fake[TRANSFORMER_PREFIX + "video_embeddings_connector.learnable_registers"] = torch.empty(128, 4096,
                                                                                             device="meta")
    config = transformer_config_from_original(HEADER_23_REAL, fake)
    assert {k: config[k] for k in DIFFUSERS_LTX23} == DIFFUSERS_LTX23
    with torch.device("meta"):
        ours = LTX2AudioVideoTransformer(**config)
    converted = convert_transformer_state_dict(fake, diffusers_real_23_shapes)  # strict: raises on any mismatch
    assert len(converted) == 4186
    assert expected_shapes(ours) == diffusers_real_23_shapes
    assert {original_transformer_key(k) for k in converted} == set(fake) - {
        TRANSFORMER_PREFIX + "video_embeddings_connector.learnable_registers"}


def test_23_rename_examples_and_inverse():
    cases = {
        "prompt_adaln_single.linear.weight": "prompt_adaln.linear.weight",
        "audio_prompt_adaln_single.emb.timestep_embedder.linear_2.bias":
            "audio_prompt_adaln.emb.timestep_embedder.linear_2.bias",
        "adaln_single.linear.bias": "time_embed.linear.bias",
        "transformer_blocks.4.audio_to_video_attn.to_gate_logits.weight":
            "transformer_blocks.4.audio_to_video_attn.to_gate_logits.weight",
        "transformer_blocks.0.audio_prompt_scale_shift_table": "transformer_blocks.0.audio_prompt_scale_shift_table",
        "transformer_blocks.0.prompt_scale_shift_table": "transformer_blocks.0.prompt_scale_shift_table",
    }
    for original, ours in cases.items():
        assert rename_transformer_key(TRANSFORMER_PREFIX + original) == ours
        assert original_transformer_key(ours) == TRANSFORMER_PREFIX + original


@pytest.fixture(scope="module")
def tiny_23_original() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        reference = LTXModelConfigurator.from_config({"transformer": ltxcore_header_23()})
    return {TRANSFORMER_PREFIX + k: v for k, v in reference.state_dict().items()}


@pytest.mark.parametrize("change, message", [
    ({"caption_proj_input_norm": None}, "but not caption_proj_input_norm"),
    ({"caption_projection_first_linear": True}, r"caption_projection_first_linear=True \(expected False\)"),
    ({"apply_gated_attention": "yes"}, "apply_gated_attention must be true or false"),
])
def test_bad_23_header_raises_value_error_naming_the_keys(tiny_23_original, change, message):
    header = ltxcore_header_23(**change)
    header = {k: v for k, v in header.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        transformer_config_from_original(header, tiny_23_original)


@pytest.mark.parametrize("switch, message", [
    ("apply_gated_attention", "apply_gated_attention=False but the checkpoint has to_gate_logits"),
    ("cross_attention_adaln", "cross_attention_adaln=False but the checkpoint has prompt_adaln_single"),
    ("caption_proj_before_connector", "lacks model.diffusion_model.caption_projection"),
])
def test_header_disagreeing_with_the_tensors_raises(tiny_23_original, switch, message):
    header = ltxcore_header_23()
    if switch == "caption_proj_before_connector":
        header = {k: v for k, v in header.items() if k not in LTX23_SWITCHES or k == "apply_gated_attention"
                  or k == "cross_attention_adaln"}
    else:
        header[switch] = False
    with pytest.raises(ValueError, match=message):
        transformer_config_from_original(header, tiny_23_original)


# ----------------------------------------------------------------------------------------------------------------
# Parity with ltx-core 1.0.0
# ----------------------------------------------------------------------------------------------------------------

HEADERS_23 = {
    # the 2.3 settings at tiny widths, video heads != audio heads
    "23-style": ltxcore_header_23(),
    # ltx-core's defaults for keys a header may omit, other head splits, 3 blocks
    "23-legacy-defaults": ltxcore_header_23(
        rope_type="interleaved", frequencies_precision=False, av_ca_timestep_scale_multiplier=1, num_layers=3,
        num_attention_heads=2, attention_head_dim=32, audio_num_attention_heads=4, audio_attention_head_dim=8),
}


def _pair(header: dict) -> tuple[torch.nn.Module, LTX2AudioVideoTransformer]:
    reference = ltxcore_transformer(header)
    original = {TRANSFORMER_PREFIX + k: v for k, v in reference.state_dict().items()}
    ours = LTX2AudioVideoTransformer(**transformer_config_from_original(header, original)).eval()
    ours.load_state_dict(convert_transformer_state_dict(original, expected_shapes(ours)), strict=True)
    return reference, ours


def _inputs(ours: LTX2AudioVideoTransformer, **kwargs):
    return av_inputs_23(ours.config.cross_attention_dim, ours.config.audio_cross_attention_dim, **kwargs)


@pytest.mark.parity
@pytest.mark.parametrize("name", list(HEADERS_23))
def test_ltxcore_parity_23(name):
    """Per-token video σ (clean first frame), different σ per sample and per stream; plain, modality-isolated, and
    STG on both streams / on each stream alone."""
    reference, ours = _pair(HEADERS_23[name])
    inputs = _inputs(ours, frames=25, height=96, width=160)  # 4 x 3 x 5 latent grid
    batch = inputs.ours["hidden_states"].shape[0]
    video_stg, audio_stg = (PerturbationType.SKIP_VIDEO_SELF_ATTN, [1]), (PerturbationType.SKIP_AUDIO_SELF_ATTN, [0])
    passes = {
        "plain": (None, {}),
        "isolated": (perturbations(batch, *ISOLATE), {"isolate_modalities": True}),
        "stg": (perturbations(batch, *stg([1])), {"spatio_temporal_guidance_blocks": [1]}),
        "stg-video": (perturbations(batch, video_stg),
                      {"spatio_temporal_guidance_blocks": [1], "audio_spatio_temporal_guidance_blocks": []}),
        "stg-audio": (perturbations(batch, audio_stg),
                      {"spatio_temporal_guidance_blocks": [], "audio_spatio_temporal_guidance_blocks": [0]}),
    }
    outputs = {}
    with torch.no_grad():
        for label, (pert, kwargs) in passes.items():
            ref_v, ref_a = reference(video=inputs.video, audio=inputs.audio, perturbations=pert)
            out_v, out_a = ours(**inputs.ours, **kwargs, return_dict=False)
            assert ref_v.abs().mean() > 0.1 and ref_a.abs().mean() > 0.1  # real, non-degenerate outputs
            assert _max_diff(ref_v, out_v) <= TOL, label
            assert _max_diff(ref_a, out_a) <= TOL, label
            outputs[label] = out_v, out_a
    for label in ("isolated", "stg", "stg-video", "stg-audio"):  # each pass is a different computation
        assert max(_max_diff(a, b) for a, b in zip(outputs[label], outputs["plain"])) > 1e-3, label


@pytest.mark.parity
def test_ltxcore_parity_23_mixed_batch_and_text_padding():
    """Sample 0 perturbed by STG, sample 1 isolated, in one pass; sample 0's text padded (masked last tokens)."""
    reference, ours = _pair(HEADERS_23["23-style"])
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[0, 11:] = 0
    inputs = with_text_mask(_inputs(ours), mask)
    pert = BatchedPerturbationConfig([
        PerturbationConfig([Perturbation(kind, blocks) for kind, blocks in stg([0, 1])]),
        PerturbationConfig([Perturbation(kind, blocks) for kind, blocks in ISOLATE]),
    ])
    with torch.no_grad():
        ref_v, ref_a = reference(video=inputs.video, audio=inputs.audio, perturbations=pert)
        out_v, out_a = ours(**inputs.ours, spatio_temporal_guidance_blocks=[0, 1],
                            perturbation_mask=torch.tensor([0.0, 1.0]),
                            isolate_modalities=torch.tensor([False, True]), return_dict=False)
        unmasked_v, _ = ours(**{**inputs.ours, "encoder_attention_mask": None}, spatio_temporal_guidance_blocks=[0, 1],
                             perturbation_mask=torch.tensor([0.0, 1.0]),
                             isolate_modalities=torch.tensor([False, True]), return_dict=False)
    assert _max_diff(ref_v, out_v) <= TOL
    assert _max_diff(ref_a, out_a) <= TOL
    assert _max_diff(unmasked_v[0], out_v[0]) > 1e-4  # the padding mask matters


@pytest.mark.parity
def test_ltxcore_parity_23_per_sample_sigma_and_video_only():
    reference, ours = _pair(HEADERS_23["23-style"])
    inputs = _inputs(ours, batch=2)
    sigma_v = inputs.video.sigma
    video = type(inputs.video)(latent=inputs.video.latent, sigma=sigma_v,
                               timesteps=sigma_v.view(-1, 1, 1).expand_as(inputs.video.timesteps),
                               positions=inputs.video.positions, context=inputs.video.context)
    kwargs = {**inputs.ours, "timestep": sigma_v * 1000}
    with torch.no_grad():
        ref_v, ref_a = reference(video=video, audio=inputs.audio, perturbations=None)
        out_v, out_a = ours(**kwargs, return_dict=False)
        ref_only, _ = reference(video=video, audio=None, perturbations=None)
        only_kwargs = {k: v for k, v in kwargs.items() if not k.startswith("audio_")}
        out_only, none_audio = ours(**only_kwargs, return_dict=False)
    assert _max_diff(ref_v, out_v) <= TOL and _max_diff(ref_a, out_a) <= TOL
    assert none_audio is None and _max_diff(ref_only, out_only) <= TOL


# ----------------------------------------------------------------------------------------------------------------
# diffusers 0.42.1
# ----------------------------------------------------------------------------------------------------------------

DIFFUSERS_TINY = dict(
    in_channels=128, out_channels=128, num_attention_heads=2, attention_head_dim=32, cross_attention_dim=64,
    audio_in_channels=128, audio_out_channels=128, audio_num_attention_heads=2, audio_attention_head_dim=16,
    audio_cross_attention_dim=32, num_layers=2, caption_channels=24, rope_type="split",
    rope_double_precision=True, cross_attn_timestep_scale_multiplier=1000,
)
DIFFUSERS_CONFIGS = {
    "ltx23": DIFFUSERS_LTX23,
    # switches mixed across streams, static text K/V modulation, caption projection kept
    "mixed": dict(gated_attn=True, audio_gated_attn=False, cross_attn_mod=False, audio_cross_attn_mod=True,
                  use_prompt_adaln_single=False, use_prompt_embeddings=True, perturbed_attn=True),
}


@pytest.fixture(scope="module", params=list(DIFFUSERS_CONFIGS))
def diffusers_23_folder(request, tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    config = {**DIFFUSERS_TINY, **DIFFUSERS_CONFIGS[request.param]}
    model = random_init_(diffusers.LTX2VideoTransformer3DModel(**config), seed=3).eval()
    folder = tmp_path_factory.mktemp(f"diffusers_transformer_{request.param}")
    model.save_pretrained(folder)
    return model, folder


def _diffusers_inputs(model):
    c = model.config
    width = (c.caption_channels, c.caption_channels) if c.use_prompt_embeddings else (
        c.cross_attention_dim, c.audio_cross_attention_dim)
    return av_inputs_23(*width, batch=2, frames=17, height=64, width=96)


@pytest.mark.parity
def test_loads_diffusers_23_folder_unchanged(diffusers_23_folder):
    theirs, folder = diffusers_23_folder
    ours, info = LTX2AudioVideoTransformer.from_pretrained(folder, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert expected_shapes(ours) == expected_shapes(theirs)
    for key in ("gated_attn", "audio_cross_attn_mod", "use_prompt_embeddings", "use_prompt_adaln_single"):
        assert ours.config[key] == theirs.config[key]


@pytest.mark.parity
@pytest.mark.parametrize("label", ["plain", "isolated", "stg", "text-padding"])
def test_diffusers_23_parity(diffusers_23_folder, label):
    """diffusers' STG is one block list for both streams: compared with both streams perturbed."""
    theirs, folder = diffusers_23_folder
    ours = LTX2AudioVideoTransformer.from_pretrained(folder).eval()
    inputs = _diffusers_inputs(theirs)
    if label == "text-padding":
        mask = torch.ones(2, 16, dtype=torch.long)
        mask[1, 9:] = 0
        inputs = with_text_mask(inputs, mask)
    kwargs = {"isolated": {"isolate_modalities": True},
              "stg": {"spatio_temporal_guidance_blocks": [1]}}.get(label, {})
    with torch.no_grad():
        ref_v, ref_a = diffusers_call(theirs, inputs, **kwargs)
        out_v, out_a = ours(**inputs.ours, **kwargs, return_dict=False)
    assert ref_v.abs().mean() > 0.1
    assert _max_diff(ref_v, out_v) <= TOL
    assert _max_diff(ref_a, out_a) <= TOL


@pytest.mark.parity
def test_folder_we_save_loads_in_diffusers(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    _, ours = _pair(HEADERS_23["23-style"])
    ours.save_pretrained(tmp_path)
    theirs, info = diffusers.LTX2VideoTransformer3DModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert theirs.config.gated_attn and theirs.config.cross_attn_mod and not theirs.config.use_prompt_embeddings
    assert theirs.config.perturbed_attn  # diffusers' STG runs only with it
    inputs = _inputs(ours)
    with torch.no_grad():
        ref_v, ref_a = diffusers_call(theirs.eval(), inputs, spatio_temporal_guidance_blocks=[0])
        out_v, out_a = ours(**inputs.ours, spatio_temporal_guidance_blocks=[0], return_dict=False)
    assert _max_diff(ref_v, out_v) <= TOL and _max_diff(ref_a, out_a) <= TOL
