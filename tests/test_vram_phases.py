"""The per-phase VRAM formula of ``bench/vram_phases.py`` (the numbers of BENCHMARKS.md) on tiny configs."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from ltx2_diffusers.pipelines.memory import decode_bytes, denoise_bytes
from ltx2_diffusers.utils.tiny import tiny_components

_spec = importlib.util.spec_from_file_location("vram_phases", Path(__file__).parents[1] / "bench" / "vram_phases.py")
vram = sys.modules["vram_phases"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vram)

SIZES = vram.ModelSizes(
    params=dict(text_encoder=1000, connectors=100, transformer=4 * 50 + 20, vae=30, audio_vae=5, vocoder=7,
                latent_upsampler=11),
    transformer_block=50, transformer_fp8=200, text_linear=800, text_hidden=8, text_layers=3, video_width=16,
    audio_width=8, latent_channels=4, audio_channels=2, decoder_width=2.0, upsampler_width=6)
SHAPE = vram.CallShape(stage_tokens=(12, 48), stage_call_tokens=(12, 24), stage_passes=(2, 1), stage_grid=(1, 3, 4),
                       audio_tokens=5, prompts=2, text_tokens=16, pixels=(9, 64, 96), decode_tile=(9, 32, 32))


def test_default_profile_keeps_every_weight_resident():
    table = vram.phase_vram(SIZES, SHAPE, "default", dtype_bytes=2)
    resident = 2 * sum(SIZES.params.values())
    assert {phase: row["weights"] for phase, row in table.items()} == dict.fromkeys(vram.PHASES, resident)
    assert table["text encoding"]["work"] == 3 * 2 * 16 * 8 * 4 * 2
    assert table["stage 1"]["work"] == denoise_bytes(12, 5, 16, 8, 4, 2, 1, 2, 2, 12)
    assert table["stage 2"]["work"] == denoise_bytes(48, 5, 16, 8, 4, 2, 1, 1, 2, 24)
    assert table["upsampling"]["work"] == 4 * 6 * 1 * 6 * 8 * 2
    assert table["decode"]["work"] == decode_bytes(9, 64, 96, 1, 2.0, 2, (9, 32, 32))
    assert all(row["total"] == row["weights"] + row["work"] for row in table.values())


def test_low_memory_profile_streams_the_transformer_and_moves_the_text_stack():
    cpu = vram.phase_vram(SIZES, SHAPE, "low", "cpu", dtype_bytes=2)
    small = 2 * (30 + 5 + 7 + 11)
    streamed = 20 * 2 + 2 * 50 + 50 * 2  # weights outside the blocks, two fp8 blocks, one block cast up
    assert cpu["text encoding"] == {"weights": small, "work": 0, "total": small}
    assert cpu["stage 1"]["weights"] == cpu["stage 2"]["weights"] == small + streamed
    assert cpu["upsampling"]["weights"] == cpu["decode"]["weights"] == small
    int8 = vram.phase_vram(SIZES, SHAPE, "low", "int8", dtype_bytes=2)
    assert int8["text encoding"]["weights"] == small + 800 + 200 * 2
    assert int8["text encoding"]["work"] == 3 * 2 * 16 * 8 * 4 * 2
    default = vram.phase_vram(SIZES, SHAPE)
    assert all(cpu[p]["total"] < default[p]["total"] for p in vram.PHASES)
    with pytest.raises(ValueError, match="profile"):
        vram.phase_vram(SIZES, SHAPE, "16gb")


def test_sizes_are_read_from_the_configs():
    parts = tiny_components(0)
    config = {k: v for k, v in parts["transformer"].config.items() if not k.startswith("_")}
    text = dict(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, vocab_size=300)
    sizes = vram.model_sizes(text, transformer=config,
                             vae={k: v for k, v in parts["vae"].config.items() if not k.startswith("_")})
    count = sum(p.numel() for p in parts["transformer"].parameters())
    assert sizes.params["transformer"] == count
    assert sizes.params["vae"] == sum(p.numel() for p in parts["vae"].parameters())
    assert sizes.transformer_block == sum(p.numel() for p in parts["transformer"].transformer_blocks[0].parameters())
    parts["transformer"].enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    stored = sum(p.numel() for p in parts["transformer"].parameters() if p.dtype == torch.float8_e4m3fn)
    assert sizes.transformer_fp8 == stored  # the formula's fp8 share is what layerwise casting stores
    assert (sizes.text_hidden, sizes.text_layers, sizes.video_width) == (32, 2, 32)
    shape = vram.two_stage_shape(frames=9, height=128, width=192, refine_tokens=8, decode_tile=None)
    assert shape.stage_tokens == (2 * 2 * 3, 2 * 4 * 6) and shape.stage_call_tokens == (12, 8)
    assert "**peak**" in vram.markdown(sizes)
