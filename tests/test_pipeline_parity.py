"""Whole-pipeline parity: our ``LTX2AudioVideoPipeline`` against ltx-core 1.0.0's sampler and diffusers 0.42.1's
``LTX2Pipeline`` on identical tiny weights, fp32, batch 1.

* ltx-core: the reference draws the initial noise itself (its GaussianNoiser on its packed latent states, video then
  audio, from ``manual_seed``) and our pipeline must reproduce it from the same seed; text embeddings, σ schedule and
  transformer weights are shared.
* diffusers: both pipelines load one folder saved by ours, start from the same packed latents and encode the same
  prompts with the same Gemma; the final latents are compared in our packed, normalised form.
"""

from dataclasses import replace

import pytest
import torch

from ltx2_diffusers.conversion.transformer import transformer_config_from_original
from ltx2_diffusers.models.audio_processing import audio_latent_length, unpack_audio_latents
from ltx2_diffusers.pipelines.conditioning import preprocess_image
from ltx2_diffusers.pipelines.defaults import LTX_2_0
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.pipelines.latents import pack_video_latents
from ltx2_diffusers.pipelines.sources import encode_audio_source
from ltx2_diffusers.utils.tiny import tiny_pipeline

from .oracles_pipeline import (
    diffusers_guidance,
    diffusers_latents_as_ours,
    diffusers_pipeline_from_folder,
    ltxcore_header_for,
    ltxcore_sample,
    ltxcore_transformer_from,
    original_state_dict,
)

pytestmark = pytest.mark.parity
TOL = 1e-4
FRAMES, HEIGHT, WIDTH, FPS, STEPS, SEED = 9, 64, 96, 24.0, 3, 11
CLIP = dict(num_frames=FRAMES, height=HEIGHT, width=WIDTH, frame_rate=FPS)
PROMPT, NEGATIVE = "a cat plays the piano", "blurry, distorted, low quality"  # both fit TEXT_LENGTH
TEXT_LENGTH = 32

# The released LTX-2 guidance (ltx-pipelines 1.0.0), written out here rather than read from our defaults.
LTX2_VIDEO = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)
LTX2_AUDIO = GuidanceParams(guidance_scale=7.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _gradient_image():
    rows = torch.linspace(0, 1, HEIGHT).view(-1, 1).expand(HEIGHT, WIDTH)
    cols = torch.linspace(0, 1, WIDTH).view(1, -1).expand(HEIGHT, WIDTH)
    return torch.stack([rows, cols, 0.5 * torch.ones_like(rows)], dim=-1).numpy()  # [H, W, 3] floats in [0, 1]


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def reference(pipe):
    header = ltxcore_header_for(pipe.transformer, caption_channels=pipe.connectors.config.caption_channels)
    return header, ltxcore_transformer_from(pipe.transformer, header)


@pytest.fixture(scope="module")
def embeds(pipe):
    with torch.no_grad():
        return pipe.encode_text_embeddings(PROMPT, NEGATIVE, True, 1, max_sequence_length=TEXT_LENGTH)


# ----------------------------------------------------------------------------------------------------------------
# ltx-core
# ----------------------------------------------------------------------------------------------------------------


def test_reference_header_reproduces_our_transformer_config(pipe, reference):
    header, _ = reference
    assert header["rope_type"] == "split" and header["frequencies_precision"] == "float64"
    assert header["av_ca_timestep_scale_multiplier"] == 1000
    assert (header["in_channels"], header["audio_in_channels"]) == (8, 32)
    back = transformer_config_from_original(header, original_state_dict(pipe.transformer))
    ours = {k: pipe.transformer.config[k] for k in back}
    assert back == ours


def _ours_vs_reference(pipe, reference, embeds, video_guidance=LTX2_VIDEO, audio_guidance=LTX2_AUDIO,
                       guidance_kwargs=None, image=None, audio=None):
    """Our pipeline (``guidance_kwargs`` or its defaults) and ltx-core's sampler (the given guidance), same seed."""
    positive, negative = embeds
    kwargs = dict(guidance_kwargs or {}, **(dict(image=image, image_crf=0) if image is not None else {}))
    if audio is not None:
        kwargs["audio"] = audio
    call = dict(prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=STEPS,
                output_type="latent", **CLIP, **kwargs)
    with torch.no_grad():
        out = pipe(generator=torch.Generator().manual_seed(SEED), **call)
        # latent output is diffusers' VAE-space layout; the reference returns packed normalised tokens
        out = replace(out, frames=pack_video_latents(pipe.vae.normalize_latents(out.frames)),
                      audio=pipe.audio_vae.normalize_latents(out.audio))
    sigmas = torch.tensor(pipe.plan(**call).stages[0].sigmas)  # the schedule our pipeline ran, final 0 included

    image_latent = None
    if image is not None:  # the normalised frame-0 latent, obtained as our pipeline obtains it
        pixels = preprocess_image(image, HEIGHT, WIDTH, crf=0).view(1, 3, 1, HEIGHT, WIDTH)
        with torch.no_grad():
            image_latent = pipe.vae.normalize_latents(pipe.vae.encode(pixels).latent_dist.mode())
    c, audio_channels = pipe.transformer.config, pipe.audio_vae.config.latent_channels
    video_shape = (c.in_channels, (FRAMES - 1) // 8 + 1, HEIGHT // 32, WIDTH // 32)
    audio_shape = (audio_channels, audio_latent_length(FRAMES, FPS), c.audio_in_channels // audio_channels)
    held_audio = None
    if audio is not None:  # the normalised audio latent, obtained as our pipeline obtains it
        with torch.no_grad():
            held = _held_audio(pipe, audio[0], audio[1], audio_shape[1])
        assert bool(held.held.all())
        held_audio = unpack_audio_latents(held.clean, audio_shape[2])
    ref_video, ref_audio = ltxcore_sample(
        reference[1], video_shape, audio_shape, FPS, sigmas, SEED,
        (positive.video_embeds, positive.audio_embeds), (negative.video_embeds, negative.audio_embeds),
        video_guidance, audio_guidance, stg_blocks=list(LTX_2_0.stg_blocks(c.num_layers)), image_latent=image_latent,
        held_audio=held_audio)
    return out, sigmas, ref_video, ref_audio, image_latent


def test_text_to_audio_video_with_the_default_guidance_matches_ltxcore(pipe, reference, embeds):
    """Our defaults (CFG 3/7, modality 3/3, STG 1/1 at the default block, rescale 0.7/0.7) vs the reference's."""
    from ltx_core.components.schedulers import LTX2Scheduler as ReferenceScheduler

    assert LTX_2_0.stg_blocks(pipe.transformer.config.num_layers) == (1,)  # block 29 of 48 -> 1 of 2
    out, sigmas, ref_video, ref_audio, _ = _ours_vs_reference(pipe, reference, embeds)
    torch.testing.assert_close(sigmas, ReferenceScheduler().execute(steps=STEPS), rtol=0, atol=1e-6)
    assert ref_video.abs().mean() > 0.5 and ref_audio.abs().mean() > 0.5  # real, non-degenerate samples
    assert _max_diff(out.frames, ref_video) <= TOL
    assert _max_diff(out.audio, ref_audio) <= TOL


def test_stg_on_the_audio_stream_only_matches_ltxcore(pipe, reference, embeds):
    """Video STG off, audio STG on: the reference perturbs audio self-attention alone (diffusers cannot express this:
    its STG pass perturbs both streams)."""
    video = GuidanceParams(guidance_scale=2.0, stg_scale=0.0, modality_scale=1.5, guidance_rescale=0.0)
    audio = GuidanceParams(guidance_scale=4.0, stg_scale=1.5, modality_scale=1.0, guidance_rescale=0.5)
    kwargs = dict(guidance_scale=2.0, stg_scale=0.0, modality_scale=1.5, guidance_rescale=0.0,
                  audio_guidance_scale=4.0, audio_stg_scale=1.5, audio_modality_scale=1.0, audio_guidance_rescale=0.5)
    out, _, ref_video, ref_audio, _ = _ours_vs_reference(pipe, reference, embeds, video, audio, kwargs)
    assert _max_diff(out.frames, ref_video) <= TOL
    assert _max_diff(out.audio, ref_audio) <= TOL


def test_image_at_frame_zero_matches_ltxcore(pipe, reference, embeds):
    """I2AV: the reference replaces latent frame 0 (VideoConditionByLatentIndex, strength 1) before its noiser."""
    out, _, ref_video, ref_audio, image_latent = _ours_vs_reference(pipe, reference, embeds,
                                                                     image=_gradient_image())
    first = image_latent[0, :, 0].flatten(1).T  # [h·w, C]: the clean frame-0 tokens
    assert torch.equal(ref_video[0, : first.shape[0]], first)
    assert _max_diff(out.frames, ref_video) <= TOL
    assert _max_diff(out.audio, ref_audio) <= TOL


def test_audio_to_video_matches_the_reference_a2v_stage(pipe, reference, embeds):
    """A2V: the reference's ``denoise_video_only`` (audio latent held with denoise mask 0, neutral audio guider, the
    positive audio prompt in the negative pass, video guided as usual) against ``pipe(audio=...)``."""
    g = torch.Generator().manual_seed(5)
    waveform = 0.3 * torch.randn(2, 8000, generator=g)  # 0.5 s at 16 kHz: longer than the 0.375 s clip
    out, _, ref_video, ref_audio, _ = _ours_vs_reference(pipe, reference, embeds, audio=(waveform, 16000))
    held = _held_audio(pipe, waveform, 16000, out.audio.shape[1]).clean
    assert _max_diff(out.audio, held) <= 1e-6 and torch.equal(ref_audio, held)  # the audio never moved, both sides
    assert ref_video.abs().mean() > 0.5
    assert _max_diff(out.frames, ref_video) <= TOL


# ----------------------------------------------------------------------------------------------------------------
# diffusers
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One folder saved by our pipeline; both pipelines load every component from it."""
    from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import LTX2AudioVideoPipeline

    folder = tmp_path_factory.mktemp("ltx2_tiny")
    tiny_pipeline(seed=1).save_pretrained(folder)
    ours = LTX2AudioVideoPipeline.from_pretrained(folder)
    ours.set_progress_bar_config(disable=True)
    return ours, diffusers_pipeline_from_folder(folder)


DIFFUSERS_CASES = {
    "ltx2-defaults": (LTX2_VIDEO, LTX2_AUDIO, [1], [1.0, 0.7342, 0.1]),
    "per-stream-values": (GuidanceParams(guidance_scale=2.0, stg_scale=0.5, modality_scale=1.5, guidance_rescale=0.3),
                          GuidanceParams(guidance_scale=5.0, stg_scale=1.5, modality_scale=2.5, guidance_rescale=0.9),
                          [0], [0.9, 0.6, 0.25]),
}


@pytest.mark.parametrize("case", list(DIFFUSERS_CASES))
def test_matches_diffusers_ltx2_pipeline_on_the_same_folder(saved, case):
    ours, theirs = saved
    video_guidance, audio_guidance, stg_blocks, sigmas = DIFFUSERS_CASES[case]
    assert type(theirs.transformer.transformer_blocks[0].attn1.processor).__name__ == "LTX2PerturbedAttnProcessor"
    g = torch.Generator().manual_seed(3)
    tokens = ((FRAMES - 1) // 8 + 1) * (HEIGHT // 32) * (WIDTH // 32)
    video = torch.randn(1, tokens, ours.transformer.config.in_channels, generator=g)
    audio = torch.randn(1, audio_latent_length(FRAMES, FPS), ours.transformer.config.audio_in_channels, generator=g)
    common = dict(negative_prompt=NEGATIVE, sigmas=sigmas, num_inference_steps=len(sigmas),
                  max_sequence_length=TEXT_LENGTH, output_type="latent", **diffusers_guidance(video_guidance,
                                                                                              audio_guidance), **CLIP)
    with torch.no_grad():
        mine = ours(PROMPT, latents=video, audio_latents=audio, spatio_temporal_guidance_blocks=stg_blocks,
                    **common)
        # diffusers takes packed video latents as normalised but re-normalises packed audio latents, so its audio
        # start is ours de-normalised; noise_scale=0 keeps both as given
        other = theirs(PROMPT, latents=video, audio_latents=ours.audio_vae.denormalize_latents(audio),
                       noise_scale=0.0, spatio_temporal_guidance_blocks=stg_blocks, use_cross_timestep=True,
                       generator=torch.Generator().manual_seed(0), **common)
    # both return diffusers' latent layout: VAE-space [B, C, F', H', W'] video and [B, C, L, M] audio
    assert mine.frames.shape == other.frames.shape and mine.audio.shape == other.audio.shape
    assert _max_diff(mine.frames, other.frames) <= TOL and _max_diff(mine.audio, other.audio) <= TOL
    my_video, my_audio = diffusers_latents_as_ours(ours, mine.frames, mine.audio)
    their_video, their_audio = diffusers_latents_as_ours(ours, other.frames, other.audio)
    assert my_video.abs().mean() > 0.5 and my_audio.abs().mean() > 0.5
    assert _max_diff(my_video, video) > 0.1  # the sampler did move the latents
    assert _max_diff(my_video, their_video) <= TOL
    assert _max_diff(my_audio, their_audio) <= TOL


def _held_audio(pipe, waveform, rate, tokens):
    bounds = pipe.transformer.audio_coordinates(tokens)[0, 0]
    return encode_audio_source(pipe.audio_vae, waveform, rate, tokens, bounds, None, torch.device("cpu"))
