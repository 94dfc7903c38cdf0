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
