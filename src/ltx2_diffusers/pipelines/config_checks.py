"""A component's ``config.json`` checked against its class before anything is built: the right JSON types for every
argument the class annotates, and finite numbers (pure functions)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any


def _split_top(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside brackets (``"tuple[int, int] | None"`` -> two parts at ``|``)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "["
        depth -= char == "]"
        if char == separator and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _matches(value: Any, annotation: str) -> bool:  # noqa: ANN401
    """Whether a JSON value fits one annotation string; annotations this checker does not know always fit."""
    if annotation in ("Any", "object", ""):
        return True
    alternatives = _split_top(annotation, "|")
    if len(alternatives) > 1:
        return any(_matches(value, alternative) for alternative in alternatives)
    if annotation == "None":
        return value is None
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation == "str":
        return isinstance(value, str)
    origin, _, inner = annotation.partition("[")
    if origin in ("tuple", "list", "Sequence", "Tuple", "List"):
        if not isinstance(value, (list, tuple)):
            return False
        items = _split_top(inner[:-1], ",") if inner.endswith("]") else []
        if not items:
            return True
        if len(items) == 2 and items[1] == "...":  # tuple[int, ...]
            return all(_matches(v, items[0]) for v in value)
        if origin in ("tuple", "Tuple"):  # fixed length
            return len(value) == len(items) and all(_matches(v, a) for v, a in zip(value, items))
        return all(_matches(v, items[0]) for v in value)
    return True


def _non_finite(value: Any) -> bool:  # noqa: ANN401
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, Mapping):
        return any(_non_finite(v) for v in value.values())
    return False


def config_problems(config: Mapping[str, Any], model_class: type) -> list[str]:
    """``key=value (expected annotation)`` for every config value whose JSON type does not fit ``model_class``'s
    ``__init__`` annotation, and ``key=value (not finite)`` for NaN / infinity anywhere; empty when the config fits."""
    problems = []
    parameters = inspect.signature(model_class.__init__).parameters
    for key, value in config.items():
        if key.startswith("_"):
            continue
        if _non_finite(value):
            problems.append(f"{key}={value!r} (not finite)")
            continue
        parameter = parameters.get(key)
        if parameter is None or parameter.annotation is inspect.Parameter.empty:
            continue
        annotation = parameter.annotation if isinstance(parameter.annotation, str) else inspect.formatannotation(
            parameter.annotation)
        if not _matches(value, annotation.replace("typing.", "").replace("collections.abc.", "")):
            problems.append(f"{key}={value!r} (expected {annotation})")
    return problems


__all__ = ["config_problems"]
