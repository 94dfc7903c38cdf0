"""mp4 export: the streams read back with the right frame count, rate and duration."""

import os
import stat
from fractions import Fraction

import numpy as np
import pytest
import torch

from ltx2_diffusers.utils.export import export_to_mp4

av = pytest.importorskip("av")


def _read(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        rate, fps = None, video.average_rate
        samples = 0
        if container.streams.audio:
            astream = container.streams.audio[0]
            rate, channels = astream.rate, astream.channels
            container.seek(0)
            samples = sum(f.samples for f in container.decode(audio=0))
            assert channels == 2
    return frames, fps, rate, samples


@pytest.mark.parametrize("fps", [24.0, 24000 / 1001])
def test_video_and_audio_round_trip(tmp_path, fps):
    frames = torch.linspace(0, 1, 9).view(9, 1, 1, 1).expand(9, 64, 96, 3).contiguous()
    sample_rate = 24000
    audio = 0.3 * torch.sin(torch.linspace(0, 800, 7000)).expand(2, -1)  # shorter than the clip: padded
    path = export_to_mp4(frames, tmp_path / "clip.mp4", fps, audio, sample_rate)
    decoded, read_fps, read_rate, samples = _read(path)
    assert len(decoded) == 9 and decoded[0].shape == (64, 96, 3)
    assert read_fps == Fraction(fps).limit_denominator(1001)
    assert read_rate == sample_rate
    duration = 9 / fps
    assert abs(samples / sample_rate - duration) < 2048 / sample_rate  # AAC frames of 1024 samples (+ priming)
    assert abs(int(decoded[-1].mean()) - 255) <= 3 and int(decoded[0].mean()) <= 3


def test_mono_numpy_pil_and_no_audio(tmp_path):
    from PIL import Image

    images = [Image.fromarray(np.full((32, 32, 3), v, dtype=np.uint8)) for v in (0, 128, 255)]
    path = export_to_mp4(images, tmp_path / "a.mp4", 8.0, np.zeros(1000, dtype=np.float32), 16000)
    assert _read(path)[2] == 16000
    path = export_to_mp4(np.zeros((3, 32, 32, 3), dtype=np.uint8), tmp_path / "b.mp4", 8.0)
    decoded, _, rate, _ = _read(path)
    assert len(decoded) == 3 and rate is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(frames=np.zeros((2, 31, 32, 3))), "even height and width"),
    (dict(frames=np.zeros((2, 32, 32))), r"\[frames, height, width, 3\]"),
    (dict(fps=0), "fps must be positive"),
    (dict(audio=np.zeros((2, 100))), "sample_rate must be a positive integer"),
    (dict(audio=np.zeros((3, 4, 5)), sample_rate=16000), "waveform"),
])
def test_bad_input_leaves_no_file(tmp_path, kwargs, message):
    args = dict(frames=np.zeros((2, 32, 32, 3)), path=tmp_path / "x.mp4", fps=8.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        export_to_mp4(**args)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------
# Refused values, output paths, permissions
# ----------------------------------------------------------------------------------------------------------------

FRAMES = np.zeros((3, 32, 32, 3), np.uint8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(frames=np.full((2, 32, 32, 3), np.nan, np.float32)), "frames holds 6144 NaN or infinite values"),
    (dict(frames=np.full((2, 32, 32, 3), 1.5, np.float32)), r"frames has float pixels in \[1.5, 1.5\]"),
    (dict(frames=np.zeros((2, 32, 32, 3), np.int64)), "int64 pixels"),
    (dict(audio=np.array([0.0, np.inf], np.float32), sample_rate=16000), "audio holds 1 NaN or infinite value"),
    (dict(audio=np.full((2, 100), 20000.0), sample_rate=16000), "peaking at 20000"),
    (dict(audio=np.zeros((2, 0), np.float32), sample_rate=16000), "audio=None for a silent clip"),
    (dict(audio=np.zeros((2, 100), np.float32), sample_rate=12345), "AAC cannot store audio at 12345 Hz"),
    (dict(fps=1e-6), r"fps must be positive and finite, within \[0.01, 1000\]"),
    (dict(fps=float("inf")), "fps must be positive"),
    (dict(fps=float("nan")), "fps must be positive"),
    (dict(fps=5000), "fps must be positive"),
    (dict(fps=True), "fps must be a number"),
    (dict(fps="24"), "fps must be a number"),
    (dict(crf=60), r"crf must be an integer in \[0, 51\]"),
])
def test_refused_values_leave_no_file(tmp_path, kwargs, message):
    args = dict(frames=np.zeros((2, 32, 32, 3), np.float32), path=tmp_path / "x.mp4", fps=8.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        export_to_mp4(**args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps, stored", [(0.01, Fraction(1, 100)), (1000, 1000), (29.97, Fraction(2997, 100))])
def test_fps_range_ends_are_written_exactly(tmp_path, fps, stored):
    _, read_fps, _, _ = _read(export_to_mp4(FRAMES, tmp_path / "edge.mp4", fps))
    assert read_fps == stored


def test_sixteen_bit_frames_and_integer_audio_keep_their_scale(tmp_path):
    frames = np.full((3, 32, 32, 3), 65535, np.uint16)
    t = np.arange(8000) / 16000
    audio = np.round(16384 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)  # half scale
    decoded, _, _, _ = _read(export_to_mp4(frames, tmp_path / "w.mp4", 6.0, audio, 16000))
    assert min(int(f.min()) for f in decoded) >= 250
    with av.open(str(tmp_path / "w.mp4")) as container:
        waveform = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert 0.4 < np.abs(waveform[:, 2000:6000]).max() < 0.6  # not clipped to full scale


def test_check_output_path(tmp_path):
    from ltx2_diffusers.utils.export import check_output_path

    assert check_output_path(tmp_path / "clip.mp4") == tmp_path / "clip.mp4"
    assert check_output_path(str(tmp_path / "CLIP.MP4")) == tmp_path / "CLIP.MP4"
    (tmp_path / "taken.mp4").mkdir()
    for path, message in ((tmp_path, "is a folder"), (tmp_path / "taken.mp4", "is a folder"),
                          (tmp_path / "clip.avi", r"must end in\s+\.mp4, e\.g\. '.*clip\.mp4'"),
                          (tmp_path / "clip", "must end in"),
                          (tmp_path / "no" / "such" / "clip.mp4", "folder '.*such' does not exist")):
        with pytest.raises(ValueError, match=message):
            check_output_path(path)
        with pytest.raises(ValueError, match=message):
            export_to_mp4(FRAMES, path, 8.0)
    assert not (tmp_path / "no").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]


@pytest.mark.skipif(not hasattr(os, "umask") or os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = export_to_mp4(FRAMES, tmp_path / "clip.mp4", 8.0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symlinks")
def test_overwrite_keeps_the_mode_and_writes_through_a_symlink(tmp_path):
    target = tmp_path / "target.mp4"
    target.write_bytes(b"old")
    target.chmod(0o604)
    (tmp_path / "link.mp4").symlink_to(target)
    export_to_mp4(FRAMES, tmp_path / "link.mp4", 8.0)
    assert (tmp_path / "link.mp4").is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o604
    assert len(_read(target)[0]) == 3


def test_generate_checks_the_output_before_loading_a_model(tmp_path, monkeypatch, capsys):
    from ltx2_diffusers import cli, cli_generate

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before --output was checked")

    monkeypatch.setattr(cli_generate, "load_pipeline", no_load)
    for output, message in ((tmp_path, "is a folder"), (tmp_path / "missing" / "a.mp4", "does not exist")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["generate", "--model", "someone/never-loaded", "--prompt", "a cat", "--output", str(output)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
