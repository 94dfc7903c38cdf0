"""``ltx2-diffusers generate`` failure paths: each is exactly one line on stderr without a traceback; exit code 2 for
bad arguments, 1 for failed work (a damaged folder, a failed write, running out of memory, anything unexpected), 130
when interrupted; ``--debug`` shows the traceback instead."""

import json
import shutil

import numpy as np
import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2PipelineOutput, cli
from ltx2_diffusers.cli_errors import failure
from ltx2_diffusers.pipelines.weight_files import FolderLoadError
from ltx2_diffusers.utils.tiny import tiny_pipeline

SMALL = ["--frames", "9", "--height", "64", "--width", "96", "--steps", "2", "--max-sequence-length", "32"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ltx2")
    tiny_pipeline(0).save_pretrained(folder)
    return folder


@pytest.fixture
def damaged(model_dir, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(model_dir, folder)
    return folder


def _run(model, tmp_path, *extra):
    return cli.main(["generate", "--model", str(model), "--prompt", "a cat", "--negative-prompt", "blurry", "--quiet",
                     "--output", str(tmp_path / "x.mp4"), *SMALL, *extra])


def _one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ltx2-diffusers: error: ") and "Traceback" not in err, err
    return err


def _raise(error):
    def call(*args, **kwargs):
        raise error

    return call


def test_a_corrupt_shard_fails_the_load_in_one_line(damaged, tmp_path, capsys):
    weights = damaged / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert _run(damaged, tmp_path) == 1
    err = _one_error_line(capsys)
    assert f"{weights} is not a readable safetensors file" in err and not (tmp_path / "x.mp4").exists()


def test_a_garbage_model_index_fails_before_loading_in_one_line(damaged, tmp_path, capsys):
    (damaged / "model_index.json").write_text("<html>not a model index</html>")
    assert _run(damaged, tmp_path) == 1
    assert "model_index.json is not valid JSON" in _one_error_line(capsys)


def test_a_failed_write_is_one_line_naming_the_file(model_dir, tmp_path, capsys, monkeypatch):
    clip = LTX2PipelineOutput(frames=np.zeros((1, 9, 64, 96, 3), np.float32), audio=np.zeros((1, 2, 100), np.float32),
                              sample_rate=24000, frame_rate=24.0)
    monkeypatch.setattr(LTX2AudioVideoPipeline, "__call__", lambda self, **kwargs: clip)
    monkeypatch.setattr("ltx2_diffusers.utils.export.export_to_mp4",
                        _raise(OSError(28, "No space left on device", str(tmp_path / "x.mp4"))))
    assert _run(model_dir, tmp_path) == 1
    assert _one_error_line(capsys) == f"ltx2-diffusers: error: No space left on device: {tmp_path / 'x.mp4'}\n"


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(LTX2AudioVideoPipeline, "__call__", _raise(RuntimeError("boom\nsecond line")))
    assert _run(model_dir, tmp_path) == 1
    assert _one_error_line(capsys) == ("ltx2-diffusers: error: RuntimeError: boom second line (rerun with --debug for "
                                       "the traceback)\n")
    with pytest.raises(RuntimeError, match="boom"):
        _run(model_dir, tmp_path, "--debug")


def test_out_of_memory_and_interruption(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(LTX2AudioVideoPipeline, "__call__", _raise(torch.OutOfMemoryError("CUDA out of memory.")))
    assert _run(model_dir, tmp_path) == 1
    err = _one_error_line(capsys)
    assert "out of memory (CUDA out of memory.)" in err and "--offload model" in err
    monkeypatch.setattr(LTX2AudioVideoPipeline, "__call__", _raise(KeyboardInterrupt()))
    assert _run(model_dir, tmp_path) == 130
    assert _one_error_line(capsys) == "ltx2-diffusers: error: interrupted.\n"


def test_bad_arguments_are_one_line_exit_2_and_debug_shows_the_plans_traceback(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run(model_dir, tmp_path, "--frames", "many")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --frames: expected an integer, got 'many' (see --help)" in err
    with pytest.raises(SystemExit) as exit_info:
        _run(model_dir, tmp_path, "--frames", "10")
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    with pytest.raises(ValueError, match="num_frames must be 8k\\+1"):
        _run(model_dir, tmp_path, "--frames", "10", "--debug")


def test_failure_lines():
    assert failure(FolderLoadError("x/vae: broken")) == (1, "x/vae: broken")
    assert failure(OSError(13, "Permission denied", "/out/clip.mp4")) == (1, "Permission denied: /out/clip.mp4")
    assert failure(ValueError("stage 1 produced NaN\nlatents")) == (1, "stage 1 produced NaN latents")
    assert failure(MemoryError())[0] == 1 and failure(KeyboardInterrupt()) == (130, "interrupted.")
    assert json.dumps(failure(TypeError("odd"))) == '[1, "TypeError: odd (rerun with --debug for the traceback)"]'
