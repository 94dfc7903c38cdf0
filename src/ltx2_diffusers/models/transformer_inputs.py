"""Inputs of the LTX-2 transformer forward: checks and conversions, free of host synchronisation.

Every check here reads shapes, dtypes and Python types only, never tensor values, so the forward never waits for the
device, runs on the meta device and compiles to one graph. Checks of values (finite latents, σ in range, a valid
``timestep_index``) belong where the values are made: the pipeline checks them once per call.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import torch
from diffusers.utils import logging

logger = logging.get_logger(__name__)

MASK_BIAS = -10000.0  # additive bias of a masked key, diffusers' convention for multiplicative masks
TIMESTEP_UNITS = ("scaled", "sigma")

# ----------------------------------------------------------------------------------------------------------------
# Latents and text
# ----------------------------------------------------------------------------------------------------------------


def check_tokens(x: torch.Tensor, channels: int, name: str) -> tuple[int, int]:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be packed latents [batch, tokens, {channels}], got {shape}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}.")
    return x.shape[0], x.shape[1]


def check_context(x: torch.Tensor | None, batch: int, channels: int, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[0] != batch or x.shape[-1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else x
        raise ValueError(f"{name} must be text-connector output [{batch}, text_tokens, {channels}], got {shape}.")
    return x


def check_coords(coords: torch.Tensor, batch: int, axes: int, tokens: int, name: str) -> torch.Tensor:
    if not isinstance(coords, torch.Tensor) or coords.ndim != 4 or coords.shape[1:] != (axes, tokens, 2) \
            or coords.shape[0] not in (1, batch):
        shape = tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords).__name__
        raise ValueError(f"{name} must have shape [{batch}, {axes}, {tokens}, 2], got {shape}.")
    return coords.expand(batch, -1, -1, -1)


# ----------------------------------------------------------------------------------------------------------------
# Timesteps
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamTimestep:
    """One stream's scaled timestep (σ·``timestep_scale_multiplier``) in one of three layouts.

    * per sample: ``values [B]``, ``index None``;
    * per token: ``values [B, T]``, ``index None`` (the AdaLN runs once per token);
    * distinct values: ``values [N]`` and ``index [B, T]`` (token ``(b, t)`` has ``values[index[b, t]]``; the
      AdaLN runs N times).
    """

    values: torch.Tensor
    index: torch.Tensor | None = None

    @property
    def per_sample(self) -> bool:
        return self.index is None and self.values.ndim == 1

    def sample_max(self) -> torch.Tensor:
        """``[B]``: each sample's largest timestep (its σ when clean conditioning tokens carry less)."""
        if self.index is not None:
            return self.values[self.index].amax(dim=1)
        return self.values if self.values.ndim == 1 else self.values.amax(dim=1)


def _as_float(value: torch.Tensor | float, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(value, bool) or not isinstance(value, (torch.Tensor, int, float)):
        raise ValueError(f"{name} must be a float or a float tensor, got {type(value).__name__}.")
    t = torch.as_tensor(value, device=device)
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be real numbers, got {t.dtype}.")
    return t if t.is_floating_point() else t.float()


def check_timestep(
    value: torch.Tensor | float, batch: int, tokens: int | None, name: str, device: torch.device,
    index: torch.Tensor | None = None, scale: float = 1.0,
) -> StreamTimestep:
    """A stream's timestep as a :class:`StreamTimestep`, multiplied by ``scale`` (σ units -> scaled units).

    Accepts a float or ``[1]`` (shared by the batch), ``[B]`` / ``[B, 1]`` (per sample), ``[B, T]`` / ``[B, T, 1]``
    (per token; only when ``tokens`` is given), or ``[N]`` distinct values with an integer ``index [B, T]``.
    """
    t = _as_float(value, name, device)
    if index is not None:
        if tokens is None:
            raise ValueError(f"{name} takes no index.")
        if not isinstance(index, torch.Tensor) or index.shape != (batch, tokens) or index.is_floating_point() \
                or index.dtype == torch.bool or index.is_complex():
            shape = tuple(index.shape) if isinstance(index, torch.Tensor) else type(index).__name__
            raise ValueError(f"{name}_index must be an integer tensor [{batch}, {tokens}], got {shape}.")
        if t.ndim != 1:
            raise ValueError(f"with {name}_index, {name} must be the [N] distinct values, got {tuple(t.shape)}.")
        return StreamTimestep(t * scale if scale != 1.0 else t, index.long())
    if t.ndim == 0 or (t.ndim == 1 and t.shape[0] == 1 and batch != 1):
        t = t.reshape(1).expand(batch)
    elif t.ndim >= 2 and t.shape[-1] == 1 and t.shape[0] == batch and t.ndim <= 3:
        t = t[..., 0]  # [B, 1] -> [B], [B, T, 1] -> [B, T]
    ok = (t.ndim == 1 and t.shape[0] == batch) or (tokens is not None and t.shape == (batch, tokens))
    if not ok:
        expected = f"[{batch}]" if tokens is None else f"a float, [{batch}] or [{batch}, {tokens}]"
        raise ValueError(f"{name} must be {expected}, got shape {tuple(t.shape)}.")
    return StreamTimestep(t * scale if scale != 1.0 else t)


def check_units(units: str) -> str:
    if units not in TIMESTEP_UNITS:
        raise ValueError(f"timestep_units must be one of {TIMESTEP_UNITS}, got {units!r}.")
    return units


# ----------------------------------------------------------------------------------------------------------------
# Masks and perturbations
# ----------------------------------------------------------------------------------------------------------------


def text_bias(mask: torch.Tensor | None, context: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """diffusers' text mask: ``[B, L]`` multiplicative (1 keep, 0 drop) -> additive ``(1 - m)·(-10000)``; a 3-D
    ``[B, 1, L]`` mask is taken as that additive bias already. Returns ``[B, 1, 1 or T, L]`` or ``None``."""
    if mask is None:
        return None
    batch, length = context.shape[:2]
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or mask.shape[0] != batch \
            or mask.shape[-1] != length:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"text attention mask must have shape ({batch}, {length}) (1 = attend, 0 = ignore) or be an "
                         f"additive bias ({batch}, 1, {length}), got {shape}.")
    if mask.ndim == 2:
        return ((1 - mask.to(dtype)) * MASK_BIAS).view(batch, 1, 1, length)
    return mask.to(dtype).unsqueeze(1)


def self_attention_bias(mask: torch.Tensor | None, batch: int, tokens: int, dtype: torch.dtype
                        ) -> torch.Tensor | None:
    """diffusers' ``video_self_attention_mask``: ``[B, T, T]`` in ``[0, 1]`` (1 full attention, 0 masked) ->
    additive ``[B, 1, T, T]`` bias ``(1 - m)·(-10000)``."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3 or mask.shape[1:] != (tokens, tokens) \
            or mask.shape[0] not in (1, batch):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"video_self_attention_mask must be [{batch}, {tokens}, {tokens}] with values in [0, 1], "
                         f"got {shape}.")
    return ((1 - mask.to(dtype)) * MASK_BIAS).unsqueeze(1)


def perturbation_weight(mask: torch.Tensor | None, batch: int, dtype: torch.dtype) -> torch.Tensor | bool:
    """STG strength per sample: ``None`` -> ``True`` (every sample perturbed: the attention is skipped); a ``[B]`` or
    ``[B, 1, 1]`` mask (0 = perturbed, 1 = not, between = blend) -> ``[B, 1, 1]`` weight of the attention output."""
    if mask is None:
        return True
    if not isinstance(mask, torch.Tensor) or mask.shape not in ((batch,), (batch, 1, 1)) or mask.is_complex():
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"perturbation_mask must be [{batch}] or [{batch}, 1, 1] (0 = perturb this sample), got "
                         f"{shape}.")
    return mask.to(dtype).view(batch, 1, 1)


def isolation_flag(flag: bool | torch.Tensor, batch: int) -> bool | torch.Tensor:
    """``isolate_modalities``: a bool (all samples), or a ``[B]`` bool tensor (the marked samples) kept as is."""
    if isinstance(flag, bool):
        return flag
    if not isinstance(flag, torch.Tensor) or flag.shape != (batch,) or flag.is_floating_point() or flag.is_complex():
        shape = tuple(flag.shape) if isinstance(flag, torch.Tensor) else type(flag).__name__
        raise ValueError(f"isolate_modalities must be a bool or a [{batch}] bool tensor, got {shape}.")
    return flag.bool()


def check_blocks(blocks: object, num_layers: int, name: str) -> frozenset[int]:
    """Block indices as a set. Integers outside ``[0, num_layers)`` name no block and perturb nothing, as in
    diffusers' forward (whose pipelines pass their default ``[28]`` whatever the depth); they are logged once. The
    pipeline refuses them at its boundary."""
    if blocks is None:
        return frozenset()
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
        raise ValueError(f"{name} must be a list of block indices, got {type(blocks).__name__}.")
    blocks = list(blocks)
    if any(isinstance(i, bool) or not hasattr(i, "__index__") for i in blocks):
        raise ValueError(f"{name} must be a list of integer block indices in [0, {num_layers}), got {blocks}.")
    indices = frozenset(operator.index(i) for i in blocks)
    outside = tuple(sorted(i for i in indices if not 0 <= i < num_layers))
    if outside:
        _warn_unused_blocks(name, outside, num_layers)
    return indices - frozenset(outside)


@functools.lru_cache(maxsize=64)
def _warn_unused_blocks(name: str, outside: tuple[int, ...], num_layers: int) -> None:
    logger.warning("%s %s name no block of this %d-block transformer; they perturb nothing.", name, list(outside),
                   num_layers)
