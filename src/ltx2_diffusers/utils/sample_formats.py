"""Sample formats of media given to or written by the package, as pure numpy functions (and PIL modes).

One rule per format, shared by the pipeline's readers and :func:`~ltx2_diffusers.utils.export.export_to_mp4`:

Pixels (:func:`pixels_to_unit`, :func:`pixels_to_uint8`): ``uint8`` and ``uint16`` (16-bit images) are scaled by
their depth (255, 65535); floats must be finite and lie in [0, 1] (scaled, never clipped). Other integer types are
refused: their range is ambiguous. PIL images (:func:`pil_pixels`) follow the same rules by mode: ``I;16*`` is
16-bit, ``I`` is read as 16-bit (values outside [0, 65535] are refused), ``F`` is float.

Audio samples (:func:`pcm_to_float`): integer PCM is scaled by its width (``int8`` / 128, ``int16`` / 32768,
``int32`` / 2**31; ``uint8`` is centred, ``(x - 128) / 128``); floats are taken as they are, full scale being
[-1, 1]. Floats must be finite, and their peak at most :data:`FLOAT_AUDIO_PEAK_LIMIT` (2.0): float files and lossy
decoders overshoot full scale a little, while larger peaks mean integer PCM cast to float without scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# float samples beyond this magnitude are integer PCM cast to float without scaling, not audio in [-1, 1]
FLOAT_AUDIO_PEAK_LIMIT = 2.0
_SIGNED_PCM = {np.dtype(np.int8): 2.0 ** 7, np.dtype(np.int16): 2.0 ** 15, np.dtype(np.int32): 2.0 ** 31}


def check_finite(array: np.ndarray, what: str) -> None:
    """``ValueError`` naming ``what`` if ``array`` holds NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{what} holds {bad} NaN or infinite value{'s' if bad > 1 else ''}; pass finite values.")


def pixels_to_unit(array: np.ndarray, what: str = "image") -> np.ndarray:
    """Pixels of any shape -> float32 in [0, 1] of the same shape: uint8 / 255, uint16 / 65535, floats checked and
    kept (see the module docstring for the accepted ranges)."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=")
    if dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if dtype == np.uint16:
        return (array.astype(np.float64) / 65535.0).astype(np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{what} has {array.dtype} pixels: pass uint8, uint16 (16-bit) or floats in [0, 1].")
    check_finite(array, what)
    if array.size == 0:
        return array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise ValueError(f"{what} has float pixels in [{low:g}, {high:g}]: float pixels must lie in [0, 1] (divide "
                         f"8-bit values by 255; map [-1, 1] with x * 0.5 + 0.5).")
    return array.astype(np.float32)


def pixels_to_uint8(array: np.ndarray, what: str = "image") -> np.ndarray:
    """Pixels of any shape -> uint8 of the same shape: uint8 as is, the others scaled from
    :func:`pixels_to_unit` by 255 and rounded."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    return np.round(pixels_to_unit(array, what) * 255.0).astype(np.uint8)


def pcm_to_float(samples: np.ndarray, what: str = "audio") -> np.ndarray:
    """Audio samples of any shape -> float32 of the same shape with full scale [-1, 1] (see the module docstring)."""
    samples = np.asarray(samples)
    dtype = samples.dtype.newbyteorder("=")
    if dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if dtype in _SIGNED_PCM:
        return (samples.astype(np.float64) / _SIGNED_PCM[dtype]).astype(np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{what} has {samples.dtype} samples: pass integer PCM as int16, int32 (scaled by their "
                         f"width) or uint8, or floats in [-1, 1].")
    check_finite(samples, what)
    peak = float(np.abs(samples).max(initial=0.0))
    if peak > FLOAT_AUDIO_PEAK_LIMIT:
        raise ValueError(f"{what} has float samples peaking at {peak:g}: float audio lies in [-1, 1]. For integer PCM "
                         f"pass the integer array itself (it is scaled by its width), or divide 16-bit samples by "
                         f"32768.")
    return samples.astype(np.float32)


def pil_pixels(image: Any, what: str) -> np.ndarray:  # noqa: ANN401
    """A PIL image of any mode -> ``[H, W, 3]`` uint8. 16-bit modes (``I;16*``, and ``I`` as 16-bit PNGs open in
    older Pillow) are scaled by 255 / 65535, ``F`` (float) must lie in [0, 1]; the rest go through ``RGB``."""
    if image.mode.startswith("I;16"):
        array = np.asarray(image).astype(np.uint16)  # [H, W], any byte order -> native
    elif image.mode == "I":
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ValueError(f"{what} is a 32-bit integer (mode 'I') image with values in [{array.min()}, "
                             f"{array.max()}]; such images are read as 16-bit, so values must lie in [0, 65535]. "
                             f"Pass uint8/uint16 or float pixels in [0, 1] instead.")
        array = array.astype(np.uint16)
    elif image.mode == "F":
        array = np.asarray(image)
    else:
        try:
            array = np.asarray(image.convert("RGB"))
        except ValueError as error:
            raise ValueError(f"{what} has PIL mode {image.mode!r}, which cannot become RGB ({error}); convert it "
                             f"to RGB first.") from None
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)  # grayscale [H, W] -> [H, W, 3]
    return pixels_to_uint8(array, what)
