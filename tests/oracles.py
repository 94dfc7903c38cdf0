"""Tiny random-weight reference models (ltx-core 1.0.0 and diffusers 0.42.1) and the inputs they take."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
import ltx_core.loader  # noqa: E402,F401  (import order: avoids ltx-core's circular import)
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier  # noqa: E402
from ltx_core.guidance.perturbations import (  # noqa: E402
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer import LTXModelConfigurator, Modality  # noqa: E402
from ltx_core.tools import AudioLatentTools, VideoLatentTools  # noqa: E402
from ltx_core.types import AudioLatentShape, VideoLatentShape, VideoPixelShape  # noqa: E402

# Keys ltx-core checks for exact values; the numerical ones follow the 19B header unless overridden.
_FIXED = {
    "dropout": 0.0, "attention_bias": True, "num_vector_embeds": None, "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000, "use_linear_projection": False, "only_cross_attention": False,
    "cross_attention_norm": True, "double_self_attention": False, "upcast_attention": False,
    "standardization_norm": "rms_norm", "norm_elementwise_affine": False, "qk_norm": "rms_norm",
    "positional_embedding_type": "rope", "use_audio_video_cross_attention": True, "share_ff": False,
    "av_cross_ada_norm": True, "use_middle_indices_grid": True,
}


def ltxcore_header(**overrides) -> dict:
    """A 19B-style ``config.transformer`` header block with tiny widths."""
    header = dict(_FIXED)
    header.update({
        "rope_type": "split", "frequencies_precision": "float64", "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048], "audio_positional_embedding_max_pos": [20],
        "timestep_scale_multiplier": 1000, "av_ca_timestep_scale_multiplier": 1000, "norm_eps": 1e-6,
        "num_layers": 2, "num_attention_heads": 4, "attention_head_dim": 16, "cross_attention_dim": 64,
        "audio_num_attention_heads": 2, "audio_attention_head_dim": 16, "audio_cross_attention_dim": 32,
        "in_channels": 128, "out_channels": 128, "audio_in_channels": 128, "audio_out_channels": 128,
        "caption_channels": 24,
    })
    header.update(overrides)
    return header


def random_init_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fills every parameter with seeded values of a realistic scale (norm weights near 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith(("norm_q.weight", "norm_k.weight", "q_norm.weight", "k_norm.weight")):
                p.copy_(1 + 0.1 * noise)
            elif p.ndim == 1 or "scale_shift_table" in name:
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[-1]))
    return model


def ltxcore_transformer(header: dict, seed: int = 0) -> torch.nn.Module:
    model = LTXModelConfigurator.from_config({"transformer": header})
    model.to_empty(device="cpu")  # ltx-core builds its caption projections on the meta device
    return random_init_(model, seed).eval()


@dataclass
class AVInputs:
    """The same inputs in ltx-core's form (``video``, ``audio`` Modality) and in ours (keyword arguments)."""

    video: Modality
    audio: Modality
    ours: dict


def av_inputs(batch: int = 2, frames: int = 17, height: int = 96, width: int = 160, fps: float = 24.0,
              text_tokens: int = 16, caption_channels: int = 24, seed: int = 1) -> AVInputs:
    """Several latent frames on a non-square grid, per-token video σ (frame 0 clean), different A/V σ per sample."""
    g = torch.Generator().manual_seed(seed)
    pixel = VideoPixelShape(batch=batch, frames=frames, height=height, width=width, fps=fps)
    vshape = VideoLatentShape.from_pixel_shape(pixel)
    vstate = VideoLatentTools(VideoLatentPatchifier(patch_size=1), vshape, fps).create_initial_state(
        torch.device("cpu"), torch.float32)
    astate = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape.from_video_pixel_shape(pixel)
                              ).create_initial_state(torch.device("cpu"), torch.float32)
    tv_count, ta_count = vstate.latent.shape[1], astate.latent.shape[1]
    sigma_v = torch.linspace(0.8, 0.3, batch)
    sigma_a = torch.linspace(0.2, 0.9, batch)
    clean = vshape.height * vshape.width  # first latent frame is a clean conditioning frame
    mask_v = torch.ones(batch, tv_count, 1)
    mask_v[:, :clean] = 0
    t_v = mask_v * sigma_v.view(-1, 1, 1)
    t_a = torch.ones(batch, ta_count, 1) * sigma_a.view(-1, 1, 1)
    xv = torch.randn(batch, tv_count, 128, generator=g)
    xa = torch.randn(batch, ta_count, 128, generator=g)
    ctx_v = torch.randn(batch, text_tokens, caption_channels, generator=g)
    ctx_a = torch.randn(batch, text_tokens, caption_channels, generator=g)
    video = Modality(latent=xv, sigma=sigma_v, timesteps=t_v, positions=vstate.positions, context=ctx_v)
    audio = Modality(latent=xa, sigma=sigma_a, timesteps=t_a, positions=astate.positions, context=ctx_a)
    # our forward in diffusers' units (σ·1000), the A<->V modulation following the other stream's σ like ltx-core
    ours = dict(
        hidden_states=xv, audio_hidden_states=xa, encoder_hidden_states=ctx_v, audio_encoder_hidden_states=ctx_a,
        timestep=t_v[..., 0] * 1000, audio_timestep=t_a[..., 0] * 1000, sigma=sigma_v * 1000,
        audio_sigma=sigma_a * 1000, use_cross_timestep=True,
        num_frames=vshape.frames, height=vshape.height, width=vshape.width, fps=fps,
    )
    return AVInputs(video, audio, ours)


def perturbations(batch: int, *kinds: tuple[PerturbationType, list[int] | None]) -> BatchedPerturbationConfig:
    config = PerturbationConfig([Perturbation(kind, blocks) for kind, blocks in kinds])
    return BatchedPerturbationConfig([config] * batch)


ISOLATE = ((PerturbationType.SKIP_A2V_CROSS_ATTN, None), (PerturbationType.SKIP_V2A_CROSS_ATTN, None))


def stg(blocks: list[int]) -> tuple:
    return ((PerturbationType.SKIP_VIDEO_SELF_ATTN, blocks), (PerturbationType.SKIP_AUDIO_SELF_ATTN, blocks))


__all__ = [
    "AVInputs", "BatchedPerturbationConfig", "ISOLATE", "PerturbationConfig", "Perturbation", "PerturbationType",
    "av_inputs", "ltxcore_header", "ltxcore_transformer", "perturbations", "random_init_", "stg",
]
