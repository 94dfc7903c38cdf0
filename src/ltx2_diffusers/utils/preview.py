"""Preview images of a generated clip, drawn with PIL only: a contact sheet of frames and an audio picture.

* :func:`contact_sheet`: up to ``max_frames`` evenly spaced frames in a grid, each labelled with its frame index.
* :func:`audio_image`: the waveform of each channel on top and a log-magnitude spectrogram below (linear frequency
  axis: 0 Hz on the bottom row, the Nyquist frequency on the top row of the spectrogram panel).
* :func:`write_previews`: both as ``<stem>_frames.png`` and ``<stem>_audio.png``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging
from PIL import Image, ImageDraw

logger = logging.get_logger(__name__)

BACKGROUND = (16, 16, 16)
CHANNEL_COLOURS = ((90, 200, 255), (255, 170, 80))  # left, right
# Colour ramp of the spectrogram, quiet to loud; its luminance rises monotonically, so louder is brighter.
SPECTROGRAM_RAMP = np.array([[0, 0, 0], [80, 0, 120], [220, 50, 50], [255, 200, 0], [255, 255, 255]], dtype=np.float64)
DYNAMIC_RANGE_DB = 80.0


def _as_array(data: object) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().float().cpu().numpy()
    return np.asarray(data)


def frames_uint8(frames: object) -> np.ndarray:
    """``[F, H, W, 3]`` floats in [0, 1] or uint8 (array or tensor) -> ``[F, H, W, 3]`` uint8."""
    array = _as_array(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise ValueError(f"frames must be a non-empty [frames, height, width, 3] array, got shape {array.shape}.")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    return array


def preview_indices(num_frames: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` evenly spaced frame indices from 0 to ``num_frames - 1``, first and last included."""
    if num_frames < 1 or max_frames < 1:
        raise ValueError(f"need at least one frame and max_frames >= 1, got {num_frames} and {max_frames}.")
    count = min(num_frames, max_frames)
    return [int(i) for i in np.linspace(0, num_frames - 1, count).round()]


def contact_sheet(
    frames: object, max_frames: int = 16, columns: int = 4, tile_width: int | None = None, gap: int = 2,
    labels: bool = True,
) -> Image.Image:
    """A grid of up to ``max_frames`` evenly spaced frames, row by row, ``gap`` pixels apart.

    Args:
        frames: ``[F, H, W, 3]`` floats in [0, 1] or uint8.
        max_frames: frames shown at most.
        columns: tiles per row (fewer when fewer frames are shown).
        tile_width: width of each tile in pixels (the height keeps the aspect ratio); default: the frames' width.
        gap: pixels between tiles (dark background).
        labels: draw each frame's index in the tile's top-left corner.

    Returns:
        An RGB image of ``columns' · w + (columns' - 1) · gap`` by ``rows · h + (rows - 1) · gap`` pixels, where
        ``columns' = min(columns, shown)`` and ``rows = ceil(shown / columns')``.
    """
    if columns < 1 or gap < 0:
        raise ValueError(f"columns must be >= 1 and gap >= 0, got {columns} and {gap}.")
    video = frames_uint8(frames)
    indices = preview_indices(video.shape[0], max_frames)
    height, width = video.shape[1:3]
    if tile_width is not None:
        if tile_width < 1:
            raise ValueError(f"tile_width must be >= 1, got {tile_width}.")
        height, width = max(1, round(height * tile_width / width)), tile_width
    cols = min(columns, len(indices))
    rows = math.ceil(len(indices) / cols)
    sheet = Image.new("RGB", (cols * width + (cols - 1) * gap, rows * height + (rows - 1) * gap), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, index in enumerate(indices):
        tile = Image.fromarray(video[index])
        if tile.size != (width, height):
            tile = tile.resize((width, height), Image.BILINEAR)
        left, top = (n % cols) * (width + gap), (n // cols) * (height + gap)
        sheet.paste(tile, (left, top))
        if labels:
            text = str(index)
            box = draw.textbbox((left + 2, top + 1), text)
            draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
            draw.text((left + 2, top + 1), text, fill=(255, 255, 255))
    return sheet


def _channels(waveform: object) -> np.ndarray:
    """``[N]``, ``[channels, N]`` (or ``[N, 2]``) -> float32 ``[channels, N]``."""
    array = _as_array(waveform).astype(np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim == 2 and array.shape[0] > 2 and array.shape[1] in (1, 2):
        array = array.T
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"waveform must be [samples] or [channels, samples], got shape {array.shape}.")
    return array


def _waveform_panel(audio: np.ndarray, width: int, height: int) -> np.ndarray:
    """One lane per channel: per pixel column, a vertical bar from the column's minimum to its maximum sample."""
    panel = np.empty((height, width, 3), dtype=np.uint8)
    panel[:] = BACKGROUND
    samples = audio.shape[1]
    starts = np.minimum(np.linspace(0, samples, width + 1)[:-1].astype(np.int64), samples - 1)
    bounds = np.linspace(0, height, audio.shape[0] + 1).round().astype(int)
    for channel, (top, bottom) in enumerate(zip(bounds[:-1], bounds[1:])):
        lane = bottom - top
        if lane < 1:
            continue
        x = np.clip(audio[channel], -1.0, 1.0)
        highs, lows = np.maximum.reduceat(x, starts), np.minimum.reduceat(x, starts)
        scale = (lane - 1) / 2.0  # amplitude +1 -> the lane's top row, -1 -> its bottom row
        rows = np.arange(lane)[:, None]
        mask = (rows >= np.floor((1.0 - highs) * scale)[None]) & (rows <= np.ceil((1.0 - lows) * scale)[None])
        panel[top + (lane - 1) // 2, :] = (60, 60, 60)
        panel[top:bottom][mask] = CHANNEL_COLOURS[channel % len(CHANNEL_COLOURS)]
    return panel


def log_spectrogram(mono: torch.Tensor, n_fft: int = 1024) -> torch.Tensor:
    """``[N]`` waveform -> ``[n_fft' // 2 + 1, frames]`` magnitude in dB (Hann window, hop ``n_fft' / 4``).

    ``n_fft' = min(n_fft, largest power of two <= N)``, so short clips still give a picture.
    """
    samples = mono.shape[-1]
    if samples < 16:
        raise ValueError(f"the waveform is too short for a spectrogram ({samples} samples; need at least 16).")
    size = min(n_fft, 2 ** int(math.log2(samples)))
    spectrum = torch.stft(mono.float(), n_fft=size, hop_length=max(1, size // 4), window=torch.hann_window(size),
                          center=True, pad_mode="constant", return_complex=True)
    return 20.0 * torch.log10(spectrum.abs() + 1e-8)


def _spectrogram_panel(audio: np.ndarray, width: int, height: int) -> np.ndarray:
    """Log-magnitude spectrogram of the channels' mean, loudest bin = white, 80 dB below or less = black."""
    decibels = log_spectrogram(torch.from_numpy(audio.mean(axis=0)))
    level = ((decibels - (decibels.max() - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB).clamp(0, 1).numpy()
    level = level[::-1]  # row 0 = the highest frequency
    stops = np.linspace(0.0, 1.0, len(SPECTROGRAM_RAMP))
    rgb = np.stack([np.interp(level, stops, SPECTROGRAM_RAMP[:, c]) for c in range(3)], axis=-1)
    image = Image.fromarray(rgb.round().astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return np.asarray(image)


def audio_image(waveform: object, sample_rate: int, width: int = 800, height: int = 400) -> Image.Image:
    """The waveform (one lane per channel) in the top half, its log-magnitude spectrogram in the bottom half.

    Args:
        waveform: ``[samples]`` or ``[channels, samples]`` in [-1, 1] (array or tensor).
        sample_rate: Hz; the spectrogram panel spans 0 Hz (bottom row) to ``sample_rate / 2`` (top row).
        width / height: of the image; the waveform panel is the top ``height // 2`` rows.
    """
    if width < 2 or height < 4:
        raise ValueError(f"the audio image needs width >= 2 and height >= 4, got {width}x{height}.")
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}.")
    audio = _channels(waveform)
    top = height // 2
    panels = [_waveform_panel(audio, width, top), _spectrogram_panel(audio, width, height - top)]
    logger.debug("audio preview: %d channels x %d samples at %d Hz", *audio.shape, sample_rate)
    return Image.fromarray(np.concatenate(panels, axis=0))


def write_previews(
    frames: object, waveform: object | None, sample_rate: int | None, stem: str | os.PathLike
) -> list[Path]:
    """Writes ``<stem>_frames.png`` (contact sheet) and, with a waveform, ``<stem>_audio.png``; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    video = frames_uint8(frames)
    sheet_path = stem.with_name(f"{stem.name}_frames.png")
    contact_sheet(video, tile_width=min(video.shape[2], 256)).save(sheet_path)
    paths = [sheet_path]
    if waveform is not None:
        audio_path = stem.with_name(f"{stem.name}_audio.png")
        audio_image(waveform, sample_rate).save(audio_path)
        paths.append(audio_path)
    return paths
