"""Strict ``from_pretrained`` for every model class of this package.

diffusers' ``ModelMixin.from_pretrained`` warns and goes on when a checkpoint lacks tensors (they stay on the meta
device, or random) or has extra ones, and falls back to pickled ``.bin`` files. Here a component loads with every
tensor of its config and nothing else, or the load raises a :class:`WeightLoadError` naming the keys; pickles are
read only when the caller passes ``use_safetensors=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch


class WeightLoadError(ValueError):
    """A checkpoint whose tensors do not match the model's config."""


def _shown(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def loading_problems(model: torch.nn.Module, info: Mapping[str, Any]) -> list[str]:
    """What a load left wrong: missing, unexpected or mismatched keys, errors, tensors still on the meta device."""
    problems = [f"{len(info[key])} {key.replace('_keys', '')}: {_shown(sorted(map(str, info[key])))}"
                for key in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(key)]
    if info.get("error_msgs"):
        problems.append(f"errors: {_shown([' '.join(str(e).split()) for e in info['error_msgs']], 2)}")
    on_meta = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if on_meta:
        problems.append(f"{len(on_meta)} tensor(s) left uninitialised on the meta device: {_shown(on_meta)}")
    return problems


def _no_weights_error(directory: str, variant: str | None) -> OSError:
    """diffusers' error for a local folder without loadable weights (it names the pickle it looked for last); with
    a pickle present, how to read it."""
    suffix = f".{variant}" if variant else ""
    pickled = sorted(n for n in os.listdir(directory) if n.endswith(".bin"))
    if pickled:
        return OSError(f"{directory} holds only pickled weights ({', '.join(pickled)}), which are not unpickled "
                       f"unless you pass use_safetensors=False (only for files you trust).")
    return OSError(f"Error no file named diffusion_pytorch_model{suffix}.bin found in directory {directory}, nor "
                   f"diffusion_pytorch_model{suffix}.safetensors (pass the `variant` the folder was saved with).")


class StrictLoadingMixin:
    """``from_pretrained`` that refuses incomplete or extra weights and never unpickles unless asked."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):  # noqa: ANN206, ANN401
        """diffusers' ``from_pretrained``, then: 0 missing, 0 unexpected and 0 mismatched keys and nothing left on
        the meta device, or a :class:`WeightLoadError`. ``use_safetensors`` defaults to ``True`` (pass ``False`` to
        read a pickled ``.bin`` checkpoint you trust)."""
        wants_info = kwargs.pop("output_loading_info", False)
        defaulted = kwargs.get("use_safetensors") is None
        if defaulted:
            kwargs["use_safetensors"] = True
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        except OSError as error:
            directory = os.path.join(str(pretrained_model_name_or_path), kwargs.get("subfolder") or "")
            if defaulted and os.path.isdir(directory):
                raise _no_weights_error(directory, kwargs.get("variant")) from error
            raise
        problems = loading_problems(model, info)
        if problems:
            subfolder = kwargs.get("subfolder")
            where = os.path.join(str(pretrained_model_name_or_path), subfolder) if subfolder else \
                str(pretrained_model_name_or_path)
            raise WeightLoadError(f"{where}: the weights do not load strictly into {cls.__name__} "
                                  f"({'; '.join(problems)}). Re-download or re-save the folder, or fix its config.")
        return (model, info) if wants_info else model
