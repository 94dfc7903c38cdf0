"""LoRA loading with checks: diffusers' ``LTX2LoraLoaderMixin`` (both key formats, PEFT adapters, strengths, fusing)
with every file checked before any adapter is injected.

Formats: diffusers (``transformer.<module>.lora_A.weight`` / ``connectors.<module>...``) and the original / ComfyUI
one (``diffusion_model.<original module>.lora_A.weight``, ``text_embedding_projection...``), converted by diffusers.
Sources: a ``.safetensors`` file, a folder or Hub repository holding one (``weight_name=`` picks it), or a state dict.

Refused with a ``ValueError`` naming the file, before any adapter is injected:

* a file that is empty, unreadable or holds no tensors; pickled weights (``.bin``/``.pt``: never unpickled);
* NaN or infinite values;
* a LoRA none of whose layers exists in this pipeline's transformer / connectors (made for another model), or whose
  ``lora_A`` / ``lora_B`` shapes do not fit the layers they target (made for a model of another size).

A missing local file is a :class:`~ltx2_diffusers.utils.paths.MissingFileError` (a ``FileNotFoundError``), never a
Hub lookup. Layers that match while others do not are loaded with a warning listing the others. Loading needs
``peft``: ``pip install peft`` (or ``pip install -e ".[lora]"`` in the package's source folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from diffusers.loaders import LTX2LoraLoaderMixin as _DiffusersLTX2LoraLoaderMixin
from diffusers.utils import logging

from ..utils.paths import MissingFileError

logger = logging.get_logger(__name__)

LORA_EXTRA_HINT = 'pip install peft (or pip install -e ".[lora]" in the ltx2_diffusers source folder)'
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".sft")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# the first key segment that belongs to the LoRA rather than to the layer it adapts
_LORA_PART = re.compile(r"^(lora|lokr|loha|hada|dora)|^alpha$")


# ----------------------------------------------------------------------------------------------------------------
# Checks of sources, values and keys: pure functions
# ----------------------------------------------------------------------------------------------------------------


def lora_source_name(source: Any) -> str:  # noqa: ANN401
    """How messages name a LoRA source."""
    if isinstance(source, dict):
        return "the LoRA state dict"
    return f"LoRA {str(source)!r}"


def looks_local(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a local path rather than a Hub repository id (``owner/name``)."""
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    if text.startswith(("/", "~", ".")) or "\\" in text or os.path.isabs(text):
        return True
    return text.lower().endswith(_WEIGHT_SUFFIXES) or not _HUB_ID.fullmatch(text)


def check_lora_source(
    source: Any, weight_name: str | None = None, use_safetensors: bool | None = None,  # noqa: ANN401
    subfolder: str | None = None,
) -> None:
    """Refuses pickled weights and missing local files before anything is read or downloaded."""
    if use_safetensors is False or (weight_name is not None and not str(weight_name).endswith(".safetensors")):
        raise ValueError(f"{lora_source_name(source)}: only .safetensors LoRA files are read (pickled .bin/.pt files "
                         f"are never unpickled); convert it to safetensors, got weight_name={weight_name!r}, "
                         f"use_safetensors={use_safetensors!r}.")
    if isinstance(source, dict):
        return
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"pass a LoRA as a .safetensors path, a folder, a Hub repository id or a state dict, got "
                         f"{type(source).__name__}.")
    path = Path(source).expanduser()
    if path.is_dir():
        if weight_name is not None and not (path / (subfolder or "") / weight_name).is_file():
            raise MissingFileError(f"LoRA folder {str(path / (subfolder or ''))!r} has no {weight_name!r}; pass the "
                                   f"weight_name of a .safetensors file in it.")
        return
    if path.is_file():
        if path.stat().st_size == 0:
            raise ValueError(f"LoRA file {str(path)!r} is empty (0 bytes); pass a complete .safetensors file.")
        return
    if looks_local(source):
        raise MissingFileError(f"LoRA file {str(path)!r} does not exist; pass an existing .safetensors file, a folder "
                               f"holding one, a Hub repository id or a state dict.")


def check_lora_values(state_dict: dict[str, Any], name: str) -> None:
    """``ValueError`` naming the LoRA if it holds no tensors, non-tensors, or NaN / infinite values."""
    if not state_dict:
        raise ValueError(f"{name} holds no tensors (an empty LoRA); pass a LoRA file with weights.")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name}: {key!r} is a {type(value).__name__}, not a tensor.")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: {key!r} holds NaN or infinite values; the LoRA is damaged (re-export or "
                             f"re-train it).")


def lora_layer_name(key: str) -> str:
    """``"to_q.lora_A.weight"`` -> ``"to_q"``: the adapted layer's name within its component."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        if _LORA_PART.match(part):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def _adaptable(module: torch.nn.Module) -> torch.nn.Module | None:
    """The plain layer a LoRA adapts (through PEFT's wrapper once an adapter is loaded), or ``None``."""
    base = getattr(module, "base_layer", module)
    return base if isinstance(base, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
                                     torch.nn.Embedding)) else None


def _shape_problem(key: str, value: torch.Tensor, layer: torch.nn.Module) -> str | None:
    if not isinstance(layer, torch.nn.Linear) or value.ndim != 2:
        return None
    if ".lora_A." in f".{key}" and value.shape[1] != layer.in_features:
        return f"{key!r} is {list(value.shape)} but the layer takes {layer.in_features} input features"
    if ".lora_B." in f".{key}" and value.shape[0] != layer.out_features:
        return f"{key!r} is {list(value.shape)} but the layer gives {layer.out_features} output features"
    return None


def match_lora_keys(
    state_dict: dict[str, torch.Tensor], components: dict[str, torch.nn.Module | None], name: str,
) -> list[str]:
    """Checks a diffusers-format LoRA (``<component>.<layer>.lora_...``) against the pipeline's components.

    Returns the keys whose layer does not exist; raises a ``ValueError`` naming the LoRA if none exists (a LoRA for
    another model) or if a ``lora_A`` / ``lora_B`` shape does not fit its layer (a model of another size).
    """
    unmatched = []
    for key, value in state_dict.items():
        prefix, _, rest = key.partition(".")
        component = components.get(prefix)
        layer = None
        if component is not None:
            try:
                layer = _adaptable(component.get_submodule(lora_layer_name(rest)))
            except AttributeError:
                layer = None
        if layer is None:
            unmatched.append(key)
            continue
        problem = _shape_problem(rest, value, layer)
        if problem:
            raise ValueError(f"{name} does not fit this pipeline's {prefix}: {problem} (a LoRA for a model of "
                             f"another size or version).")
    if unmatched and len(unmatched) == len(state_dict):
        raise ValueError(f"{name} has no weights for this pipeline: none of its {len(state_dict)} LoRA keys (e.g. "
                         f"{unmatched[0]!r}) names a layer of its {' or '.join(components)}. It was made for another "
                         f"model, or uses a key format not read here (diffusers `transformer.<layer>.lora_A.weight`, "
                         f"original / ComfyUI `diffusion_model.<layer>.lora_A.weight`).")
    return unmatched


def check_peft() -> None:
    """``ImportError`` naming the ``[lora]`` extra unless diffusers' PEFT backend is usable."""
    import diffusers.utils

    if not getattr(diffusers.utils, "USE_PEFT_BACKEND", False):
        raise ImportError(f"loading LoRAs needs the peft package (and a recent transformers): {LORA_EXTRA_HINT}.")


# ----------------------------------------------------------------------------------------------------------------
# The mixin
# ----------------------------------------------------------------------------------------------------------------


def _read_lora(source: Any, kwargs: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict | None]:  # noqa: ANN401
    """The raw (unconverted) tensors of a LoRA source and diffusers' adapter metadata, from safetensors only."""
    import safetensors
    from diffusers.loaders.lora_base import _fetch_state_dict

    name = lora_source_name(source)
    weight_name, use_safetensors = kwargs.pop("weight_name", None), kwargs.pop("use_safetensors", None)
    check_lora_source(source, weight_name, use_safetensors, kwargs.get("subfolder"))
    if isinstance(source, dict):
        return dict(source), None
    try:
        state_dict, metadata = _fetch_state_dict(
            pretrained_model_name_or_path_or_dict=str(Path(source).expanduser()) if looks_local(source) else source,
            weight_name=weight_name, use_safetensors=True, allow_pickle=False,
            local_files_only=kwargs.pop("local_files_only", None), cache_dir=kwargs.pop("cache_dir", None),
            force_download=kwargs.pop("force_download", False), proxies=kwargs.pop("proxies", None),
            token=kwargs.pop("token", None), revision=kwargs.pop("revision", None),
            subfolder=kwargs.pop("subfolder", None),
            user_agent={"file_type": "attn_procs_weights", "framework": "pytorch"},
        )
    except safetensors.SafetensorError as error:
        raise ValueError(f"{name} is not a readable .safetensors file ({error}); pass a complete safetensors "
                         f"LoRA.") from None
    except OSError as error:
        if Path(source).expanduser().is_dir():
            raise MissingFileError(f"{name} is a folder without a LoRA .safetensors file ({error}); pass the file "
                                   f"itself or weight_name=...") from None
        raise
    if kwargs:
        logger.debug("lora_state_dict ignores %s", sorted(kwargs))
    return state_dict, metadata


class LTX2LoraLoaderMixin(_DiffusersLTX2LoraLoaderMixin):
    """diffusers' LTX-2 LoRA loader (same methods and arguments) with the checks of this module's docstring."""

    @classmethod
    def lora_state_dict(
        cls, pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor], **kwargs: Any,  # noqa: ANN401
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict | None]:
        """A LoRA's tensors in diffusers' key format (``transformer.*`` / ``connectors.*``), checked for emptiness
        and non-finite values; ``return_lora_metadata=True`` also returns diffusers' adapter metadata."""
        return_metadata = kwargs.pop("return_lora_metadata", False)
        source = pretrained_model_name_or_path_or_dict
        state_dict, metadata = _read_lora(source, kwargs)
        check_lora_values(state_dict, lora_source_name(source))
        converted = super().lora_state_dict(state_dict)  # diffusers' original/ComfyUI -> diffusers key conversion
        return (converted, metadata) if return_metadata else converted

    def load_lora_weights(
        self,
        pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor],
        adapter_name: str | None = None,
        hotswap: bool = False,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        """Loads a LoRA into the transformer (and the connectors, if it has weights for them) as ``adapter_name``.

        Arguments as in diffusers' ``load_lora_weights``; the checks of :mod:`ltx2_diffusers.pipelines.lora` run
        before anything is injected.
        """
        check_peft()
        from diffusers.loaders.lora_pipeline import _LOW_CPU_MEM_USAGE_DEFAULT_LORA

        low_cpu_mem_usage = kwargs.pop("low_cpu_mem_usage", _LOW_CPU_MEM_USAGE_DEFAULT_LORA)
        source = pretrained_model_name_or_path_or_dict
        name = lora_source_name(source)
        state_dict, metadata = self.lora_state_dict(source, return_lora_metadata=True, **kwargs)
        not_lora = [key for key in state_dict if "lora" not in key]
        if not_lora:
            raise ValueError(f"{name} is not a LoRA: {not_lora[0]!r} (and {len(not_lora) - 1} more) has no 'lora' in "
                             f"its name.")
        components = {self.transformer_name: getattr(self, self.transformer_name, None),
                      self.connectors_name: getattr(self, self.connectors_name, None)}
        unmatched = match_lora_keys(state_dict, components, name)
        if unmatched:
            logger.warning("%s: %d of its %d keys name no layer of this pipeline and are ignored, e.g. %s", name,
                           len(unmatched), len(state_dict), ", ".join(unmatched[:5]))
        for component_name, component in components.items():
            part = {k: v for k, v in state_dict.items() if k.startswith(f"{component_name}.") and k not in unmatched}
            if part:
                self.load_lora_into_transformer(part, transformer=component, adapter_name=adapter_name,
                                                metadata=metadata, _pipeline=self, low_cpu_mem_usage=low_cpu_mem_usage,
                                                hotswap=hotswap, prefix=component_name)
