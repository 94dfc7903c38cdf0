"""The pipeline-folder format this package writes: diffusers' own LTX-2 layout, so a folder loads unchanged in
diffusers (``DiffusionPipeline.from_pretrained``, ``LTX2Pipeline.from_pretrained``) and in this package.

* ``model_index.json`` names diffusers' pipeline class (``LTX2Pipeline``) and, for each component, the diffusers
  class (library, class) that diffusers itself writes for it (:data:`DIFFUSERS_CLASSES`); the text encoder and
  tokenizer keep their transformers classes. The optional ``latent_upsampler`` is listed when present (diffusers'
  ``LTX2Pipeline`` does not take it and loads the folder without it, with a warning); it is left out when absent.
* each model subfolder's ``config.json`` carries diffusers' ``_class_name`` (same keys, same meanings, same parameter
  names: the weights are not touched);
* ``scheduler/scheduler_config.json`` is a ``FlowMatchEulerDiscreteScheduler`` config giving the same σ list in both
  libraries (:func:`~ltx2_diffusers.schedulers.flow_match_config.flow_match_config`).

:func:`write_folder_format` is the one writer: ``LTX2AudioVideoPipeline.save_pretrained`` and the checkpoint converter
both call it after saving the components.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PIPELINE_CLASS = "LTX2Pipeline"

# our class name -> (library, class) that diffusers writes in model_index.json for the same component. Extend it when
# a component gains a class (e.g. a vocoder variant): reading maps the same names back (see `folder_loading`).
DIFFUSERS_CLASSES: dict[str, tuple[str, str]] = {
    "LTX2VideoTransformer3DModel": ("diffusers", "LTX2VideoTransformer3DModel"),
    "LTX2VideoAutoencoder": ("diffusers", "AutoencoderKLLTX2Video"),
    "LTX2AudioAutoencoder": ("diffusers", "AutoencoderKLLTX2Audio"),
    "LTX2TextConnectors": ("ltx2", "LTX2TextConnectors"),
    "LTX2Vocoder": ("ltx2", "LTX2Vocoder"),
    "LTX2VocoderWithBWE": ("ltx2", "LTX2VocoderWithBWE"),
    "LTX2LatentUpsampler": ("ltx2", "LTX2LatentUpsamplerModel"),
    "LTX2Scheduler": ("diffusers", "FlowMatchEulerDiscreteScheduler"),
}

# components diffusers' LTX2Pipeline does not take: listed only when present, so diffusers has nothing to warn about
LISTED_ONLY_WHEN_PRESENT = ("latent_upsampler",)


def index_entry(component: Any) -> list[str | None]:  # noqa: ANN401
    """The ``[library, class]`` of a component (an object, a class, a ``(library, class)`` pair or ``None``) as
    diffusers writes it: our classes by their diffusers names, others by their top-level library."""
    if component is None:
        return [None, None]
    if isinstance(component, (tuple, list)):
        return [component[0], component[1]]
    cls = component if isinstance(component, type) else type(component)
    if cls.__name__ in DIFFUSERS_CLASSES:
        return list(DIFFUSERS_CLASSES[cls.__name__])
    module = cls.__module__.split(".")
    library = module[2] if module[:2] == ["diffusers", "pipelines"] and len(module) > 2 else module[0]
    return [library, cls.__name__]


def model_index(components: Mapping[str, Any]) -> dict[str, Any]:
    """``model_index.json`` for ``components`` (name -> object, class, ``(library, class)`` or ``None``)."""
    import diffusers

    index: dict[str, Any] = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
    for name in sorted(components):
        if components[name] is None and name in LISTED_ONLY_WHEN_PRESENT:
            continue
        index[name] = index_entry(components[name])
    return index


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_folder_format(folder: str | os.PathLike, components: Mapping[str, Any]) -> None:
    """Writes ``model_index.json`` and ``scheduler/scheduler_config.json`` in diffusers' format and sets diffusers'
    ``_class_name`` in every saved model's ``config.json``, in a folder whose components are already saved.

    ``components``: name -> the component object (or its class, or a ``(library, class)`` pair, or ``None``); the
    ``scheduler`` must be an :class:`~ltx2_diffusers.LTX2Scheduler` object.
    """
    from ..schedulers.flow_match_config import as_ltx2_scheduler, flow_match_config

    folder = Path(folder)
    _write_json(folder / "model_index.json", model_index(components))
    scheduler = components.get("scheduler")
    if scheduler is not None:
        (folder / "scheduler").mkdir(exist_ok=True)
        _write_json(folder / "scheduler" / "scheduler_config.json", flow_match_config(as_ltx2_scheduler(scheduler)))
    for name, component in components.items():
        config_file = folder / name / "config.json"
        if name == "scheduler" or component is None or not config_file.is_file():
            continue
        library, class_name = index_entry(component)
        if library in ("diffusers", "ltx2"):
            config = json.loads(config_file.read_text(encoding="utf-8"))
            if config.get("_class_name") != class_name:
                _write_json(config_file, {**config, "_class_name": class_name})


__all__ = ["DIFFUSERS_CLASSES", "LISTED_ONLY_WHEN_PRESENT", "PIPELINE_CLASS", "index_entry", "model_index",
           "write_folder_format"]
