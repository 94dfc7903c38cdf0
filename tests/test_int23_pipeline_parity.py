"""Whole-loop parity of the tiny LTX-2.3 pipeline: ltx-core 1.0.0's sampler (its LTXModel built by its own
configurator from a 2.3-style header, our transformer's weights; its noiser, guiders and Euler loop) and diffusers
0.42.1's ``LTX2Pipeline`` on the same folder, fp32, batch 1.

Where diffusers 0.42.1 does not agree with the reference for LTX-2.3 (so it is not compared there):

* STG: one block list and one perturbation for both streams' self-attention; the reference perturbs each stream at
  its own guider's blocks and only when that stream's STG scale is set (diffusers' audio output differs by O(1) with
  video-only STG, and ``audio_stg_scale=0`` falls back to the video value: ``audio_x or x``);
* the vocoder's first stage: diffusers' 2.3 converter writes ``final_act_fn=None``, the reference clamps to [-1, 1]
  (our converter writes ``"clamp"``; on our folder both agree, compared below);
* the scheduler: diffusers shifts σ by the actual token count, the reference by a fixed 4096 tokens (σ lists are
  therefore given explicitly here);
* defaults: diffusers has one set (30 steps, STG block 28) for every version.
"""

import pytest
import torch

from ltx2_diffusers.conversion.transformer import transformer_config_from_original
from ltx2_diffusers.models.audio_processing import audio_latent_length, waveform_length
from ltx2_diffusers.pipelines.conditioning import preprocess_image
from ltx2_diffusers.pipelines.defaults import LTX_2_3
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.utils.tiny import tiny_pipeline

from .oracles_int23 import ltxcore_header_23_for
from .oracles_pipeline import (
    diffusers_guidance,
    diffusers_latents_as_ours,
    diffusers_pipeline_from_folder,
    ltxcore_sample,
    ltxcore_transformer_from,
    original_state_dict,
)

pytestmark = pytest.mark.parity
TOL = 1e-4
FRAMES, HEIGHT, WIDTH, FPS, STEPS, SEED = 9, 64, 96, 24.0, 3, 11
CLIP = dict(num_frames=FRAMES, height=HEIGHT, width=WIDTH, frame_rate=FPS)
PROMPT, NEGATIVE, TEXT_LENGTH = "a cat plays the piano", "blurry, distorted, low quality", 32

# The released LTX-2.3 guidance (ltx-pipelines 1.0.0 LTX_2_3_PARAMS), written out rather than read from our defaults
VIDEO = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)
AUDIO = GuidanceParams(guidance_scale=7.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # narrow convolutions on a shared machine


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(seed=0, version="2.3")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def reference(pipe):
    header = ltxcore_header_23_for(pipe.transformer)
    return header, ltxcore_transformer_from(pipe.transformer, header)


@pytest.fixture(scope="module")
def embeds(pipe):
    with torch.no_grad():
        return pipe.encode_text_embeddings(PROMPT, NEGATIVE, True, 1, max_sequence_length=TEXT_LENGTH)


def _gradient_image():
    rows = torch.linspace(0, 1, HEIGHT).view(-1, 1).expand(HEIGHT, WIDTH)
    cols = torch.linspace(0, 1, WIDTH).view(1, -1).expand(HEIGHT, WIDTH)
    return torch.stack([rows, cols, 0.5 * torch.ones_like(rows)], dim=-1).numpy()


def test_the_23_header_reproduces_our_transformer_and_the_pipeline_takes_the_23_defaults(pipe, reference):
    header, _ = reference
    assert header["apply_gated_attention"] and header["cross_attention_adaln"]
    back = transformer_config_from_original(header, original_state_dict(pipe.transformer))
    assert back == {k: pipe.transformer.config[k] for k in back}
    plan = pipe.plan(prompt="a", max_sequence_length=TEXT_LENGTH, **CLIP)  # no version switch to remember
    assert plan.stages[0].num_steps == 30 and plan.video.stg_blocks == plan.audio.stg_blocks == (1,)  # 28 of 48
    assert plan.stages[0].video_guidance == VIDEO and plan.stages[0].audio_guidance == AUDIO
    assert plan.audio_samples == waveform_length(plan.audio_tokens, 480) and pipe.vocoder.upsample_factor == 480


@pytest.mark.parametrize("with_image", [False, True], ids=["t2av", "image-at-frame-0"])
def test_the_23_denoise_loop_matches_ltxcore_with_full_guidance(pipe, reference, embeds, with_image):
    """CFG 3/7, modality 3/3, STG 1/1 at LTX-2.3's default block, rescale 0.7/0.7; same seed, same σ."""
    positive, negative = embeds
    image = _gradient_image() if with_image else None
    call = dict(prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=STEPS,
                output_type="latent", **CLIP, **(dict(image=image, image_crf=0) if with_image else {}))
    with torch.no_grad():
        out = pipe(generator=torch.Generator().manual_seed(SEED), **call)
    sigmas = torch.tensor(pipe.plan(**call).stages[0].sigmas)
    image_latent = None
    if with_image:
        pixels = preprocess_image(image, HEIGHT, WIDTH, crf=0).view(1, 3, 1, HEIGHT, WIDTH)
        with torch.no_grad():
            image_latent = pipe.vae.normalize_latents(pipe.vae.encode(pixels).latent_dist.mode())
    c, audio_channels = pipe.transformer.config, pipe.audio_vae.config.latent_channels
    video_shape = (c.in_channels, (FRAMES - 1) // 8 + 1, HEIGHT // 32, WIDTH // 32)
    audio_shape = (audio_channels, audio_latent_length(FRAMES, FPS), c.audio_in_channels // audio_channels)
    ref_video, ref_audio = ltxcore_sample(
        reference[1], video_shape, audio_shape, FPS, sigmas, SEED, (positive.video_embeds, positive.audio_embeds),
        (negative.video_embeds, negative.audio_embeds), VIDEO, AUDIO,
        stg_blocks=list(LTX_2_3.stg_blocks(c.num_layers)), image_latent=image_latent)
    assert positive.video_embeds.shape[-1] == 32 and positive.audio_embeds.shape[-1] == 16  # per-stream widths
    assert ref_video.abs().mean() > 0.5 and ref_audio.abs().mean() > 0.5
    if with_image:
        first = image_latent[0, :, 0].flatten(1).T  # [h·w, C]
        assert torch.equal(ref_video[0, : first.shape[0]], first)
    # the latent output is diffusers' VAE-space layout; ltx-core's is packed normalised tokens
    video_tokens, audio_tokens = diffusers_latents_as_ours(pipe, out.frames, out.audio)
    assert _max_diff(video_tokens, ref_video) <= TOL
    assert _max_diff(audio_tokens, ref_audio) <= TOL


def test_the_23_pipeline_matches_diffusers_ltx2_pipeline_on_the_same_folder(tmp_path):
    """Both load one folder our tiny 2.3 pipeline saved; the same packed start, σ, prompts and (both-stream) STG:
    latents, decoded frames and the 48 kHz waveform agree."""
    from ltx2_diffusers import LTX2AudioVideoPipeline

    tiny_pipeline(seed=1, version="2.3").save_pretrained(tmp_path)
    ours = LTX2AudioVideoPipeline.from_pretrained(tmp_path)
    ours.set_progress_bar_config(disable=True)
    theirs = diffusers_pipeline_from_folder(tmp_path, ours.text_encoder, ours.tokenizer)
    assert type(theirs.vocoder).__name__ == "LTX2VocoderWithBWE" and theirs.vocoder.config.final_act_fn == "clamp"
    g = torch.Generator().manual_seed(3)
    tokens = ((FRAMES - 1) // 8 + 1) * (HEIGHT // 32) * (WIDTH // 32)
    video = torch.randn(1, tokens, 8, generator=g)
    audio = torch.randn(1, audio_latent_length(FRAMES, FPS), ours.transformer.config.audio_in_channels, generator=g)
    sigmas = [1.0, 0.7342, 0.1]
    common = dict(negative_prompt=NEGATIVE, sigmas=sigmas, num_inference_steps=len(sigmas),
                  max_sequence_length=TEXT_LENGTH, **diffusers_guidance(VIDEO, AUDIO), **CLIP)
    results = {}
    for output_type in ("latent", "np"):
        with torch.no_grad():
            mine = ours(PROMPT, latents=video, audio_latents=audio, spatio_temporal_guidance_blocks=[1],
                        output_type=output_type,
                        **common)
            other = theirs(PROMPT, latents=video, audio_latents=ours.audio_vae.denormalize_latents(audio),
                           noise_scale=0.0, spatio_temporal_guidance_blocks=[1], use_cross_timestep=True,
                           generator=torch.Generator().manual_seed(0), output_type=output_type, **common)
        results[output_type] = mine, other
    mine, other = results["latent"]
    my_video, my_audio = diffusers_latents_as_ours(ours, mine.frames, mine.audio)
    their_video, their_audio = diffusers_latents_as_ours(ours, other.frames, other.audio)
    assert my_video.abs().mean() > 0.5 and _max_diff(my_video, video) > 0.1
    assert _max_diff(my_video, their_video) <= TOL and _max_diff(my_audio, their_audio) <= TOL
    mine, other = results["np"]
    assert mine.sample_rate == 48000 and mine.audio.shape == (1, 2, waveform_length(audio.shape[1], 480))
    assert _max_diff(torch.from_numpy(mine.frames), torch.from_numpy(other.frames)) <= TOL
    assert _max_diff(torch.from_numpy(mine.audio), other.audio.float().cpu()) <= TOL
