"""``ltx2-diffusers generate`` in-process on a tiny saved pipeline folder: every mode writes the clip the pipeline
makes, errors are one clear line with the right exit code."""

import argparse
import shutil
import wave

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers import LTX2AudioVideoPipeline, cli
from ltx2_diffusers.cli_arguments import image_spec
from ltx2_diffusers.cli_errors import load_error_message, oom_message
from ltx2_diffusers.cli_generate import StageClock, output_paths
from ltx2_diffusers.pipelines.model_facts import PipelineFacts
from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import call_arguments
from ltx2_diffusers.pipelines.plan import plan_generation
from ltx2_diffusers.utils.export import export_to_mp4
from ltx2_diffusers.utils.tiny import tiny_pipeline

av = pytest.importorskip("av")

PROMPT, NEGATIVE = "a cat plays the piano", "blurry"
SMALL = ["--frames", "9", "--height", "64", "--width", "96"]
TONE_HZ, RATE = 440.0, 24000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ltx2")
    tiny_pipeline(0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(model_dir):
    pipe = LTX2AudioVideoPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 9-frame 64x96 gradient clip with a 440 Hz tone (mp4), the tone alone (wav), and a condition image (png)."""
    folder = tmp_path_factory.mktemp("media")
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    yy, xx = np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 96), indexing="ij")
    frames = np.stack([np.stack([yy, xx, np.full_like(xx, k / 8)], -1) for k in range(9)]).astype(np.float32)
    export_to_mp4(frames, folder / "source.mp4", 24.0, np.stack([tone, tone]), RATE)
    with wave.open(str(folder / "tone.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes((np.repeat(tone[:, None], 2, axis=1) * 32767).astype("<i2").tobytes())
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((80, 120, 3)) * 255).astype(np.uint8)).save(folder / "cond.png")
    return dict(video=folder / "source.mp4", wav=folder / "tone.wav", image=folder / "cond.png", frames=frames)


def _generate(model_dir, output, *extra):
    steps = [] if "--distilled" in extra else ["--steps", "2"]
    argv = ["generate", "--model", str(model_dir), "--prompt", PROMPT, "--negative-prompt", NEGATIVE,
            "--max-sequence-length", "32", *steps, "--quiet", "--output", str(output), *extra]
    assert cli.main(argv) == 0
    return output


def _read(path):
    """Decoded frames [F, H, W, 3] uint8, the frame rate, the audio rate and the waveform [channels, N]."""
    with av.open(str(path)) as container:
        fps = float(container.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        rate, audio = None, None
        if container.streams.audio:
            rate = container.streams.audio[0].rate
            container.seek(0)
            audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return frames, fps, rate, audio


def _reference_frames(reference, tmp_path, **kwargs):
    out = reference(PROMPT, negative_prompt=NEGATIVE, num_frames=9, num_inference_steps=2, max_sequence_length=32,
                    output_type="np", generator=torch.Generator().manual_seed(kwargs.pop("seed", 0)), **kwargs)
    path = export_to_mp4(out.frames[0], tmp_path / "reference.mp4", 24.0, out.audio[0], out.sample_rate)
    return _read(path)[0]


def _dominant_hz(audio, rate):
    spectrum = np.abs(np.fft.rfft(audio.mean(axis=0) * np.hanning(audio.shape[1])))
    return np.fft.rfftfreq(audio.shape[1], 1 / rate)[spectrum.argmax()]


# ----------------------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------------------


def test_text_to_audio_video_writes_the_pipelines_clip(model_dir, reference, tmp_path, capsys):
    path = _generate(model_dir, tmp_path / "t2av.mp4", *SMALL, "--seed", "3")
    frames, fps, rate, audio = _read(path)
    assert frames.shape == (9, 64, 96, 3) and fps == 24.0
    assert rate == 24000 and audio.shape[0] == 2
    assert abs(audio.shape[1] / rate - 9 / 24) < 2048 / rate  # AAC frames of 1024 samples (+ priming)
    # the flags reach the pipeline as a direct call with the same arguments (prompt embeddings encoded up front)
    np.testing.assert_array_equal(frames, _reference_frames(reference, tmp_path, seed=3, height=64, width=96))
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("done: 1 x 9 frames 64x96 @ 24 fps") and "seed 3" in summary
    for phase in ("load", "text encoding", "prepare", "stage 1 (2 steps)", "decode", "export", "peak RSS"):
        assert phase in summary
    assert summary.endswith(f"wrote {path}")


def test_image_conditioning_matches_the_pipeline(model_dir, reference, tmp_path, media):
    path = _generate(model_dir, tmp_path / "i2v.mp4", *SMALL, "--image", str(media["image"]),
                     "--image", f"{media['image']}@8@0.5")
    image = Image.open(media["image"]).convert("RGB")
    expected = _reference_frames(reference, tmp_path, height=64, width=96,
                                conditions=[(image, 0, 1.0), (image, 8, 0.5)])
    frames = _read(path)[0]
    np.testing.assert_array_equal(frames, expected)
    assert not np.array_equal(frames, _reference_frames(reference, tmp_path, height=64, width=96))


def test_audio_to_video_holds_the_given_audio(model_dir, tmp_path, media):
    frames, _, rate, audio = _read(_generate(model_dir, tmp_path / "a2v.mp4", *SMALL, "--audio", str(media["wav"])))
    assert frames.shape == (9, 64, 96, 3) and rate == 24000
    assert abs(_dominant_hz(audio, rate) - TONE_HZ) < 5


def test_video_to_audio_holds_the_given_video(model_dir, tmp_path, media):
    # no size flags: frames, size and frame rate come from the video
    frames, fps, rate, audio = _read(_generate(model_dir, tmp_path / "v2a.mp4", "--video", str(media["video"])))
    assert frames.shape == (9, 64, 96, 3) and fps == 24.0 and rate == 24000 and audio.shape[0] == 2
    source = np.round(media["frames"] * 255)
    assert np.abs(frames.astype(np.float64) - source).mean() < 3  # two H.264 passes of a smooth gradient
    assert abs(_dominant_hz(audio, rate) - TONE_HZ) > 50  # the sound is generated, not the source's tone


def test_retake_of_the_audio_keeps_the_video(model_dir, tmp_path, media):
    path = _generate(model_dir, tmp_path / "retake.mp4", "--video", str(media["video"]), "--audio",
                     str(media["video"]), "--retake", "0.1", "0.3", "--retake-modalities", "audio")
    frames, _, rate, audio = _read(path)
    assert frames.shape == (9, 64, 96, 3) and rate == 24000 and audio.shape[0] == 2
    assert np.abs(frames.astype(np.float64) - np.round(media["frames"] * 255)).mean() < 3


def test_distilled_runs_the_eight_fixed_noise_levels(model_dir, tmp_path, capsys):
    path = _generate(model_dir, tmp_path / "distilled.mp4", *SMALL, "--distilled")
    assert _read(path)[0].shape == (9, 64, 96, 3)
    assert "stage 1 (8 steps)" in capsys.readouterr().out


def test_multi_scale_writes_full_size(model_dir, tmp_path, capsys):
    path = _generate(model_dir, tmp_path / "ms.mp4", "--frames", "9", "--height", "128", "--width", "192",
                     "--upsample", "--tile-tokens", "64")
    assert _read(path)[0].shape == (9, 128, 192, 3)
    summary = capsys.readouterr().out
    assert "stage 1 (2 steps)" in summary and "stage 2 (3 steps)" in summary  # the 3 distilled stage-2 σ


def test_preview_pngs_for_each_video(model_dir, tmp_path, capsys):
    _generate(model_dir, tmp_path / "clip.mp4", *SMALL, "--preview", "--num-videos", "2")
    for i in (1, 2):
        assert _read(tmp_path / f"clip_{i}.mp4")[0].shape == (9, 64, 96, 3)
        with Image.open(tmp_path / f"clip_{i}_frames.png") as sheet:
            assert sheet.size == (4 * 96 + 3 * 2, 3 * 64 + 2 * 2)  # 9 frames: 4 columns x 3 rows, 2 px gaps
        with Image.open(tmp_path / f"clip_{i}_audio.png") as picture:
            assert picture.size == (800, 400)
    assert not (tmp_path / "clip.mp4").exists()
    assert capsys.readouterr().out.count("_frames.png") == 2


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, message", [
    (["--height", "100"], "height must be a multiple of 32, got 100; use 96 or 128."),
    (["--height", "64.5"], "argument --height: expected an integer, got '64.5'"),
    (["--frames", "10"], "num_frames must be 8k+1 (e.g. 121), got 10; use 9 or 17."),
    (["--sigmas", "1.0,1.5"], "argument --sigmas: must be a comma-separated list of noise levels in (0, 1]"),
    (["--image", "missing.png@3"], "no such image file: 'missing.png'"),
    (["--upsample", "--height", "96"], "upsample=True runs stage 1 at half size, so height and width must be "
                                       "multiples of 64"),
    (["--retake", "0", "1"], "retake_window regenerates part of a given clip: pass `video` and/or `audio` too."),
    (["--max-sequence-length", "30"], "max_sequence_length=30 must be a multiple of the connectors' 8"),
    (["--stg-blocks", "7"], "`spatio_temporal_guidance_blocks` must lie in [0, 2) for this 2-block transformer, "
                            "got [7]."),
])
def test_invalid_arguments_exit_2_with_one_clear_line(model_dir, tmp_path, capsys, extra, message):
    argv = ["generate", "--model", str(model_dir), "--prompt", PROMPT, "--quiet", "--output",
            str(tmp_path / "x.mp4"), *SMALL, *extra]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "x.mp4").exists()


def test_missing_text_encoder_is_explained(model_dir, tmp_path, capsys):
    folder = tmp_path / "no_gemma"
    shutil.copytree(model_dir, folder)
    shutil.rmtree(folder / "text_encoder")
    code = cli.main(["generate", "--model", str(folder), "--prompt", PROMPT, "--quiet", *SMALL])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith(f"ltx2-diffusers: error: {folder} has no usable text encoder")
    assert "hf auth login" in error and "huggingface-cli login" in error and "text_encoder/" in error


def test_out_of_memory_names_the_options(model_dir, tmp_path, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(LTX2AudioVideoPipeline, "__call__", oom)
    code = cli.main(["generate", "--model", str(model_dir), "--prompt", PROMPT, "--negative-prompt", NEGATIVE,
                     "--max-sequence-length", "32", "--quiet", "--output", str(tmp_path / "x.mp4"), *SMALL])
    error = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "x.mp4").exists()
    assert error.startswith("ltx2-diffusers: error: out of memory (CUDA out of memory. Tried to allocate 20.00 GiB)")


# ----------------------------------------------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------------------------------------------


def _hub_error(name, message):
    from huggingface_hub import errors

    error_type = getattr(errors, name)
    error = error_type.__new__(error_type)  # their constructor wants an HTTP response
    OSError.__init__(error, message)
    return error


def _wrapped(cause):
    try:
        raise OSError("Cannot load model: see the stack trace above") from cause
    except OSError as error:
        return error


def test_load_error_messages():
    gated = load_error_message(_wrapped(_hub_error("GatedRepoError", "Access is restricted")), "Lightricks/LTX-2")
    assert gated.startswith("cannot download Lightricks/LTX-2: access is gated.")
    assert "google/gemma-3-12b-it" in gated and "hf auth login" in gated and "huggingface-cli login" in gated
    # transformers turns a gated text encoder into a plain OSError that says so
    assert "access is gated" in load_error_message(OSError("You are trying to access a gated repo."), "a/b")
    missing = load_error_message(_hub_error("RepositoryNotFoundError", "404"), "nobody/none")
    assert missing.startswith("'nobody/none' is not a local folder, and the Hub has no repository of that name")
    offline = load_error_message(_hub_error("LocalEntryNotFoundError", "no cache"), "a/b")
    assert "not in the local Hugging Face cache" in offline
    assert "no usable text encoder" in load_error_message(OSError("no file named model.safetensors in "
                                                                  "text_encoder"), "a/b")
    assert load_error_message(OSError("disk full"), "a/b") is None
    assert load_error_message(ValueError("something else"), "a/b") is None


def test_incomplete_local_folder_is_named(model_dir, tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(model_dir, folder)
    shutil.rmtree(folder / "vocoder")
    message = load_error_message(OSError("Error no file named model.safetensors"), str(folder))
    assert message == f"{folder} is incomplete: vocoder/ holds no weights. Re-download or re-convert the folder."


def test_oom_messages():
    message = oom_message(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    for option in ("--offload model", "--offload sequential", "--tile-tokens", "--decode-tiling", "--dtype bfloat16",
                   "--fp8", "enable_layerwise_casting", "--frames"):
        assert option in message
    assert oom_message(RuntimeError("CUDA error: out of memory")).startswith("out of memory (CUDA error")
    assert oom_message(RuntimeError("DefaultCPUAllocator: can't allocate memory")) is not None
    assert oom_message(RuntimeError("shape mismatch")) is None and oom_message(ValueError("x")) is None


def test_image_spec_syntax(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save("a@b.png")
    Image.new("RGB", (8, 8)).save("plain.png")
    assert image_spec("a@b.png") == image_spec("a@b.png@0@1") and image_spec("a@b.png").path.name == "a@b.png"
    spec = image_spec("plain.png@-1@0.25")
    assert (spec.path.name, spec.frame, spec.strength) == ("plain.png", -1, 0.25)
    assert (image_spec("a@b.png@12").frame, image_spec("a@b.png@12").strength) == (12, 1.0)
    with pytest.raises(argparse.ArgumentTypeError, match=r"strength must lie in \[0, 1\], got 1.5"):
        image_spec("plain.png@3@1.5")


def test_output_paths_and_the_planned_negative_prompt_rule(model_dir, media):
    from pathlib import Path

    assert output_paths(Path("out/clip.mp4"), 1) == [Path("out/clip.mp4")]
    assert output_paths(Path("out/clip.mp4"), 3) == [Path(f"out/clip_{i}.mp4") for i in (1, 2, 3)]

    facts = PipelineFacts.from_folder(model_dir)  # configs only, as the command plans before loading weights

    def needs_negative(**kw):
        return plan_generation(facts, call_arguments(prompt="x", num_frames=9, height=64, width=96, **kw)
                               ).text.needs_negative

    assert needs_negative()  # the reference's CFG 3 / 7
    assert not needs_negative(guidance_scale=1.0, audio_guidance_scale=1.0)
    assert not needs_negative(guidance_scale=1.0, audio=str(media["wav"]))  # held audio: its CFG is off
    assert needs_negative(guidance_scale=1.0, audio=str(media["wav"]), retake_window=(0.0, 0.2))


def test_stage_clock_splits_a_call(monkeypatch):
    clock = StageClock()
    times = iter([1.5, 2.0, 3.0, 4.0, 4.5])
    monkeypatch.setattr("ltx2_diffusers.cli_generate.time.perf_counter", lambda: next(times))
    pipe = argparse.Namespace(stage=1)
    clock.on_forward(None, ())  # 1.5: the first transformer call
    clock.on_forward(None, ())  # later calls do not move it
    clock.on_step_end(pipe, 0, None, {})  # 2.0
    clock.on_step_end(pipe, 1, None, {})  # 3.0
    pipe.stage = 2
    clock.on_step_end(pipe, 2, None, {})  # 4.0
    assert clock.phases(1.0, 6.0) == {"prepare": 0.5, "stage 1 (2 steps)": 1.5, "stage 2 (1 step)": 1.0,
                                      "decode": 2.0}
