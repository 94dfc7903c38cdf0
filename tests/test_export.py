"""mp4 export: the streams read back with the right frame count, rate and duration."""

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
