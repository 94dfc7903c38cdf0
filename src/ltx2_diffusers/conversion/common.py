"""Strict state-dict checks shared by every component's conversion."""

from __future__ import annotations

from collections.abc import Mapping

import torch


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
