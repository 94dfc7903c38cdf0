"""Source media for audio-to-video, video-to-audio and retake: reading, validation and time masks.

Everything here is validated before any model runs and returns plain tensors:

* :func:`audio_waveform`: a path (any file PyAV reads, e.g. wav/mp3/mp4) or a waveform with its sample rate ->
  float32 ``[2, N]`` and the rate (mono is duplicated to stereo).
* :func:`video_pixels`: a path, a list of PIL images, or frames as an array/tensor -> float32 ``[F, 3, H, W]`` in
  [-1, 1].
* :func:`window_mask`: which tokens of a stream overlap a time window (pure).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.audio_processing import check_sample_rate, stereo_waveform

# ----------------------------------------------------------------------------------------------------------------
# Reading files (PyAV)
# ----------------------------------------------------------------------------------------------------------------


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist; pass an existing file or the decoded data.")
    return path


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """All audio of a media file as float32 ``[channels, samples]`` in [-1, 1] and its sample rate."""
    import av

    path = _existing_file(path, "audio")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{str(path)!r} has no audio stream; pass a file with audio or a waveform.")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            to_float = av.AudioResampler(format="fltp")  # planar float32: [channels, samples] per frame
            chunks = [out.to_ndarray() for frame in container.decode(stream) for out in to_float.resample(frame)]
            chunks += [out.to_ndarray() for out in to_float.resample(None)]
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode audio from {str(path)!r}: {error}") from error
    if not chunks:
        raise ValueError(f"{str(path)!r} holds no audio samples.")
    waveform = torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32))
    return waveform, int(rate)


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """All frames of a media file as uint8 ``[F, H, W, 3]`` and its frame rate."""
    import av

    path = _existing_file(path, "video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{str(path)!r} has no video stream; pass a video file or the frames.")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode video from {str(path)!r}: {error}") from error
    if not frames:
        raise ValueError(f"{str(path)!r} holds no video frames.")
    return np.stack(frames), fps


# ----------------------------------------------------------------------------------------------------------------
# Validation of in-memory media
# ----------------------------------------------------------------------------------------------------------------


def audio_waveform(audio: Any, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:  # noqa: ANN401
    """Conditioning audio -> float32 ``[2, N]`` and its sample rate.

    ``audio``: a path, a ``(waveform, sample_rate)`` tuple, or a waveform (tensor or array, ``[N]`` or
    ``[channels, N]``, floats in [-1, 1]) with ``sample_rate`` given separately.
    """
    if isinstance(audio, (str, os.PathLike)):
        waveform, rate = read_audio(audio)
        if sample_rate is not None and check_sample_rate(sample_rate, "audio_sample_rate") != rate:
            raise ValueError(f"audio_sample_rate={sample_rate} contradicts the file's {rate} Hz; leave it unset for "
                             f"files.")
        sample_rate = rate
    elif isinstance(audio, tuple):
        if len(audio) != 2:
            raise ValueError("pass audio as (waveform, sample_rate).")
        waveform, sample_rate = audio
    else:
        waveform = audio
    if sample_rate is None:
        raise ValueError("a waveform needs its sample rate: pass audio_sample_rate=... (or audio=(waveform, rate), or "
                         "a file path).")
    sample_rate = check_sample_rate(sample_rate, "audio_sample_rate")
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    if not isinstance(waveform, torch.Tensor):
        raise ValueError(f"audio must be a path, a waveform tensor/array or (waveform, sample_rate), got "
                         f"{type(waveform).__name__}.")
    if waveform.ndim == 3:
        if waveform.shape[0] != 1:
            raise ValueError(f"pass one waveform [channels, samples] (it conditions every video), got "
                             f"{tuple(waveform.shape)}.")
        waveform = waveform[0]
    if waveform.ndim == 2 and waveform.shape[0] > 2 and waveform.shape[1] in (1, 2):
        raise ValueError(f"waveform must be [channels, samples], got {tuple(waveform.shape)}; transpose it.")
    return stereo_waveform(waveform.detach().cpu())[0].float(), sample_rate


def video_pixels(video: Any) -> tuple[torch.Tensor, float | None]:  # noqa: ANN401
    """Conditioning video -> float32 ``[F, 3, H, W]`` in [-1, 1] and its frame rate (``None`` unless a file).

    ``video``: a path, a list of PIL images, a uint8 ``[F, H, W, 3]`` array/tensor, or floats in [0, 1] as
    ``[F, H, W, 3]`` or ``[F, 3, H, W]``.
    """
    fps = None
    if isinstance(video, (str, os.PathLike)):
        video, fps = read_video(video)
    if isinstance(video, (list, tuple)):
        if not video or not all(hasattr(f, "convert") for f in video):
            raise ValueError("a list video must hold PIL images (one per frame).")
        video = np.stack([np.asarray(f.convert("RGB")) for f in video])
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, torch.Tensor):
        raise ValueError(f"video must be a path, a list of PIL images, or frames as an array/tensor, got "
                         f"{type(video).__name__}.")
    if video.ndim == 5 and video.shape[0] == 1:
        video = video[0]
    if video.ndim != 4 or 3 not in (video.shape[1], video.shape[3]):
        raise ValueError(f"video frames must be [frames, height, width, 3] or [frames, 3, height, width], got "
                         f"{tuple(video.shape)}.")
    if video.dtype == torch.uint8:
        if video.shape[-1] != 3:
            raise ValueError(f"uint8 video frames must be [frames, height, width, 3], got {tuple(video.shape)}.")
        return video.permute(0, 3, 1, 2).float() / 127.5 - 1.0, fps  # [F, 3, H, W]
    if video.shape[1] != 3:
        video = video.permute(0, 3, 1, 2)  # [F, H, W, 3] -> [F, 3, H, W]
    if not video.is_floating_point():
        raise ValueError(f"video frames must be uint8 or floats in [0, 1], got {video.dtype}.")
    video = video.detach().cpu().float()
    if not bool(torch.isfinite(video).all()) or video.min() < 0 or video.max() > 1:
        raise ValueError("float video frames must hold finite values in [0, 1].")
    return video * 2.0 - 1.0, fps


# ----------------------------------------------------------------------------------------------------------------
# Pure arithmetic
# ----------------------------------------------------------------------------------------------------------------


def fit_waveform(waveform: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``[..., N]`` -> ``[..., num_samples]``: trimmed, or padded with silence at the end."""
    if waveform.shape[-1] >= num_samples:
        return waveform[..., :num_samples]
    return torch.nn.functional.pad(waveform, (0, num_samples - waveform.shape[-1]))


def window_mask(bounds: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """``[T, 2]`` ``[start, end)`` token times in seconds -> bool ``[T]``: tokens overlapping ``[start, end)``."""
    return (bounds[:, 1] > start) & (bounds[:, 0] < end)


def check_time_window(window: Any, duration: float) -> tuple[float, float]:  # noqa: ANN401
    """Validates a ``(start, end)`` retake window in seconds within a clip of ``duration`` seconds."""
    if not isinstance(window, (tuple, list)) or len(window) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in window):
        raise ValueError(f"retake_window must be (start_seconds, end_seconds), got {window!r}.")
    start, end = float(window[0]), float(window[1])
    if not 0 <= start < end or start >= duration:
        raise ValueError(f"retake_window must satisfy 0 <= start < end with start inside the {duration:.3f} s clip, "
                         f"got {window!r}.")
    return start, end
