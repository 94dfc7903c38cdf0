"""diffusers' per-call transformer options of the pipeline (``use_cross_timestep``, ``attention_kwargs``), applied
to whichever transformer a stage runs, without changing the denoising code that calls it.

``use_cross_timestep=True`` (diffusers' pipeline default) is the reference's cross-modal modulation, which our
transformer always runs; it is passed explicitly to transformers whose forward takes it (diffusers' forward defaults
to ``False``). ``attention_kwargs={"scale": s}`` scales active LoRA layers for the call, as diffusers does.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class TransformerWithOptions:
    """Calls ``model`` with ``options`` added to (and winning over) every call's keywords; other attributes are the
    model's."""

    def __init__(self, model: torch.nn.Module, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        return self.model(*args, **{**kwargs, **self.options})

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self.model, name)


def transformer_options(model: torch.nn.Module, use_cross_timestep: bool, attention_kwargs: dict | None,
                        per_token_timesteps: bool = True) -> dict[str, Any]:
    """The forward keywords that carry the call's options to ``model``; ``ValueError`` for an option it cannot
    honour (checked before any step runs).

    ``per_token_timesteps``: some tokens carry their own timestep (conditions, held or retaken clips). Without them
    both streams run at the step's σ everywhere, so the legacy modulation (each stream's own timestep) equals the
    reference's (the other stream's σ) and ``use_cross_timestep=False`` needs no support from the model.
    """
    accepted = inspect.signature(model.forward).parameters
    options: dict[str, Any] = {}
    if "use_cross_timestep" in accepted:
        options["use_cross_timestep"] = use_cross_timestep
    elif not use_cross_timestep and per_token_timesteps:
        raise ValueError("use_cross_timestep=False (diffusers' legacy LTX-2.0 modulation: each stream's own timestep) "
                         f"is not supported by this {type(model).__name__}, which always modulates the audio<->video "
                         f"attention with the other stream's σ, as the reference does (the two differ only for "
                         f"tokens with their own timestep: conditions, held or retaken clips); leave it True.")
    if attention_kwargs:
        if "attention_kwargs" in accepted:
            options["attention_kwargs"] = dict(attention_kwargs)
        else:
            unknown = sorted(set(attention_kwargs) - {"scale"})
            if unknown:
                raise ValueError(f"attention_kwargs {unknown} are not used by {type(model).__name__}; only 'scale' "
                                 f"(the LoRA scale) is.")
    return options


@contextmanager
def lora_scale(model: torch.nn.Module, attention_kwargs: dict | None, handled_by_model: bool) -> Iterator[None]:
    """``attention_kwargs["scale"]`` applied to ``model``'s LoRA layers for the block (unless its forward applies it
    itself)."""
    scale = None if not attention_kwargs or handled_by_model else attention_kwargs.get("scale")
    if scale is None or float(scale) == 1.0:
        yield
        return
    from diffusers.utils import scale_lora_layers, unscale_lora_layers

    scale_lora_layers(model, float(scale))
    try:
        yield
    finally:
        unscale_lora_layers(model, float(scale))
