"""Argument types of ``ltx2-diffusers generate``: argparse-level checks, each naming what to pass instead."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def crf(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 51:
        raise argparse.ArgumentTypeError(f"must be an H.264 CRF in [0, 51] (0 = no compression), got {value}")
    return value


def sigma_list(text: str) -> list[float]:
    """``"1.0,0.9,0.5"`` -> floats in (0, 1]; the pipeline checks the order."""
    values = [_float(part) for part in text.split(",") if part.strip()]
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of noise levels in (0, 1], e.g. "
                                         f"'1.0,0.9,0.7,0.4', got {text!r}")
    return values


def block_list(text: str) -> list[int]:
    """``"28,29"`` -> transformer block indices (the pipeline checks them against the model's depth)."""
    values = [_int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of block indices >= 0, got {text!r}")
    return values


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def model_source(text: str) -> str:
    """A local pipeline folder, or something that can be a Hub id (``owner/name``)."""
    path = Path(text)
    if path.is_dir():
        return text
    if path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; pass a pipeline folder or a Hub id (convert an "
                                         f"original single-file checkpoint with `ltx2-diffusers convert`)")
    if not HUB_ID.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is neither an existing folder nor a Hub id (owner/name)")
    return text


@dataclass(frozen=True)
class ImageSpec:
    """A condition image: file, pixel frame it conditions (negative: from the end) and strength in [0, 1]."""

    path: Path
    frame: int = 0
    strength: float = 1.0


def image_spec(text: str) -> ImageSpec:
    """``PATH``, ``PATH@FRAME`` or ``PATH@FRAME@STRENGTH``; an existing file whose name holds ``@`` is taken whole."""
    candidates = [ImageSpec(Path(text))]
    parts = text.split("@")
    if len(parts) >= 2:
        with contextlib.suppress(ValueError):
            candidates.append(ImageSpec(Path("@".join(parts[:-1])), int(parts[-1])))
    if len(parts) >= 3:
        with contextlib.suppress(ValueError):
            candidates.append(ImageSpec(Path("@".join(parts[:-2])), int(parts[-2]), float(parts[-1])))
    candidates = [c for c in candidates if str(c.path) not in ("", ".")]
    for spec in candidates:
        if spec.path.is_file():
            if not 0 <= spec.strength <= 1:
                raise argparse.ArgumentTypeError(f"strength must lie in [0, 1], got {spec.strength:g} in {text!r}")
            return spec
    raise argparse.ArgumentTypeError(f"no such image file: {str(candidates[-1].path)!r} (from {text!r}; the syntax "
                                     f"is PATH, PATH@FRAME or PATH@FRAME@STRENGTH)")


__all__ = ["HUB_ID", "ImageSpec", "block_list", "crf", "existing_file", "image_spec", "model_source",
           "non_negative_float", "positive_float", "positive_int", "sigma_list"]
