"""diffusers' forward API: our transformer takes ``LTX2VideoTransformer3DModel.forward``'s arguments with the same
units and meaning (checked against diffusers 0.42.1 on the same weights, and inside diffusers' own LTX-2 pipelines),
plus keyword-only extras (σ units, distinct timesteps with an index, per-stream STG)."""

import tempfile

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.utils.tiny import tiny_pipeline

from .oracles_pipeline import diffusers_pipeline_from_folder
from .oracles_tapi import DIFFUSERS_TINY, LTX23, diffusers, transformer_twins, with_transformer

TOL = 1e-5
B, F, H, W, A, L = 2, 3, 2, 3, 7, 6  # batch, latent grid, audio tokens, text tokens
T = F * H * W


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _inputs(model: torch.nn.Module) -> dict:
    """diffusers-style arguments: σ·1000 per token for video (first latent frame clean), per sample for audio, a
    different σ per sample; coordinates built inside from the grid and ``audio_num_frames``."""
    c = model.config
    widths = (c.caption_channels,) * 2 if c.use_prompt_embeddings else (c.cross_attention_dim,
                                                                        c.audio_cross_attention_dim)
    g = torch.Generator().manual_seed(7)
    sigma = torch.tensor([800.0, 350.0])
    timestep = sigma[:, None].repeat(1, T)
    timestep[:, : H * W] = 0.0
    return dict(
        hidden_states=torch.randn(B, T, c.in_channels, generator=g),
        audio_hidden_states=torch.randn(B, A, c.audio_in_channels, generator=g),
        encoder_hidden_states=torch.randn(B, L, widths[0], generator=g),
        audio_encoder_hidden_states=torch.randn(B, L, widths[1], generator=g),
        timestep=timestep, audio_timestep=torch.tensor([600.0, 200.0]), sigma=sigma,
        audio_sigma=torch.tensor([600.0, 200.0]), num_frames=F, height=H, width=W, fps=25.0, audio_num_frames=A,
    )


PADDED = torch.tensor([[1] * L, [1] * (L - 2) + [0] * 2])
CASES = {
    "legacy own timestep": {},
    "cross timestep": {"use_cross_timestep": True},
    "per-sample timestep, default audio": {"timestep": torch.tensor([800.0, 350.0]), "audio_timestep": None,
                                           "audio_sigma": None},
    "text padding": {"encoder_attention_mask": PADDED, "audio_encoder_attention_mask": PADDED.bool()},
    "text bias 3-D": {"encoder_attention_mask": (1 - PADDED[:, None].float()) * -10000.0},
    "STG all": {"spatio_temporal_guidance_blocks": [1]},
    "STG mask [B]": {"spatio_temporal_guidance_blocks": [0, 1], "perturbation_mask": torch.tensor([0.0, 1.0])},
    "STG mask blend [B,1,1]": {"spatio_temporal_guidance_blocks": [0],
                               "perturbation_mask": torch.tensor([0.25, 0.6]).view(2, 1, 1)},
    "isolated": {"isolate_modalities": True, "use_cross_timestep": True},
    "video self-attention mask": {"video_self_attention_mask": torch.rand(B, T, T, generator=torch.Generator()
                                                                          .manual_seed(1)).round() * 0.7 + 0.3},
    "keyframes mask ignored": {"video_keyframes_mask": torch.ones(B, T, 1)},
}


@pytest.fixture(scope="module", params=["ltx2.0", "ltx2.3"])
def twins(request):
    return transformer_twins({**DIFFUSERS_TINY, **(LTX23 if request.param == "ltx2.3" else {})})


@pytest.mark.parity
@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_diffusers_with_the_same_arguments(twins, case):
    theirs, ours = twins
    kwargs = {**_inputs(ours), **CASES[case]}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with torch.no_grad():
        ref_v, ref_a = theirs(**kwargs, return_dict=False)
        out = ours(**kwargs)
    assert ref_v.abs().mean() > 0.1 and ref_a.abs().mean() > 0.1
    assert _max_diff(ref_v, out.sample) <= TOL, case
    assert _max_diff(ref_a, out.audio_sample) <= TOL, case


@pytest.mark.parity
def test_the_arguments_change_the_result(twins):
    """The cases above compare different computations: each argument moves the output."""
    _, ours = twins
    with torch.no_grad():
        base = ours(**_inputs(ours)).sample
        for case in ("cross timestep", "text padding", "STG mask blend [B,1,1]", "video self-attention mask"):
            assert _max_diff(ours(**{**_inputs(ours), **CASES[case]}).sample, base) > 1e-4, case
        assert torch.equal(ours(**{**_inputs(ours), **CASES["keyframes mask ignored"]}).sample, base)


@pytest.mark.parity
def test_coordinate_entry_points_match_diffusers(twins):
    theirs, ours = twins
    video = theirs.rope.prepare_video_coords(2, 3, 4, 5, "cpu", fps=25.0)
    assert torch.equal(ours.rope.prepare_video_coords(2, 3, 4, 5, "cpu", fps=25.0), video)
    assert video.dtype == torch.float32
    for shift in (0, 3):
        assert torch.equal(ours.audio_rope.prepare_audio_coords(2, 9, "cpu", shift=shift),
                           theirs.audio_rope.prepare_audio_coords(2, 9, "cpu", shift=shift))


# ----------------------------------------------------------------------------------------------------------------
# Inside diffusers' pipelines
# ----------------------------------------------------------------------------------------------------------------

GUIDED = dict(prompt="a cat plays the piano", negative_prompt="blurry", num_frames=9, height=64, width=96,
              num_inference_steps=2, max_sequence_length=32, output_type="latent", guidance_scale=3.0, stg_scale=1.0,
              modality_scale=3.0, guidance_rescale=0.7, audio_guidance_scale=7.0, spatio_temporal_guidance_blocks=[1])


@pytest.fixture(scope="module")
def diffusers_pipe():
    with tempfile.TemporaryDirectory() as folder:
        tiny_pipeline(seed=1).save_pretrained(folder)
        theirs = diffusers_pipeline_from_folder(folder)
        ours = LTX2AudioVideoTransformer.from_pretrained(folder, subfolder="transformer").eval()
    return theirs, ours


def _run(pipe, **kwargs):
    with torch.no_grad():
        return pipe(generator=torch.Generator().manual_seed(0), **GUIDED, **kwargs)


@pytest.mark.parity
def test_drop_in_for_diffusers_text_to_video(diffusers_pipe):
    theirs, ours = diffusers_pipe
    reference = _run(theirs)
    out = _run(with_transformer(theirs, ours))
    assert reference.frames.abs().mean() > 0.5
    assert _max_diff(out.frames, reference.frames) <= TOL
    assert _max_diff(out.audio, reference.audio) <= TOL


def _image_pipeline_call(kind: str) -> tuple[type, dict]:
    image = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(2))
    if kind == "image-to-video":
        return diffusers.LTX2ImageToVideoPipeline, dict(image=image, image_crf=0)
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    # first frame replaced, last frame appended as keyframe tokens at strength 0.7
    conditions = [LTX2VideoCondition(frames=image, index=0, strength=1.0, crf=0),
                  LTX2VideoCondition(frames=image, index=-1, strength=0.7, crf=0)]
    return diffusers.LTX2ConditionPipeline, dict(conditions=conditions)


@pytest.mark.parity
@pytest.mark.parametrize("kind, use_cross_timestep", [("image-to-video", True), ("image-to-video", False),
                                                      ("condition", False)])
def test_drop_in_for_diffusers_conditioned_pipelines(diffusers_pipe, kind, use_cross_timestep):
    """Per-token video timesteps (clean and partly clean tokens); legacy (own timestep) and cross-σ A<->V."""
    theirs, ours = diffusers_pipe
    cls, kwargs = _image_pipeline_call(kind)
    kwargs["use_cross_timestep"] = use_cross_timestep
    reference = _run(with_transformer(theirs, theirs.transformer, cls), **kwargs)
    out = _run(with_transformer(theirs, ours, cls), **kwargs)
    assert reference.frames.abs().mean() > 0.5
    assert _max_diff(out.frames, reference.frames) <= TOL
    assert _max_diff(out.audio, reference.audio) <= TOL
    if kind == "image-to-video" and not use_cross_timestep:  # the two meanings differ with per-token timesteps
        other = _run(with_transformer(theirs, ours, cls), **{**kwargs, "use_cross_timestep": True})
        assert _max_diff(other.frames, out.frames) > 1e-4


# ----------------------------------------------------------------------------------------------------------------
# Our keyword-only extras
# ----------------------------------------------------------------------------------------------------------------


def test_sigma_units_equal_scaled_units(twins):
    _, ours = twins
    scaled = _inputs(ours)
    in_sigma = {**scaled, **{k: scaled[k] / 1000 for k in ("timestep", "audio_timestep", "sigma", "audio_sigma")}}
    with torch.no_grad():
        a = ours(**scaled, use_cross_timestep=True)
        b = ours(**in_sigma, use_cross_timestep=True, timestep_units="sigma")
    torch.testing.assert_close(b.sample, a.sample, rtol=0, atol=1e-6)
    torch.testing.assert_close(b.audio_sample, a.audio_sample, rtol=0, atol=1e-6)


def test_distinct_timesteps_with_an_index_equal_per_token_timesteps(twins):
    """The AdaLN runs once per distinct value; the result is the per-token one (also with legacy A<->V, which then
    reads the indexed timestep too)."""
    _, ours = twins
    x = _inputs(ours)
    values = torch.tensor([0.0, 350.0, 800.0])
    index = torch.where(x["timestep"] == 0, 0, torch.tensor([[2], [1]]))
    assert torch.equal(values[index], x["timestep"])
    audio_values, audio_index = torch.tensor([200.0, 600.0]), torch.tensor([[1] * A, [0] * A])
    for cross in (False, True):
        with torch.no_grad():
            per_token = ours(**{**x, "audio_timestep": audio_values[audio_index]}, use_cross_timestep=cross)
            indexed = ours(**{**x, "timestep": values, "audio_timestep": audio_values}, timestep_index=index,
                           audio_timestep_index=audio_index, use_cross_timestep=cross)
        torch.testing.assert_close(indexed.sample, per_token.sample, rtol=0, atol=TOL)  # matmul batch rounding
        torch.testing.assert_close(indexed.audio_sample, per_token.audio_sample, rtol=0, atol=TOL)


def test_sigma_defaults_to_the_per_sample_maximum_of_timestep(twins):
    _, ours = twins
    x = _inputs(ours)
    with torch.no_grad():
        given = ours(**x, use_cross_timestep=True).sample
        default = ours(**{**x, "sigma": None, "audio_sigma": None}, use_cross_timestep=True).sample
        other = ours(**{**x, "sigma": torch.tensor([500.0, 350.0])}, use_cross_timestep=True).sample
    torch.testing.assert_close(default, given, rtol=0, atol=0)
    assert _max_diff(other, given) > 1e-4


def test_audio_only_stg_blocks(twins):
    _, ours = twins
    x = _inputs(ours)
    with torch.no_grad():
        plain = ours(**x)
        audio_only = ours(**x, spatio_temporal_guidance_blocks=[], audio_spatio_temporal_guidance_blocks=[0])
        both = ours(**x, spatio_temporal_guidance_blocks=[0])
    assert _max_diff(audio_only.audio_sample, plain.audio_sample) > 1e-4
    assert _max_diff(audio_only.sample, both.sample) > 1e-4  # the video self-attention was left alone


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(timestep_units="ms"), "timestep_units must be one of"),
        (dict(timestep_index=torch.zeros(B, T)), r"timestep_index must be an integer tensor \[2, 18\]"),
        (dict(timestep_index=torch.zeros(B, T - 1, dtype=torch.long)), r"integer tensor \[2, 18\]"),
        (dict(timestep_index=torch.zeros(B, T, dtype=torch.long)), r"timestep must be the \[N\] distinct values"),
        (dict(audio_timestep_index=torch.zeros(B, A, dtype=torch.long), audio_timestep=torch.ones(B, A)),
         "audio_timestep must be the"),
        (dict(perturbation_mask=torch.zeros(B, T)), r"perturbation_mask must be \[2\] or \[2, 1, 1\]"),
        (dict(video_self_attention_mask=torch.ones(B, T, T - 1)), r"video_self_attention_mask must be \[2, 18, 18\]"),
        (dict(encoder_attention_mask=torch.ones(B, 1, 1, L)), r"text attention mask must have shape \(2, 6\)"),
        (dict(audio_num_frames=A + 1), "audio_num_frames=8 but audio_hidden_states has 7 tokens"),
        (dict(use_cross_timestep=None), "use_cross_timestep must be a bool"),
        (dict(spatio_temporal_guidance_blocks="1"), "list of block indices"),
        (dict(isolate_modalities=torch.tensor([0.0, 1.0])), r"\[2\] bool tensor"),
        (dict(sigma="0.5"), "sigma must be a float or a float tensor"),
        (dict(timestep=torch.ones(B, T, dtype=torch.complex64)), "timestep must be real numbers"),
    ],
)
def test_bad_extra_arguments_raise_clear_value_errors(twins, change, message):
    _, ours = twins
    with pytest.raises(ValueError, match=message):
        ours(**{**_inputs(ours), **change})
