"""LTX-2.3 transformer oracles: ltx-core 1.0.0 headers with the 2.3 switches, diffusers 0.42.1 2.3 configs, and
inputs whose text context arrives at each stream's width (no caption projection in the 2.3 transformer)."""

from __future__ import annotations

from dataclasses import replace

import torch

from .oracles import AVInputs, av_inputs, ltxcore_header

# The 2.3 switches of the real header (ltx23-facts §2): gated attention, text cross-attention AdaLN, and the caption
# projection moved into the text connectors (all four caption_proj* keys).
LTX23_SWITCHES = {
    "apply_gated_attention": True, "cross_attention_adaln": True, "caption_proj_before_connector": True,
    "caption_projection_first_linear": False, "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}

# diffusers' LTX-2.3 transformer settings (its converter's "2.3" config differs from "2.0" by exactly these)
DIFFUSERS_LTX23 = dict(gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
                       use_prompt_embeddings=False, perturbed_attn=True)


def ltxcore_header_23(**overrides) -> dict:
    """A 2.3-style ``config.transformer`` header block with tiny widths (19B-style keys plus the 2.3 switches)."""
    return ltxcore_header(**{**LTX23_SWITCHES, **overrides})


def av_inputs_23(video_width: int, audio_width: int, text_tokens: int = 16, seed: int = 5, **kwargs) -> AVInputs:
    """:func:`~tests.oracles.av_inputs` (per-token video σ with a clean first frame, different σ per sample and per
    stream) with text contexts at each stream's width, as the 2.3 connectors deliver them."""
    inputs = av_inputs(text_tokens=text_tokens, **kwargs)
    g = torch.Generator().manual_seed(seed)
    batch = inputs.video.latent.shape[0]
    ctx_v = torch.randn(batch, text_tokens, video_width, generator=g)
    ctx_a = torch.randn(batch, text_tokens, audio_width, generator=g)
    ours = {**inputs.ours, "encoder_hidden_states": ctx_v, "audio_encoder_hidden_states": ctx_a}
    return AVInputs(replace(inputs.video, context=ctx_v), replace(inputs.audio, context=ctx_a), ours)


def with_text_mask(inputs: AVInputs, mask: torch.Tensor) -> AVInputs:
    """The same inputs with a ``[B, L]`` 0/1 text mask on both streams (ltx-core's and our form)."""
    ours = {**inputs.ours, "encoder_attention_mask": mask, "audio_encoder_attention_mask": mask}
    return AVInputs(replace(inputs.video, context_mask=mask), replace(inputs.audio, context_mask=mask), ours)


def diffusers_call(model: torch.nn.Module, inputs: AVInputs, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' forward on the same inputs (σ·1000, the other stream's σ for A<->V) with reference coordinates."""
    x = inputs.ours
    for name in ("encoder_attention_mask", "audio_encoder_attention_mask"):
        if name in x:
            kwargs[name] = x[name]
    return model(
        hidden_states=x["hidden_states"], audio_hidden_states=x["audio_hidden_states"],
        encoder_hidden_states=x["encoder_hidden_states"], audio_encoder_hidden_states=x["audio_encoder_hidden_states"],
        timestep=x["timestep"], audio_timestep=x["audio_timestep"], sigma=x["sigma"], audio_sigma=x["audio_sigma"],
        use_cross_timestep=x["use_cross_timestep"],
        video_coords=inputs.video.positions, audio_coords=inputs.audio.positions, return_dict=False, **kwargs)


__all__ = ["DIFFUSERS_LTX23", "LTX23_SWITCHES", "av_inputs_23", "diffusers_call", "ltxcore_header_23",
           "with_text_mask"]
