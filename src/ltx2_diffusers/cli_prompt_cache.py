"""``ltx2-diffusers generate --prompt-cache [DIR]``: prompt embeddings kept on disk, so that a run whose prompts are
all cached loads the pipeline without Gemma-3 (see :mod:`ltx2_diffusers.pipelines.prompt_cache`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .models.text_connectors_ltx2 import LTX2TextEmbeddings
from .pipelines.prompt_cache import DiskPromptCache, default_prompt_cache_dir, folder_text_identity, variant_identity
from .pipelines.text_encoding import check_prompts

DEFAULT = "default"


def prompt_cache_dir(value: str | None) -> Path | None:
    """``--prompt-cache``'s value: ``None`` (off), ``"default"`` (under the Hugging Face cache) or a folder."""
    if value is None:
        return None
    path = default_prompt_cache_dir() if value == DEFAULT else Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--prompt-cache {value}: {path} is a file; pass a folder (or no value for the default "
                         f"{default_prompt_cache_dir()}).")
    return path


def local_folder(model: str) -> Path | None:
    """The local folder of ``--model``: the folder itself, or a Hub id's snapshot already in the local cache."""
    if Path(model).is_dir():
        return Path(model)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - not downloaded yet: the identity is read after the load
        return None


def disk_cache(folder: Path, directory: Path, dtype: torch.dtype, int8: bool) -> DiskPromptCache:
    """The cache of ``folder``'s text stack run in ``dtype`` (what ``pipe.enable_prompt_cache`` then uses)."""
    return DiskPromptCache(directory, variant_identity(folder_text_identity(folder), dtype, dtype, int8))


def cached_embeddings(
    cache: DiskPromptCache, widths: tuple[int, int], prompt: str, negative_prompts: list[str] | None,
    max_sequence_length: int,
) -> tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None] | None:
    """Both prompts' embeddings ``[1, T, D]`` when every one is cached and sound, else ``None``."""
    prompts = check_prompts(prompt) + (check_prompts(negative_prompts) if negative_prompts else [])
    found = [cache.load(p, max_sequence_length, widths) for p in prompts]
    if any(value is None for value in found):
        return None
    rows = [LTX2TextEmbeddings(*(t.unsqueeze(0) for t in value)) for value in found]
    return rows[0], (rows[1] if len(rows) > 1 else None)


def connector_widths(folder: Path) -> tuple[int, int]:
    """The ``(video, audio)`` embedding widths of ``folder``'s connectors, from their config alone."""
    from .models.text_connectors_ltx2 import LTX2TextConnectors

    with torch.device("meta"):
        connectors = LTX2TextConnectors.from_config(LTX2TextConnectors.load_config(folder / "connectors"))
    return connectors.embedding_dims


def open_prompt_cache(value: str | None, model: str, dtype: torch.dtype, int8: bool, say: Callable[[str], None]
                      ) -> DiskPromptCache | None:
    """The disk prompt cache of ``--prompt-cache`` for a local folder (or a Hub id already downloaded), else
    ``None``."""
    directory = prompt_cache_dir(value)
    folder = None if directory is None else local_folder(model)
    if folder is None:
        if directory is not None:
            say(f"prompt cache: {model} is not downloaded yet, so its text identity cannot be read; this run does "
                f"not use the prompt cache (the next one will)")
        return None
    return disk_cache(folder, directory, dtype, int8)
