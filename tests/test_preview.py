"""Preview PNGs: contact-sheet geometry and frame choice, audio picture layout, spectrogram frequency axis."""

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers.utils.preview import (
    audio_image,
    contact_sheet,
    log_spectrogram,
    preview_indices,
    write_previews,
)

RATE = 24000


def _frames(count, height=32, width=48):
    """Frame k is a flat grey of level k / (count - 1): a tile's value tells which frame it shows."""
    levels = np.linspace(0, 1, count, dtype=np.float32)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


def _sine(hz, seconds=1.0, amplitude=0.5, rate=RATE):
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.mark.parametrize("count, max_frames, expected", [
    (121, 16, [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120]),
    (9, 16, list(range(9))),
    (10, 4, [0, 3, 6, 9]),
    (1, 16, [0]),
])
def test_preview_indices_are_evenly_spaced_with_both_ends(count, max_frames, expected):
    assert preview_indices(count, max_frames) == expected


@pytest.mark.parametrize("count, columns, size", [
    (121, 4, (4 * 48 + 3 * 2, 4 * 32 + 3 * 2)),  # 16 shown: 4 x 4
    (9, 4, (4 * 48 + 3 * 2, 3 * 32 + 2 * 2)),    # 9 shown: 4 x 3
    (3, 4, (3 * 48 + 2 * 2, 32)),                # fewer frames than columns: one row of 3
    (16, 5, (5 * 48 + 4 * 2, 4 * 32 + 3 * 2)),   # 16 shown: 5 x 4
])
def test_contact_sheet_size(count, columns, size):
    assert contact_sheet(_frames(count), columns=columns).size == size


def test_contact_sheet_places_the_chosen_frames_row_by_row():
    sheet = np.asarray(contact_sheet(_frames(121), labels=False)).astype(int)
    assert sheet.shape == (4 * 32 + 6, 4 * 48 + 6, 3)
    for n, index in enumerate(preview_indices(121, 16)):
        top, left = (n // 4) * (32 + 2), (n % 4) * (48 + 2)
        tile = sheet[top:top + 32, left:left + 48]
        assert np.all(tile == round(index / 120 * 255))
    assert np.all(sheet[32:34, :, :] == 16)  # the gap between rows is background


def test_contact_sheet_labels_tiles_and_scales_them():
    plain = np.asarray(contact_sheet(_frames(4), labels=False))
    labelled = np.asarray(contact_sheet(_frames(4)))
    changed = np.argwhere(np.any(plain != labelled, axis=-1))
    assert len(changed) > 0 and changed[:, 0].max() < 20  # label pixels only near each tile's top
    scaled = contact_sheet(torch.from_numpy(_frames(4)), tile_width=24, labels=False)
    assert scaled.size == (4 * 24 + 3 * 2, 16)  # 32x48 frames at width 24 -> 16 high


def test_contact_sheet_accepts_uint8_and_rejects_bad_shapes():
    frames = (_frames(2) * 255).round().astype(np.uint8)
    assert np.asarray(contact_sheet(frames, labels=False))[0, -1].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match=r"\[frames, height, width, 3\]"):
        contact_sheet(np.zeros((2, 32, 48)))


def test_audio_image_layout_and_waveform_lanes():
    left, right = _sine(1000, amplitude=0.9), _sine(1000, amplitude=0.1)
    picture = np.asarray(audio_image(np.stack([left, right]), RATE, width=800, height=400))
    assert picture.shape == (400, 800, 3)
    waveform = picture[:200]
    blue, orange = (np.all(waveform == c, axis=-1) for c in ((90, 200, 255), (255, 170, 80)))
    blue_rows, orange_rows = np.nonzero(blue.any(axis=1))[0], np.nonzero(orange.any(axis=1))[0]
    assert blue_rows.min() >= 0 and blue_rows.max() < 100 and orange_rows.min() >= 100 and orange_rows.max() < 200
    # the loud left channel spans about 90 % of its 100-row lane, the quiet right channel about 10 %
    assert 85 <= len(blue_rows) <= 93 and 9 <= len(orange_rows) <= 13


@pytest.mark.parametrize("hz", [1500.0, 3000.0, 9000.0])
def test_a_sine_is_a_bright_line_at_its_frequency_row(hz):
    picture = audio_image(torch.from_numpy(np.stack([_sine(hz), _sine(hz)])), RATE, width=400, height=400)
    spectrogram = np.asarray(picture.convert("L"), dtype=np.float64)[200:]
    row_brightness = spectrogram.mean(axis=1)
    expected = (1 - hz / (RATE / 2)) * 200  # 0 Hz at the bottom, Nyquist at the top
    assert abs(row_brightness.argmax() - expected) <= 2
    assert row_brightness.max() > 120 and np.median(row_brightness) < 10  # a bright line on a dark background


def test_mono_audio_and_short_clips():
    picture = audio_image(_sine(440, seconds=0.01), RATE, width=300, height=120)  # 240 samples
    assert picture.size == (300, 120)
    assert log_spectrogram(torch.zeros(240)).shape[0] == 128 // 2 + 1  # n_fft drops to 128
    with pytest.raises(ValueError, match="too short"):
        audio_image(np.zeros(8), RATE)
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        audio_image(np.zeros(1000), 0)


def test_write_previews(tmp_path):
    audio = np.stack([_sine(440, seconds=0.375), _sine(880, seconds=0.375)])
    paths = write_previews(_frames(9, 64, 96), audio, RATE, tmp_path / "out" / "clip")
    assert paths == [tmp_path / "out" / "clip_frames.png", tmp_path / "out" / "clip_audio.png"]
    with Image.open(paths[0]) as sheet, Image.open(paths[1]) as picture:
        assert sheet.size == (4 * 96 + 6, 3 * 64 + 4) and picture.size == (800, 400)
    assert write_previews(_frames(2), None, None, tmp_path / "silent") == [tmp_path / "silent_frames.png"]
