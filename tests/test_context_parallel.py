"""Context parallelism on 2 gloo processes (CPU, tiny weights) equals one process: the transformer forward in every
guidance pass (1e-5) and whole pipeline calls (1e-4), for Ulysses and ring, with video token counts that do not
divide by the group size. One spawn runs every case; the single-process references are computed meanwhile."""

from __future__ import annotations

import pytest
import torch
from diffusers import ContextParallelConfig, ParallelConfig, TensorParallelConfig

from ltx2_diffusers.models.context_parallel import resolve_plan
from ltx2_diffusers.models.context_parallel_attention import SequenceLayout, attention_with_lse, merge_partials
from tests.oracles_cp18 import (
    FORWARD_CASES,
    MODES,
    PIPELINE_CASES,
    forward_outputs,
    load_rank,
    pipeline_call,
    spawn,
    tiny_pipe,
    tiny_transformer,
)

WORLD = 2


def _references() -> dict[str, dict[str, torch.Tensor]]:
    refs = {}
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
    refs = spawn(WORLD, out, pipelines=True, while_running=_references)
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
