"""Drop-in folders: what ``save_pretrained`` and ``convert`` write is diffusers' own LTX-2 format. diffusers 0.42.1
loads it (``DiffusionPipeline`` and ``LTX2Pipeline``), strictly, writes back the same index and configs, and runs it
with the result ours gets; ours still loads it."""

import json
import math

import diffusers
import pytest
import torch
from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel
from diffusers.pipelines.ltx2 import LTX2TextConnectors as TheirConnectors
from diffusers.pipelines.ltx2 import LTX2Vocoder as TheirVocoder

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2LatentUpsampler, LTX2Scheduler
from ltx2_diffusers.models.audio_processing import audio_latent_length
from ltx2_diffusers.utils.tiny import tiny_pipeline

from .oracles_pipeline import diffusers_latents_as_ours

FRAMES, HEIGHT, WIDTH, FPS, STEPS = 9, 64, 96, 24.0, 3
CLIP = dict(num_frames=FRAMES, height=HEIGHT, width=WIDTH, frame_rate=FPS)
THEIR_CLASSES = {"transformer": diffusers.LTX2VideoTransformer3DModel, "vae": diffusers.AutoencoderKLLTX2Video,
                 "audio_vae": diffusers.AutoencoderKLLTX2Audio, "connectors": TheirConnectors,
                 "vocoder": TheirVocoder, "latent_upsampler": LTX2LatentUpsamplerModel}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ours")
    pipe = tiny_pipeline(seed=2)
    pipe.save_pretrained(folder)
    return pipe, folder


@pytest.fixture(scope="module")
def theirs(saved):
    pipe = diffusers.DiffusionPipeline.from_pretrained(saved[1])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _json(path):
    return json.loads(path.read_text())


def _config(path):
    """A config without the fields that name who wrote it and from where."""
    return {k: v for k, v in _json(path).items() if k not in ("_diffusers_version", "_name_or_path")}


def _same_tensors(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_index_names_diffusers_classes_and_diffusers_writes_back_the_same_folder(saved, theirs, tmp_path):
    _, folder = saved
    index = _json(folder / "model_index.json")
    assert index["_class_name"] == "LTX2Pipeline" and index["latent_upsampler"] == ["ltx2", "LTX2LatentUpsamplerModel"]
    theirs.save_pretrained(tmp_path)  # what diffusers itself writes for these components
    their_index = _json(tmp_path / "model_index.json")
    shared = sorted(set(index) & set(their_index) - {"_diffusers_version"})
    assert {k: index[k] for k in shared} == {k: their_index[k] for k in shared}
    assert set(index) - set(their_index) == {"latent_upsampler"}  # diffusers' LTX2Pipeline does not take it
    for name in ("transformer", "vae", "audio_vae", "connectors", "vocoder", "scheduler"):
        file = "scheduler_config.json" if name == "scheduler" else "config.json"
        ours = _config(folder / name / file)
        assert ours == _config(tmp_path / name / file), name  # same keys, same values, diffusers' _class_name
    assert _json(folder / "transformer" / "config.json")["_class_name"] == "LTX2VideoTransformer3DModel"
    assert math.isclose(ours["shift"], math.exp(2.05)) and ours["use_dynamic_shifting"] is False


def test_diffusers_loads_every_component_strictly_with_our_tensors(saved, theirs):
    pipe, folder = saved
    assert type(theirs).__name__ == "LTX2Pipeline"
    for name, cls in THEIR_CLASSES.items():
        model, info = cls.from_pretrained(folder, subfolder=name, output_loading_info=True)
        assert not any(info.values()), (name, info)
        assert _same_tensors(model, getattr(pipe, name)), name
        if name != "latent_upsampler":
            assert type(getattr(theirs, name)) is cls and _same_tensors(getattr(theirs, name), model), name
    assert type(theirs.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    direct = diffusers.LTX2Pipeline.from_pretrained(folder)
    assert _same_tensors(direct.transformer, pipe.transformer)


def test_ours_loads_its_folder_back(saved):
    pipe, folder = saved
    loaded = LTX2AudioVideoPipeline.from_pretrained(folder)
    assert isinstance(loaded.scheduler, LTX2Scheduler) and isinstance(loaded.latent_upsampler, LTX2LatentUpsampler)
    for name in ("transformer", "vae", "audio_vae", "connectors", "vocoder", "latent_upsampler", "text_encoder"):
        assert _same_tensors(getattr(loaded, name), getattr(pipe, name)), name
    torch.testing.assert_close(loaded.scheduler.schedule(40), pipe.scheduler.schedule(40), rtol=0, atol=1e-7)


@pytest.mark.parity
def test_diffusers_runs_our_folder_as_written_with_our_result(saved, theirs):
    """diffusers' LTX2Pipeline exactly as DiffusionPipeline.from_pretrained built it from our folder (its scheduler
    config included: no σ list is passed, both libraries derive the reference's schedule from the folder), with
    guidance both implement alike: text CFG, modality guidance and rescale on both streams, STG off (an LTX-2.0
    transformer config has no perturbed-attention processors in diffusers), ``use_cross_timestep=True``. diffusers
    draws T2V noise 5-D and we draw it packed, so both start from the same given latents (``noise_scale=0``).
    diffusers computes the σ list in float64 and the reference (and we) in float32 (σ_0 = 1 - 2.4e-7): that rounding
    is the whole difference here (7e-5 / 9e-5 after 3 guided steps; 3e-6 / 5e-6 from one σ list)."""
    pipe, folder = saved
    ours = LTX2AudioVideoPipeline.from_pretrained(folder)
    ours.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(3)
    tokens = ((FRAMES - 1) // 8 + 1) * (HEIGHT // 32) * (WIDTH // 32)
    video = torch.randn(1, tokens, pipe.transformer.config.in_channels, generator=g)
    audio = torch.randn(1, audio_latent_length(FRAMES, FPS), pipe.transformer.config.audio_in_channels, generator=g)
    guidance = dict(guidance_scale=3.0, modality_scale=3.0, guidance_rescale=0.7, stg_scale=0.0, audio_stg_scale=0.0,
                    audio_guidance_scale=7.0, audio_modality_scale=3.0, audio_guidance_rescale=0.7)
    common = dict(negative_prompt="blurry", num_inference_steps=STEPS, max_sequence_length=32, output_type="latent",
                  **guidance, **CLIP)
    with torch.no_grad():
        mine = ours("a cat plays the piano", latents=video, audio_latents=audio, **common)
        other = theirs("a cat plays the piano", latents=video, audio_latents=ours.audio_vae.denormalize_latents(audio),
                       noise_scale=0.0, use_cross_timestep=True, generator=torch.Generator().manual_seed(0), **common)
    planned = torch.tensor(ours.plan(prompt="x", **common).stages[0].sigmas)
    torch.testing.assert_close(theirs.scheduler.sigmas, planned, rtol=0, atol=1e-6)  # one schedule, both libraries
    my_video, my_audio = diffusers_latents_as_ours(ours, mine.frames, mine.audio)
    assert (my_video - video).abs().max() > 0.1 and my_audio.abs().mean() > 0.3  # the sampler moved them
    assert mine.frames.shape == other.frames.shape and mine.audio.shape == other.audio.shape  # one latent layout
    # compared where the sampler works: normalised tokens
    their_video, their_audio = diffusers_latents_as_ours(ours, other.frames, other.audio)
    assert (my_video - their_video).abs().max() <= 1e-4
    assert (my_audio - their_audio).abs().max() <= 1e-4
