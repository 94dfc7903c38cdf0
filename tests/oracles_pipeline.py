"""Whole-sampler oracles for pipeline parity, built on the weights of one of our pipelines.

* ltx-core 1.0.0: an ``LTXModel`` whose header reproduces our transformer config and whose state dict is ours mapped
  back to the original names; the reference's own latent tools, Gaussian noiser, conditioning item, multimodal guiders
  and Euler loop (:func:`ltxcore_sample`).
* diffusers 0.42.1: diffusers' own ``LTX2Pipeline.from_pretrained`` of a folder our pipeline saved (the folder is in
  diffusers' format), configured so that it runs the same sampler (:func:`diffusers_pipeline_from_folder`).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ltx2_diffusers.benchmarks import diffusers_ltx2_pipeline
from ltx2_diffusers.conversion.transformer import TRANSFORMER_PREFIX, original_transformer_key
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.pipelines.latents import pack_video_latents

pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
import ltx_core.loader  # noqa: E402,F401  (import order: avoids ltx-core's circular import)
from ltx_core.components.diffusion_steps import EulerDiffusionStep  # noqa: E402
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams  # noqa: E402
from ltx_core.components.noisers import GaussianNoiser  # noqa: E402
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier  # noqa: E402
from ltx_core.conditioning import VideoConditionByLatentIndex  # noqa: E402
from ltx_core.model.transformer import LTXModelConfigurator, X0Model  # noqa: E402
from ltx_core.tools import AudioLatentTools, VideoLatentTools  # noqa: E402
from ltx_core.types import AudioLatentShape, VideoLatentShape  # noqa: E402
from ltx_pipelines.utils.helpers import multi_modal_guider_denoising_func  # noqa: E402
from ltx_pipelines.utils.samplers import euler_denoising_loop  # noqa: E402

from .oracles import ltxcore_header  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------
# ltx-core
# ----------------------------------------------------------------------------------------------------------------


def ltxcore_header_for(transformer: torch.nn.Module, caption_channels: int) -> dict:
    """A 19B-style header (split RoPE, float64 grid, A<->V gate multiplier 1000) with our transformer's widths."""
    c = transformer.config
    return ltxcore_header(
        num_layers=c.num_layers, num_attention_heads=c.num_attention_heads, attention_head_dim=c.attention_head_dim,
        cross_attention_dim=c.cross_attention_dim, audio_num_attention_heads=c.audio_num_attention_heads,
        audio_attention_head_dim=c.audio_attention_head_dim, audio_cross_attention_dim=c.audio_cross_attention_dim,
        in_channels=c.in_channels, out_channels=c.out_channels, audio_in_channels=c.audio_in_channels,
        audio_out_channels=c.audio_out_channels, caption_channels=caption_channels,
        av_ca_timestep_scale_multiplier=c.cross_attn_timestep_scale_multiplier,
        timestep_scale_multiplier=c.timestep_scale_multiplier,
    )


def original_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our transformer's tensors under the original single-file names (with the ``model.diffusion_model.`` prefix)."""
    return {original_transformer_key(k): v for k, v in transformer.state_dict().items()}


def ltxcore_transformer_from(transformer: torch.nn.Module, header: dict) -> torch.nn.Module:
    """ltx-core's ``LTXModel`` for ``header``, holding exactly our transformer's weights (strict load)."""
    model = LTXModelConfigurator.from_config({"transformer": header})
    model.to_empty(device="cpu")  # ltx-core builds its caption projections on the meta device
    weights = {k[len(TRANSFORMER_PREFIX):]: v for k, v in original_state_dict(transformer).items()}
    model.load_state_dict(weights, strict=True)
    return model.eval()


def _guider(params: GuidanceParams, stg_blocks: list[int], negative_context: torch.Tensor) -> MultiModalGuider:
    return MultiModalGuider(
        MultiModalGuiderParams(cfg_scale=params.guidance_scale, stg_scale=params.stg_scale, stg_blocks=stg_blocks,
                               rescale_scale=params.guidance_rescale, modality_scale=params.modality_scale,
                               skip_step=0),
        negative_context,
    )


@torch.no_grad()
def ltxcore_sample(
    model: torch.nn.Module,
    video_shape: tuple[int, int, int, int],
    audio_shape: tuple[int, int, int],
    fps: float,
    sigmas: torch.Tensor,
    seed: int,
    contexts: tuple[torch.Tensor, torch.Tensor],
    negative_contexts: tuple[torch.Tensor, torch.Tensor],
    video_guidance: GuidanceParams,
    audio_guidance: GuidanceParams,
    stg_blocks: list[int],
    image_latent: torch.Tensor | None = None,
    held_audio: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ltx-core's one-stage sampler at batch 1: packed latent states, frame-0 image by latent replacement, Gaussian
    noise from ``manual_seed(seed)`` (video state first, then audio), multimodal guiders, Euler loop.

    Args:
        video_shape: ``(channels, frames, height, width)`` of the video latent; audio_shape: ``(channels, length,
            mel_bins)`` of the audio latent.
        image_latent: normalised ``[1, C, 1, h, w]`` latent conditioning frame 0 at strength 1.
        held_audio: normalised ``[1, C, L, M]`` audio latent held clean, as the reference's audio-to-video stage 1
            (``denoise_video_only``): the audio state starts from it, its noiser runs at scale 0 (noise still drawn),
            its denoise mask is 0, and the audio guider has default (neutral) parameters and no negative context;
            ``audio_guidance`` is then ignored.
    Returns the final packed video ``[1, F·H·W, C]`` and audio ``[1, L, C·M]`` latents.
    """
    cpu = torch.device("cpu")
    video_tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), VideoLatentShape(1, *video_shape), fps)
    audio_tools = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape(1, *audio_shape))
    video = video_tools.create_initial_state(cpu, torch.float32)
    audio = audio_tools.create_initial_state(cpu, torch.float32, held_audio)
    if image_latent is not None:
        video = VideoConditionByLatentIndex(latent=image_latent, strength=1.0, latent_idx=0).apply_to(video,
                                                                                                      video_tools)
    noiser = GaussianNoiser(torch.Generator().manual_seed(seed))
    video = noiser(video)
    if held_audio is None:
        audio = noiser(audio)
        audio_guider = _guider(audio_guidance, stg_blocks, negative_contexts[1])
    else:
        audio = noiser(audio, noise_scale=0.0)
        audio = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask))
        audio_guider = MultiModalGuider(MultiModalGuiderParams())
    denoise = multi_modal_guider_denoising_func(
        _guider(video_guidance, stg_blocks, negative_contexts[0]), audio_guider, contexts[0], contexts[1],
        X0Model(model))
    video, audio = euler_denoising_loop(sigmas, video, audio, EulerDiffusionStep(), denoise)
    return video.latent, audio.latent


# ----------------------------------------------------------------------------------------------------------------
# diffusers
# ----------------------------------------------------------------------------------------------------------------


# diffusers' LTX2Pipeline from a folder ours saved, set up to run the reference sampler (the bench uses it too)
diffusers_pipeline_from_folder = diffusers_ltx2_pipeline


def diffusers_guidance(video: GuidanceParams, audio: GuidanceParams) -> dict:
    """The same guidance in diffusers' argument names.

    diffusers replaces a falsy audio value by the video one (``audio_x or x``), so an audio value of 0 cannot be
    expressed; it also runs the STG pass on both streams whenever either STG scale is set, so one stream's STG alone
    cannot be expressed either (the reference perturbs only the streams whose own scale is set).
    """
    audio_values = (audio.guidance_scale, audio.stg_scale, audio.modality_scale, audio.guidance_rescale)
    if any(v == 0 for v in audio_values) or (video.stg_scale == 0) != (audio.stg_scale == 0):
        raise ValueError("diffusers cannot express an audio guidance value of 0 or STG on one stream only.")
    return dict(
        guidance_scale=video.guidance_scale, stg_scale=video.stg_scale, modality_scale=video.modality_scale,
        guidance_rescale=video.guidance_rescale, audio_guidance_scale=audio.guidance_scale,
        audio_stg_scale=audio.stg_scale, audio_modality_scale=audio.modality_scale,
        audio_guidance_rescale=audio.guidance_rescale,
    )


def diffusers_latents_as_ours(pipe: torch.nn.Module, video: torch.Tensor, audio: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' ``output_type="latent"`` result (de-normalised ``[B, C, F, H, W]`` video and ``[B, C, L, M]``
    audio) -> our packed, normalised tokens, using our pipeline's VAE statistics."""
    return pack_video_latents(pipe.vae.normalize_latents(video)), pipe.audio_vae.normalize_latents(audio)
