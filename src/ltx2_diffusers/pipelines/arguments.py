"""Value checks for call arguments: each turns one argument into a clean Python value or raises a ``ValueError``
that names the argument, says what was given and what to pass instead.

These are leaves: no models, no pipeline state. :mod:`~ltx2_diffusers.pipelines.plan` applies them once, at the
boundary, so nothing deeper re-checks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def _shown(value: Any) -> str:  # noqa: ANN401
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def as_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:  # noqa: ANN401
    """An integer: ints (also numpy / 0-d tensor ints) and integral floats (``64.0``) are accepted; bools, fractions,
    non-finite numbers and strings are not."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be an integer, got {_shown(value)}.")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"`{name}` must be an integer, got {_shown(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {wanted}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}.")
    return value


def as_float(
    value: Any, name: str, minimum: float | None = None, maximum: float | None = None,  # noqa: ANN401
    exclusive_minimum: bool = False,
) -> float:
    """A finite real number within ``[minimum, maximum]`` (``(minimum, ...`` with ``exclusive_minimum``)."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number, got {_shown(value)}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value}.")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise ValueError(f"`{name}` must be {'>' if exclusive_minimum else '>='} {minimum:g}, got {value:g}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum:g}, got {value:g}.")
    return value


def as_bool(value: Any, name: str) -> bool:  # noqa: ANN401
    """``True`` or ``False`` only (no truthy strings or numbers)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"`{name}` must be True or False, got {_shown(value)}.")


def as_choice(value: Any, name: str, choices: Sequence[str]) -> str:  # noqa: ANN401
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {_shown(value)}.")
    return value


def as_number_list(value: Any, name: str) -> list[float]:  # noqa: ANN401
    """A non-empty 1-D list / tuple / array / tensor of finite real numbers."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"`{name}` must be a list of numbers, got {_shown(value)}.")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim != 1 or value.dtype == torch.bool or value.dtype == np.bool_:
            raise ValueError(f"`{name}` must be a 1-D list of numbers, got {_shown(value)}.")
        value = value.tolist()
    if not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"`{name}` must be a non-empty list of numbers, got {_shown(value)}.")
    return [as_float(v, f"{name}[{i}]") for i, v in enumerate(value)]


def as_sigmas(value: Any, name: str) -> tuple[float, ...]:  # noqa: ANN401
    """A σ list without the final 0: non-empty, finite, in (0, 1], non-increasing."""
    sigmas = as_number_list(value, name)
    if any(not 0 < s <= 1 for s in sigmas) or any(b > a for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError(f"`{name}` must be non-increasing values in (0, 1] without the final 0, e.g. "
                         f"DISTILLED_SIGMAS; got {sigmas}.")
    return tuple(sigmas)


def as_index_list(value: Any, name: str, size: int) -> tuple[int, ...]:  # noqa: ANN401
    """Block indices: integers in ``[0, size)``, sorted and de-duplicated (an empty list is allowed)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, torch.Tensor, np.ndarray)):
        raise ValueError(f"`{name}` must be a list of block indices, got {_shown(value)}.")
    values = value.tolist() if isinstance(value, (torch.Tensor, np.ndarray)) else list(value)
    indices = sorted({as_int(v, f"{name}[{i}]") for i, v in enumerate(values)})
    outside = [i for i in indices if not 0 <= i < size]
    if outside:
        raise ValueError(f"`{name}` must lie in [0, {size}) for this {size}-block transformer, got {outside}.")
    return tuple(indices)


def check_tensor(value: Any, name: str, shape: Sequence[int | None] | None = None) -> torch.Tensor:  # noqa: ANN401
    """A finite floating-point tensor, of ``shape`` when given (``None`` entries match any size)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch tensor, got {_shown(value)}.")
    if not value.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got {value.dtype}.")
    if shape is not None and (value.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape))):
        wanted = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"`{name}` must have shape {wanted}, got {tuple(value.shape)}.")
    check_finite(value, name)
    return value


def check_finite(value: torch.Tensor, name: str) -> None:
    """``ValueError`` when a tensor holds NaN or infinity (reports how many)."""
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        raise ValueError(f"`{name}` holds {int(bad.sum())} NaN/inf values of {value.numel()}; pass finite values.")


def as_generators(value: Any, batch: int) -> torch.Generator | list[torch.Generator] | None:  # noqa: ANN401
    """``None``, one ``torch.Generator``, or a list of exactly ``batch`` generators."""
    if value is None or isinstance(value, torch.Generator):
        return value
    if isinstance(value, (list, tuple)):
        if len(value) != batch:
            raise ValueError(f"Got {len(value)} generators for {batch} videos (prompts x num_videos_per_prompt): pass "
                             f"one generator or exactly {batch}.")
        for i, g in enumerate(value):
            if not isinstance(g, torch.Generator):
                raise ValueError(f"`generator[{i}]` must be a torch.Generator, got {_shown(g)}.")
        return list(value)
    raise ValueError(f"`generator` must be a torch.Generator or a list of them, got {_shown(value)}.")
