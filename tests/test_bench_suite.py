"""``ltx2-diffusers bench --suite gpu`` as a CPU dry run with tiny configs: every phase runs the code the GPU run
runs, results land in the JSON file phase by phase, and a failing phase is recorded while the next one runs."""

import json

import pytest

from ltx2_diffusers import bench_suite, cli


def test_dry_run_writes_every_phase(tmp_path, capsys):
    path = tmp_path / "suite.json"
    # forward_compiled is skipped here for time (the eager-backend dry run of it takes ~6 s on 2 cores)
    assert cli.main(["bench", "--suite", "gpu", "--tiny", "--json", str(path), "--runs", "1", "--steps", "2",
                     "--skip", "forward_compiled"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1/5] forward: ok in ") and lines[-1] == f"results: {path}"
    report = json.loads(path.read_text())
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == list(bench_suite.PHASE_NAMES)
    assert phases["forward_compiled"]["status"] == "skipped"
    assert all(p["status"] == "ok" for name, p in phases.items() if name != "forward_compiled"), report
    forward = phases["forward"]["result"]
    assert forward["max_abs_diff"] < 1e-5 and forward["ours_s"] > 0 and forward["parameters"] > 0
    fp8 = phases["forward_fp8"]["result"]
    assert fp8["weights_gib"] < 0.8 * fp8["bf16_weights_gib"]  # tiny: mostly norms and tables (19B: ~1/2)
    assert 0 < fp8["max_abs_diff_vs_bf16"] < 0.1 * fp8["reference_max_abs"]
    generation = phases["low_memory_generation"]["result"]
    assert list(generation["phases"]) == ["prepare", "stage 1", "upsampling", "stage 2", "decode"]
    assert generation["finite"] and generation["frames_shape"] == [1, 9, 3, 128, 192]
    assert generation["profile"]["group_offload"] == "True" and generation["profile"]["fp8_weights"] == "True"
    assert phases["text_encoding_cpu"]["result"]["finite"]


def test_a_failing_phase_is_recorded_and_the_next_runs(tmp_path, monkeypatch):
    def broken(settings, state):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setitem(bench_suite.PHASES, "forward", broken)
    seen = []
    path = tmp_path / "suite.json"
    skip = ("forward_compiled", "forward_fp8", "low_memory_generation")
    report = bench_suite.run_suite(path, tiny=True, runs=1, skip=skip, say=seen.append)
    phases = {p["name"]: p for p in json.loads(path.read_text())["phases"]}
    assert phases["forward"]["status"] == "error" and "simulated" in phases["forward"]["error"]
    assert phases["text_encoding_cpu"]["status"] == "ok" and report["phases"][-1]["name"] == "text_encoding_cpu"
    assert seen[0].startswith("[1/5] forward: error") and len(seen) == 5
    with pytest.raises(ValueError, match="unknown phases"):
        bench_suite.run_suite(path, tiny=True, skip=("warp",))


def test_gpu_suite_needs_a_json_path(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--suite", "gpu", "--tiny"])
    assert exit_info.value.code == 2 and "--json PATH" in capsys.readouterr().err
