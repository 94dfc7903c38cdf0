"""The generation plan as a pure function: every mode's streams and stages, and every invalid input's error, with
no model at all (the facts are written by hand)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ltx2_diffusers import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler, TokenTiling
from ltx2_diffusers.models.audio_processing import audio_latent_length
from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextEmbeddings
from ltx2_diffusers.models.tiling import VideoTiling
from ltx2_diffusers.pipelines.defaults import DEFAULT_NEGATIVE_PROMPT, LTX_2_0, LTX_2_3
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.pipelines.latents import VideoLatentShape
from ltx2_diffusers.pipelines.model_facts import AdapterFacts, PipelineFacts, TransformerFacts
from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import call_arguments
from ltx2_diffusers.pipelines.plan import AUTO_TILING_PIXELS, plan_generation

OFF = GuidanceParams()


def facts(**overrides) -> PipelineFacts:
    """A 48-block LTX-2.0 model with the real compressions and mel grid, 1 TiB of memory, no upsampler."""
    base = dict(
        defaults=LTX_2_0,
        transformer=TransformerFacts(num_layers=48, in_channels=128, audio_in_channels=128, video_width=4096,
                                     audio_width=2048, dtype_bytes=2),
        spatial_compression=32, temporal_compression=8, decoder_width=8.0, vae_dtype_bytes=2,
        audio_sample_rate=16000, audio_hop_length=160, audio_compression=4, audio_causal=True, vocoder_rate=24000,
        register_multiple=128, has_text_encoder=True, upsampler=None, vae_tiling=None, scheduler=LTX2Scheduler(),
        memory_bytes=2**40,
    )
    base.update(overrides)
    return PipelineFacts(**base)


def plan(facts_=None, **kwargs):
    return plan_generation(facts_ or facts(), call_arguments(**{"prompt": "a cat", **kwargs}))


def wave(samples):
    return 0.5 * torch.sin(torch.arange(samples) / 7.0).expand(2, -1)


def frames(count=9, height=64, width=96):
    return torch.rand(count, height, width, 3)


# ----------------------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------------------


def test_text_to_audio_video_takes_the_version_defaults():
    p = plan()
    assert (p.num_frames, p.height, p.width, p.frame_rate, p.batch) == (121, 512, 768, 24.0, 1)
    assert p.audio_tokens == 126 and len(p.stages) == 1
    stage = p.stages[0]
    assert stage.shape == VideoLatentShape(16, 16, 24, 128) and stage.num_steps == 40 and stage.sigmas[-1] == 0.0
    assert stage.video_guidance == LTX_2_0.video_guidance and stage.audio_guidance == LTX_2_0.audio_guidance
    assert stage.passes == ("cond", "uncond", "perturbed", "isolated")
    assert p.video.stg_blocks == p.audio.stg_blocks == (29,)
    assert p.text.needs_negative and p.text.negative_prompts == [DEFAULT_NEGATIVE_PROMPT]
    assert p.image_crf == 33 and p.decode_tiling is False and stage.tiles is None
    # LTX-2.3: 30 steps, STG at block 28
    p23 = plan(facts(defaults=LTX_2_3))
    assert p23.stages[0].num_steps == 30 and p23.video.stg_blocks == (28,)


def test_given_values_win_and_zero_is_off_not_a_fallback():
    p = plan(guidance_scale=1.0, audio_stg_scale=0.0, audio_guidance_rescale=0.0,
             spatio_temporal_guidance_blocks=[3, 1, 3])
    assert p.stages[0].video_guidance == replace(LTX_2_0.video_guidance, guidance_scale=1.0)
    assert p.stages[0].audio_guidance == replace(LTX_2_0.audio_guidance, stg_scale=0.0, guidance_rescale=0.0)
    assert p.video.stg_blocks == (1, 3) and p.audio.stg_blocks == (1, 3)  # audio falls back to the video list
    unguided = plan(sigmas=DISTILLED_SIGMAS, guidance_scale=1.0, audio_guidance_scale=1.0, stg_scale=0.0,
                    audio_stg_scale=0.0, modality_scale=1.0, audio_modality_scale=1.0)
    assert unguided.stages[0].passes == ("cond",) and not unguided.text.needs_negative
    assert unguided.stages[0].sigmas == (*torch.tensor(DISTILLED_SIGMAS).tolist(), 0.0)  # float32, as they run
    assert unguided.text.negative_prompts is None


def test_integral_floats_are_accepted_where_integers_are_meant():
    p = plan(height=64.0, width=96.0, num_frames=9.0, num_inference_steps=2.0, num_videos_per_prompt=2.0,
             prompt=["a", "b"])
    assert (p.height, p.width, p.num_frames, p.stages[0].num_steps, p.batch) == (64, 96, 9, 2, 4)
    assert isinstance(p.height, int)


def test_audio_to_video_holds_the_audio_and_its_prompt_is_its_negative():
    waveform = wave(16000)
    p = plan(audio=waveform, audio_sample_rate=16000, num_frames=9, height=64, width=96)
    assert p.audio.held and not p.video.held
    assert p.stages[0].audio_guidance == OFF and p.audio.own_negative and not p.video.own_negative
    assert p.stages[0].video_guidance == LTX_2_0.video_guidance
    # trimmed to the clip (0.375 s) plus the margin before encoding
    assert p.audio_source.media.shape[-1] == math.ceil((9 / 24 + 0.5) * 16000) < 16000 * 1


def test_audio_shorter_than_the_clip_is_not_held_whole():
    p = plan(audio=(wave(4000), 16000), num_frames=17, height=64, width=96)
    assert not p.audio.held and p.stages[0].audio_guidance == LTX_2_0.audio_guidance


def test_video_to_audio_takes_the_video_size_and_holds_it():
    p = plan(video=frames(17), frame_rate=25.0)
    assert (p.num_frames, p.height, p.width, p.frame_rate) == (17, 64, 96, 25.0)
    assert p.video.held and p.stages[0].video_guidance == OFF and p.video.own_negative
    assert p.audio_tokens == audio_latent_length(17, 25.0)


def test_a_shorter_video_is_extended_and_a_window_is_retaken():
    extend = plan(video=frames(9), num_frames=17)
    assert not extend.video.held and extend.video_source.window is None
    retake = plan(video=frames(17), audio=(wave(16000), 16000), retake_window=(0.2, 0.5),
                  retake_modalities=["audio"])
    assert retake.video.held and not retake.audio.held
    assert retake.audio_source.window == (0.2, 0.5) and retake.video_source.window is None


def test_upsample_is_two_stages_and_read_nowhere_else():
    f = facts(upsampler=(2.0, 1.0), transformer=replace(facts().transformer, adapters=AdapterFacts(
        ("distilled",), ("distilled",), ())))
    p = plan(f, upsample=True, height=1024, width=1536, stage_2_adapters="distilled")
    first, second = p.stages
    assert first.shape == VideoLatentShape(16, 16, 24, 128) and second.shape == VideoLatentShape(16, 32, 48, 128)
    assert first.muted_adapters == ("distilled",) and second.muted_adapters == ()
    assert second.sigmas == (*STAGE_2_DISTILLED_SIGMAS, 0.0) and second.renoise == STAGE_2_DISTILLED_SIGMAS[0]
    assert second.video_guidance == OFF and second.audio_guidance == OFF and second.passes == ("cond",)
    assert first.tiles is None and len(second.tiles) == 2  # 24,576 tokens > the default 20,480 budget
    assert p.final_shape == second.shape
    kept = plan(f, upsample=True, height=128, width=192, stage_2_guidance=True, refine_tiling=False)
    assert kept.stages[1].video_guidance == LTX_2_0.video_guidance and kept.stages[1].tiles is None


def test_one_stage_tiling_only_when_asked():
    assert plan(refine_tiling=TokenTiling(max_tokens=4096)).stages[0].tiles is not None
    assert plan().stages[0].tiles is None


def test_decode_tiling_follows_the_call_then_the_vae_then_the_size():
    assert plan(decode_tiling=True).decode_tiling == VideoTiling()
    assert plan(facts(vae_tiling=VideoTiling(256))).decode_tiling == VideoTiling(256)
    assert 121 * 720 * 1280 == AUTO_TILING_PIXELS
    assert plan(num_frames=129, height=736, width=1280).decode_tiling == VideoTiling()
    assert plan(num_frames=129, height=736, width=1280, decode_tiling=False).decode_tiling is False


def test_the_memory_estimate_grows_with_the_clip():
    small, large = plan(num_frames=9, height=64, width=96).memory, plan().memory
    assert 0 < small.peak < large.peak
    assert plan(output_type="latent").memory.decode == 0


# ----------------------------------------------------------------------------------------------------------------
# Errors: every one a ValueError naming the argument, before any model exists
# ----------------------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
EMBEDS = LTX2TextEmbeddings(torch.zeros(1, 128, 8), torch.zeros(1, 128, 8), torch.ones(1, 128, dtype=torch.long))
BAD_EMBEDS = LTX2TextEmbeddings(torch.full((1, 128, 8), NAN), torch.zeros(1, 128, 8), torch.ones(1, 128))

INVALID = [
    # prompts and embeddings
    (dict(prompt=None), "exactly one of `prompt` and `prompt_embeds`"),
    (dict(prompt=3), "must be a string"),
    (dict(prompt=[]), "empty list"),
    (dict(prompt=None, prompt_embeds=(1, 2, 3)), "LTX2TextEmbeddings"),
    (dict(prompt=None, prompt_embeds=BAD_EMBEDS), "NaN/inf"),
    (dict(negative_prompt=["a", "b"]), "negative_prompt has 2 entries but there are 1 prompts"),
    (dict(negative_prompt=5), "negative_prompt must be a string"),
    (dict(max_sequence_length=100), "multiple"),
    (dict(max_sequence_length=128.5), "`max_sequence_length` must be an integer"),
    # sizes and frame rate
    (dict(height=64.5), "`height` must be an integer"),
    (dict(height="512"), "`height` must be an integer"),
    (dict(height=True), "`height` must be an integer"),
    (dict(height=NAN), "`height` must be an integer"),
    (dict(height=-32), "`height` must be a positive integer"),
    (dict(width=100), "width must be a multiple of 32"),
    (dict(num_frames=12), "8k\\+1"),
    (dict(num_frames=INF), "`num_frames` must be an integer"),
    (dict(frame_rate=0), "`frame_rate` must be > 0"),
    (dict(frame_rate=NAN), "`frame_rate` must be a finite number"),
    (dict(frame_rate=INF), "`frame_rate` must be a finite number"),
    (dict(frame_rate="24"), "`frame_rate` must be a number"),
    (dict(frame_rate=1e6, num_frames=9), "less than one audio latent"),
    (dict(height=2**20, width=2**20), "working memory"),
    (dict(num_frames=8 * 10**6 + 1), "working memory"),
    (dict(num_videos_per_prompt=10**9), "working memory"),
    # schedule
    (dict(num_inference_steps=0), "`num_inference_steps` must be a positive integer"),
    (dict(num_inference_steps=2.5), "`num_inference_steps` must be an integer"),
    (dict(sigmas=[0.5, 0.9]), "non-increasing"),
    (dict(sigmas=[1.0, 0.0]), "without the final 0"),
    (dict(sigmas=[1.0, NAN]), "`sigmas\\[1\\]` must be a finite number"),
    (dict(sigmas=[]), "non-empty list"),
    (dict(sigmas="1.0"), "list of numbers"),
    (dict(sigmas=[True]), "`sigmas\\[0\\]` must be a number"),
    # guidance
    (dict(guidance_scale=NAN), "`guidance_scale` must be a finite number"),
    (dict(audio_modality_scale=INF), "`audio_modality_scale` must be a finite number"),
    (dict(guidance_scale=-1.0), "guidance_scale must be >= 0"),
    (dict(guidance_rescale=1.5), "guidance_rescale must lie in \\[0, 1\\]"),
    (dict(stg_scale="1"), "`stg_scale` must be a number"),
    (dict(spatio_temporal_guidance_blocks=[0.7]), "`spatio_temporal_guidance_blocks\\[0\\]` must be an integer"),
    (dict(spatio_temporal_guidance_blocks=[48]), "`spatio_temporal_guidance_blocks` must lie in \\[0, 48\\)"),
    (dict(spatio_temporal_guidance_blocks="29"), "list of block indices"),
    (dict(audio_stg_blocks=[-1]), "`audio_stg_blocks` must lie in"),
    # inputs
    (dict(latents=torch.zeros(1, 5, 128)), "\\[1, 6144, 128\\]"),
    (dict(latents=torch.full((1, 6144, 128), NAN)), "`latents` holds 786432 NaN/inf"),
    (dict(audio_latents=torch.full((1, 126, 128), INF)), "`audio_latents` holds"),
    (dict(audio_latents=torch.zeros(1, 126, 128, dtype=torch.long)), "floating-point"),
    (dict(noise_scale=1.5), "`noise_scale` must be <= 1"),
    (dict(noise_scale=NAN), "`noise_scale` must be a finite number"),
    (dict(image="not an image"), "image"),
    (dict(image=np.full((64, 96, 3), NAN, np.float32)), "finite"),
    (dict(conditions=(np.zeros((64, 96, 3), np.uint8), 200)), "frame_index"),
    (dict(conditions=(np.zeros((64, 96, 3), np.uint8), 0, NAN)), "strength"),
    (dict(image_crf=60), "`image_crf` must be <= 51"),
    (dict(image_crf=20.5), "`image_crf` must be an integer"),
    (dict(audio=(torch.full((2, 16000), NAN), 16000)), "NaN or infinite"),
    (dict(audio=(wave(100), 16000)), "shorter than one audio latent"),
    (dict(audio=wave(16000)), "sample rate"),
    (dict(audio_sample_rate=16000), "only used with `audio`"),
    (dict(video=torch.full((9, 64, 96, 3), NAN)), "finite"),
    (dict(video=frames(9), audio=(wave(16000), 16000)), "held whole: there is nothing to generate"),
    (dict(retake_window=(0.1, 0.2)), "pass `video` and/or `audio` too"),
    (dict(video=frames(9), retake_window=(0.3, 0.1)), "retake_window must satisfy"),
    (dict(video=frames(9), retake_window=(0.1, 0.2), retake_modalities=["picture"]), "retake_modalities"),
    (dict(video=frames(9), retake_window=(0.1, NAN)), "retake_window"),
    # stages
    (dict(upsample=1), "`upsample` must be True or False"),
    (dict(upsample=True), "needs a latent upsampler"),
    (dict(stage_2_transformer=torch.nn.Linear(1, 1)), "act in the refinement of upsample=True"),
    (dict(stage_2_guidance=True), "act in the refinement of upsample=True"),
    (dict(refine_tiling="yes"), "`refine_tiling` must be a TokenTiling"),
    (dict(refine_tiling=TokenTiling(max_tokens=10)), "below the smallest tile"),
    # output, batching, callbacks
    (dict(output_type="gif"), "`output_type` must be one of"),
    (dict(return_dict="yes"), "`return_dict` must be True or False"),
    (dict(batch_guidance=None), "`batch_guidance` must be True or False"),
    (dict(decode_tiling="auto"), "`decode_tiling` must be a VideoTiling"),
    (dict(decode_tiling=VideoTiling(tile_size=48)), "tile_size"),
    (dict(num_videos_per_prompt=0), "`num_videos_per_prompt` must be a positive integer"),
    (dict(generator=[torch.Generator()] * 3), "3 generators for 1 videos"),
    (dict(generator=42), "`generator` must be a torch.Generator"),
    (dict(callback_on_step_end=5), "callback_on_step_end must be callable"),
    (dict(callback_on_step_end_tensor_inputs=["noise"]), "may only name"),
    (dict(callback_on_step_end_tensor_inputs="latents"), "must be a list of names"),
]


@pytest.mark.parametrize("change, message", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_inputs_raise_a_value_error_naming_them(change, message):
    with pytest.raises(ValueError, match=message):
        plan(**change)


def test_upsample_errors_need_a_x2_upsampler_and_sizes_of_64():
    with pytest.raises(ValueError, match="multiples of 64"):
        plan(facts(upsampler=(2.0, 1.0)), upsample=True, height=96, width=128)
    with pytest.raises(ValueError, match="scales \\(space, time\\) by \\(1.5, 1.0\\)"):
        plan(facts(upsampler=(1.5, 1.0)), upsample=True)
    with pytest.raises(ValueError, match="cannot hold a given `video`"):
        plan(facts(upsampler=(2.0, 1.0)), upsample=True, video=frames(9, 128, 128))
    with pytest.raises(ValueError, match="not loaded"):
        plan(facts(upsampler=(2.0, 1.0)), upsample=True, stage_2_adapters=["distilled"])
    with pytest.raises(ValueError, match="stage_2_sigmas"):
        plan(facts(upsampler=(2.0, 1.0)), upsample=True, stage_2_sigmas=[0.5, 0.9])


def test_a_pipeline_without_a_text_encoder_needs_embeddings():
    with pytest.raises(ValueError, match="pass `prompt_embeds`"):
        plan(facts(has_text_encoder=False))
    p = plan(facts(has_text_encoder=False), prompt=None, prompt_embeds=EMBEDS, negative_prompt_embeds=EMBEDS)
    assert p.text.prompts is None and p.batch == 1


def test_components_that_drift_apart_run_with_a_warning_and_mismatches_are_refused(caplog):
    drift = "the transformer places video tokens with vae_scale_factors=(8, 16, 16)"
    with caplog.at_level("WARNING"):
        assert plan(facts(drifts=(drift,))).stages
    assert "components drift apart: " + drift in caplog.text
    with pytest.raises(ValueError, match="do not fit together: the VAE has 64"):
        plan(facts(mismatches=("the VAE has 64",)))
