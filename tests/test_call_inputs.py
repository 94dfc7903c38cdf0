"""diffusers' call arguments in the plan, without models: latents in both layouts, timesteps, one frame-0 image per
prompt, LTX2VideoCondition, prompt_embeds tensors and masks, prompt enhancement settings, decode settings,
motion_speed, duration bounds, a source video fitted to the clip, and the pure helpers behind them."""

import logging

import numpy as np
import pytest
import torch
from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
from diffusers.pipelines.ltx2.utils import GEMMA3_PROMPT_ENHANCEMENT_CONFIG, T2V_DEFAULT_SYSTEM_PROMPT

from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextEmbeddings
from ltx2_diffusers.pipelines.conditioning import PerSampleImages, as_conditions, keyframe_coordinates
from ltx2_diffusers.pipelines.media import fit_video
from ltx2_diffusers.pipelines.text_plan import TextFeatures

from .test_plan import facts, frames, plan

IMAGE = np.zeros((64, 96, 3), np.uint8)
FEATURES = torch.zeros(1, 128, 8 * 49)
MASK = torch.ones(1, 128, dtype=torch.long)


def test_timesteps_are_sigmas_times_the_training_steps():
    assert plan(timesteps=[1000, 500, 250]).stages[0].sigmas == (1.0, 0.5, 0.25, 0.0)
    assert plan(timesteps=[1000, 500, 250]).stages[0].sigmas == plan(sigmas=[1.0, 0.5, 0.25]).stages[0].sigmas


def test_latents_in_diffusers_layout_set_the_sizes():
    p = plan(latents=torch.zeros(1, 128, 3, 4, 5), audio_latents=torch.zeros(1, 8, 18, 16))
    assert (p.num_frames, p.height, p.width, p.audio_tokens) == (17, 128, 160, 18)
    assert p.latents.ndim == 5 and p.audio_latents.ndim == 4  # converted by the pipeline (VAE statistics)
    given = plan(height=64, width=64, num_frames=9, latents=torch.zeros(1, 8, 128))  # packed: 2 x 2 x 2 tokens
    assert given.latents.shape == (1, 8, 128)
    # 5-D latents fix the grid over given sizes, as in diffusers (with a warning here)
    resized = plan(height=64, width=64, latents=torch.zeros(1, 128, 2, 4, 4))
    assert (resized.num_frames, resized.height, resized.width) == (9, 128, 128)


def test_one_frame_zero_image_per_prompt_repeats_for_each_video():
    a, b = IMAGE, IMAGE + 1
    p = plan(prompt=["x", "y"], image=[a, b], num_videos_per_prompt=2)
    (condition,) = p.conditions
    assert isinstance(condition.image, PerSampleImages) and condition.frame_index == 0
    assert [int(im[0, 0, 0]) for im in condition.image.images] == [0, 0, 1, 1]
    batch = plan(prompt=["x", "y"], image=torch.zeros(2, 3, 64, 96))  # a 4-D batch is one image per prompt
    assert len(batch.conditions[0].image.images) == 2
    shared = plan(prompt=["x", "y"], image=[a]).conditions[0].image  # one image for every prompt
    assert isinstance(shared, np.ndarray) and shared.shape == (64, 96, 3)


def test_diffusers_video_conditions_take_latent_indices():
    nine = np.zeros((9, 64, 96, 3), np.uint8)
    conditions = as_conditions([LTX2VideoCondition(frames=IMAGE, index=2, strength=0.5, crf=0),
                                LTX2VideoCondition(frames=IMAGE, index=-1),
                                LTX2VideoCondition(frames=list(nine), index=0)], num_frames=33)
    assert [(c.frame_index, c.strength, c.crf) for c in conditions] == [(9, 0.5, 0), (25, 1.0, None), (0, 1.0, None)]
    assert conditions[2].image.shape == (9, 64, 96, 3)
    late = as_conditions([LTX2VideoCondition(frames=np.zeros((20, 64, 96, 3), np.uint8), index=3)], num_frames=33)
    assert late[0].frame_index == 17 and late[0].image.shape == (9, 64, 96, 3)  # trimmed to the 16 frames left


def test_prompt_embeds_tensors_need_their_masks():
    p = plan(prompt=None, prompt_embeds=FEATURES, prompt_attention_mask=MASK)
    assert isinstance(p.text.prompt_embeds, TextFeatures) and p.text.max_sequence_length == 128
    assert p.text.negative_prompts is not None  # the negative prompt is encoded to the same length


@pytest.mark.parametrize("change, message", [
    (dict(prompt_embeds=FEATURES), "needs its `prompt_attention_mask`"),
    (dict(prompt_embeds=FEATURES, prompt_attention_mask=torch.ones(1, 64)), "must be a \\[1, 128\\] tensor"),
    (dict(prompt_embeds=FEATURES, prompt_attention_mask=MASK * 2), "only 0 \\(padding\\) and 1"),
    (dict(prompt_embeds=FEATURES, prompt_attention_mask=MASK, negative_prompt_embeds=torch.zeros(1, 256, 392),
          negative_prompt_attention_mask=torch.ones(1, 256)), "must have the same shape"),
    (dict(prompt_embeds=LTX2TextEmbeddings(torch.zeros(1, 128, 8), torch.zeros(1, 128, 8), MASK),
          prompt_attention_mask=MASK), "carry their own mask"),
    (dict(prompt="a cat", prompt_attention_mask=MASK), "goes with a `prompt_embeds` tensor"),
    (dict(prompt_embeds="text"), "diffusers' packed text-encoder features"),
])
def test_bad_prompt_embeds_name_what_to_pass(change, message):
    with pytest.raises(ValueError, match=message):
        plan(**{"prompt": None, **change})


def test_prompt_enhancement_takes_diffusers_defaults():
    p = plan(enable_prompt_enhancement=True)
    e = p.text.enhancement
    assert e.system_prompt is T2V_DEFAULT_SYSTEM_PROMPT and e.seed == 10
    assert (e.max_new_tokens, e.generation_kwargs) == (512, GEMMA3_PROMPT_ENHANCEMENT_CONFIG.generation_kwargs)
    custom = plan(enable_prompt_enhancement=True, system_prompt="be brief", prompt_max_new_tokens=20,
                  prompt_enhancement_kwargs={"do_sample": False}, prompt_enhancement_seed=7).text.enhancement
    assert (custom.system_prompt, custom.max_new_tokens, custom.generation_kwargs, custom.seed) == (
        "be brief", 20, {"do_sample": False}, 7)
    assert plan().text.enhancement is None


@pytest.mark.parametrize("change, message", [
    (dict(system_prompt="x"), "act only with enable_prompt_enhancement=True"),
    (dict(enable_prompt_enhancement=True, prompt=None, prompt_embeds=FEATURES, prompt_attention_mask=MASK),
     "pass the prompt text"),
    (dict(enable_prompt_enhancement=True, image=IMAGE), "image processor"),
    (dict(enable_prompt_enhancement=True, prompt_enhancement_kwargs={"max_new_tokens": 3}), "prompt_max_new_tokens"),
    (dict(enable_prompt_enhancement=True, system_prompt=" "), "non-empty string"),
    (dict(enable_prompt_enhancement="yes"), "must be True or False"),
    (dict(prompt_enhancement_seed=-1), "`prompt_enhancement_seed` must be an integer >= 0"),
])
def test_bad_prompt_enhancement_settings(change, message):
    with pytest.raises(ValueError, match=message):
        plan(**change)


@pytest.mark.parametrize("change, message", [
    (dict(sigmas=[1.0], timesteps=[1000]), "not both"),
    (dict(timesteps=[1000, 1200]), "non-increasing values in \\(0, 1000\\]"),
    (dict(latents=torch.zeros(1, 128, 3, 4)), "\\[1, 128, 16, 16, 24\\]"),
    (dict(audio_latents=torch.zeros(1, 8, 126, 15)), "C·M = 128"),
    (dict(image=[IMAGE, IMAGE]), "2 images for 1 prompts"),
    (dict(image=(IMAGE, 8)), "as conditions=\\[...\\]"),
    (dict(image=[(IMAGE, 8)]), "as conditions=\\[...\\]"),
    (dict(image=IMAGE, conditions=IMAGE), "both condition frame 0"),
    (dict(conditions=LTX2VideoCondition(frames=IMAGE, index=16)), "latent frame index"),
    (dict(conditions=(IMAGE, 0, 1.0, 70)), "crf must be None"),
    (dict(motion_speed=0), "`motion_speed` must be > 0"),
    (dict(min_seconds=5, max_seconds=2), "`min_seconds` \\(5\\) must be less than `max_seconds` \\(2\\)"),
    (dict(decode_timestep=[0.1, 0.2]), "2 values for 1 videos"),
    (dict(decode_noise_scale=2.0), "must lie in \\[0, 1\\]"),
    (dict(attention_kwargs=["scale"]), "`attention_kwargs` must be a dict"),
    (dict(use_cross_timestep=None), "`use_cross_timestep` must be True or False"),
    (dict(stg_scale=1.0, spatio_temporal_guidance_blocks=[]), "needs blocks to perturb"),
])
def test_bad_diffusers_arguments_raise_a_value_error(change, message):
    with pytest.raises(ValueError, match=message):
        plan(**change)


def test_decode_settings_motion_speed_and_stage_guidance():
    p = plan(decode_timestep=0.05, num_videos_per_prompt=2, motion_speed=0.5, frame_rate=25.0)
    assert p.decode_timestep == (0.05, 0.05) and p.decode_noise_scale is None
    assert (p.frame_rate, p.conditioning_frame_rate) == (25.0, 50.0)
    two = plan(facts(upsampler=(2.0, 1.0)), upsample=True)
    assert [s.call_guidance for s in two.stages] == [True, False]
    guided = plan(facts(upsampler=(2.0, 1.0)), upsample=True, stage_2_guidance=True)
    assert [s.call_guidance for s in guided.stages] == [True, True]


def test_a_video_of_another_size_and_length_is_fitted_to_the_clip(caplog):
    clip = frames(20, 48, 80)
    with caplog.at_level(logging.INFO, logger="ltx2_diffusers.pipelines.plan"):
        p = plan(video=clip, num_frames=17, height=64, width=96)
    assert p.video_source.media.shape == (17, 3, 64, 96) and p.video.held
    assert "resized to cover 64x96" in caplog.text and "using the first 17" in caplog.text
    default = plan(video=frames(12))  # no num_frames: the video's length trimmed to 8k+1
    assert default.num_frames == 9 and default.video_source.media.shape[0] == 9


def test_fit_video_trims_then_covers_and_crops():
    pixels = torch.arange(10 * 3 * 4 * 6, dtype=torch.float32).view(10, 3, 4, 6)
    same = fit_video(pixels, num_frames=33, height=4, width=6, temporal=8)
    assert torch.equal(same, pixels[:9])  # 10 frames -> 9, size unchanged: no resampling
    cropped = fit_video(pixels, num_frames=1, height=4, width=4, temporal=8)
    assert torch.equal(cropped, pixels[:1, :, :, 1:5])  # already covers 4x4: centre crop only
    assert fit_video(pixels, 9, 8, 12, 8).shape == (9, 3, 8, 12)


def test_keyframe_coordinates_of_a_clip_step_through_its_latent_frames():
    coords = keyframe_coordinates(9, latent_height=1, latent_width=2, fps=8.0, batch_size=1, latent_frames=2)
    assert coords.shape == (1, 3, 4, 2)
    torch.testing.assert_close(coords[0, 0], torch.tensor([[9.0, 17.0], [9.0, 17.0], [17.0, 25.0], [17.0, 25.0]]) / 8)
    assert coords[0, 2, :, 0].tolist() == [0.0, 32.0, 0.0, 32.0]
    single = keyframe_coordinates(9, latent_height=1, latent_width=2, fps=8.0, batch_size=1)
    assert torch.equal(single, coords[:, :, :2])


def test_the_call_takes_every_argument_of_diffusers_ltx2_pipelines():
    import inspect

    from diffusers.pipelines.ltx2 import LTX2ConditionPipeline, LTX2ImageToVideoPipeline, LTX2Pipeline

    from ltx2_diffusers import LTX2AudioVideoPipeline

    ours = set(inspect.signature(LTX2AudioVideoPipeline.__call__).parameters)
    for pipeline in (LTX2Pipeline, LTX2ImageToVideoPipeline, LTX2ConditionPipeline):
        theirs = set(inspect.signature(pipeline.__call__).parameters)
        assert theirs - ours == set(), pipeline.__name__
    assert "stg_blocks" not in ours  # renamed to diffusers' spatio_temporal_guidance_blocks
