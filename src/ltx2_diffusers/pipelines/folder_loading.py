"""Strict loading of a pipeline folder (saved by this package or by diffusers) onto this package's classes.

``LTX2AudioVideoPipeline.from_pretrained`` calls :func:`load_pipeline_components`, which, for each component the
folder's ``model_index.json`` lists:

* resolves the class: the folder's diffusers class name (``LTX2VideoTransformer3DModel``, ...) or our own maps onto
  the pipeline's ``_component_classes`` entry (a class, or a tuple of classes told apart by the folder's class name);
  the scheduler becomes an ``LTX2Scheduler`` with the same schedule;
* checks the ``config.json`` against the class (JSON types, finite numbers) and the weights against the config from
  the safetensors headers alone (every tensor present, none extra, every shape right) before reading any tensor;
* loads with ``from_pretrained`` in the component's dtype (``torch_dtype`` / ``dtype``: one dtype, or a dict by
  component name with ``"default"``), and refuses a load that reports missing or unexpected keys or leaves a parameter
  on the meta device. The Gemma-3 text encoder and tokenizer load with transformers, under the same checks.

Safetensors only by default: pickled ``.bin`` files are never opened; ``use_safetensors=False`` allows them for the
components that have no safetensors weights (diffusers' ``False`` reads only pickles; ours still prefers
safetensors). Every failure is a :class:`FolderLoadError` (a ``ValueError``) naming the subfolder or file; a local
path that does not exist is a :class:`~ltx2_diffusers.utils.paths.MissingFolderError`, never a Hub lookup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging

from ..models.strict_loading import WeightLoadError, loading_problems
from ..utils.paths import existing_folder
from .config_checks import config_problems
from .folder_format import DIFFUSERS_CLASSES
from .weight_files import (
    DIFFUSERS_STEM,
    TRANSFORMERS_STEM,
    FolderLoadError,
    has_safetensors,
    has_variant,
    header_shapes,
    read_json,
    safetensors_files,
    shown,
    weight_problems,
)

logger = logging.get_logger(__name__)
# where diffusers' DiffusionPipeline.from_pretrained reports each loaded component (at INFO)
DIFFUSERS_LOADING_LOG = logging.get_logger("diffusers.pipelines.pipeline_utils")
# may be None in a folder or a call: a pipeline without them takes prompt embeddings
TEXT_COMPONENTS = ("text_encoder", "tokenizer")

DOWNLOAD_KEYS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision")
LOAD_KEYS = ("torch_dtype", "dtype", "variant", "use_safetensors", "low_cpu_mem_usage")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# ----------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------


def component_dtypes(torch_dtype: Any, dtype: Any, names: list[str]) -> dict[str, torch.dtype | None]:  # noqa: ANN401
    """The dtype each component loads in, as diffusers resolves it: one ``torch.dtype`` for all, or a dict by
    component name whose ``"default"`` (else float32) covers the others; ``None``: the saved dtype."""
    if torch_dtype is not None and dtype is not None:
        raise ValueError("Pass either `dtype` or `torch_dtype` (its older name), not both.")
    value = dtype if dtype is not None else torch_dtype
    if value is None or isinstance(value, torch.dtype):
        return dict.fromkeys(names, value)
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in (*names, "default"))
        wrong = sorted(f"{k}={v!r}" for k, v in value.items() if not isinstance(v, torch.dtype))
        if unknown or wrong:
            problems = ([f"unknown component(s) {unknown}"] if unknown else []) + (
                [f"not torch dtypes: {', '.join(wrong)}"] if wrong else [])
            raise ValueError(f"torch_dtype dict: {'; '.join(problems)}. Map component names from {names} (or "
                             f"'default') to torch dtypes, e.g. {{'transformer': torch.bfloat16, 'default': "
                             f"torch.float32}}.")
        default = value.get("default", torch.float32)
        return {name: value.get(name, default) for name in names}
    raise ValueError(f"torch_dtype must be a torch.dtype (e.g. torch.bfloat16) or a dict of them by component name, "
                     f"got {value!r}.")


def check_load_kwargs(kwargs: Mapping[str, Any], component_names: list[str]) -> None:
    """Keyword arguments ``from_pretrained`` does not take are refused by name (diffusers would ignore them)."""
    unknown = sorted(set(kwargs) - set(DOWNLOAD_KEYS) - set(LOAD_KEYS) - set(component_names))
    if unknown:
        raise ValueError(f"LTX2AudioVideoPipeline.from_pretrained does not take {unknown}. It takes components by "
                         f"name ({', '.join(component_names)}), {', '.join(LOAD_KEYS)} and the Hub download options "
                         f"({', '.join(DOWNLOAD_KEYS)}); to load a component with other options "
                         f"(quantization_config, ...), load it with its own from_pretrained and pass it by name.")
    use_safetensors = kwargs.get("use_safetensors")
    if use_safetensors is not None and not isinstance(use_safetensors, bool):
        raise ValueError(f"use_safetensors must be True, False or None, got {use_safetensors!r}.")
    variant = kwargs.get("variant")
    if variant is not None and (not isinstance(variant, str) or not re.fullmatch(r"[\w-]+", variant)):
        raise ValueError(f"variant must be a name such as 'fp16' or 'bf16', got {variant!r}.")


def single_device_map(device_map: Any) -> torch.device | None:  # noqa: ANN401
    """``device_map`` as diffusers' pipelines take it for one device (``"cuda"``, ``"cuda:1"``, ``"cpu"``, an index or
    a ``torch.device``): the device every component goes to after loading. Maps that spread a pipeline over several
    devices are refused with what to use instead."""
    if device_map is None:
        return None
    one_device = isinstance(device_map, (str, torch.device))
    if one_device or (isinstance(device_map, int) and not isinstance(device_map, bool)):
        try:
            device = torch.device(device_map)
        except (RuntimeError, TypeError, ValueError):
            device = None
        if device is not None:
            if device.type != "cpu" and not getattr(torch, device.type).is_available():
                raise ValueError(f"device_map={device_map!r}: this machine has no {device.type} device; pass "
                                 f"device_map='cpu' or leave it out.")
            return device
    raise ValueError(f"device_map must name one device ('cuda', 'cuda:1', 'cpu' or an index), got {device_map!r}; "
                     f"to spread the pipeline over devices or keep it off the accelerator between uses, load it "
                     f"and call enable_model_cpu_offload() or enable_group_offload().")


def _looks_local(path: str | os.PathLike) -> bool:
    """A path, not a Hub id: a ``Path`` object, or a string that cannot be a Hub id (``./x``, ``/x``, ``~/x``,
    ``a/b/c``, ``C:\\x``)."""
    if not isinstance(path, str):
        return True
    return path.startswith((".", "/", "~")) or "\\" in path or os.path.isabs(path) or not HUB_ID.match(path)


def resolve_folder(pipeline_class: type, path: str | os.PathLike, kwargs: Mapping[str, Any]) -> Path:
    """The local folder to load: ``path`` itself, or the Hub snapshot of a repo id (downloaded with the download
    options). A local path that does not exist is a ``MissingFolderError`` naming it (with the closest sibling)."""
    local = Path(os.path.expanduser(os.fspath(path)))
    if local.is_dir() or local.exists() or _looks_local(path):
        return existing_folder(local, "pipeline folder", " (a folder with model_index.json, e.g. written by "
                                                         "`ltx2-diffusers convert` or save_pretrained)")
    options = {k: kwargs[k] for k in (*DOWNLOAD_KEYS, "variant") if k in kwargs}
    options["use_safetensors"] = kwargs.get("use_safetensors") is not False  # pickles only when asked for
    return Path(pipeline_class.download(os.fspath(path), **options))


def read_model_index(folder: Path) -> dict[str, Any]:
    """``model_index.json``, with every component entry a ``[library, class]`` pair of strings or nulls."""
    index = read_json(folder / "model_index.json", "model index (model_index.json)")
    for name, entry in index.items():
        if name.startswith("_"):
            continue
        valid = isinstance(entry, (list, tuple)) and len(entry) == 2 and (
            all(isinstance(e, str) for e in entry) or all(e is None for e in entry))
        if not valid:
            raise FolderLoadError(f"{folder / 'model_index.json'}: entry {name!r} must be [library, class] (or [null, "
                                  f"null]), got {entry!r}.")
    return index


def check_variant(folder: Path, index: Mapping[str, Any], variant: str | None) -> set[str]:
    """The components that have files of ``variant`` (they load it; the others load their default files); none at
    all is diffusers' ``ValueError``."""
    if variant is None:
        return set()
    having = {name for name in index if not name.startswith("_") and has_variant(folder / name, variant)}
    if not having:
        raise ValueError(f"You are trying to load the model files of the `variant={variant}`, but no such modeling "
                         f"files are available (no {variant} files in any subfolder of {folder}); drop `variant` or "
                         f"pass one the folder has.")
    return having


# ----------------------------------------------------------------------------------------------------------------
# Classes
# ----------------------------------------------------------------------------------------------------------------


def candidate_classes(pipeline_class: type, name: str) -> tuple[type, ...]:
    classes = pipeline_class._component_classes[name]
    return classes if isinstance(classes, tuple) else (classes,)


def folder_component_class(pipeline_class: type, name: str, entry: list[Any], where: Path | str = "") -> type:
    """Our class for a folder's ``[library, class]`` entry of component ``name``: the candidate whose own name, or
    whose diffusers name, the folder gives."""
    class_name = entry[1]
    for cls in candidate_classes(pipeline_class, name):
        if class_name in (cls.__name__, DIFFUSERS_CLASSES.get(cls.__name__, (None, None))[1],
                          *getattr(cls, "_former_names", ())):
            return cls
    known = [n for cls in candidate_classes(pipeline_class, name)
             for n in (cls.__name__, DIFFUSERS_CLASSES.get(cls.__name__, (None, cls.__name__))[1])]
    raise FolderLoadError(f"{where or name}: the folder's {name} is a {entry[0]}.{class_name}, which this package "
                          f"cannot load as its {name} (it loads {sorted(set(known))}).")


# ----------------------------------------------------------------------------------------------------------------
# Loading one component
# ----------------------------------------------------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _check_loaded(model: torch.nn.Module, info: Mapping[str, Any], where: Path) -> None:
    """A loaded model with every tensor from the checkpoint: nothing missing, unexpected or mismatched, nothing left
    on the meta device."""
    problems = loading_problems(model, info)
    if problems:
        raise FolderLoadError(f"{where}: the weights do not load strictly ({'; '.join(problems)}). Re-download or "
                              f"re-save the folder.")


def meta_model(subfolder: Path, model_class: type) -> torch.nn.Module:
    """``model_class`` built on the meta device from ``subfolder/config.json`` (no memory, no weights), after checking
    the config's values against the class; any failure is a :class:`FolderLoadError` naming the file."""
    if not subfolder.is_dir():
        raise FolderLoadError(f"{subfolder} does not exist, but model_index.json lists it: the folder is incomplete. "
                              f"Re-download or re-save the folder.")
    config_file = subfolder / "config.json"
    config = read_json(config_file, f"{subfolder.name} config")
    problems = config_problems(config, model_class)
    if problems:
        raise FolderLoadError(f"{config_file}: values that do not fit {model_class.__name__}: {shown(problems, 4)}.")
    try:
        with torch.device("meta"):
            return model_class.from_config(config)
    except Exception as error:  # whatever the constructor raises for an impossible combination of values
        raise FolderLoadError(f"{config_file} does not describe a valid {model_class.__name__} "
                              f"({type(error).__name__}: {_one_line(error)}).") from error


def _reads_safetensors(subfolder: Path, stem: str, variant: str | None, use_safetensors: bool | None) -> bool:
    """Safetensors always, unless the caller allows pickles (``use_safetensors=False``) and the subfolder has none."""
    return use_safetensors is not False or has_safetensors(subfolder, stem, variant)


def load_model(subfolder: Path, model_class: type, dtype: torch.dtype | None, variant: str | None,
               use_safetensors: bool | None, low_cpu_mem_usage: bool | None = None) -> torch.nn.Module:
    """One ``ModelMixin`` component, config and weights checked before any tensor is read, then loaded strictly."""
    expected = {k: tuple(v.shape) for k, v in meta_model(subfolder, model_class).state_dict().items()}
    safe = _reads_safetensors(subfolder, DIFFUSERS_STEM, variant, use_safetensors)
    if safe:
        problems = weight_problems(expected, header_shapes(safetensors_files(subfolder, DIFFUSERS_STEM, variant)))
        if problems:
            raise FolderLoadError(f"{subfolder}: the weights do not match config.json ({'; '.join(problems)}). "
                                  f"Re-download or re-save the folder, or fix its config.")
    options: dict[str, Any] = dict(variant=variant, use_safetensors=safe, output_loading_info=True)
    if dtype is not None:
        options["dtype"] = dtype
    if low_cpu_mem_usage is not None:
        options["low_cpu_mem_usage"] = low_cpu_mem_usage
    try:
        model, info = model_class.from_pretrained(subfolder, **options)
    except WeightLoadError as error:
        raise FolderLoadError(str(error)) from error
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as error:
        if "out of memory" in str(error).lower():
            raise
        raise FolderLoadError(f"{subfolder} cannot be loaded as {model_class.__name__}: {_one_line(error)}") from error
    _check_loaded(model, info, subfolder)
    return model.eval()


def load_transformers_component(subfolder: Path, class_name: str, dtype: torch.dtype | None, variant: str | None,
                                use_safetensors: bool | None) -> Any:  # noqa: ANN401
    """A transformers model (the text encoder, checked like our models) or tokenizer, by its folder class name."""
    import transformers

    if not subfolder.is_dir():
        raise FolderLoadError(f"{subfolder} does not exist, but model_index.json lists it: the folder is incomplete. "
                              f"Re-download the folder (or pass the component by name).")
    cls = getattr(transformers, class_name, None)
    if cls is None and "Tokenizer" in class_name:
        cls = transformers.AutoTokenizer  # e.g. a "...TokenizerFast" name that this transformers version merged
    if cls is None:
        raise FolderLoadError(f"{subfolder}: transformers {transformers.__version__} has no class {class_name!r} "
                              f"(named in model_index.json).")
    is_model = isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)
    options: dict[str, Any] = {}
    if is_model:
        read_json(subfolder / "config.json", f"{subfolder.name} config")
        safe = _reads_safetensors(subfolder, TRANSFORMERS_STEM, variant, use_safetensors)
        if safe:
            header_shapes(safetensors_files(subfolder, TRANSFORMERS_STEM, variant))  # readable, not pickled
        options = dict(use_safetensors=safe, output_loading_info=True)
        if variant is not None:
            options["variant"] = variant
        if dtype is not None:
            options["dtype" if _transformers_takes_dtype() else "torch_dtype"] = dtype
    try:
        loaded = cls.from_pretrained(subfolder, **options)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as error:
        if "out of memory" in str(error).lower():
            raise
        raise FolderLoadError(f"{subfolder} cannot be loaded as {class_name}: {_one_line(error)}") from error
    if not is_model:
        return loaded
    model, info = loaded
    _check_loaded(model, info, subfolder)
    return model.eval()


def _transformers_takes_dtype() -> bool:
    from diffusers.utils import is_transformers_version

    return is_transformers_version(">=", "4.56.0")  # older versions call it torch_dtype


# ----------------------------------------------------------------------------------------------------------------
# The whole folder
# ----------------------------------------------------------------------------------------------------------------


def load_pipeline_components(pipeline_class: type, path: str | os.PathLike, kwargs: dict[str, Any]
                             ) -> dict[str, Any]:
    """Every component of ``pipeline_class`` for the folder (or Hub repo) ``path``: the ones passed in ``kwargs``
    as they are, the others loaded strictly from their subfolders (see the module docstring)."""
    from ..schedulers.flow_match_config import scheduler_from_config

    names = list(pipeline_class._component_classes) + [n for n in ("text_encoder", "tokenizer")
                                                         if n not in pipeline_class._component_classes]
    check_load_kwargs(kwargs, names)
    dtypes = component_dtypes(kwargs.get("torch_dtype"), kwargs.get("dtype"), names)
    folder = resolve_folder(pipeline_class, path, kwargs)
    index = read_model_index(folder)
    unlisted_upsampler = folder / "latent_upsampler" / "config.json"
    if "latent_upsampler" not in index and "latent_upsampler" in names and unlisted_upsampler.is_file():
        index["latent_upsampler"] = ["ltx2", read_json(unlisted_upsampler, "upsampler config").get("_class_name")]
        logger.info("latent_upsampler: loading the folder's latent_upsampler/, which model_index.json does not list.")
    variant, use_safetensors = kwargs.get("variant"), kwargs.get("use_safetensors")
    with_variant = check_variant(folder, index, variant)

    components: dict[str, Any] = {}
    for name in names:
        entry = index.get(name)
        if name in kwargs:
            components[name] = kwargs[name]
        elif entry is None or entry[0] is None:
            components[name] = None
        elif name == "scheduler":
            config_file = folder / name / "scheduler_config.json"
            try:
                components[name] = scheduler_from_config(read_json(config_file, "scheduler config"), entry[1])
            except FolderLoadError:
                raise
            except ValueError as error:
                raise FolderLoadError(f"{config_file}: {_one_line(error)}") from error
        elif name in pipeline_class._component_classes:
            model_class = folder_component_class(pipeline_class, name, entry, folder / "model_index.json")
            components[name] = load_model(folder / name, model_class, dtypes[name],
                                          variant if name in with_variant else None, use_safetensors,
                                          kwargs.get("low_cpu_mem_usage"))
        elif entry[0] == "transformers":
            components[name] = load_transformers_component(folder / name, entry[1], dtypes[name],
                                                           variant if name in with_variant else None, use_safetensors)
        else:
            raise FolderLoadError(f"{folder / 'model_index.json'}: {name} is a {entry[0]}.{entry[1]}; this package "
                                  f"loads it with transformers only (or pass {name}=... yourself).")
        if components[name] is not None and name not in kwargs:  # diffusers' log line, on diffusers' logger
            DIFFUSERS_LOADING_LOG.info("Loaded %s as %s from `%s` subfolder of %s.", name,
                                       type(components[name]).__name__, name, path)
    optional = set(pipeline_class._optional_components) | set(TEXT_COMPONENTS)
    missing = [n for n in names if components[n] is None and n not in optional]
    if missing:
        raise FolderLoadError(f"{folder / 'model_index.json'} lists no {', '.join(missing)} (or None was passed): an "
                              f"LTX-2 pipeline needs {', '.join(n for n in names if n not in optional)} (pass missing "
                              f"ones by name).")
    return components


__all__ = [
    "FolderLoadError",
    "component_dtypes",
    "folder_component_class",
    "load_model",
    "load_pipeline_components",
    "load_transformers_component",
    "meta_model",
    "read_model_index",
    "resolve_folder",
    "single_device_map",
]
