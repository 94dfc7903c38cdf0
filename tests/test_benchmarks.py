"""``ltx2-diffusers bench``: the comparisons run on identical weights and agree numerically."""

import math

from ltx2_diffusers.benchmarks import markdown_table, run_benchmarks


def test_cpu_benchmarks_compare_identical_weights_and_print_ratios():
    rows = run_benchmarks(runs=1, full=False)
    names = [r.name for r in rows]
    assert [n.split(" (")[0] for n in names] == ["transformer forward", "guided step, CFG+STG+modality",
                                                 "video VAE decode", "whole pipeline, 4 guided steps"]
    for row in rows:
        assert row.ours > 0 and row.diffusers > 0 and math.isclose(row.ratio, row.ours / row.diffusers)
    diffs = {r.name.split(" (")[0]: r.max_diff for r in rows}
    # same weights, same inputs: the outputs agree to fp32 rounding
    assert diffs["transformer forward"] < 1e-5 and diffs["video VAE decode"] < 1e-4
    assert diffs["whole pipeline, 4 guided steps"] < 1e-4
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| comparison |") and len(table.splitlines()) == 2 + len(rows)
    assert f"{rows[0].ratio:.2f}" in table


def test_bench_command_prints_the_table(capsys):
    from ltx2_diffusers.cli import main

    assert main(["bench", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "vs diffusers 0.42.1" in out and "| transformer forward (CPU config, fp32) |" in out
    assert "| whole pipeline, 4 guided steps" in out and "ratio < 1: ours is faster" in out
