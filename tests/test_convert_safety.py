"""The converter refuses bad tensors by name before any work, writes one dtype, survives killed runs and lost races,
and its command line reports every failure in one line (exit 2: bad arguments, exit 1: failed work)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2LatentUpsampler
from ltx2_diffusers.conversion import checkpoint as checkpoint_module
from ltx2_diffusers.conversion.__main__ import main
from ltx2_diffusers.conversion.checkpoint import convert_checkpoint

from .oracles_checkpoint import tiny_original, tiny_upsampler_file, write_original
from .video_helpers import LATENT

SRC = Path(__file__).resolve().parents[1] / "src"
Q = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"  # a transformer weight
K = "model.diffusion_model.transformer_blocks.0.attn1.to_k.weight"


@pytest.fixture(scope="module")
def tiny():
    return tiny_original()


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if any tensor data is read or any temporary folder created."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the inputs were checked")

    monkeypatch.setattr(checkpoint_module, "load_tensor", forbidden)
    monkeypatch.setattr(checkpoint_module, "temp_folder", forbidden)


def _source(tiny, folder: Path, name: str = "model.safetensors", extra: dict | None = None) -> Path:
    """The tiny original file, with ``extra`` tensors added or replaced."""
    return write_original(folder / name, {**tiny.tensors, **(extra or {})}, tiny.header)


def _saved(folder: Path) -> dict[str, torch.Tensor]:
    """subfolder/name -> tensor of every safetensors file of a converted folder."""
    return {f"{shard.parent.name}/{k}": v
            for shard in folder.rglob("*.safetensors") for k, v in load_file(shard).items()}


def _only(tmp_path: Path, *names: str) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no output, no temporary folder


# ----------------------------------------------------------------------------------------------------------------
# Bad tensors, refused by name
# ----------------------------------------------------------------------------------------------------------------


def test_non_finite_weight_is_refused_by_name_unless_allowed(tiny, tmp_path):
    weight = tiny.tensors[Q].clone()
    weight[0, 1] = float("nan")
    source = write_original(tmp_path / "model.safetensors", {**tiny.tensors, Q: weight}, tiny.header)
    with pytest.raises(ValueError, match=rf"{Q} holds 1 non-finite values .*allow-non-finite"):
        convert_checkpoint(source, tmp_path / "out")
    _only(tmp_path, "model.safetensors")
    big = tiny.tensors[K].clone()
    big[0, 0] = 1e6  # finite in float32, inf in float16
    overflow = write_original(tmp_path / "big.safetensors", {**tiny.tensors, K: big}, tiny.header)
    with pytest.raises(ValueError, match=rf"{K} has values beyond the range of torch.float16"):
        convert_checkpoint(overflow, tmp_path / "out", dtype=torch.float16)
    _only(tmp_path, "model.safetensors", "big.safetensors")
    folder = convert_checkpoint(source, tmp_path / "out", allow_non_finite=True)  # the opt-out
    saved = _saved(folder)["transformer/transformer_blocks.0.attn1.to_q.weight"]
    assert saved[0, 1].isnan() and torch.equal(saved.isnan(), weight.isnan())
    assert json.loads((folder / "ltx2_conversion.json").read_text())["allow_non_finite"] is True


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.0, -0.5, [0.5, 0.0]])
def test_bad_fp8_scale_is_refused_by_name_before_work(tiny, tmp_path, no_work, scale):
    fp8 = tiny.tensors[Q].to(torch.float8_e4m3fn)
    value = torch.tensor(scale) if isinstance(scale, float) else torch.tensor(scale * (fp8.shape[0] // 2))
    source = write_original(tmp_path / "model.safetensors",
                            {**tiny.tensors, Q: fp8, Q.replace(".weight", ".weight_scale"): value}, tiny.header)
    kind = "NaN or inf" if isinstance(scale, float) and not abs(scale) < float("inf") else "zero or negative"
    with pytest.raises(ValueError, match=rf"to_q.weight_scale \({kind}\)"):
        convert_checkpoint(source, tmp_path / "out")
    _only(tmp_path, "model.safetensors")


@pytest.mark.parametrize("extra, message", [
    ({Q.replace(".weight", ".input_scale"): torch.tensor(2.0)}, r"without a float8 weight .*to_q.input_scale"),
    ({Q.replace(".weight", ".weight_scale"): torch.tensor(2.0)}, r"without a float8 weight .*to_q.weight_scale"),
    ({"model.diffusion_model.gone.input_scale": torch.tensor(1.0)}, r"without a float8 weight .*gone.input_scale"),
    ({"scaled_fp8": torch.empty(0)}, "'scaled_fp8' marker in a file without float8 weights"),
    ({Q: torch.ones(64, 64, dtype=torch.int32)}, rf"not floating point: {Q} \(I32\)"),
    ({K: torch.ones(64, 64, dtype=torch.bool)}, rf"not floating point: {K} \(BOOL\)"),
])
def test_stray_scales_and_integer_tensors_are_refused_before_work(tiny, tmp_path, no_work, extra, message):
    source = write_original(tmp_path / "model.safetensors", {**tiny.tensors, **extra}, tiny.header)
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(source, tmp_path / "out")
    _only(tmp_path, "model.safetensors")


def test_one_dtype_for_the_whole_folder(tiny, tmp_path):
    """A mostly-bf16 file with a float64 tensor and a scaled fp8 weight (with its activation scale and the
    scaled_fp8 marker), plus a float32 upsampler: everything is written as bfloat16, each value cast once."""
    tensors = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in tiny.tensors.items()}
    tensors[K] = tiny.tensors[K].to(torch.float64)
    tensors[Q] = tiny.tensors[Q].to(torch.float8_e4m3fn)
    tensors[Q.replace(".weight", ".weight_scale")] = torch.tensor([0.5] * tensors[Q].shape[0])
    tensors[Q.replace(".weight", ".input_scale")] = torch.tensor(3.0)
    tensors["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    source = write_original(tmp_path / "model.safetensors", tensors, tiny.header)
    _, upsampler_file = tiny_upsampler_file(tmp_path / "upsampler.safetensors")
    folder = convert_checkpoint(source, tmp_path / "out", upsampler=upsampler_file)
    saved = _saved(folder)
    assert {name.split("/")[0] for name in saved} >= {"transformer", "vae", "vocoder", "latent_upsampler"}
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}
    assert torch.equal(saved["transformer/transformer_blocks.0.attn1.to_k.weight"],
                       tiny.tensors[K].to(torch.float64).to(torch.bfloat16))
    assert torch.equal(saved["transformer/transformer_blocks.0.attn1.to_q.weight"],
                       (tensors[Q].float() * 0.5).to(torch.bfloat16))
    upsampler = load_file(upsampler_file)
    assert torch.equal(saved["latent_upsampler/initial_conv.weight"], upsampler["initial_conv.weight"].bfloat16())
    assert json.loads((folder / "ltx2_conversion.json").read_text())["dtype"] == "bfloat16"


# ----------------------------------------------------------------------------------------------------------------
# Faults: a killed run, the output location, lost races, the command line
# ----------------------------------------------------------------------------------------------------------------

KILLED_RUN = """
import sys, time
from pathlib import Path
from ltx2_diffusers.conversion import checkpoint
source, output, flag = map(Path, sys.argv[1:4])
save = checkpoint._save_model
def save_then_hang(*args, **kwargs):
    save(*args, **kwargs)
    flag.write_text("one component written")
    time.sleep(600)
checkpoint._save_model = save_then_hang
checkpoint.convert_checkpoint(source, output)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid checks are POSIX")
def test_killed_run_leaves_a_temporary_folder_that_the_next_run_removes(tiny, tmp_path):
    source = _source(tiny, tmp_path)
    flag = tmp_path / "flag"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(source), str(tmp_path / "out"), str(flag)],
                             env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not flag.exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the conversion subprocess did not start writing"
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.converting-")]
    assert len(stale) == 1 and str(child.pid) in stale[0].name and (stale[0] / "transformer").is_dir()
    assert not (tmp_path / "out").exists()
    folder = convert_checkpoint(source, tmp_path / "out")  # the rerun succeeds and removes the stale folder
    assert (folder / "vocoder").is_dir()
    _only(tmp_path, "model.safetensors", "flag", "out")


def test_output_inside_the_text_encoder_folder_is_refused_before_work(tiny, tmp_path, monkeypatch, no_work):
    gemma = tmp_path / "gemma"
    (gemma / "sub").mkdir(parents=True)
    (gemma / "config.json").write_text("{}")

    def no_reading(path):
        raise AssertionError(f"{path} was opened")

    monkeypatch.setattr(checkpoint_module, "open_safetensors", no_reading)
    for output in (gemma / "out", gemma / "sub" / "out"):
        with pytest.raises(ValueError, match="lies inside the --text-encoder folder"):
            convert_checkpoint(tmp_path / "model.safetensors", output, text_encoder=gemma)
    assert sorted(p.name for p in gemma.iterdir()) == ["config.json", "sub"] and not any((gemma / "sub").iterdir())


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_cli_unwritable_output_is_one_line_exit_1(tiny, tmp_path, capsys):
    source = _source(tiny, tmp_path)
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        output = locked / "out"
    elif Path("/sys").is_dir():  # root writes anywhere but in /sys
        output = Path("/sys/ltx2_out")
    else:
        pytest.skip("no unwritable folder available")
    assert main(["--checkpoint", str(source), "--output", str(output)]) == 1
    line = _error_line(capsys)
    assert line.startswith("error: conversion failed, nothing was written: ") and ("denied" in line or
                                                                                    "not permitted" in line)
    assert not output.exists()


@pytest.mark.parametrize("appeared", ["folder with files", "empty folder"])
def test_cli_lost_race_is_one_line_exit_1(tiny, tmp_path, capsys, monkeypatch, appeared):
    source = _source(tiny, tmp_path)
    output = tmp_path / "out"

    def others_win(source, extra, temp, *args):  # the work (skipped here) ends after another process made output
        (temp / "model_index.json").write_text("{}")
        output.mkdir()
        if appeared == "folder with files":
            (output / "theirs.txt").write_text("theirs")
        return {}

    monkeypatch.setattr(checkpoint_module, "_write_folder", others_win)
    assert main(["--checkpoint", str(source), "--output", str(output)]) == 1
    assert "appeared while converting" in _error_line(capsys)
    assert sorted(p.name for p in output.iterdir()) == (["theirs.txt"] if appeared == "folder with files" else [])
    _only(tmp_path, "model.safetensors", "out")


def test_cli_disk_full_corrupt_file_and_bad_arguments(tiny, tmp_path, capsys, monkeypatch):
    source = _source(tiny, tmp_path)
    out = str(tmp_path / "out")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "_save_model", disk_full)
    assert main(["--checkpoint", str(source), "--output", out]) == 1
    assert "No space left on device" in _error_line(capsys)
    monkeypatch.undo()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(source.read_bytes()[:1000])
    assert main(["--checkpoint", str(truncated), "--output", out]) == 1
    assert "truncated or corrupt" in _error_line(capsys)
    extra = _source(tiny, tmp_path, "extra.safetensors", {"model.diffusion_model.new_block.weight": torch.zeros(2)})
    assert main(["--checkpoint", str(extra), "--output", out]) == 2  # a multi-line check, printed as one line
    assert "transformer: the checkpoint does not match the model. unexpected: new_block.weight" in _error_line(capsys)
    assert main(["--checkpoint", str(source), "--output", out, "--max-shard-size", "5XB"]) == 2
    assert "max_shard_size='5XB'" in _error_line(capsys)
    with pytest.raises(SystemExit) as exit_:
        main(["--output", out])
    assert exit_.value.code == 2 and "required: --checkpoint" in _error_line(capsys)
    from ltx2_diffusers.cli import main as cli_main  # `ltx2-diffusers convert`: the same handling

    assert cli_main(["convert", "--checkpoint", str(tmp_path / "absent.safetensors"), "--output", out]) == 2
    assert "absent.safetensors does not exist" in _error_line(capsys)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["convert", "--checkpoint", str(source)])
    assert exit_.value.code == 2 and "required: --output" in _error_line(capsys)
    with pytest.raises(ValueError, match="no component uses"):  # --debug: the exception itself, with its traceback
        main(["--checkpoint", str(_source(tiny, tmp_path, "lora.safetensors", {"lora.weight": torch.zeros(1)})),
              "--output", out, "--debug"])
    _only(tmp_path, "model.safetensors", "truncated.safetensors", "extra.safetensors", "lora.safetensors")


def test_cli_push_offline_is_refused_before_work(tiny, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    source = _source(tiny, tmp_path)
    assert main(["--checkpoint", str(source), "--output", str(tmp_path / "out"), "--push-to-hub", "me/ltx2"]) == 1
    assert "offline mode is on (HF_HUB_OFFLINE is set)" in _error_line(capsys)
    assert main(["--checkpoint", str(source), "--output", str(tmp_path / "out"), "--push-to-hub", "me/a b"]) == 2
    assert "is not a Hub repository name" in _error_line(capsys)
    _only(tmp_path, "model.safetensors")


def test_failed_upload_says_why_and_keeps_the_folder(tmp_path):
    from huggingface_hub import errors

    from ltx2_diffusers.conversion.model_card import PushError, push_to_hub

    class Hub:
        def __init__(self, error):
            self.error = error

        def create_repo(self, **kwargs):
            raise self.error

    (tmp_path / "model_index.json").write_text("{}")
    for error, reason in [(ConnectionError("Failed to establish a new connection"), "could not be reached"),
                          (errors.OfflineModeIsEnabled("offline"), "offline mode is on"),
                          (errors.LocalTokenNotFoundError("no token"), "not logged in")]:
        with pytest.raises(PushError, match=f"{reason}.*folder is kept; upload it later with `hf upload me/x"):
            push_to_hub(tmp_path, "me/x", api=Hub(error))


# ----------------------------------------------------------------------------------------------------------------
# The upsampler is a listed component of the folder
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parity
def test_cli_upsampler_loads_with_the_pipeline(tiny, tmp_path, capsys):
    source = _source(tiny, tmp_path)
    reference, upsampler_file = tiny_upsampler_file(tmp_path / "upsampler.safetensors")
    assert main(["--checkpoint", str(source), "--upsampler", str(upsampler_file), "--output",
                 str(tmp_path / "out")]) == 0
    assert "latent_upsampler" in capsys.readouterr().out
    pipe = LTX2AudioVideoPipeline.from_pretrained(tmp_path / "out")
    assert isinstance(pipe.latent_upsampler, LTX2LatentUpsampler)
    assert pipe.facts().upsampler == (2.0, 1.0)  # what upsample=True (and `generate --upsample`) requires
    x = torch.randn(1, LATENT, 2, 3, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = reference(x)
        assert expected.abs().mean() > 0.01
        assert (pipe.latent_upsampler.eval()(x) - expected).abs().max().item() <= 1e-4


# ----------------------------------------------------------------------------------------------------------------
# Pure functions: the dtype rule, header checks, the output folder
# ----------------------------------------------------------------------------------------------------------------


def test_choose_dtype_counts_elements_of_the_written_tensors():
    from ltx2_diffusers.conversion.tensors import choose_dtype

    assert choose_dtype([("BF16", (10, 10)), ("F64", (50,)), ("F32", (30,))]) == torch.bfloat16
    assert choose_dtype([("F64", (100,)), ("BF16", (10,))]) == torch.float32  # float64 counts as float32
    assert choose_dtype([("F8_E4M3", (60,)), ("BF16", (10,)), ("F32", (65,))]) == torch.bfloat16  # fp8 as bf16
    assert choose_dtype([("F16", (4,)), ("BF16", (2, 2))]) == torch.bfloat16  # a tie: float32, bf16, fp16 order
    assert choose_dtype([("F16", (4,)), ("F32", (2, 2))]) == torch.float32
    for entries in ([("I32", (1,))], []):
        with pytest.raises(ValueError):
            choose_dtype(entries)


def test_header_checks_of_scale_shapes_and_ignored_integers():
    from ltx2_diffusers.conversion.tensors import check_file_tensors

    dtypes = {"a.weight": "F8_E4M3", "a.weight_scale": "F32", "a.input_scale": "F32", "b.weight": "F8_E5M2",
              "b.weight_scale": "F32", "stats": "I64", "scaled_fp8": "U8"}
    shapes = {"a.weight": (4, 3), "a.weight_scale": (4, 1), "a.input_scale": (), "b.weight": (4, 3),
              "b.weight_scale": (1,), "stats": (8,), "scaled_fp8": (0,)}
    check_file_tensors(dtypes, shapes, "f", ignored={"stats"})  # per-channel and per-tensor scales, marker: fine
    with pytest.raises(ValueError, match=r"not floating point: stats \(I64\)"):
        check_file_tensors(dtypes, shapes, "f")
    with pytest.raises(ValueError, match=r"unsupported shape: b.weight_scale \(3,\) for a weight \(4, 3\)"):
        check_file_tensors(dtypes, {**shapes, "b.weight_scale": (3,)}, "f", ignored={"stats"})


def test_stale_temporary_folders_of_dead_processes_on_this_host_are_removed(tmp_path):
    from ltx2_diffusers.conversion import staging

    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    host = staging._host()
    names = {
        "dead": f".out.converting-{host}-{dead.pid}-0123abcd",
        "this process": f".out.converting-{host}-{os.getpid()}-0123abcd",
        "live parent": f".other.converting-{host}-{os.getppid()}-0123abcd",
        "other host": f".out.converting-elsewhere{host}-{dead.pid}-0123abcd",
        "not a temp name": f"out.converting-{host}-{dead.pid}-0123abcd",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
    (tmp_path / names["dead"] / "transformer").mkdir()
    assert staging.remove_stale_temp_folders(tmp_path) == [tmp_path / names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "dead")
    match = staging._TEMP_NAME.match(staging.temp_folder(tmp_path / "out").name)
    assert match["name"] == "out" and int(match["pid"]) == os.getpid() and match["host"] == host


def test_output_checks_and_publish(tmp_path):
    from ltx2_diffusers.conversion.staging import check_output, publish

    gemma = tmp_path / "gemma"
    gemma.mkdir()
    (tmp_path / "link").symlink_to(gemma)
    sources = {"--text-encoder": gemma}
    assert check_output(tmp_path / "out", sources) == (tmp_path / "out").absolute()
    for output, message in [(tmp_path / "gemma", "already exists"), (tmp_path / "no" / "out", "does not exist"),
                            (tmp_path / "link" / "out", "inside the --text-encoder folder")]:
        with pytest.raises(ValueError, match=message):
            check_output(output, sources)
    temp = tmp_path / ".out.tmp"
    temp.mkdir()
    (tmp_path / "out").write_text("someone else's")
    with pytest.raises(FileExistsError, match="appeared while converting"):
        publish(temp, tmp_path / "out")
    assert temp.is_dir() and (tmp_path / "out").read_text() == "someone else's"
