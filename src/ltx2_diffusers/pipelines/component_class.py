"""Which of this package's classes loads each component of a pipeline folder (saved by this package or by
diffusers), and diffusers' type warning for the components mapped that way."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from diffusers.utils import logging

# diffusers' logger that warns (with the whole module's repr) about components passed for a folder entry that names
# one of its pipeline modules (e.g. ["ltx2", "LTX2VocoderWithBWE"]): it cannot check their type
DIFFUSERS_LOADING_LOGGER = "diffusers.pipelines.pipeline_loading_utils"


def class_for_component(name: str, candidates: type | tuple[type, ...], folder: str | os.PathLike,
                        entry: Sequence[Any] | None = None) -> type:
    """The class among ``candidates`` that loads the component ``name`` of ``folder``: the only one, else the one
    the folder's ``model_index.json`` entry ``entry`` names, else the one ``<name>/config.json``'s ``_class_name``
    names; a ``ValueError`` when neither names one of them."""
    if not isinstance(candidates, tuple):
        return candidates
    by_name = {c.__name__: c for c in candidates}
    listed = entry[1] if entry is not None and len(entry) > 1 else None
    if listed in by_name:
        return by_name[listed]
    config_file = Path(folder) / name / "config.json"
    stated = json.loads(config_file.read_text()).get("_class_name") if config_file.is_file() else None
    if stated in by_name:
        return by_name[stated]
    raise ValueError(f"{folder}: the {name} is a {listed or stated!r} (model_index.json / {name}/config.json); "
                     f"this package loads a {name} as one of {sorted(by_name)}.")


@contextmanager
def quiet_type_warnings(enabled: bool = True) -> Iterator[None]:
    """Silences diffusers' "cannot verify whether it has the correct type" warning for the block (``enabled``): the
    components it concerns were mapped onto this package's classes on purpose."""
    loading_logger = logging.get_logger(DIFFUSERS_LOADING_LOGGER)
    level = loading_logger.level
    if enabled:
        loading_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        loading_logger.setLevel(level)
