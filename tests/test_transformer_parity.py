"""Transformer parity: ltx-core 1.0.0 (ground truth) and diffusers 0.42.1 on identical random weights, fp32."""

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.conversion import (
    TRANSFORMER_PREFIX,
    convert_transformer_state_dict,
    expected_shapes,
    transformer_config_from_original,
)

from .oracles import (
    ISOLATE,
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
    av_inputs,
    ltxcore_header,
    ltxcore_transformer,
    perturbations,
    random_init_,
    stg,
)

pytestmark = pytest.mark.parity
TOL = 1e-5

HEADERS = {
    # the 19B settings at tiny widths, video heads != audio heads
    "19b-style": ltxcore_header(),
    # ltx-core's defaults for keys a header may omit: interleaved RoPE, float32 grid, A<->V gate multiplier 1
    "legacy-defaults": ltxcore_header(rope_type="interleaved", frequencies_precision=False,
                                      av_ca_timestep_scale_multiplier=1, num_layers=3, num_attention_heads=2,
                                      attention_head_dim=32, audio_num_attention_heads=4, audio_attention_head_dim=8),
}


def _pair(header: dict) -> tuple[torch.nn.Module, LTX2AudioVideoTransformer]:
    reference = ltxcore_transformer(header)
    original = {TRANSFORMER_PREFIX + k: v for k, v in reference.state_dict().items()}
    ours = LTX2AudioVideoTransformer(**transformer_config_from_original(header, original)).eval()
    ours.load_state_dict(convert_transformer_state_dict(original, expected_shapes(ours)), strict=True)
    return reference, ours


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", list(HEADERS))
def test_ltxcore_parity_plain_isolated_stg(name):
    reference, ours = _pair(HEADERS[name])
    inputs = av_inputs(frames=25, height=96, width=160)  # 4 x 3 x 5 latent grid
    batch = inputs.ours["hidden_states"].shape[0]
    passes = {
        "plain": (None, {}),
        "isolated": (perturbations(batch, *ISOLATE), {"isolate_modalities": True}),
        "stg": (perturbations(batch, *stg([1])), {"spatio_temporal_guidance_blocks": [1]}),
    }
    with torch.no_grad():
        for label, (pert, kwargs) in passes.items():
            ref_v, ref_a = reference(video=inputs.video, audio=inputs.audio, perturbations=pert)
            out_v, out_a = ours(**inputs.ours, **kwargs, return_dict=False)
            assert ref_v.abs().mean() > 0.1  # the comparison is between real, non-degenerate outputs
            assert _max_diff(ref_v, out_v) <= TOL, label
            assert _max_diff(ref_a, out_a) <= TOL, label


def test_ltxcore_parity_mixed_batch_perturbations():
    """Sample 0 perturbed by STG, sample 1 isolated: one batched pass equals the reference's per-sample configs."""
    reference, ours = _pair(HEADERS["19b-style"])
    inputs = av_inputs()
    pert = BatchedPerturbationConfig([
        PerturbationConfig([Perturbation(kind, blocks) for kind, blocks in stg([0, 1])]),
        PerturbationConfig([Perturbation(kind, blocks) for kind, blocks in ISOLATE]),
    ])
    with torch.no_grad():
        ref_v, ref_a = reference(video=inputs.video, audio=inputs.audio, perturbations=pert)
        out_v, out_a = ours(**inputs.ours, spatio_temporal_guidance_blocks=[0, 1],
                            perturbation_mask=torch.tensor([0.0, 1.0]),
                            isolate_modalities=torch.tensor([False, True]), return_dict=False)
    assert _max_diff(ref_v, out_v) <= TOL
    assert _max_diff(ref_a, out_a) <= TOL


def test_ltxcore_parity_stg_on_video_stream_only():
    """Only the video STG scale set: the reference perturbs video self-attention alone, in its own blocks."""
    reference, ours = _pair(HEADERS["19b-style"])
    inputs = av_inputs()
    pert = perturbations(2, (PerturbationType.SKIP_VIDEO_SELF_ATTN, [0]))
    with torch.no_grad():
        ref_v, ref_a = reference(video=inputs.video, audio=inputs.audio, perturbations=pert)
        out_v, out_a = ours(**inputs.ours, spatio_temporal_guidance_blocks=[0],
                            audio_spatio_temporal_guidance_blocks=[], return_dict=False)
        both_v, _ = ours(**inputs.ours, spatio_temporal_guidance_blocks=[0], return_dict=False)
    assert _max_diff(ref_v, out_v) <= TOL
    assert _max_diff(ref_a, out_a) <= TOL
    assert _max_diff(both_v, out_v) > 1e-4  # perturbing audio too would change the video prediction


def test_ltxcore_parity_video_only():
    reference, ours = _pair(HEADERS["19b-style"])
    inputs = av_inputs(batch=1)
    kwargs = {k: v for k, v in inputs.ours.items() if not k.startswith("audio_")}
    with torch.no_grad():
        ref_v, _ = reference(video=inputs.video, audio=None, perturbations=None)
        out_v, out_a = ours(**kwargs, return_dict=False)
        out_v0, out_a0 = ours(**kwargs, audio_hidden_states=torch.zeros(1, 0, 128), return_dict=False)
    assert out_a is None and out_a0.shape == (1, 0, 128)
    assert _max_diff(ref_v, out_v) <= TOL
    assert torch.equal(out_v, out_v0)


def test_ltxcore_parity_bf16_positions():
    """The reference keeps video positions in the latent dtype; with bf16 latents our built coordinates match it."""
    reference, ours = _pair(HEADERS["19b-style"])
    reference, ours = reference.to(torch.bfloat16), ours.to(torch.bfloat16)
    inputs = av_inputs(batch=1, frames=121, height=64, width=64)  # late frames expose bf16 rounding of time
    video = inputs.video
    video = type(video)(latent=video.latent.bfloat16(), sigma=video.sigma, timesteps=video.timesteps,
                        positions=video.positions.bfloat16(), context=video.context.bfloat16())
    audio = inputs.audio
    audio = type(audio)(latent=audio.latent.bfloat16(), sigma=audio.sigma, timesteps=audio.timesteps,
                        positions=audio.positions, context=audio.context.bfloat16())
    kwargs = {k: (v.bfloat16() if k.endswith(("hidden_states",)) else v) for k, v in inputs.ours.items()}
    with torch.no_grad():
        ref_v, ref_a = reference(video=video, audio=audio, perturbations=None)
        out_v, out_a = ours(**kwargs, return_dict=False)
        exact_v, _ = ours(**kwargs, video_coords=ours.video_coordinates(16, 2, 2, 24.0), return_dict=False)
    # bf16 arithmetic: same positions give the same result up to bf16 rounding of the activations
    assert _max_diff(ref_v.float(), out_v.float()) <= 0.05 * ref_v.float().abs().max().item()
    assert _max_diff(ref_a.float(), out_a.float()) <= 0.05 * ref_a.float().abs().max().item()
    # and float32 positions are measurably different from the reference's bf16 ones
    assert _max_diff(exact_v.float(), out_v.float()) > _max_diff(ref_v.float(), out_v.float())


# ----------------------------------------------------------------------------------------------------------------
# diffusers 0.42.1
# ----------------------------------------------------------------------------------------------------------------

DIFFUSERS_TINY = dict(
    in_channels=128, out_channels=128, num_attention_heads=2, attention_head_dim=32, cross_attention_dim=64,
    audio_in_channels=128, audio_out_channels=128, audio_num_attention_heads=2, audio_attention_head_dim=16,
    audio_cross_attention_dim=32, num_layers=2, caption_channels=24, rope_type="split",
    rope_double_precision=True, cross_attn_timestep_scale_multiplier=1000, perturbed_attn=True,
)


@pytest.fixture(scope="module")
def diffusers_folder(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    model = random_init_(diffusers.LTX2VideoTransformer3DModel(**DIFFUSERS_TINY), seed=3).eval()
    folder = tmp_path_factory.mktemp("diffusers_transformer")
    model.save_pretrained(folder)
    return model, folder


def test_loads_diffusers_folder_unchanged(diffusers_folder):
    theirs, folder = diffusers_folder
    ours, info = LTX2AudioVideoTransformer.from_pretrained(folder, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert set(ours.state_dict()) == set(theirs.state_dict())
    for key in ("rope_type", "num_layers", "audio_attention_head_dim", "cross_attn_timestep_scale_multiplier"):
        assert ours.config[key] == theirs.config[key]


@pytest.mark.parametrize("label", ["plain", "isolated", "stg"])
def test_diffusers_parity(diffusers_folder, label):
    theirs, folder = diffusers_folder
    ours = LTX2AudioVideoTransformer.from_pretrained(folder).eval()
    inputs = av_inputs(batch=2, frames=17, height=64, width=96, caption_channels=24)
    x = inputs.ours
    batch, video_tokens = x["hidden_states"].shape[:2]
    kwargs = {"isolated": {"isolate_modalities": True},
              "stg": {"spatio_temporal_guidance_blocks": [1]}}.get(label, {})
    with torch.no_grad():
        # the same arguments (σ·1000, the other stream's σ for A<->V modulation) with the reference's coordinates
        ref_v, ref_a = theirs(
            hidden_states=x["hidden_states"], audio_hidden_states=x["audio_hidden_states"],
            encoder_hidden_states=x["encoder_hidden_states"],
            audio_encoder_hidden_states=x["audio_encoder_hidden_states"],
            timestep=x["timestep"], audio_timestep=x["audio_timestep"], sigma=x["sigma"],
            audio_sigma=x["audio_sigma"], use_cross_timestep=x["use_cross_timestep"],
            video_coords=inputs.video.positions, audio_coords=inputs.audio.positions, return_dict=False, **kwargs)
        out_v, out_a = ours(**x, **kwargs, return_dict=False)
    assert ref_v.shape == (batch, video_tokens, 128)
    assert _max_diff(ref_v, out_v) <= TOL
    assert _max_diff(ref_a, out_a) <= TOL
