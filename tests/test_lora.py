"""Original / ComfyUI-style LTX-2 LoRAs through the pipeline's LoRA loader."""

import copy

import pytest
import torch

from ltx2_diffusers.conversion import original_transformer_key
from ltx2_diffusers.utils.tiny import tiny_pipeline

pytest.importorskip("peft", reason="LoRA loading needs peft (the test extra installs it)")

# a video attention, an audio feed-forward and an audio->video attention projection
TARGETS = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.1.audio_ff.net.2",
           "transformer_blocks.0.audio_to_video_attn.to_k")


def _lora(transformer, seed, rank=2):
    """A ComfyUI-style state dict (``diffusion_model.<original name>.lora_A/B.weight``) and its B·A per target."""
    g = torch.Generator().manual_seed(seed)
    state, deltas = {}, {}
    for name in TARGETS:
        weight = transformer.get_submodule(name).weight
        down = torch.randn(rank, weight.shape[1], generator=g) * 0.1
        up = torch.randn(weight.shape[0], rank, generator=g) * 0.1
        original = original_transformer_key(name).replace("model.diffusion_model.", "diffusion_model.")
        state[f"{original}.lora_A.weight"], state[f"{original}.lora_B.weight"] = down, up
        deltas[name] = up @ down
    return state, deltas


def _inputs(transformer):
    g = torch.Generator().manual_seed(7)
    c = transformer.config
    return dict(hidden_states=torch.randn(1, 12, c.in_channels, generator=g),
                audio_hidden_states=torch.randn(1, 5, c.audio_in_channels, generator=g),
                encoder_hidden_states=torch.randn(1, 8, c.caption_channels, generator=g),
                audio_encoder_hidden_states=torch.randn(1, 8, c.caption_channels, generator=g),
                timestep=torch.tensor([0.6]), num_frames=2, height=2, width=3)


def _merged(transformer, deltas_and_scales):
    """A plain copy of the transformer with W + Σ s·B·A written into the targets."""
    merged = copy.deepcopy(transformer)
    with torch.no_grad():
        for deltas, scale in deltas_and_scales:
            for name, delta in deltas.items():
                merged.get_submodule(name).weight += scale * delta
    return merged


def test_two_adapters_with_strengths_match_w_plus_s_ba_and_fuse_unfuse():
    pipe = tiny_pipeline(seed=0)
    base = copy.deepcopy(pipe.transformer)
    first, first_deltas = _lora(pipe.transformer, seed=1)
    second, second_deltas = _lora(pipe.transformer, seed=2)
    pipe.load_lora_weights(first, adapter_name="style")
    pipe.load_lora_weights(second, adapter_name="camera")
    pipe.set_adapters(["style", "camera"], [0.8, -0.5])  # negative strengths are allowed

    inputs = _inputs(base)
    expected = _merged(base, [(first_deltas, 0.8), (second_deltas, -0.5)])(**inputs).sample
    with torch.no_grad():
        out = pipe.transformer(**inputs).sample
    assert (out - base(**inputs).sample).abs().max() > 1e-3  # the LoRA really acts
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)

    pipe.fuse_lora(adapter_names=["style", "camera"])
    with torch.no_grad():
        fused = pipe.transformer(**inputs).sample
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-5)
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
    with torch.no_grad():
        torch.testing.assert_close(pipe.transformer(**inputs).sample, base(**inputs).sample, rtol=0, atol=1e-5)
