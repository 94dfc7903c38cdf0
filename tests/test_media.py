"""Source media for A2V / V2A / retake: reading files, validating arrays, time masks."""

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers.pipelines.media import (
    audio_waveform,
    check_time_window,
    fit_waveform,
    read_audio,
    read_video,
    video_pixels,
    window_mask,
)
from ltx2_diffusers.utils.export import export_to_mp4


def test_window_mask_selects_tokens_overlapping_the_half_open_window():
    bounds = torch.tensor([[0.0, 0.1], [0.1, 0.2], [0.2, 0.3], [0.3, 0.4]])
    assert window_mask(bounds, 0.1, 0.3).tolist() == [False, True, True, False]
    assert window_mask(bounds, 0.15, 0.25).tolist() == [False, True, True, False]
    assert window_mask(bounds, 0.0, 0.0).tolist() == [False] * 4


def test_fit_waveform_trims_or_pads_with_silence():
    x = torch.arange(1.0, 7.0).view(2, 3)
    assert fit_waveform(x, 2).tolist() == [[1, 2], [4, 5]]
    assert fit_waveform(x, 5).tolist() == [[1, 2, 3, 0, 0], [4, 5, 6, 0, 0]]


@pytest.mark.parametrize("window,message", [((0.2, 0.1), "start < end"), ((1.0, 2.0), "inside"),
                                            ((0.1,), "start_seconds"), (("a", 1), "start_seconds")])
def test_bad_time_windows(window, message):
    with pytest.raises(ValueError, match=message):
        check_time_window(window, duration=0.5)
    assert check_time_window((0, 0.7), 0.5) == (0.0, 0.7)


def test_audio_waveform_accepts_mono_stereo_tuples_and_arrays():
    mono = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    waveform, rate = audio_waveform(mono, 8000)
    assert rate == 8000 and waveform.shape == (2, 100) and torch.equal(waveform[0], waveform[1])
    stereo = torch.stack([torch.zeros(50), torch.ones(50) * 0.1])
    assert torch.equal(audio_waveform((stereo, 16000))[0], stereo)
    for bad, message in (((stereo, 0), "positive"), (torch.zeros(4, 10), "channels"), (torch.zeros(10, 2),
                         "transpose"), (torch.zeros(2, 10, dtype=torch.int64), "int16, int32"), ("x", "exist")):
        with pytest.raises(ValueError, match=message):
            audio_waveform(bad, None if isinstance(bad, tuple) else 16000)


def test_video_pixels_accepts_uint8_floats_pil_and_maps_to_minus_one_one():
    frames = np.zeros((9, 4, 6, 3), np.uint8)
    frames[..., 0] = 255
    pixels, fps = video_pixels(frames)
    assert fps is None and pixels.shape == (9, 3, 4, 6)
    assert pixels[:, 0].eq(1).all() and pixels[:, 1:].eq(-1).all()
    first = video_pixels(torch.rand(9, 3, 4, 6, generator=torch.Generator().manual_seed(0)))[0]
    assert torch.equal(video_pixels(first.permute(0, 2, 3, 1) * 0.5 + 0.5)[0], first)  # channels-last floats
    pil = [Image.fromarray(f) for f in frames]
    assert torch.equal(video_pixels(pil)[0], pixels)
    for bad, message in ((np.zeros((9, 4, 6)), "frames must be"), (torch.full((9, 4, 6, 3), 2.0), r"\[0, 1\]"),
                         (np.zeros((9, 3, 4, 6), np.uint8), "uint8"), ([1, 2], "PIL")):
        with pytest.raises(ValueError, match=message):
            video_pixels(bad)


def test_files_read_back_with_their_rates(tmp_path):
    frames = np.random.default_rng(0).random((9, 64, 96, 3)).astype(np.float32)
    t = torch.arange(9000) / 24000  # as long as the 9 frames at 24 fps
    sine = 0.5 * torch.sin(2 * torch.pi * 440 * t).expand(2, -1)
    path = export_to_mp4(frames, tmp_path / "clip.mp4", 24.0, sine, 24000)
    video, fps = read_video(path)
    assert video.shape == (9, 64, 96, 3) and video.dtype == np.uint8 and fps == 24.0
    waveform, rate = read_audio(path)
    assert rate == 24000 and waveform.shape[0] == 2 and abs(waveform.shape[1] - 9000) < 1100  # AAC frames
    spectrum = torch.fft.rfft(waveform[0, 1024:7168])
    peak_hz = int(spectrum.abs().argmax()) * 24000 / 6144
    assert abs(peak_hz - 440) < 10  # the AAC round trip keeps the tone
    pixels, file_fps = video_pixels(path)
    assert pixels.shape == (9, 3, 64, 96) and file_fps == 24.0
    silent = export_to_mp4(frames, tmp_path / "silent.mp4", 24.0)
    with pytest.raises(ValueError, match="no audio stream"):
        read_audio(silent)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="could not decode"):
        read_video(tmp_path / "junk.mp4")
