"""diffusers 0.42.1 oracles for the transformer's forward API: a diffusers transformer and ours on the same random
weights, diffusers' own LTX-2 pipelines with our transformer swapped in, and a dynamo backend that counts compiles."""

from __future__ import annotations

import math

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer

diffusers = pytest.importorskip("diffusers")

# Tiny widths (video heads != audio heads), the checkpoints' split RoPE, and STG enabled on diffusers' side
# (``perturbed_attn=True``: without it diffusers' STG is a silent no-op; ours always applies it).
DIFFUSERS_TINY = dict(
    in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
    audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=8,
    audio_cross_attention_dim=16, num_layers=2, caption_channels=24, rope_type="split", perturbed_attn=True,
)
LTX23 = dict(gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
             use_prompt_embeddings=False)


def random_init_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seeded parameters of a realistic scale (norm weights near 1, tables and biases small)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith(("norm_q.weight", "norm_k.weight")):
                p.copy_(1 + 0.1 * noise)
            elif p.ndim == 1 or "scale_shift_table" in name:
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[-1]))
    return model


def transformer_twins(config: dict, seed: int = 3) -> tuple[torch.nn.Module, LTX2AudioVideoTransformer]:
    """diffusers' ``LTX2VideoTransformer3DModel`` with random weights and ours holding the same tensors (strict)."""
    theirs = random_init_(diffusers.LTX2VideoTransformer3DModel(**config), seed=seed).eval()
    ours = LTX2AudioVideoTransformer(**config).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


def with_transformer(pipe: torch.nn.Module, transformer: torch.nn.Module, cls: type | None = None) -> torch.nn.Module:
    """A diffusers LTX-2 pipeline (``cls``, default ``pipe``'s class) of ``pipe``'s components and ``transformer``."""
    swapped = (cls or type(pipe))(**{**pipe.components, "transformer": transformer})
    swapped.set_progress_bar_config(disable=True)
    return swapped


class CompileCounter:
    """A ``torch.compile`` backend that records every graph dynamo hands over (one per compile or recompile) and
    runs it as captured (``inductor=False``) or through inductor."""

    def __init__(self, inductor: bool = False) -> None:
        self.graphs: list[torch.fx.GraphModule] = []
        self.inductor = inductor

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs.append(gm)
        if self.inductor:
            from torch._inductor.compile_fx import compile_fx

            return compile_fx(gm, example_inputs)
        return gm.forward


__all__ = ["DIFFUSERS_TINY", "LTX23", "CompileCounter", "random_init_", "transformer_twins", "with_transformer"]
