"""The weight files of one component subfolder, found by the names diffusers and transformers write, and checked from
their safetensors headers alone (names, shapes, readability) before any tensor is read. Pickled ``.bin`` files are
only ever named here, never opened.

Naming (both libraries): ``<stem>.safetensors`` or a ``<stem>.safetensors.index.json`` listing shards, a variant
inserted before the extension (``<stem>.fp16.safetensors``, ``<stem>.safetensors.index.fp16.json``); the stem is
``diffusion_pytorch_model`` for diffusers models and ``model`` for transformers models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DIFFUSERS_STEM, TRANSFORMERS_STEM = "diffusion_pytorch_model", "model"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class FolderLoadError(ValueError):
    """A pipeline folder, or one of its files, cannot be loaded: a missing subfolder or file, a corrupt or truncated
    file, invalid JSON, a config that does not fit its class, or weights that do not match their config. The message
    names the file or subfolder."""


def shown(items: list[str], limit: int = 5) -> str:
    """The first ``limit`` items, and how many there are in all when more."""
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def with_variant(name: str, variant: str | None) -> str:
    """``diffusion_pytorch_model.safetensors`` -> ``diffusion_pytorch_model.fp16.safetensors`` (diffusers' rule)."""
    if not variant:
        return name
    parts = name.split(".")
    return ".".join([*parts[:-1], variant, parts[-1]])


def has_variant(subfolder: Path, variant: str) -> bool:
    """Whether ``subfolder`` holds a file of ``variant`` (``<stem>.<variant>.*`` or a ``<stem>.<variant>-000..``
    shard), the test diffusers uses to choose which components load a variant."""
    if not subfolder.is_dir():
        return False
    for path in subfolder.iterdir():
        parts = path.name.split(".")
        if len(parts) > 2 and (parts[1] == variant or parts[1].startswith(f"{variant}-")
                               or (parts[-2] == variant and parts[-1] == "json")):
            return True
    return False


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a :class:`FolderLoadError`."""
    if not path.is_file():
        raise FolderLoadError(f"{path} does not exist: the folder has no {what}. Re-download or re-save the folder.")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FolderLoadError(f"{path} is not valid JSON ({error}): the {what} is damaged. Re-download or re-save "
                              f"the folder.") from error
    if not isinstance(value, dict):
        raise FolderLoadError(f"{path} must hold a JSON object (the {what}), got {type(value).__name__}.")
    return value


def has_safetensors(subfolder: Path, stem: str, variant: str | None = None) -> bool:
    """Whether ``subfolder`` holds ``stem``'s safetensors weights (a single file or a shard index)."""
    return any((subfolder / with_variant(name, variant)).is_file()
               for name in (f"{stem}.safetensors", f"{stem}.safetensors.index.json"))


def safetensors_files(subfolder: Path, stem: str, variant: str | None = None) -> list[Path]:
    """The safetensors files ``from_pretrained`` reads for ``subfolder``: the shards its index lists (each must exist)
    or the single file. None: a :class:`FolderLoadError` saying what is there instead (pickles are refused)."""
    index = subfolder / with_variant(f"{stem}.safetensors.index.json", variant)
    single = subfolder / with_variant(f"{stem}.safetensors", variant)
    if index.is_file():
        weight_map = read_json(index, "shard index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise FolderLoadError(f"{index} has no valid 'weight_map' (tensor name -> shard file).")
        shards = [subfolder / name for name in sorted(set(weight_map.values()))]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise FolderLoadError(f"{subfolder}: shard(s) {shown(missing)} listed in {index.name} are missing. "
                                  f"Re-download the folder.")
        return shards
    if single.is_file():
        return [single]
    pickles = sorted(p.name for p in subfolder.iterdir() if p.suffix in PICKLE_SUFFIXES) if subfolder.is_dir() else []
    if pickles:
        raise FolderLoadError(f"{subfolder} holds only pickled weights ({shown(pickles)}), which are not read by "
                              f"default because unpickling can run code. Convert them to safetensors, or pass "
                              f"use_safetensors=False if you trust these files.")
    raise FolderLoadError(f"{subfolder} holds no {single.name} (nor {index.name}): the weights are missing. "
                          f"Re-download or re-save the folder.")


def header_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape over all ``files``, from the headers only; an unreadable file or a tensor stored twice is
    a :class:`FolderLoadError` naming the file."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                found = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own SafetensorError (header too large, incomplete, ...)
            raise FolderLoadError(f"{path} is not a readable safetensors file (truncated or corrupt? safetensors "
                                  f"says: {error}). Re-download or re-save the folder.") from error
        twice = sorted(set(found) & set(shapes))
        if twice:
            raise FolderLoadError(f"{path}: tensor(s) {shown(twice)} are also stored in another shard.")
        shapes.update(found)
    return shapes


def weight_problems(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> list[str]:
    """What keeps ``found`` (checkpoint names and shapes) from loading strictly into ``expected`` (the model's):
    missing tensors, unexpected tensors and shape mismatches, the first few of each; empty when they match."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [f"{k} {list(found[k])} (model: {list(expected[k])})" for k in sorted(set(expected) & set(found))
                  if tuple(found[k]) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {shown(missing, 3)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {shown(unexpected, 3)}")
    if mismatched:
        problems.append(f"{len(mismatched)} of another shape: {shown(mismatched, 3)}")
    return problems


__all__ = ["DIFFUSERS_STEM", "FolderLoadError", "TRANSFORMERS_STEM", "has_safetensors", "has_variant", "header_shapes",
           "read_json",
           "safetensors_files", "shown", "weight_problems", "with_variant"]
