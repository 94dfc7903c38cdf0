"""Every mode of the pipeline on the tiny LTX-2.3 pipeline (48 kHz BWE vocoder, per-stream text widths, 2.3 VAE,
plain x2 upsampler): text, images (frame 0 and a keyframe), audio-to-video, video-to-audio, retake, multi-scale with
tiled refinement, distilled σ lists; a diffusers-saved 2.3 folder; components that do not fit together."""

import json

import numpy as np
import pytest
import torch

from ltx2_diffusers import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, LTX2AudioVideoPipeline, LTX2VocoderWithBWE
from ltx2_diffusers.models.audio_processing import audio_latent_length, resample, waveform_length
from ltx2_diffusers.pipelines.conditioning import preprocess_image
from ltx2_diffusers.pipelines.latents import VideoLatentShape
from ltx2_diffusers.pipelines.model_facts import PipelineFacts
from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import call_arguments
from ltx2_diffusers.pipelines.plan import plan_generation
from ltx2_diffusers.pipelines.sources import encode_audio_source, encode_video_source
from ltx2_diffusers.pipelines.token_tiling import TokenTiling
from ltx2_diffusers.utils.tiny import tiny_components, tiny_pipeline

from .oracles_pipeline import diffusers_latents_as_ours

TEXT = dict(max_sequence_length=32, negative_prompt="blurry")
CLIP = dict(num_frames=9, height=64, width=96, num_inference_steps=2, **TEXT)
OFF = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.0, audio_guidance_scale=1.0,
           audio_stg_scale=0.0, audio_modality_scale=1.0, audio_guidance_rescale=0.0)
RATE, PER_FRAME = 48000, 480  # the LTX-2.3 vocoder's output rate and samples per mel frame
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # narrow convolutions on a shared machine


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(seed=0, version="2.3")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _image(h=64, w=96):
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    return np.stack([yy, xx, 0.5 * np.ones_like(xx)], axis=-1).astype(np.float32)


class Recorder:
    """A step callback keeping (stage, timestep, video latents, audio latents) of every step."""

    def __init__(self):
        self.steps = []

    def __call__(self, pipe, step, t, tensors):
        self.steps.append((pipe.stage, float(t), tensors["latents"].clone(), tensors["audio_latents"].clone()))
        return {}


def _call(pipe, recorder=None, **kwargs):
    extra = dict(callback_on_step_end=recorder, callback_on_step_end_tensor_inputs=["latents", "audio_latents"]) \
        if recorder is not None else {}
    with torch.no_grad():
        return pipe("a dog barks", generator=kwargs.pop("generator", _gen()), **extra, **kwargs)


def _calls(module):
    calls = []
    return calls, module.register_forward_hook(lambda module, args, kwargs, output: calls.append(
        kwargs["hidden_states"].shape[1]), with_kwargs=True)


# ----------------------------------------------------------------------------------------------------------------
# Text and images
# ----------------------------------------------------------------------------------------------------------------


def test_text_to_audio_video_gives_48khz_stereo_of_the_planned_length(pipe):
    out = _call(pipe, output_type="np", **CLIP)
    tokens = audio_latent_length(9, 24.0)
    assert out.frames.shape == (1, 9, 64, 96, 3) and out.sample_rate == RATE
    assert out.audio.shape == (1, 2, waveform_length(tokens, PER_FRAME)) == (1, 2, pipe.plan(**CLIP,
                                                                                             prompt="a").audio_samples)
    assert np.isfinite(out.audio).all() and 0.01 < np.abs(out.audio).mean() < 1
    assert np.abs(out.audio[0, 0] - out.audio[0, 1]).max() > 1e-3  # two channels


def test_images_at_frame_zero_and_at_a_keyframe(pipe):
    image = _image()
    plain = _call(pipe, output_type="latent", **CLIP)
    first = _call(pipe, image=image, image_crf=0, output_type="latent", **CLIP)
    pixels = preprocess_image(image, 64, 96, crf=0).view(1, 3, 1, 64, 96)
    with torch.no_grad():
        normalised = pipe.vae.normalize_latents(pipe.vae.encode(pixels).latent_dist.mode())  # [1, C, 1, h, w]
    # the latent output is VAE-space [B, C, F', H', W']: frame 0 is the image's latents, kept exactly
    assert torch.equal(first.frames[:, :, :1], pipe.vae.denormalize_latents(normalised))
    assert (first.frames[:, :, 1:] - plain.frames[:, :, 1:]).abs().max() > 1e-3
    calls, hook = _calls(pipe.transformer)
    try:
        key = _call(pipe, conditions=[(image, 8, 0.9)], output_type="latent", **CLIP, **OFF)
    finally:
        hook.remove()
    assert calls == [12 + 6] * 2  # the keyframe's 2 x 3 tokens are appended during denoising
    assert key.frames.shape == plain.frames.shape and (key.frames - plain.frames).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------------------------
# Held streams and retake
# ----------------------------------------------------------------------------------------------------------------


def test_audio_to_video_returns_the_input_resampled_to_48khz(pipe):
    waveform = 0.3 * torch.randn(2, 22050, generator=_gen(1))  # 0.5 s at 44.1 kHz
    recorder = Recorder()
    out = _call(pipe, recorder, audio=waveform, audio_sample_rate=44100, output_type="np", **CLIP)
    for _, _, _, audio in recorder.steps:  # the audio latents never move
        assert torch.equal(audio, recorder.steps[0][3])
    assert not torch.equal(recorder.steps[0][2], recorder.steps[-1][2])
    expected = resample(waveform, 44100, RATE)[:, : round(9 / 24 * RATE)]
    assert out.sample_rate == RATE and out.audio.shape == (1, 2, 18000)
    np.testing.assert_allclose(out.audio[0], expected.numpy(), rtol=0, atol=1e-6)


def test_video_to_audio_keeps_the_video_and_generates_48khz_audio(pipe):
    frames = torch.rand(9, 64, 96, 3, generator=_gen(2))
    recorder = Recorder()
    out = _call(pipe, recorder, video=frames, output_type="np", num_inference_steps=2, **TEXT)
    bounds = pipe.transformer.video_coordinates(2, 1, 1, 24.0)[0, 0]
    with torch.no_grad():
        source = encode_video_source(pipe.vae, frames.permute(0, 3, 1, 2) * 2 - 1, VideoLatentShape(2, 2, 3, 8),
                                     bounds, None, CPU)
    assert all(torch.equal(video, source.clean) for _, _, video, _ in recorder.steps)
    np.testing.assert_allclose(out.frames[0], frames.numpy(), rtol=0, atol=1e-6)
    assert out.audio.shape == (1, 2, waveform_length(audio_latent_length(9, 24.0), PER_FRAME))
    assert np.isfinite(out.audio).all() and np.abs(out.audio).max() > 0


def test_retake_regenerates_only_the_window(pipe):
    frames, waveform = torch.rand(17, 64, 96, 3, generator=_gen(3)), 0.3 * torch.randn(2, 16000, generator=_gen(4))
    window = (0.4, 0.6)
    out = _call(pipe, video=frames, audio=(waveform, 16000), retake_window=window, output_type="latent",
                **dict(CLIP, num_frames=17))
    with torch.no_grad():
        video = encode_video_source(pipe.vae, frames.permute(0, 3, 1, 2) * 2 - 1, VideoLatentShape(3, 2, 3, 8),
                                    pipe.transformer.video_coordinates(3, 1, 1, 24.0)[0, 0], window, CPU)
        tokens = audio_latent_length(17, 24.0)
        audio = encode_audio_source(pipe.audio_vae, waveform, 16000, tokens,
                                    pipe.transformer.audio_coordinates(tokens)[0, 0], window, CPU)
    assert video.held.tolist() == [True] * 12 + [False] * 6
    for held, result in zip((video, audio), diffusers_latents_as_ours(pipe, out.frames, out.audio)):
        assert 0 < int((~held.held).sum()) < held.held.numel()
        torch.testing.assert_close(result[0, held.held], held.clean[0, held.held], rtol=0, atol=1e-5)
        assert (result[0, ~held.held] - held.clean[0, ~held.held]).abs().max() > 0.1


# ----------------------------------------------------------------------------------------------------------------
# Multi-scale and distilled schedules
# ----------------------------------------------------------------------------------------------------------------


def test_multi_scale_with_tiled_refinement_on_the_plain_upsampler(pipe):
    assert pipe.latent_upsampler.config.use_rational_resampler is False
    recorder, tiling = Recorder(), TokenTiling(max_tokens=32, spatial_overlap=1, temporal_overlap=0)
    calls, hook = _calls(pipe.transformer)
    try:
        out = _call(pipe, recorder, upsample=True, refine_tiling=tiling, output_type="np",
                    **dict(CLIP, height=192, width=192), **OFF)
    finally:
        hook.remove()
    assert calls == [2 * 3 * 3] * 2 + [32] * 4 * 3  # stage 1 whole; stage 2: 3 steps x 4 tiles of 2 x 4 x 4
    assert [s[0] for s in recorder.steps] == [1, 1, 2, 2, 2]
    torch.testing.assert_close(torch.tensor([s[1] for s in recorder.steps[2:]]),
                               torch.tensor(STAGE_2_DISTILLED_SIGMAS) * 1000)
    assert out.frames.shape == (1, 9, 192, 192, 3) and np.isfinite(out.frames).all()
    assert out.audio.shape == (1, 2, waveform_length(audio_latent_length(9, 24.0), PER_FRAME))


def test_the_distilled_sigma_list_runs_one_unguided_pass_per_step(pipe):
    recorder = Recorder()
    calls, hook = _calls(pipe.transformer)
    try:
        out = _call(pipe, recorder, sigmas=DISTILLED_SIGMAS, output_type="latent", **CLIP, **OFF)
    finally:
        hook.remove()
    assert len(calls) == len(DISTILLED_SIGMAS) == 8
    torch.testing.assert_close(torch.tensor([s[1] for s in recorder.steps]), torch.tensor(DISTILLED_SIGMAS) * 1000)
    assert torch.isfinite(out.frames).all() and out.frames.abs().mean() > 0.1


# ----------------------------------------------------------------------------------------------------------------
# Folders and components
# ----------------------------------------------------------------------------------------------------------------


def test_a_diffusers_saved_23_folder_maps_onto_our_classes_and_runs(pipe, tmp_path):
    from .oracles_int23 import diffusers_23_pipeline

    diffusers_23_pipeline(pipe.text_encoder, pipe.tokenizer).save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["vocoder"] == ["ltx2", "LTX2VocoderWithBWE"]  # diffusers.pipelines.ltx2
    loaded = LTX2AudioVideoPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vocoder, LTX2VocoderWithBWE) and loaded.vocoder.config.final_act_fn is None
    assert all(type(loaded.components[n]).__module__.startswith("ltx2_diffusers") for n in (
        "scheduler", "vae", "audio_vae", "connectors", "transformer", "vocoder"))
    facts = PipelineFacts.from_folder(tmp_path)  # what `ltx2-diffusers generate` plans from, before loading
    assert facts.defaults.version == "2.3" and facts.samples_per_mel_frame == PER_FRAME
    out = _call(loaded, output_type="np", **CLIP)
    assert out.sample_rate == RATE and out.audio.shape == (1, 2, waveform_length(audio_latent_length(9, 24.0), 480))
    assert out.frames.shape == (1, 9, 64, 96, 3) and np.isfinite(out.audio).all()


def test_components_that_do_not_fit_together_are_refused_before_any_model_runs(pipe, tmp_path):
    new, old = tiny_components(0, "2.3"), tiny_components(0)
    mixed = LTX2AudioVideoPipeline(**{**new, "transformer": old["transformer"]})
    calls, hook = _calls(mixed.transformer)
    try:
        with pytest.raises(ValueError, match=r"text connectors give 32 / 16-wide .* transformer takes 32 / 32"):
            _call(mixed, output_type="latent", **CLIP)
    finally:
        hook.remove()
    assert not calls
    mixed.save_pretrained(tmp_path)  # the command line's check, from the folder's config files alone
    facts = PipelineFacts.from_folder(tmp_path)
    assert len(facts.mismatches) == 1 and "text connectors" in facts.mismatches[0]
    with pytest.raises(ValueError, match="do not fit together"):
        plan_generation(facts, call_arguments(prompt="a", max_sequence_length=32))
    old_vocoder = LTX2AudioVideoPipeline(**{**new, "vocoder": old["vocoder"]})
    assert old_vocoder.vocoder.upsample_factor == 240 and old_vocoder.facts().vocoder_rate == 24000  # 2.0's fits
    with pytest.raises(ValueError, match="same LTX version"):
        _call(pipe, upsample=True, stage_2_transformer=old["transformer"], output_type="latent",
              **dict(CLIP, height=128, width=192))
