"""Reading tensors from an original safetensors file without trusting them.

Everything that can be decided from the file's header (dtype names and shapes) is checked before any tensor data is
read: integer or bool tensors, fp8 scales without a float8 weight, per-output-channel scales of the wrong size. The
few fp8 weight scales are then read and must be finite and positive. Each tensor is finally de-quantised (float8),
cast to the one target dtype of the folder and refused if it holds NaN or inf (unless the caller opts out).

The target dtype, when none is given, is chosen from the file by :func:`choose_dtype`: the floating dtype that holds
the most elements among the tensors that are written, with float8 counted as bfloat16 (the output is never fp8) and
float64 as float32 (the models compute in at most float32). A file mixing dtypes thus still gives a one-dtype folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

# safetensors header dtype name -> torch dtype, for every floating type a weight may be stored in
FLOAT_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
FP8_NAMES: frozenset[str] = frozenset({"F8_E4M3", "F8_E5M2"})
FP8_DTYPES: frozenset[torch.dtype] = frozenset(FLOAT_DTYPES[name] for name in FP8_NAMES)
# what a stored dtype counts as when choosing the folder's dtype (never fp8, never float64)
_SAVED_AS: dict[str, torch.dtype] = {**FLOAT_DTYPES, "F64": torch.float32, "F8_E4M3": torch.bfloat16,
                                     "F8_E5M2": torch.bfloat16}
SAVE_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)

WEIGHT_SCALE_SUFFIX = ".weight_scale"
INPUT_SCALE_SUFFIX = ".input_scale"
# a marker tensor of "scaled fp8" files (ComfyUI); legitimate only in a file that holds float8 weights
FP8_MARKER_KEYS: frozenset[str] = frozenset({"scaled_fp8"})
NON_FINITE_HINT = "pass allow_non_finite=True (--allow-non-finite) only if you know these values are intended"


class CheckpointReadError(ValueError):
    """The file cannot be read: missing data, truncated or corrupt (not a wrong argument: the file is broken)."""


def _shown(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def open_safetensors(path: Path) -> Any:  # noqa: ANN401
    """``safe_open`` (never unpickles) with a readable error for missing, truncated or corrupt files."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; pass the original LTX-2 .safetensors file.")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError (header too large, incomplete, ...)
        raise CheckpointReadError(f"{path} is not a readable safetensors file (truncated or corrupt? safetensors "
                                  f"says: {error}); download it again.") from error


def header_dtypes(handle: Any) -> dict[str, str]:  # noqa: ANN401
    """Tensor name -> safetensors dtype name (``"BF16"``, ``"F8_E4M3"``, ``"I32"``, ...), from the header only."""
    return {k: handle.get_slice(k).get_dtype() for k in handle.keys()}


def header_shapes(handle: Any) -> dict[str, tuple[int, ...]]:  # noqa: ANN401
    """Tensor name -> shape, from the header only."""
    return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}


def is_scale_key(key: str) -> bool:
    """An fp8 weight scale, an fp8 activation scale or the ``scaled_fp8`` marker (never a model tensor)."""
    return key.endswith((WEIGHT_SCALE_SUFFIX, INPUT_SCALE_SUFFIX)) or key in FP8_MARKER_KEYS


def _scaled_weight(key: str) -> str:
    suffix = WEIGHT_SCALE_SUFFIX if key.endswith(WEIGHT_SCALE_SUFFIX) else INPUT_SCALE_SUFFIX
    return key[: -len(suffix)] + ".weight"


def check_file_tensors(dtypes: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]], path: Path | str,
                       ignored: Iterable[str] = ()) -> None:
    """Header-only checks of a whole file; a ``ValueError`` names every offending tensor.

    * every tensor is floating point (integer and bool tensors have no place in these models), except the
      ``scaled_fp8`` marker and the ``ignored`` tensors, whose data is never read;
    * every ``<name>.weight_scale`` and ``<name>.input_scale`` sits next to a float8 ``<name>.weight``;
    * a weight scale holds one value or one per output channel;
    * a ``scaled_fp8`` marker only appears in a file with float8 weights.
    """
    unread = FP8_MARKER_KEYS | set(ignored)
    not_float = [f"{k} ({d})" for k, d in dtypes.items() if d not in FLOAT_DTYPES and k not in unread]
    if not_float:
        raise ValueError(f"{path}: tensors that are not floating point: {_shown(not_float)}. LTX-2 checkpoints hold "
                         f"only floating-point weights; pass an unmodified original file.")
    stray = [k for k in dtypes if k.endswith((WEIGHT_SCALE_SUFFIX, INPUT_SCALE_SUFFIX))
             and dtypes.get(_scaled_weight(k)) not in FP8_NAMES]
    if stray:
        raise ValueError(f"{path}: fp8 scales without a float8 weight next to them: {_shown(stray)}. A scale only "
                         f"belongs next to a float8 '<name>.weight'; refusing to drop or apply it.")
    wrong = [f"{k} {tuple(shapes[k])} for a weight {tuple(shapes[_scaled_weight(k)])}" for k in dtypes
             if k.endswith(WEIGHT_SCALE_SUFFIX) and not _scale_fits(shapes[k], shapes[_scaled_weight(k)])]
    if wrong:
        raise ValueError(f"{path}: fp8 weight scales of unsupported shape: {_shown(wrong)}; only per-tensor or "
                         f"per-output-channel scales are supported.")
    if any(k in FP8_MARKER_KEYS for k in dtypes) and not any(d in FP8_NAMES for d in dtypes.values()):
        raise ValueError(f"{path}: a 'scaled_fp8' marker in a file without float8 weights; pass an unmodified "
                         f"original file.")


def _scale_fits(scale_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> bool:
    """One value, or one per output channel (the weight's first dimension; size-1 dimensions aside)."""
    sizes = [size for size in scale_shape if size != 1]
    return not sizes or (len(weight_shape) > 0 and sizes == [weight_shape[0]])


def choose_dtype(entries: Iterable[tuple[str, tuple[int, ...]]]) -> torch.dtype:
    """The folder's dtype from ``(safetensors dtype name, shape)`` of the tensors written: the one holding the most
    elements, float8 counted as bfloat16 and float64 as float32; a tie goes to float32, then bfloat16."""
    counts: dict[torch.dtype, int] = {}
    for name, shape in entries:
        if name not in _SAVED_AS:
            raise ValueError(f"cannot choose a floating dtype for a {name} tensor.")
        counts[_SAVED_AS[name]] = counts.get(_SAVED_AS[name], 0) + math.prod(shape)
    if not counts:
        raise ValueError("no floating-point tensors to choose a dtype from.")
    return max(counts, key=lambda d: (counts[d], -SAVE_DTYPES.index(d)))


def check_save_dtype(dtype: torch.dtype) -> None:
    if dtype not in SAVE_DTYPES:
        raise ValueError(f"dtype={dtype} cannot be saved: pass one of "
                         f"{', '.join(str(d) for d in SAVE_DTYPES)} (or None to choose it from the file).")


def read_weight_scales(handle: Any, keys: Iterable[str], path: Path | str, allow_non_finite: bool = False  # noqa: ANN401
                       ) -> dict[str, torch.Tensor]:
    """Every ``*.weight_scale`` as float32; a zero or negative scale, or (unless allowed) a NaN/inf one, raises a
    ``ValueError`` naming it: it would turn its weight into zeros or NaN."""
    scales, bad = {}, []
    for key in keys:
        if not key.endswith(WEIGHT_SCALE_SUFFIX):
            continue
        scale = _get(handle, key, path).to(torch.float32)
        finite = torch.isfinite(scale)
        if not allow_non_finite and not bool(finite.all()):
            bad.append(f"{key} (NaN or inf)")
        elif bool((scale[finite] <= 0).any()):
            bad.append(f"{key} (zero or negative)")
        scales[key] = scale
    if bad:
        raise ValueError(f"{path}: unusable fp8 weight scales: {_shown(bad)}. Scales must be finite and positive; "
                         f"the file is damaged" + ("" if allow_non_finite else f" ({NON_FINITE_HINT})") + ".")
    return scales


def _get(handle: Any, key: str, path: Path | str) -> torch.Tensor:  # noqa: ANN401
    try:
        return handle.get_tensor(key)
    except Exception as error:  # SafetensorError on data that cannot be read
        raise CheckpointReadError(f"{path}: tensor {key} cannot be read ({error}); the file is damaged, download "
                                  f"it again.") from error


def load_tensor(handle: Any, key: str, dtype: torch.dtype, scales: Mapping[str, torch.Tensor],  # noqa: ANN401
                path: Path | str = "the checkpoint", allow_non_finite: bool = False) -> torch.Tensor:
    """One tensor as ``dtype``: float8 multiplied by its ``<name>.weight_scale`` (from ``scales``) when there is one,
    then cast; a NaN or inf value (stored, or from a cast out of ``dtype``'s range) raises a ``ValueError`` naming
    the tensor unless ``allow_non_finite``. Integer tensors were refused by :func:`check_file_tensors`."""
    tensor = _get(handle, key, path)
    if not tensor.is_floating_point():
        raise ValueError(f"{path}: {key} is {tensor.dtype}, not floating point.")
    source = tensor
    if tensor.dtype in FP8_DTYPES:
        source = tensor.to(torch.float32)
        scale = scales.get(key[: -len(".weight")] + WEIGHT_SCALE_SUFFIX) if key.endswith(".weight") else None
        if scale is not None:  # per tensor [] / [1], or per output channel [C_out] -> [C_out, 1, ...]
            source = source * (scale.reshape(-1, *([1] * (source.ndim - 1))) if scale.numel() > 1
                               else scale.reshape(()))
    values = source.to(dtype)
    if not allow_non_finite and not bool(torch.isfinite(values).all()):
        stored_bad = int((~torch.isfinite(source)).sum())
        if stored_bad:
            raise ValueError(f"{path}: {key} holds {stored_bad} non-finite values (NaN or inf) of "
                             f"{source.numel()}; the file is damaged ({NON_FINITE_HINT}).")
        raise ValueError(f"{path}: {key} has values beyond the range of {dtype} (largest magnitude "
                         f"{source.abs().max().item():.4g}); pass a wider dtype (float32 / --dtype fp32) or "
                         f"{NON_FINITE_HINT}.")
    return values
