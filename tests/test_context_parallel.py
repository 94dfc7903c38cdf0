"""Context parallelism on 2 gloo processes (CPU, tiny weights) equals one process: the transformer forward in every
guidance pass (1e-5) and whole pipeline calls (1e-4), for Ulysses and ring, with video token counts that do not
divide by the group size. One spawn runs every case; the single-process references are computed meanwhile."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from diffusers import ContextParallelConfig, ParallelConfig, TensorParallelConfig

from ltx2_diffusers.models.context_parallel import resolve_plan
from ltx2_diffusers.models.context_parallel_attention import SequenceLayout, attention_with_lse, merge_partials
from ltx2_diffusers.models.context_parallel_cost import context_parallel_cost, video_tokens_for
from tests.oracles_cp18 import (
    CLI_ARGS,
    CLI_MODE,
    FORWARD_CASES,
    MODES,
    PIPELINE_CASES,
    forward_outputs,
    load_rank,
    pipeline_call,
    run_cli,
    spawn,
    tiny_pipe,
    tiny_transformer,
)

WORLD = 2


def _references(cli_model, out) -> dict[str, dict[str, torch.Tensor]]:
    refs = {}
    if cli_model is not None:  # the same command in one process
        (out / "single").mkdir()
        assert run_cli(["generate", "--model", str(cli_model), *CLI_ARGS, "--quiet", "--output",
                        str(out / "single" / "clip.mp4")], out / "single" / "log") == 0
    for name, cases in FORWARD_CASES.items():
        model = tiny_transformer(name)
        for case in cases:
            refs[f"forward.{name}.{case}"] = forward_outputs(model, case)
    pipe = tiny_pipe()
    for case in sorted({c for cases in PIPELINE_CASES.values() for c in cases}):
        refs[f"pipeline.{case}"] = pipeline_call(pipe, case)
    return refs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cp")
    cli_model = None
    if importlib.util.find_spec("av") is not None:  # PyAV writes the mp4
        cli_model = tmp_path_factory.mktemp("tiny_ltx2")
        tiny_pipe().save_pretrained(cli_model)
    refs = spawn(WORLD, out, pipelines=True, cli_model=cli_model, while_running=lambda: _references(cli_model, out))
    return out, refs


def _max_error(out, name, ref, rank):
    got = load_rank(out, name, rank)
    assert got.keys() == ref.keys()
    for key, value in ref.items():
        assert got[key].shape == value.shape, (name, key)
    return max((got[k] - ref[k]).abs().max().item() if ref[k].numel() else 0.0 for k in ref)


@pytest.mark.parity
@pytest.mark.parametrize("mode", MODES)
def test_forward_on_two_ranks_equals_one_process(runs, mode):
    out, refs = runs
    checked = 0
    for name, cases in FORWARD_CASES.items():
        if mode == "ulysses" and name == "odd_heads":
            continue
        for case in cases:
            for rank in range(WORLD):
                error = _max_error(out, f"forward.{mode}.{name}.{case}", refs[f"forward.{name}.{case}"], rank)
                assert error <= 1e-5, (mode, name, case, rank, error)
                checked += 1
    assert checked >= 2 * 16


@pytest.mark.parity
@pytest.mark.parametrize("mode", MODES)
def test_pipeline_on_two_ranks_equals_one_process(runs, mode):
    out, refs = runs
    for case in PIPELINE_CASES[mode]:
        ref = refs[f"pipeline.{case}"]
        assert ref["frames"].abs().max() > 0.1  # a real output, not an empty one
        for rank in range(WORLD):
            error = _max_error(out, f"pipeline.{mode}.{case}", ref, rank)
            assert error <= 1e-4, (mode, case, rank, error)


def test_ulysses_with_heads_the_group_cannot_split_suggests_ring(runs):
    out, _ = runs
    for rank in range(WORLD):
        message = (out / f"ulysses_error.rank{rank}.txt").read_text()
        assert "3 video attention heads" in message and "ring_degree=2" in message


def _frames(path):
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.int16)


def test_generate_under_two_ranks_writes_once_and_matches_one_process(runs):
    pytest.importorskip("av")
    out, _ = runs
    lead, other = out / "cli_rank0", out / "cli_rank1"
    assert (lead / "exit_code").read_text() == "0" and (other / "exit_code").read_text() == "0"
    summary = (lead / "log.out").read_text().strip()
    assert summary.startswith("done: 1 x 17 frames 96x96") and summary.endswith(f"wrote {lead / 'clip.mp4'}")
    assert f"context parallel {CLI_MODE} x 2" in (lead / "log.err").read_text()
    assert not (other / "clip.mp4").exists()  # the other rank writes nothing and says nothing
    assert (other / "log.out").read_text() == "" and (other / "log.err").read_text() == ""
    single = _frames(out / "single" / "clip.mp4")
    split = _frames(lead / "clip.mp4")
    assert split.shape == single.shape == (17, 96, 96, 3)
    # the same clip: H.264 may round a block differently after the 1e-6 differences, nothing more
    difference = np.abs(split - single)
    assert difference.mean() < 0.01 and difference.max() <= 8


def test_a_forward_with_gradients_and_a_second_enable_are_refused(runs):
    out, _ = runs
    for rank in range(WORLD):
        grad, twice = (out / f"misuse.rank{rank}.txt").read_text().split("\n")
        assert "inference-only" in grad and "torch.no_grad()" in grad
        assert "cannot be called twice" in twice


# ----------------------------------------------------------------------------------------------------------------
# In one process: setup errors and the pure pieces
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, message", [
    (ContextParallelConfig(ulysses_degree=2, ring_degree=2), "hybrid"),
    (ParallelConfig(tensor_parallel_config=TensorParallelConfig(tp_degree=2)), "tensor parallelism"),
    ("ulysses", "ContextParallelConfig"),
    (ContextParallelConfig(ring_degree=2), "torchrun"),
])
def test_bad_setups_raise_value_errors(config, message):
    with pytest.raises(ValueError, match=message):
        resolve_plan(config, num_heads=4)


def test_enable_parallelism_refuses_a_cp_plan():
    with pytest.raises(ValueError, match="cp_plan"):
        tiny_transformer("2.0").enable_parallelism(config=ContextParallelConfig(ring_degree=2), cp_plan={})


def test_generate_context_parallel_outside_torchrun_exits_2_naming_torchrun(tmp_path, monkeypatch, capsys):
    from ltx2_diffusers import cli

    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--model", str(tmp_path), "--prompt", "x", "--context-parallel", "ring"])
    assert exit_info.value.code == 2
    assert "torchrun --nproc_per_node N" in capsys.readouterr().err


@pytest.mark.parametrize("tokens, world", [(21, 2), (1, 2), (8, 4), (9, 4), (5, 8)])
def test_layout_pads_at_the_end_and_shards_cover_the_sequence(tokens, world):
    x = torch.arange(tokens, dtype=torch.float32).view(1, tokens, 1) + 1
    layouts = [SequenceLayout(tokens, world, r) for r in range(world)]
    shards = [layout.shard(x, 1) for layout in layouts]
    assert all(s.shape == (1, layouts[0].local, 1) for s in shards)
    assert layouts[0].local == -(-tokens // world)
    assert sum(layout.valid(r) for r, layout in enumerate(layouts)) == tokens
    joined = torch.cat(shards, dim=1)
    assert torch.equal(joined[:, :tokens], x) and not joined[:, tokens:].any()


def test_attention_parts_merge_to_the_full_attention():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 5, 3, 8, generator=g)
    k, v = (torch.randn(2, 9, 3, 8, generator=g) for _ in range(2))
    mask = torch.randn(2, 1, 5, 9, generator=g)
    full = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), attn_mask=mask)
    parts = [attention_with_lse(q, k[:, :4], v[:, :4], mask[..., :4]),
             attention_with_lse(q, k[:, 4:], v[:, 4:], mask[..., 4:])]
    merged, lse = merge_partials(parts)
    torch.testing.assert_close(merged, full.transpose(1, 2), rtol=0, atol=1e-6)
    scores = (q.transpose(1, 2) @ k.permute(0, 2, 3, 1)) / 8**0.5 + mask
    torch.testing.assert_close(lse, scores.logsumexp(-1), rtol=0, atol=1e-5)
    assert (parts[0][0] - merged).abs().max() > 1e-2  # each part alone is not the answer


# ----------------------------------------------------------------------------------------------------------------
# The cost function
# ----------------------------------------------------------------------------------------------------------------

SMALL = dict(num_attention_heads=4, attention_head_dim=8, audio_num_attention_heads=2, audio_attention_head_dim=4,
             in_channels=16, out_channels=None, audio_in_channels=8, audio_out_channels=8,
             vae_scale_factors=(8, 32, 32))


def test_cost_of_ulysses_and_ring_by_hand():
    # 9 tokens over 2 ranks: 5 per rank (1 padded); D = 32, audio 3 tokens of width 8 with 2 heads, bf16
    u = context_parallel_cost(SMALL, video_tokens=9, audio_tokens=3, world=2, mode="ulysses")
    assert u.tokens_per_rank == 5
    assert u.self_attention_bytes == 4 * 5 * 32 * 2 // 2  # q, k, v and the output, half of each leaves
    assert u.video_to_audio_bytes == 1 * 3 * (8 + 2) * 4  # float32 partial output + log-sum-exp to the other rank
    assert u.output_bytes == 5 * 16 * 2 + 3 * 8 * 2
    assert u.forward_bytes(3) == 3 * (640 + 120) + u.output_bytes
    r = context_parallel_cost(SMALL, video_tokens=9, audio_tokens=3, world=4, mode="ring")
    assert r.tokens_per_rank == 3 and r.self_attention_bytes == 2 * 3 * 32 * 2 * 3  # K and V passed on 3 times
    assert r.attention_buffer_bytes == 4 * 3 * 32 * 2 + 3 * 32 * 4
    assert r.hidden_bytes == 3 * 32 * 2 and r.feed_forward_bytes == 4 * r.hidden_bytes
    one = context_parallel_cost(SMALL, video_tokens=9, audio_tokens=3, world=1, mode="ring")
    assert one.forward_bytes(48) == 0  # nothing to send alone
    assert context_parallel_cost(SMALL, 9, 0, 2, "ring").video_to_audio_bytes == 0  # no audio stream


def test_cost_scales_as_the_modes_do():
    big = dict(SMALL, num_attention_heads=32, attention_head_dim=128)
    u2, u8 = (context_parallel_cost(big, 14080, 126, n, "ulysses") for n in (2, 8))
    r2, r8 = (context_parallel_cost(big, 14080, 126, n, "ring") for n in (2, 8))
    assert u8.self_attention_bytes < u2.self_attention_bytes  # Ulysses: per-rank traffic falls with N
    assert r8.self_attention_bytes > r2.self_attention_bytes  # ring: it grows, (N - 1) / N of the sequence's K/V
    assert u2.self_attention_bytes == r2.self_attention_bytes  # at 2 ranks both move the same bytes
    assert u8.hidden_bytes * 4 == u2.hidden_bytes


def test_cost_inputs_are_checked():
    with pytest.raises(ValueError, match="ring"):
        context_parallel_cost(dict(SMALL, num_attention_heads=3), 9, 3, 2, "ulysses")
    with pytest.raises(ValueError, match="mode"):
        context_parallel_cost(SMALL, 9, 3, 2, "tensor")
    assert video_tokens_for(SMALL, 121, 704, 1280) == 16 * 22 * 40
    with pytest.raises(ValueError, match="latent grid"):
        video_tokens_for(SMALL, 120, 704, 1280)
