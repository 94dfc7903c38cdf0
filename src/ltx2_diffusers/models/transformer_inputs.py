"""Input validation for the LTX-2 transformer: every bad input becomes a ``ValueError`` naming what to pass."""

from __future__ import annotations

import torch

# ----------------------------------------------------------------------------------------------------------------


def check_tokens(x: torch.Tensor, channels: int, name: str) -> tuple[int, int]:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be packed latents [batch, tokens, {channels}], got {shape}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}.")
    return x.shape[0], x.shape[1]


def check_context(x: torch.Tensor | None, batch: int, channels: int, name: str) -> torch.Tensor:
    if x is None or x.ndim != 3 or x.shape[0] != batch or x.shape[-1] != channels:
        shape = None if x is None else tuple(x.shape)
        raise ValueError(f"{name} must be text-connector output [{batch}, text_tokens, {channels}], got {shape}.")
    return x


def check_sigma(
    value: torch.Tensor | float, batch: int, tokens: int | None, name: str, device: torch.device
) -> torch.Tensor:
    """σ as ``[B]`` or ``[B, T]`` float; per-token values that are constant within each sample collapse to ``[B]``."""
    t = torch.as_tensor(value, device=device)
    if t.is_complex():
        raise ValueError(f"{name} must be real, got {t.dtype}.")
    t = t if t.is_floating_point() else t.float()
    if t.ndim == 0 or (t.ndim == 1 and t.shape[0] == 1):
        return t.reshape(1).expand(batch)
    if t.ndim == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.ndim == 1 and t.shape[0] == batch:
        return t
    if tokens is not None and t.ndim == 2 and t.shape == (batch, tokens):
        return t[:, 0] if bool((t == t[:, :1]).all()) else t
    expected = f"[{batch}]" if tokens is None else f"a float, [{batch}] or [{batch}, {tokens}]"
    raise ValueError(f"{name} must be {expected}, got shape {tuple(t.shape)}.")


def per_sample(t: torch.Tensor) -> torch.Tensor:
    return t if t.ndim == 1 else t.amax(dim=1)


def check_coords(coords: torch.Tensor, batch: int, axes: int, tokens: int, name: str) -> torch.Tensor:
    if coords.ndim != 4 or coords.shape[1:] != (axes, tokens, 2) or coords.shape[0] not in (1, batch):
        raise ValueError(f"{name} must have shape [{batch}, {axes}, {tokens}, 2], got {tuple(coords.shape)}.")
    return coords.expand(batch, -1, -1, -1)


def text_bias(mask: torch.Tensor | None, context: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, L]`` keep-mask -> additive ``[B, 1, 1, L]`` bias; ``None`` when every token is valid."""
    if mask is None:
        return None
    if mask.shape != context.shape[:2]:
        raise ValueError(f"text attention mask must have shape {tuple(context.shape[:2])}, got {tuple(mask.shape)}.")
    keep = mask.bool() if mask.dtype == torch.bool else mask > 0.5
    if bool(keep.all()):
        return None
    return ((~keep).to(dtype) * torch.finfo(dtype).min).view(mask.shape[0], 1, 1, -1)


def batch_flag(flag: bool | torch.Tensor, batch: int, name: str) -> bool | torch.Tensor:
    """A bool, or a ``[B]`` bool tensor reduced to a bool when it is uniform."""
    if isinstance(flag, bool):
        return flag
    flag = torch.as_tensor(flag).bool()
    if flag.shape != (batch,):
        raise ValueError(f"{name} must be a bool or a [{batch}] bool tensor, got shape {tuple(flag.shape)}.")
    if bool(flag.all()):
        return True
    if not bool(flag.any()):
        return False
    return flag
