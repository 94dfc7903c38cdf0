"""Writing generated clips: H.264 video with stereo AAC audio in one mp4, through PyAV.

What is accepted (everything else is a ``ValueError`` before a byte is written):

* the output: a path ending in ``.mp4`` (other containers are refused, not guessed from the name) inside an existing
  folder, and not itself a folder (:func:`check_output_path`, which a command line calls before loading a model);
* frames: uint8, uint16 (16-bit) or floats in [0, 1] (:mod:`~ltx2_diffusers.utils.sample_formats`), finite, with an
  even height and width (H.264 4:2:0);
* ``fps``: a finite number in [:data:`MIN_FPS`, :data:`MAX_FPS`]. The rate is stored exactly as a fraction with a
  denominator of at most 1001 (23.976 -> 24000/1001), within 0.1% of ``fps``;
* audio: finite float samples (full scale [-1, 1]; peaks up to 2.0 are clipped to it) or integer PCM, at a sample
  rate the AAC encoder supports (:func:`aac_sample_rates`).

The file appears atomically (written next to the output, then renamed) with the permissions a plain ``open()``
would give it: those of the file it replaces, else ``0o666`` less the process umask.
"""

from __future__ import annotations

import math
import numbers
import os
import secrets
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging

from ..models.audio_processing import check_sample_rate
from .sample_formats import pcm_to_float, pil_pixels, pixels_to_uint8

logger = logging.get_logger(__name__)

MIN_FPS, MAX_FPS = 0.01, 1000.0  # one frame per 100 s .. 1000 frames per second
MAX_CRF = 51  # libx264, 8-bit


# ----------------------------------------------------------------------------------------------------------------
# Checks (pure, before any encoding)
# ----------------------------------------------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike) -> Path:
    """Where :func:`export_to_mp4` may write ``path``: an ``.mp4`` name in an existing, writable folder, not a folder
    itself. Returns it as a :class:`~pathlib.Path`; raises a ``ValueError`` saying what to pass instead. Cheap: call
    it before generating anything."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a folder; pass a file path such as {str(path / 'clip.mp4')!r}.")
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"output {str(path)!r}: clips are written as mp4 (H.264 + AAC), so the name must end in "
                         f".mp4, e.g. {str(path.with_name(path.stem + '.mp4'))!r}; convert to other containers "
                         f"afterwards (e.g. with ffmpeg).")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"output folder {str(folder)!r} does not exist; create it first or pass a path in an "
                         f"existing folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(folder)!r} is not writable; pass a path in a folder you can write to.")
    if path.exists() and not path.is_file():
        raise ValueError(f"output {str(path)!r} exists and is not a regular file; pass another path.")
    return path


def check_fps(fps: float) -> Fraction:
    """A frame rate -> the exact fraction written to the mp4; ``ValueError`` outside ``[MIN_FPS, MAX_FPS]``."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real):
        raise ValueError(f"fps must be a number of frames per second, got {fps!r}.")
    value = float(fps)
    if not math.isfinite(value) or not MIN_FPS <= value <= MAX_FPS:
        raise ValueError(f"fps must be positive and finite, within [{MIN_FPS:g}, {MAX_FPS:g}] frames per second (the "
                         f"range this mp4 writer supports), got {fps!r}.")
    return (fps if isinstance(fps, Fraction) else Fraction(value)).limit_denominator(1001)


def aac_sample_rates() -> tuple[int, ...]:
    """The sample rates (Hz) the installed AAC encoder accepts."""
    import av

    return tuple(sorted(av.Codec("aac", "w").audio_rates or ()))


def _frames_uint8(frames: object) -> np.ndarray:
    """PIL images, ``[F, H, W, 3]`` arrays/tensors (uint8, uint16, floats in [0, 1]) -> ``[F, H, W, 3]`` uint8."""
    if isinstance(frames, (list, tuple)) and frames and all(hasattr(f, "mode") for f in frames):
        arrays = [pil_pixels(f, f"frame {i}") for i, f in enumerate(frames)]
        sizes = sorted({a.shape[:2] for a in arrays})
        if len(sizes) > 1:
            raise ValueError(f"frames differ in size ({', '.join(f'{h}x{w}' for h, w in sizes)}, height x width); "
                             f"resize them to one size.")
        frames = np.stack(arrays)
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = frames.float().numpy() if frames.is_floating_point() else frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [frames, height, width, 3] (or a list of PIL images), got {frames.shape}.")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: pass at least one frame.")
    if frames.shape[1] % 2 or frames.shape[2] % 2 or 0 in frames.shape:
        raise ValueError(f"H.264 needs an even height and width, got {frames.shape[1]}x{frames.shape[2]}.")
    return pixels_to_uint8(frames, "frames")


def _stereo(audio: object) -> np.ndarray:
    """Waveform ``[N]``, ``[1, N]``, ``[2, N]`` or ``[N, 2]`` -> float32 ``[2, N]`` clipped to [-1, 1]."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu()
        audio = audio.float().numpy() if audio.is_floating_point() else audio.numpy()
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be a waveform [channels, samples], got shape {audio.shape}.")
    if audio.shape[0] > 2 and audio.shape[1] in (1, 2):
        audio = audio.T
    if audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must be mono or stereo, got {audio.shape[0]} channels.")
    if audio.shape[1] == 0:
        raise ValueError("audio is empty: pass at least one sample, or audio=None for a silent clip.")
    audio = np.clip(pcm_to_float(audio, "audio"), -1.0, 1.0)
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def _new_file_beside(path: Path) -> Path:
    """Creates an empty hidden file next to ``path`` with the permissions ``open(path, "w")`` would give ``path``."""
    for _ in range(100):
        candidate = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp.mp4")
        try:
            handle = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        os.close(handle)
        if path.is_file():  # open() keeps the mode of a file it overwrites
            os.chmod(candidate, stat.S_IMODE(path.stat().st_mode))
        return candidate
    raise FileExistsError(f"could not create a temporary file next to {str(path)!r}.")


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
    trimmed to the video's duration ``len(frames) / fps``. The accepted values are listed in the module docstring;
    the file appears atomically, with the permissions ``open()`` would give it.

    Args:
        frames: list of PIL images, or ``[F, H, W, 3]`` uint8 / uint16 / float-in-[0, 1] array or tensor.
        path: output ``.mp4`` file in an existing folder (see :func:`check_output_path`).
        fps: frames per second, in ``[MIN_FPS, MAX_FPS]``.
        audio: optional waveform ``[channels, samples]``: floats in [-1, 1] or integer PCM (mono is duplicated to
            stereo).
        sample_rate: the waveform's rate in Hz; required with ``audio`` (use the vocoder's
            ``config.output_sampling_rate``); one of :func:`aac_sample_rates`.
        crf: H.264 constant rate factor (0 lossless … 51).
    """
    import av

    path = check_output_path(path)
    rate = check_fps(fps)
    if isinstance(crf, bool) or not isinstance(crf, numbers.Integral) or not 0 <= crf <= MAX_CRF:
        raise ValueError(f"crf must be an integer in [0, {MAX_CRF}], got {crf!r}.")
    video = _frames_uint8(frames)
    waveform = None
    if audio is not None:
        if not sample_rate or isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
            raise ValueError(f"sample_rate must be a positive integer in Hz with audio, got {sample_rate!r}.")
        sample_rate = check_sample_rate(sample_rate)
        if sample_rate not in aac_sample_rates():
            raise ValueError(f"AAC cannot store audio at {sample_rate} Hz; resample it to one of "
                             f"{', '.join(map(str, aac_sample_rates()))} Hz.")
        waveform = _stereo(audio)
        target = round(len(video) / float(rate) * sample_rate)
        if waveform.shape[1] != target:
            logger.debug("audio %d samples -> %d to match the video duration", waveform.shape[1], target)
            waveform = np.pad(waveform, ((0, 0), (0, max(0, target - waveform.shape[1]))))[:, :target]

    target = Path(os.path.realpath(path))  # through a symlink, as open() writes
    tmp = _new_file_beside(target)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = video.shape[2], video.shape[1]
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(int(crf))}
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
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
