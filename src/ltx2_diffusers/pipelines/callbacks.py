"""What ``callback_on_step_end`` may return, checked before the pipeline uses it."""

from __future__ import annotations

from typing import Any

import torch

from ..models.text_connectors_ltx2 import LTX2TextEmbeddings
from .arguments import check_finite


def check_callback_outputs(outputs: Any, state: dict[str, Any], name: str) -> dict[str, Any]:  # noqa: ANN401
    """``callback_on_step_end``'s return value, checked: ``None`` or a dict whose tensors keep the shape, dtype and
    device of what they replace and are finite; embeddings stay :class:`LTX2TextEmbeddings` of the same shapes."""
    if outputs is None:
        return {}
    if not isinstance(outputs, dict):
        raise ValueError(f"callback_on_step_end {name} must return a dict (or None), got {type(outputs).__name__}.")
    unknown = sorted(set(outputs) - set(state))
    if unknown:
        raise ValueError(f"callback_on_step_end {name} returned {unknown}; it may only return {sorted(state)}.")
    for key, value in outputs.items():
        current = state[key]
        if value is current:  # handed back unchanged (diffusers' callbacks return the whole dict)
            continue
        if isinstance(current, LTX2TextEmbeddings) or current is None:
            if current is None or not isinstance(value, LTX2TextEmbeddings) or any(
                    v.shape != c.shape for v, c in zip(value, current)):
                raise ValueError(f"callback_on_step_end {name} returned `{key}` that is not LTX2TextEmbeddings of "
                                 f"the shapes it was given.")
            for field, tensor in zip(("video_embeds", "audio_embeds"), value[:2]):
                check_finite(tensor, f"{key}.{field} returned by callback_on_step_end {name}")
            continue
        if not isinstance(value, torch.Tensor) or value.shape != current.shape or value.dtype != current.dtype or \
                value.device != current.device:
            got = (f"{tuple(value.shape)} {value.dtype} on {value.device}" if isinstance(value, torch.Tensor)
                   else type(value).__name__)
            raise ValueError(f"callback_on_step_end {name} returned `{key}` as {got}; it must keep the shape, dtype "
                             f"and device of the tensor it replaces ({tuple(current.shape)} {current.dtype} on "
                             f"{current.device}), e.g. `new.to(old)`.")
        check_finite(value, f"{key} returned by callback_on_step_end {name}")
    return outputs
