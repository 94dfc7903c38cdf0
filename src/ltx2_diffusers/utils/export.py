"""Writing generated clips: H.264 video with stereo AAC audio in one mp4, through PyAV."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging

logger = logging.get_logger(__name__)


def _frames_uint8(frames: object) -> np.ndarray:
    """PIL images, ``[F, H, W, 3]`` arrays/tensors in [0, 1] (float) or uint8 -> ``[F, H, W, 3]`` uint8."""
    if isinstance(frames, (list, tuple)) and frames and hasattr(frames[0], "convert"):
        frames = np.stack([np.asarray(f.convert("RGB")) for f in frames])
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().float().cpu().numpy() if frames.is_floating_point() else frames.cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [frames, height, width, 3] (or a list of PIL images), got {frames.shape}.")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: pass at least one frame.")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 needs an even height and width, got {frames.shape[1]}x{frames.shape[2]}.")
    return frames


def _stereo(audio: object) -> np.ndarray:
    """Waveform ``[N]``, ``[1, N]``, ``[2, N]`` or ``[N, 2]`` in [-1, 1] -> float32 ``[2, N]``."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be a waveform [channels, samples], got shape {audio.shape}.")
    if audio.shape[0] > 2 and audio.shape[1] in (1, 2):
        audio = audio.T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if audio.shape[0] != 2:
        raise ValueError(f"audio must be mono or stereo, got {audio.shape[0]} channels.")
    return np.clip(audio, -1.0, 1.0)


def export_to_mp4(
    frames: object,
    path: str | os.PathLike,
    fps: float,
    audio: object | None = None,
    sample_rate: int | None = None,
    crf: int = 18,
) -> Path:
    """Writes ``frames`` (and ``audio``) to an mp4: H.264 yuv420p video and stereo AAC at ``sample_rate``.

    The frame rate is kept exactly, fractional ones included (23.976 stays 24000/1001). The audio is zero-padded or
    trimmed to the video's duration ``len(frames) / fps``. The file appears atomically (written next to ``path``,
    then renamed).

    Args:
        frames: list of PIL images, or ``[F, H, W, 3]`` uint8 / float-in-[0, 1] array or tensor.
        path: output file.
        fps: frames per second (> 0).
        audio: optional waveform ``[channels, samples]`` in [-1, 1] (mono is duplicated to stereo).
        sample_rate: the waveform's rate in Hz; required with ``audio`` (use the vocoder's
            ``config.output_sampling_rate``).
        crf: H.264 constant rate factor (0 lossless … 51).
    """
    import av

    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}.")
    video = _frames_uint8(frames)
    rate = Fraction(fps).limit_denominator(1001)
    waveform = None
    if audio is not None:
        if not sample_rate or sample_rate <= 0 or int(sample_rate) != sample_rate:
            raise ValueError(f"sample_rate must be a positive integer in Hz with audio, got {sample_rate!r}.")
        sample_rate = int(sample_rate)
        waveform = _stereo(audio)
        target = round(len(video) / float(rate) * sample_rate)
        if waveform.shape[1] != target:
            logger.debug("audio %d samples -> %d to match the video duration", waveform.shape[1], target)
            waveform = np.pad(waveform, ((0, 0), (0, max(0, target - waveform.shape[1]))))[:, :target]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent, prefix=f".{path.stem}.")
    os.close(handle)
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = video.shape[2], video.shape[1]
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(crf)}
            astream = None
            if waveform is not None:
                astream = container.add_stream("aac", rate=sample_rate, layout="stereo")
            for image in video:
                for packet in vstream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
            if astream is not None:
                chunk = 1024
                for start in range(0, waveform.shape[1], chunk):
                    piece = np.ascontiguousarray(waveform[:, start:start + chunk])
                    frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="stereo")
                    frame.sample_rate = sample_rate
                    frame.pts = start
                    for packet in astream.encode(frame):
                        container.mux(packet)
                for packet in astream.encode():
                    container.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
