"""diffusers 0.42.1's LTX-2 pipelines as oracles for the call side of ``LTX2AudioVideoPipeline``: its
``LTX2Pipeline`` (text to video) and ``LTX2ConditionPipeline`` built from diffusers' classes on one folder our pipeline
saved, run the same sampler (verbatim σ, ``perturbed_attn``), sharing our Gemma-3 and tokenizer.
"""

from __future__ import annotations

import torch

from .oracles_pipeline import diffusers_pipeline_from_folder


def pipelines_on_one_folder(folder: str) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """``(ours, diffusers' LTX2Pipeline, diffusers' LTX2ConditionPipeline)``, all components loaded from ``folder``."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline

    from ltx2_diffusers import LTX2AudioVideoPipeline

    ours = LTX2AudioVideoPipeline.from_pretrained(folder)
    ours.set_progress_bar_config(disable=True)
    theirs = diffusers_pipeline_from_folder(folder, ours.text_encoder, ours.tokenizer)
    names = ("scheduler", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder")
    condition = LTX2ConditionPipeline(**{name: getattr(theirs, name) for name in names})
    condition.set_progress_bar_config(disable=True)
    return ours, theirs, condition


def starting_tokens(pipe: torch.nn.Module, video_tokens: int, audio_tokens: int, seed: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed normalised starting latents ``[1, T, C]`` of both streams (fed as given: no noise is drawn)."""
    g = torch.Generator().manual_seed(seed)
    c = pipe.transformer.config
    return (torch.randn(1, video_tokens, c.in_channels, generator=g),
            torch.randn(1, audio_tokens, c.audio_in_channels, generator=g))


def diffusers_start(pipe: torch.nn.Module, video: torch.Tensor, audio: torch.Tensor) -> dict:
    """The same start for diffusers' ``LTX2Pipeline``: it takes packed video latents as normalised but re-normalises
    audio latents, so the audio goes in de-normalised (4-D); ``noise_scale=0`` keeps both as given."""
    return dict(latents=video, audio_latents=pipe.audio_vae.denormalize_latents(audio), noise_scale=0.0,
                generator=torch.Generator().manual_seed(0))
