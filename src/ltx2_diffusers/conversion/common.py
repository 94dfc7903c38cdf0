"""Strict state-dict checks shared by every component's conversion."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch


def rename_parts(name: str | list[str], table: Mapping[str, str]) -> str:
    """Renames a dotted tensor name part by part: each part is either replaced as a whole by ``table`` or kept."""
    parts = name.split(".") if isinstance(name, str) else name
    return ".".join(table.get(part, part) for part in parts)


def inverted(table: Mapping[str, str]) -> dict[str, str]:
    """The reverse rename table (diffusers part -> original part)."""
    return {new: old for old, new in table.items()}


def check_state_dict(
    converted: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size | tuple[int, ...]], component: str
) -> None:
    """Raises a ``ValueError`` naming every missing key, unexpected key and shape mismatch (none are tolerated)."""
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(expected[k])}"
        for k in sorted(set(expected) & set(converted))
        if tuple(converted[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        lines = [f"{component}: the checkpoint does not match the model."]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
                lines.append(f"  {title}: {shown}")
        raise ValueError("\n".join(lines))


def expected_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    """Name -> shape of every entry of ``model.state_dict()`` (works on the meta device)."""
    return {k: v.shape for k, v in model.state_dict().items()}


def select_and_rename(
    original: Mapping[str, torch.Tensor],
    rename: Callable[[str], str | None],
    component: str,
    where: str,
    expected: Mapping[str, torch.Size | tuple[int, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors ``rename`` maps to a name (others belong to other components), renamed; strictly checked against
    ``expected`` (name -> shape) when given. ``where`` describes the keys looked for, for the error message."""
    converted = {new: value for key, value in original.items() if (new := rename(key)) is not None}
    if not converted:
        raise ValueError(f"No {component} tensors found: no key {where}.")
    if expected is not None:
        check_state_dict(converted, expected, component)
    return converted
