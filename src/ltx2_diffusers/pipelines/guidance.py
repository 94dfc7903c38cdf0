"""Modality-aware guidance (paper §3.5): one formula per stream, in x0 space.

For one stream with conditional prediction ``c``, text-unconditional ``u``, STG-perturbed ``p`` and
modality-isolated ``m``::

    pred = c + (cfg - 1)(c - u) + stg (c - p) + (modality - 1)(c - m)

then, with ``rescale`` φ > 0, ``pred ← pred · (φ · std(c)/std(pred) + 1 - φ)``. Each extra prediction costs a
transformer pass only when its scale is not neutral (cfg ≠ 1, stg ≠ 0, modality ≠ 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GuidanceParams:
    """Guidance knobs of one stream.

    Args:
        guidance_scale: text classifier-free guidance (1 = off).
        stg_scale: spatio-temporal guidance against the self-attention-perturbed prediction (0 = off).
        modality_scale: guidance against the prediction without audio<->video attention (1 = off).
        guidance_rescale: φ in [0, 1], pulls the guided prediction's std back towards the conditional one (0 = off).
    """

    guidance_scale: float = 1.0
    stg_scale: float = 0.0
    modality_scale: float = 1.0
    guidance_rescale: float = 0.0

    def __post_init__(self) -> None:
        for name in ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}; use 1.0 (CFG, modality) or 0.0 (STG, "
                                 f"rescale) to turn it off.")
        if self.guidance_rescale > 1:
            raise ValueError(f"guidance_rescale must lie in [0, 1], got {self.guidance_rescale}.")

    @property
    def uses_uncond(self) -> bool:
        return self.guidance_scale != 1.0

    @property
    def uses_perturbed(self) -> bool:
        return self.stg_scale != 0.0

    @property
    def uses_isolated(self) -> bool:
        return self.modality_scale != 1.0


def _per_sample_std(x: torch.Tensor) -> torch.Tensor:
    """Unbiased std over every non-batch dimension, shaped to broadcast against ``x``."""
    return x.flatten(1).std(dim=1).view(-1, *([1] * (x.ndim - 1)))


def guide(
    params: GuidanceParams,
    cond: torch.Tensor,
    uncond: torch.Tensor | None = None,
    perturbed: torch.Tensor | None = None,
    isolated: torch.Tensor | None = None,
) -> torch.Tensor:
    """The guided x0 of one stream; a prediction may be ``None`` only when its scale is neutral.

    The rescale std is taken per sample (over all tokens and channels), which equals the reference's whole-tensor
    std at batch 1 and keeps samples of a batch independent of each other.
    """
    pred = cond
    terms = (
        (params.uses_uncond, params.guidance_scale - 1, uncond, "uncond (guidance_scale != 1)"),
        (params.uses_perturbed, params.stg_scale, perturbed, "perturbed (stg_scale != 0)"),
        (params.uses_isolated, params.modality_scale - 1, isolated, "isolated (modality_scale != 1)"),
    )
    for used, weight, other, name in terms:
        if not used:
            continue
        if other is None:
            raise ValueError(f"guidance needs the {name} prediction.")
        pred = pred + weight * (cond - other)
    if params.guidance_rescale > 0:
        phi = params.guidance_rescale
        pred = pred * (phi * _per_sample_std(cond) / _per_sample_std(pred) + (1 - phi))
    return pred


def passes_needed(*streams: GuidanceParams) -> tuple[str, ...]:
    """The transformer passes a step needs for these streams, in batch order: always ``"cond"``, then
    ``"uncond"``, ``"perturbed"``, ``"isolated"`` if any stream uses them (a pass runs both streams)."""
    passes = ["cond"]
    for name, attribute in (("uncond", "uses_uncond"), ("perturbed", "uses_perturbed"),
                            ("isolated", "uses_isolated")):
        if any(getattr(p, attribute) for p in streams):
            passes.append(name)
    return tuple(passes)


def validate_stg_blocks(blocks: Sequence[int], num_layers: int) -> list[int]:
    """STG block indices as a sorted list; ``ValueError`` when one lies outside ``[0, num_layers)``."""
    blocks = sorted({int(b) for b in blocks})
    if any(not 0 <= b < num_layers for b in blocks):
        raise ValueError(f"STG blocks must lie in [0, {num_layers}), got {blocks}.")
    return blocks
