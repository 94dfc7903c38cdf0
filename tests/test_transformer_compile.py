"""The transformer forward is one graph without host syncs: dynamo sees no break in any guidance pass, it runs on the
meta device, and a compiled transformer runs a whole denoising loop compiling once per distinct pass."""

from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.pipelines.denoising import MaskLevels, StreamInputs, denoise_step, predict_x0
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.utils.tiny import tiny_pipeline

from .oracles_tapi import CompileCounter

TINY = dict(num_layers=1, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
            audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16, caption_channels=24,
            in_channels=16, out_channels=16, audio_in_channels=8, audio_out_channels=8)
PER_TOKEN = torch.tensor([900.0, 400.0])[:, None].repeat(1, 12)
PER_TOKEN[:, :6] = 0.0  # first latent frame clean
CASES = {
    "plain": {},
    "per-token σ": {"timestep": PER_TOKEN},
    "STG mask": {"spatio_temporal_guidance_blocks": [0], "perturbation_mask": torch.tensor([0.0, 1.0])},
    "isolation mask": {"isolate_modalities": torch.tensor([True, False])},
    "all at once": {"timestep": torch.tensor([0.0, 400.0, 900.0]),  # distinct values + index: AdaLN 3 times
                    "timestep_index": torch.tensor([[0] * 6 + [2] * 6, [0] * 6 + [1] * 6]),
                    "spatio_temporal_guidance_blocks": [0],
                    "perturbation_mask": torch.tensor([0.0, 1.0]), "isolate_modalities": torch.tensor([True, False]),
                    "encoder_attention_mask": torch.tensor([[1] * 4 + [0] * 2] * 2), "use_cross_timestep": True,
                    "video_self_attention_mask": torch.ones(2, 12, 12), "sigma": torch.tensor([900.0, 400.0])},
}


def _inputs(device: str = "cpu") -> dict:
    g = torch.Generator().manual_seed(0)
    return dict(
        hidden_states=torch.randn(2, 12, 16, generator=g).to(device),
        audio_hidden_states=torch.randn(2, 5, 8, generator=g).to(device),
        encoder_hidden_states=torch.randn(2, 6, 24, generator=g).to(device),
        audio_encoder_hidden_states=torch.randn(2, 6, 24, generator=g).to(device),
        timestep=torch.tensor([900.0, 400.0], device=device), num_frames=2, height=2, width=3,
    )


def test_every_guidance_pass_is_one_graph_without_breaks():
    torch.manual_seed(0)
    model = LTX2AudioVideoTransformer(**TINY).eval()
    for label, extra in CASES.items():
        with torch.no_grad():
            report = torch._dynamo.explain(model)(**{**_inputs(), **extra}, return_dict=False)
        assert (report.graph_count, report.graph_break_count) == (1, 0), (label, report.break_reasons)


def test_forward_runs_on_the_meta_device():
    with torch.device("meta"):
        model = LTX2AudioVideoTransformer(**TINY).eval()
    extra = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in CASES["all at once"].items()}
    out = model(**{**_inputs("meta"), **extra})
    assert out.sample.shape == (2, 12, 16) and out.sample.is_meta
    assert out.audio_sample.shape == (2, 5, 8) and out.audio_sample.is_meta


# ----------------------------------------------------------------------------------------------------------------
# Compiled transformer in the pipeline's denoising loop
# ----------------------------------------------------------------------------------------------------------------

GUIDED = dict(num_frames=9, height=64, width=96, max_sequence_length=32, output_type="latent", negative_prompt="blur",
              guidance_scale=3.0, audio_guidance_scale=7.0, stg_scale=1.0, audio_stg_scale=1.0, modality_scale=3.0,
              audio_modality_scale=3.0, spatio_temporal_guidance_blocks=[1], image_crf=0)


def _image() -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 96), indexing="ij")
    return np.stack([yy, xx, 0.5 * np.ones_like(xx)], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def eager():
    """The tiny pipeline and its eager result for image-conditioned (per-token σ) generation with every guidance
    pass: conditional + negative (batched), STG, modality-isolated."""
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        out = pipe("a dog barks", image=_image(), num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                   **GUIDED)
    return pipe, out


@pytest.mark.parametrize("regional", [False, True], ids=["torch.compile", "compile_repeated_blocks"])
def test_compiled_loop_compiles_once_per_pass_and_matches_eager(eager, regional):
    """fullgraph=True in every pass; σ changes are tensor values, so later steps reuse the first step's graphs."""
    pipe, reference = eager
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    counter = CompileCounter()
    torch._dynamo.reset()
    if regional:
        pipe.transformer.compile_repeated_blocks(fullgraph=True, dynamic=False, backend=counter)
    else:
        pipe.transformer.compile(fullgraph=True, dynamic=False, backend=counter)
    per_step = []

    def count(pipe, step, timestep, tensors):
        per_step.append(len(counter.graphs))
        return {}

    with torch.no_grad():
        out = pipe("a dog barks", image=_image(), num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                   callback_on_step_end=count, **GUIDED)
    # static shapes: the whole model compiles once per pass (cond+negative, STG, isolated); regional compile once
    # per distinct block call (batched pass, STG block, the other blocks of the STG pass, isolated pass)
    assert per_step == [3 if not regional else 4] * 3
    torch.testing.assert_close(out.frames, reference.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.audio, reference.audio, rtol=0, atol=1e-5)


def test_inductor_compiled_blocks_match_eager_over_a_loop():
    """CPU inductor, regional (one block graph shared by every layer), an unguided image-conditioned loop."""
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    args = dict(GUIDED, guidance_scale=1.0, audio_guidance_scale=1.0, stg_scale=0.0, audio_stg_scale=0.0,
                modality_scale=1.0, audio_modality_scale=1.0, negative_prompt=None, num_inference_steps=2)
    with torch.no_grad():
        reference = pipe("a dog barks", image=_image(), generator=torch.Generator().manual_seed(0), **args)
        counter = CompileCounter(inductor=True)
        torch._dynamo.reset()
        pipe.transformer.compile_repeated_blocks(fullgraph=True, dynamic=False, backend=counter)
        out = pipe("a dog barks", image=_image(), generator=torch.Generator().manual_seed(0), **args)
    assert len(counter.graphs) == 1
    torch.testing.assert_close(out.frames, reference.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.audio, reference.audio, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# The guided step around it
# ----------------------------------------------------------------------------------------------------------------


def _streams(device: str, levels_from: StreamInputs | None = None) -> tuple[StreamInputs, StreamInputs]:
    g = torch.Generator().manual_seed(1)
    model_coords = LTX2AudioVideoTransformer(**TINY)
    mask = torch.ones(1, 12)
    mask[:, :6] = 0.0  # first latent frame held
    video = dict(latents=torch.randn(1, 12, 16, generator=g), coords=model_coords.video_coordinates(2, 2, 3, 24.0),
                 context=torch.randn(1, 6, 24, generator=g), negative_context=torch.randn(1, 6, 24, generator=g),
                 denoise_mask=mask, clean=torch.randn(1, 12, 16, generator=g))
    audio = dict(latents=torch.randn(1, 5, 8, generator=g), coords=model_coords.audio_coordinates(5),
                 context=torch.randn(1, 6, 24, generator=g), negative_context=torch.randn(1, 6, 24, generator=g))
    video = {k: v.to(device) for k, v in video.items()}
    audio = {k: v.to(device) for k, v in audio.items()}
    guidance = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)
    levels = None
    if levels_from is not None:  # the distinct mask values are found where the mask is made (here: on the CPU)
        cpu = levels_from.mask_levels
        levels = MaskLevels(video["denoise_mask"], cpu.values.to(device), cpu.index.to(device))
    return (StreamInputs(**video, guidance=guidance, stg_blocks=(0,), mask_levels=levels),
            StreamInputs(**audio, guidance=guidance, stg_blocks=(0,)))


def test_mask_levels_are_found_once_and_carried_along():
    video, _ = _streams("cpu")
    levels = video.mask_levels
    assert torch.equal(levels.values, torch.tensor([0.0, 1.0])) and torch.equal(levels.values[levels.index],
                                                                                video.denoise_mask)
    assert replace(video, latents=video.latents + 1).mask_levels is levels  # a step keeps them
    changed = replace(video, denoise_mask=video.denoise_mask * 0.5)  # a new mask gets its own
    assert torch.equal(changed.mask_levels.values, torch.tensor([0.0, 0.5]))
    tile = levels.select(torch.tensor([4, 5, 6, 7]))
    assert torch.equal(tile.values[tile.index], video.denoise_mask[:, 4:8])


def test_guided_step_reads_no_values_on_the_host():
    """A whole guided step (CFG + STG + modality, a held frame) runs on the meta device: nothing in it waits for the
    device; the transformer gets diffusers' units and the mask's distinct values with an index."""
    with torch.device("meta"):
        model = LTX2AudioVideoTransformer(**TINY).eval()
    calls = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs), with_kwargs=True)
    video, audio = _streams("meta", levels_from=_streams("cpu")[0])
    sigma, sigma_next = torch.tensor(0.9, device="meta"), torch.tensor(0.6, device="meta")
    video, audio = denoise_step(partial(predict_x0, model, fps=24.0), video, audio, sigma, sigma_next)
    assert video.latents.is_meta and video.latents.shape == (1, 12, 16) and audio.latents.shape == (1, 5, 8)
    assert len(calls) == 3 and all(c["use_cross_timestep"] for c in calls)
    assert calls[0]["timestep"].shape == (2,) and calls[0]["timestep_index"].shape == (2, 12)
    assert calls[0]["sigma"].shape == (2,) and calls[0]["audio_timestep"].shape == (2,)


def test_pipeline_timesteps_are_sigma_times_the_multiplier():
    torch.manual_seed(0)
    model = LTX2AudioVideoTransformer(**TINY).eval()
    calls = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs), with_kwargs=True)
    video, audio = _streams("cpu")
    with torch.no_grad():
        predict_x0(model, video, audio, torch.tensor(0.75), fps=24.0)
    first = calls[0]
    torch.testing.assert_close(first["timestep"], torch.tensor([0.0, 750.0]), rtol=0, atol=0)
    torch.testing.assert_close(first["timestep"][first["timestep_index"][0]], 750.0 * video.denoise_mask[0])
    torch.testing.assert_close(first["sigma"], torch.tensor([750.0, 750.0]))
    torch.testing.assert_close(first["audio_timestep"], torch.tensor([750.0, 750.0]))
