"""``pipe.enable_low_memory()`` on the tiny pipeline (CPU): same output as the default placement, fp8 storage and the
int8 text encoder measured, the text encoder freed before denoising, and every bad argument refused."""

import logging

import pytest
import torch

from ltx2_diffusers import TokenTiling, VideoTiling
from ltx2_diffusers.pipelines.low_memory import is_int8_quantized, quantize_int8_weights_, storage_bytes
from ltx2_diffusers.pipelines.text_encoding import base_language_model
from ltx2_diffusers.utils.tiny import tiny_pipeline

CLIP = dict(num_frames=9, height=64, width=96, num_inference_steps=2, max_sequence_length=32, negative_prompt="bad",
            output_type="latent")  # the decode's tiling is checked in the plan; the decoders are not under test


def _pipe():
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe, prompt="a cat"):
    return pipe(prompt, generator=torch.Generator().manual_seed(0), **CLIP)


def _while_denoising(pipe):
    """What the pipeline holds at the transformer's first call: the transformer's stored bytes and the text encoder."""
    seen = {}

    def record(module, args):
        if not seen:
            seen.update(transformer=storage_bytes(pipe.transformer), text_encoder=pipe.text_encoder,
                        text_device=None if pipe.text_encoder is None else next(pipe.text_encoder.parameters()).device)

    return seen, pipe.transformer.register_forward_pre_hook(record)


@pytest.fixture(scope="module")
def reference():
    pipe = _pipe()
    seen, hook = _while_denoising(pipe)
    out = _run(pipe)
    hook.remove()
    return out, seen


def test_profile_without_fp8_gives_the_default_output(reference, caplog):
    """Group-offload hooks (run CPU to CPU), text stack on the CPU, tiling defaults: the same clip as the default."""
    expected, _ = reference
    pipe = _pipe()
    with caplog.at_level(logging.INFO):
        profile = pipe.enable_low_memory("cpu", fp8_weights=False, offload_hooks=True)
    assert profile.group_offload and not profile.fp8_weights and pipe.low_memory is profile
    plan = pipe.plan(prompt="a cat", upsample=True, num_frames=121, height=1024, width=1536)
    assert plan.stages[1].tiles is not None and max(t.num_tokens for t in plan.stages[1].tiles) <= 8192
    assert isinstance(plan.decode_tiling, VideoTiling)
    own = pipe.plan(prompt="a cat", upsample=True, num_frames=121, height=1024, width=1536,
                    refine_tiling=TokenTiling(max_tokens=20000), decode_tiling=False)
    assert max(t.num_tokens for t in own.stages[1].tiles) > 8192 and own.decode_tiling is False  # the call's own
    out = _run(pipe)
    assert (out.frames - expected.frames).abs().max() <= 1e-5
    assert (out.audio - expected.audio).abs().max() <= 1e-5


def test_cpu_only_skips_offload_with_a_log_line_and_keeps_fp8_storage(reference, caplog):
    expected, seen_default = reference
    pipe = _pipe()
    with caplog.at_level(logging.INFO, logger="ltx2_diffusers.pipelines.low_memory"):
        profile = pipe.enable_low_memory("cpu")
    assert not profile.group_offload and "group offload skipped" in caplog.text
    block = pipe.transformer.transformer_blocks[0]
    assert block.attn1.to_q.weight.dtype == torch.float8_e4m3fn
    seen, hook = _while_denoising(pipe)
    out = _run(pipe)
    hook.remove()
    # fp32 -> fp8 storage: 3 bytes fewer per cast value; the tiny model is dominated by the modulation tables and
    # norms that stay in the compute dtype, so it keeps 2/3 of its bytes (the real 19B one keeps about 1/4)
    fp8_values = sum(p.numel() for p in pipe.transformer.parameters() if p.dtype == torch.float8_e4m3fn)
    assert fp8_values > 0.4 * sum(p.numel() for p in pipe.transformer.parameters())
    assert seen["transformer"] == seen_default["transformer"] - 3 * fp8_values
    assert seen["transformer"] < 0.7 * seen_default["transformer"]
    assert seen["text_device"].type == "cpu"
    assert torch.isfinite(out.frames).all()
    error = (out.frames - expected.frames).abs().mean() / expected.frames.abs().mean()
    assert 0 < error < 0.1, error  # fp8 weights: close to the default, not equal


def test_released_text_encoder_is_gone_before_denoising_and_cached_prompts_still_work():
    pipe = _pipe()
    pipe.enable_low_memory("cpu", fp8_weights=False, release_text_encoder=True)
    encoded = pipe.encode_text_embeddings("a cat", "bad", max_sequence_length=32)
    seen, hook = _while_denoising(pipe)
    _run(pipe)
    hook.remove()
    assert seen["text_encoder"] is None and pipe.text_encoder is None
    again = pipe.encode_text_embeddings("a cat", "bad", max_sequence_length=32)  # both prompts come from the cache
    assert all(torch.equal(a, b) for a, b in zip((*encoded[0], *encoded[1]), (*again[0], *again[1])))
    with pytest.raises(ValueError, match="set_text_encoder"):
        _run(pipe, "a new prompt")


def test_int8_text_encoder_effect_on_embeddings_and_output(reference):
    pytest.importorskip("torchao")
    expected, _ = reference
    default = _pipe()
    want, _ = default.encode_text_embeddings("a cat", "bad", max_sequence_length=32)
    pipe = _pipe()
    pipe.enable_low_memory("cpu", text_encoder="int8", fp8_weights=False)
    assert is_int8_quantized(pipe.text_encoder)
    assert "Int8" in type(base_language_model(pipe.text_encoder).layers[0].mlp.up_proj.weight).__name__
    got, _ = pipe.encode_text_embeddings("a cat", "bad", max_sequence_length=32)
    for field in ("video_embeds", "audio_embeds"):
        a, b = getattr(want, field), getattr(got, field)
        relative = ((a - b).norm() / a.norm()).item()
        assert 0 < relative < 0.02, (field, relative)  # int8 weights: within 2% (measured 0.5% video, 1.0% audio)
    out = _run(pipe)
    assert (out.frames - expected.frames).abs().max() < 0.05


def test_bad_arguments_are_refused_before_anything_changes():
    pipe = _pipe()
    with pytest.raises(ValueError, match="'cpu'.*'int8'"):
        pipe.enable_low_memory("cpu", text_encoder="fp4")
    with pytest.raises(ValueError, match="refine_tile_tokens"):
        pipe.enable_low_memory("cpu", refine_tile_tokens=0)
    with pytest.raises(ValueError, match="fp8_weights must be True or False"):
        pipe.enable_low_memory("cpu", fp8_weights="yes")
    assert pipe.low_memory is None and pipe.transformer.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float32
    pipe.enable_low_memory("cpu", fp8_weights=False)
    with pytest.raises(ValueError, match="already"):
        pipe.enable_low_memory("cpu")
    offloaded = _pipe()
    offloaded.enable_model_cpu_offload(device="cpu")
    with pytest.raises(ValueError, match="instead of enable_model_cpu_offload"):
        offloaded.enable_low_memory("cpu")
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_int8_weights_(torch.nn.LayerNorm(4))
