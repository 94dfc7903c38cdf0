"""diffusers' call arguments mean what they mean in diffusers: ``LTX2AudioVideoPipeline`` against diffusers 0.42.1's
``LTX2Pipeline`` / ``LTX2ConditionPipeline`` on one saved folder (identical tiny weights, fp32, batch 1) where the
meanings meet: the latent output layout and the ``return_dict=False`` tuple, ``prompt_embeds`` tensors with their
masks, ``motion_speed``, ``timesteps``, frame-0 ``conditions``, ``use_cross_timestep`` and the pipeline attributes.
"""

import ast
import inspect
import textwrap

import numpy as np
import pytest
import torch

from ltx2_diffusers.models.audio_processing import audio_latent_length
from ltx2_diffusers.utils.tiny import tiny_pipeline

from .oracles_call15 import diffusers_start, pipelines_on_one_folder, starting_tokens

pytestmark = pytest.mark.parity
TOL = 1e-4
FRAMES, HEIGHT, WIDTH, FPS = 9, 64, 96, 24.0
PROMPT, NEGATIVE = "a cat plays the piano", "blurry, distorted"
SIGMAS = [1.0, 0.6]
# CFG with rescale on both streams: one batched pass (conditional + negative prompt) per step
GUIDANCE = dict(guidance_scale=3.0, stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.7, audio_guidance_scale=7.0,
                audio_stg_scale=0.0, audio_modality_scale=1.0, audio_guidance_rescale=0.7)
COMMON = dict(negative_prompt=NEGATIVE, sigmas=SIGMAS, num_inference_steps=len(SIGMAS), num_frames=FRAMES,
              height=HEIGHT, width=WIDTH, frame_rate=FPS, max_sequence_length=32, output_type="latent", **GUIDANCE)
VIDEO_TOKENS = ((FRAMES - 1) // 8 + 1) * (HEIGHT // 32) * (WIDTH // 32)


def _max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ltx2_call")
    tiny_pipeline(seed=1).save_pretrained(folder)
    return pipelines_on_one_folder(str(folder))


@pytest.fixture(scope="module")
def start(pipes):
    return starting_tokens(pipes[0], VIDEO_TOKENS, audio_latent_length(FRAMES, FPS), seed=3)


@pytest.fixture(scope="module")
def reference_run(pipes, start):
    """Both pipelines from the same start and prompt, ``return_dict=False``."""
    ours, theirs, _ = pipes
    video, audio = start
    with torch.no_grad():
        mine = ours(PROMPT, latents=video, audio_latents=audio, return_dict=False, **COMMON)
        other = theirs(PROMPT, **diffusers_start(ours, video, audio), use_cross_timestep=True, return_dict=False,
                       **COMMON)
    return mine, other


def test_return_dict_false_and_latent_output_are_diffusers_layouts(pipes, reference_run):
    ours, theirs, _ = pipes
    mine, other = reference_run
    assert isinstance(mine, tuple) and len(mine) == len(other) == 2  # (video, audio), no sample rate
    video, audio = mine
    channels = ours.audio_vae.config.latent_channels
    assert video.shape == (1, 8, 2, 2, 3) and audio.shape == (1, channels, 9, 32 // channels)
    assert _max_diff(video, other[0]) <= TOL and _max_diff(audio, other[1]) <= TOL
    assert video.abs().mean() > 0.3 and audio.abs().mean() > 0.3  # real samples, not zeros
    # the attributes diffusers exposes after a call hold the same values on both
    names = ["guidance_scale", "stg_scale", "modality_scale", "guidance_rescale", "audio_guidance_scale",
             "audio_stg_scale", "audio_modality_scale", "audio_guidance_rescale", "num_timesteps",
             "do_classifier_free_guidance", "do_spatio_temporal_guidance", "do_modality_isolation_guidance",
             "vae_spatial_compression_ratio", "vae_temporal_compression_ratio", "audio_vae_temporal_compression_ratio",
             "transformer_spatial_patch_size", "transformer_temporal_patch_size", "audio_sampling_rate",
             "audio_hop_length", "tokenizer_max_length", "interrupt", "attention_kwargs"]
    assert {n: getattr(ours, n) for n in names} == {n: getattr(theirs, n) for n in names}


def test_prompt_embeds_tensors_with_masks_mean_what_diffusers_encode_prompt_returns(pipes, start, reference_run):
    ours, theirs, _ = pipes
    video, audio = start
    with torch.no_grad():
        embeds, mask, negative_embeds, negative_mask = theirs.encode_prompt(PROMPT, NEGATIVE, True, 1,
                                                                           max_sequence_length=32)
        given = dict(prompt_embeds=embeds, prompt_attention_mask=mask, negative_prompt_embeds=negative_embeds,
                     negative_prompt_attention_mask=negative_mask)
        mine = ours(**given, latents=video, audio_latents=audio, return_dict=False,
                    **{**COMMON, "negative_prompt": None})
        other = theirs(**given, **diffusers_start(ours, video, audio), use_cross_timestep=True, return_dict=False,
                       **{**COMMON, "negative_prompt": None})
    width = ours.connectors.config.caption_channels * ours.connectors.config.text_proj_in_factor
    assert embeds.shape == (1, 32, width)  # packed hidden states of every layer
    assert _max_diff(mine[0], reference_run[0][0]) <= 1e-6  # the same as our prompt text
    assert _max_diff(mine[0], other[0]) <= TOL and _max_diff(mine[1], other[1]) <= TOL


def test_encode_prompt_returns_what_diffusers_encode_prompt_returns(pipes, start, reference_run):
    """diffusers' contract: four tensors from the text encoder alone, which the call takes back."""
    from ltx2_diffusers import LTX2AudioVideoPipeline

    ours, theirs, _ = pipes
    video, audio = start
    text_only = LTX2AudioVideoPipeline(**{name: (component if name in ("text_encoder", "tokenizer") else None)
                                          for name, component in ours.components.items()})
    with torch.no_grad():
        mine = text_only.encode_prompt(PROMPT, NEGATIVE, True, 2, max_sequence_length=32)
        other = theirs.encode_prompt(PROMPT, NEGATIVE, True, 2, max_sequence_length=32)
        for a, b in zip(mine, other):
            assert a.shape[0] == 2 and torch.equal(a, b)
        given = dict(zip(("prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
                          "negative_prompt_attention_mask"), (t[:1] for t in mine)))
        again = ours(**given, latents=video, audio_latents=audio, return_dict=False,
                     **{**COMMON, "negative_prompt": None})
    assert _max_diff(again[0], reference_run[0][0]) <= 1e-6
    with pytest.raises(ValueError, match="without prompt_attention_mask"):
        text_only.encode_prompt(prompt_embeds=mine[0])
    with pytest.raises(ValueError, match="built without scheduler, vae, audio_vae, connectors, transformer, vocoder"):
        text_only(PROMPT)
    # diffusers' tests map the returned tensors to call arguments by the names in encode_prompt's return statements
    from diffusers.utils.source_code_parsing_utils import ReturnNameVisitor

    visitor = ReturnNameVisitor()
    visitor.visit(ast.parse(textwrap.dedent(inspect.getsource(LTX2AudioVideoPipeline.encode_prompt))))
    assert visitor.return_names == ["prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
                                    "negative_prompt_attention_mask"]


def test_motion_speed_conditions_the_positions_as_in_diffusers(pipes, start, reference_run):
    ours, theirs, _ = pipes
    video, audio = start
    with torch.no_grad():
        mine = ours(PROMPT, latents=video, audio_latents=audio, motion_speed=0.5, return_dict=False, **COMMON)
        other = theirs(PROMPT, **diffusers_start(ours, video, audio), motion_speed=0.5, use_cross_timestep=True,
                       return_dict=False, **COMMON)
    assert _max_diff(mine[0], other[0]) <= TOL and _max_diff(mine[1], other[1]) <= TOL
    assert _max_diff(mine[0], reference_run[0][0]) > 1e-2  # positions at 48 fps: another sample


def test_timesteps_are_sigmas_times_num_train_timesteps_as_diffusers_scheduler_reads_them(pipes):
    from diffusers.pipelines.ltx2.pipeline_ltx2 import retrieve_timesteps

    ours, theirs, _ = pipes
    timesteps = [1000.0, 600.0]
    scheduler = type(theirs.scheduler).from_config(theirs.scheduler.config)
    retrieve_timesteps(scheduler, timesteps=timesteps)
    planned = ours.plan(prompt=PROMPT, timesteps=timesteps, **{**COMMON, "sigmas": None}).stages[0].sigmas
    np.testing.assert_allclose(planned, scheduler.sigmas.numpy(), rtol=0, atol=1e-7)
    assert planned == ours.plan(prompt=PROMPT, **COMMON).stages[0].sigmas  # the same steps as sigmas=SIGMAS


def test_a_frame_zero_condition_matches_diffusers_condition_pipeline(pipes):
    """``LTX2VideoCondition(index=0)``: both draw noise over the packed tokens (the reference's layout) and keep the
    image latent clean. Rescale is off: diffusers' Condition pipeline converts the conditioned tokens to x0 with the
    step's σ instead of their own (0), which changes the rescale's std (and partial strengths)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from PIL import Image

    ours, _, condition_pipe = pipes
    rows, cols = np.meshgrid(np.linspace(0, 1, HEIGHT), np.linspace(0, 1, WIDTH), indexing="ij")
    image = Image.fromarray((np.stack([rows, cols, 0.5 * np.ones_like(rows)], -1) * 255).astype(np.uint8))
    conditions = [LTX2VideoCondition(frames=image, index=0, strength=1.0, crf=0)]
    call = {**COMMON, "guidance_rescale": 0.0, "audio_guidance_rescale": 0.0}
    with torch.no_grad():
        mine = ours(PROMPT, conditions=conditions, generator=torch.Generator().manual_seed(5), **call)
        other = condition_pipe(conditions=conditions, prompt=PROMPT, use_cross_timestep=True,
                               generator=torch.Generator().manual_seed(5), **call)
    assert _max_diff(mine.frames, other.frames) <= TOL and _max_diff(mine.audio, other.audio) <= TOL
    assert mine.frames[:, :, 1:].abs().mean() > 0.3


def test_use_cross_timestep(pipes, start, reference_run):
    """True is the reference's modulation (each stream's audio<->video attention modulated by the other stream's σ;
    every run above). False is diffusers' legacy LTX-2.0 one (each stream's own timestep): without per-token timesteps
    both are the same, so it equals diffusers' legacy run; with a condition they differ, and it must equal diffusers'
    (and differ from the reference's)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    ours, theirs, condition_pipe = pipes
    video, audio = start
    with torch.no_grad():
        mine = ours(PROMPT, latents=video, audio_latents=audio, use_cross_timestep=False, return_dict=False, **COMMON)
        other = theirs(PROMPT, **diffusers_start(ours, video, audio), use_cross_timestep=False, return_dict=False,
                       **COMMON)
    assert _max_diff(mine[0], other[0]) <= TOL and _max_diff(mine[1], other[1]) <= TOL
    assert torch.equal(mine[0], reference_run[0][0])

    conditions = [LTX2VideoCondition(frames=np.zeros((HEIGHT, WIDTH, 3), np.uint8), index=0, crf=0)]
    call = dict(conditions=conditions, prompt=PROMPT, use_cross_timestep=False,
                **{**COMMON, "guidance_rescale": 0.0, "audio_guidance_rescale": 0.0})
    with torch.no_grad():
        mine = ours(generator=torch.Generator().manual_seed(5), **call)
        other = condition_pipe(generator=torch.Generator().manual_seed(5), **call)
    assert _max_diff(mine.frames, other.frames) <= TOL and _max_diff(mine.audio, other.audio) <= TOL
    with torch.no_grad():
        crossed = ours(generator=torch.Generator().manual_seed(5), **{**call, "use_cross_timestep": True})
    assert _max_diff(mine.frames, crossed.frames) > 1e-4  # the two modulations differ with a condition
