"""Source media for audio-to-video, video-to-audio and retake: reading, validation and time masks.

Everything here is validated before any model runs and returns plain tensors:

* :func:`audio_waveform`: a path (any file PyAV reads, e.g. wav/mp3/mp4) or a waveform with its sample rate ->
  float32 ``[2, N]`` and the rate (mono is duplicated to stereo; integer PCM scaled by its width).
* :func:`video_pixels`: a path, a list of PIL images, or frames as an array/tensor -> float32 ``[F, 3, H, W]`` in
  [-1, 1] (16-bit and float pixels scaled by their range).
* :func:`fit_video`: a source clip trimmed and resized to a call's size (pure).
* :func:`window_mask`: which tokens of a stream overlap a time window (pure).

Accepted value ranges are those of :mod:`ltx2_diffusers.utils.sample_formats`; NaN or infinite values, empty media
and files with more than two audio channels raise a ``ValueError`` naming the input.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from ..models.audio_processing import check_sample_rate, stereo_waveform
from ..utils.paths import existing_file
from ..utils.sample_formats import pcm_to_float, pixels_to_unit
from .conditioning import image_array, resize_and_center_crop_frames

# ----------------------------------------------------------------------------------------------------------------
# Reading files (PyAV). Stream facts are checked from the container's header before any sample is decoded: some
# layouts crash inside FFmpeg (e.g. an 8-channel float WAV in the resampler), so nothing here resamples natively.
# ----------------------------------------------------------------------------------------------------------------


def _audio_stream(container: Any, name: str) -> Any:  # noqa: ANN401
    """The file's first audio stream, after checking its header: decodable, 1 or 2 channels, a positive rate."""
    if not container.streams.audio:
        raise ValueError(f"{name} has no audio stream; pass a file with audio or a waveform.")
    stream = container.streams.audio[0]
    context = stream.codec_context
    if context is None or not context.name:
        raise ValueError(f"{name}: its audio codec cannot be decoded here; convert it to WAV/AAC first.")
    channels = context.channels
    if channels not in (1, 2):
        raise ValueError(f"{name} has {channels} audio channels; LTX-2 audio is mono or stereo: downmix it to "
                         f"stereo first (e.g. `ffmpeg -i in -ac 2 out.wav`) or pass a [2, samples] waveform.")
    if not context.sample_rate or context.sample_rate <= 0:
        raise ValueError(f"{name} states no audio sample rate; re-encode it (e.g. to WAV).")
    return stream


def _samples(frame: Any, channels: int, rate: int, name: str) -> np.ndarray:  # noqa: ANN401
    """A decoded audio frame -> its raw samples as ``[channels, samples]`` in the frame's own sample type."""
    if frame.layout.nb_channels != channels or frame.sample_rate != rate:
        raise ValueError(f"{name} changes its audio format mid-stream ({channels} channels at {rate} Hz, then "
                         f"{frame.layout.nb_channels} at {frame.sample_rate} Hz); re-encode it (e.g. to WAV).")
    array = frame.to_ndarray()
    if frame.format.is_planar:
        return array  # [C, n]
    return array.reshape(-1, channels).T  # packed [1, n·C] -> [C, n]


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """All audio of a media file as float32 ``[channels, samples]`` (full scale [-1, 1]) and its sample rate.

    Integer sample formats are scaled by their width (:func:`~ltx2_diffusers.utils.sample_formats.pcm_to_float`);
    files with more than 2 channels, no samples or non-finite samples raise a ``ValueError`` naming the file.
    """
    import av

    path = existing_file(path, "audio", ", a waveform or (waveform, sample_rate)")
    name = repr(str(path))
    try:
        with av.open(str(path)) as container:
            stream = _audio_stream(container, name)
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            chunks = [_samples(frame, channels, rate, name) for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode audio from {name}: {error}") from error
    chunks = [chunk for chunk in chunks if chunk.shape[1]]
    if not chunks:
        raise ValueError(f"{name} holds no audio samples; pass a file with sound or a waveform.")
    if len({chunk.dtype for chunk in chunks}) > 1:
        chunks = [pcm_to_float(chunk, f"the audio of {name}") for chunk in chunks]
    waveform = pcm_to_float(np.concatenate(chunks, axis=1), f"the audio of {name}")  # [C, N]
    return torch.from_numpy(waveform), int(rate)


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """All frames of a media file as uint8 ``[F, H, W, 3]`` and its frame rate (0.0 when the file states none)."""
    import av

    path = existing_file(path, "video", ", frames as an array or a list of PIL images")
    name = repr(str(path))
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{name} has no video stream; pass a video file or the frames.")
            stream = container.streams.video[0]
            context = stream.codec_context
            if context is None or not context.name:
                raise ValueError(f"{name}: its video codec cannot be decoded here; convert it to H.264 mp4 first.")
            if not context.width or not context.height:
                raise ValueError(f"{name} states no frame size ({context.width}x{context.height}); re-encode it.")
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode video from {name}: {error}") from error
    if not frames:
        raise ValueError(f"{name} holds no video frames; pass a file with frames or the frames themselves.")
    if len({frame.shape for frame in frames}) > 1:
        raise ValueError(f"{name} changes frame size mid-stream ({frames[0].shape[1]}x{frames[0].shape[0]} first); "
                         f"re-encode it at one size.")
    return np.stack(frames), fps if math.isfinite(fps) and fps > 0 else 0.0


# ----------------------------------------------------------------------------------------------------------------
# Validation of in-memory media
# ----------------------------------------------------------------------------------------------------------------


def audio_waveform(audio: Any, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:  # noqa: ANN401
    """Conditioning audio -> float32 ``[2, N]`` and its sample rate.

    ``audio``: a path, a ``(waveform, sample_rate)`` tuple, or a waveform (tensor or array, ``[N]`` or
    ``[channels, N]``) with ``sample_rate`` given separately. Floats have full scale [-1, 1] (peaks up to
    ``FLOAT_AUDIO_PEAK_LIMIT`` are tolerated); integer PCM (int16, int32, uint8, ...) is scaled by its width.
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
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu()
        waveform = waveform.float().numpy() if waveform.is_floating_point() else waveform.numpy()
    if not isinstance(waveform, np.ndarray):
        raise ValueError(f"audio must be a path, a waveform tensor/array or (waveform, sample_rate), got "
                         f"{type(waveform).__name__}.")
    if waveform.ndim == 3:
        if waveform.shape[0] != 1:
            raise ValueError(f"pass one waveform [channels, samples] (it conditions every video), got "
                             f"{tuple(waveform.shape)}.")
        waveform = waveform[0]
    if waveform.ndim == 2 and waveform.shape[0] > 2 and waveform.shape[1] in (1, 2):
        raise ValueError(f"waveform must be [channels, samples], got {tuple(waveform.shape)}; transpose it.")
    if waveform.size == 0:
        raise ValueError(f"audio is empty (shape {tuple(waveform.shape)}); pass at least one sample.")
    waveform = torch.from_numpy(pcm_to_float(waveform, "audio"))
    return stereo_waveform(waveform)[0], sample_rate


def _frame_list(frames: list | tuple) -> np.ndarray:
    """A list of PIL images (any mode; see :func:`~.conditioning.image_array`) -> uint8 ``[F, H, W, 3]``."""
    if not frames or not all(hasattr(f, "convert") and hasattr(f, "mode") for f in frames):
        raise ValueError("a list video must hold PIL images (one per frame, at least one).")
    arrays = [image_array(frame, f"video frame {i}") for i, frame in enumerate(frames)]
    for i, array in enumerate(arrays):
        if array.shape != arrays[0].shape:
            raise ValueError(f"video frames differ in size: frame 0 is {arrays[0].shape[0]}x{arrays[0].shape[1]}, "
                             f"frame {i} is {array.shape[0]}x{array.shape[1]} (height x width); resize them to one "
                             f"size.")
    return np.stack(arrays)


def video_pixels(video: Any) -> tuple[torch.Tensor, float | None]:  # noqa: ANN401
    """Conditioning video -> float32 ``[F, 3, H, W]`` in [-1, 1] and its frame rate (``None`` unless a file).

    ``video``: a path, a list of PIL images, or frames as an array/tensor: ``[F, H, W, 3]`` (or ``[F, 3, H, W]`` for
    floats) of uint8, uint16 (16-bit) or floats in [0, 1] (scaled, never clipped; NaN/inf refused).
    """
    fps = None
    if isinstance(video, (str, os.PathLike)):
        video, fps = read_video(video)
        fps = fps or None
    if isinstance(video, (list, tuple)):
        video = _frame_list(video)
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu()
        video = video.float().numpy() if video.is_floating_point() else video.numpy()
    if not isinstance(video, np.ndarray):
        raise ValueError(f"video must be a path, a list of PIL images, or frames as an array/tensor, got "
                         f"{type(video).__name__}.")
    if video.ndim == 5 and video.shape[0] == 1:
        video = video[0]
    if video.ndim != 4 or 3 not in (video.shape[1], video.shape[3]):
        raise ValueError(f"video frames must be [frames, height, width, 3] or [frames, 3, height, width], got "
                         f"{tuple(video.shape)}.")
    if video.size == 0:
        raise ValueError(f"video is empty (shape {tuple(video.shape)}); pass at least one frame.")
    if video.shape[-1] != 3:
        if not np.issubdtype(video.dtype, np.floating):
            raise ValueError(f"{video.dtype} video frames must be [frames, height, width, 3], got "
                             f"{tuple(video.shape)}.")
        video = video.transpose(0, 2, 3, 1)  # [F, 3, H, W] -> [F, H, W, 3]
    if video.dtype == np.uint8:
        pixels = torch.from_numpy(np.ascontiguousarray(video)).float() / 127.5 - 1.0
    else:
        pixels = torch.from_numpy(np.ascontiguousarray(pixels_to_unit(video, "video"))) * 2.0 - 1.0
    return pixels.permute(0, 3, 1, 2), fps  # [F, H, W, 3] -> [F, 3, H, W]


# ----------------------------------------------------------------------------------------------------------------
# Pure arithmetic
# ----------------------------------------------------------------------------------------------------------------


def fit_video(pixels: torch.Tensor, num_frames: int, height: int, width: int, temporal: int) -> torch.Tensor:
    """A source clip ``[F, 3, H, W]`` fitted to a call: at most ``num_frames`` frames, trimmed to ``temporal·k + 1``,
    each frame resized to cover ``height x width`` and centre-cropped (bilinear, as condition images are)."""
    frames = (min(pixels.shape[0], num_frames) - 1) // temporal * temporal + 1
    pixels = pixels[:frames]
    if tuple(pixels.shape[2:]) != (height, width):
        pixels = resize_and_center_crop_frames(pixels, height, width)
    return pixels


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
