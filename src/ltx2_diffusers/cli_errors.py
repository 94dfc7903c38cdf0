"""Failures of ``ltx2-diffusers generate`` mapped to actionable one-line messages and exit codes (pure functions,
tested without a GPU): a gated, missing, incomplete or damaged model (above all the Gemma-3 text encoder), running
out of memory, and failed file operations."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import NoReturn

import torch

BAD_ARGUMENTS, FAILED, INTERRUPTED = 2, 1, 130

LOGIN_HINT = ("accept the licence on the gated repository's Hub page (LTX-2's text encoder is Google's Gemma-3: "
              "https://huggingface.co/google/gemma-3-12b-it), then log in with `hf auth login` (formerly "
              "`huggingface-cli login`) or set HF_TOKEN")


class GenerateError(Exception):
    """A failure with an actionable message (exit code 1): the model cannot be loaded, or memory ran out."""


# ----------------------------------------------------------------------------------------------------------------
# Failures -> messages (pure, testable)
# ----------------------------------------------------------------------------------------------------------------


def one_line(text: object) -> str:
    """``text`` with its lines joined by spaces (an error message is one line on stderr)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def one_line_parser_errors(parser: argparse.ArgumentParser) -> None:
    """Makes ``parser`` report a bad argument as one line (``prog: error: ... (see --help)``, exit 2) instead of the
    usage block plus the error."""

    def error(message: str) -> NoReturn:
        parser.exit(BAD_ARGUMENTS, f"{parser.prog}: error: {one_line(message)} (see --help)\n")

    parser.error = error  # type: ignore[method-assign]


def failure(error: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for what stopped a generation once its arguments were accepted: 1 for failed
    work (a model or file that cannot be loaded, a full disk, running out of memory, anything else), 130 for an
    interruption."""
    from .pipelines.weight_files import FolderLoadError

    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED, "interrupted."
    message = oom_message(error)
    if message is not None:
        return FAILED, one_line(message)
    if isinstance(error, (GenerateError, FolderLoadError)):
        return FAILED, one_line(error)
    if isinstance(error, OSError) and not isinstance(error, ValueError):
        detail = error.strerror or str(error) or type(error).__name__
        where = f": {error.filename}" if error.filename else ""
        return FAILED, one_line(f"{detail}{where}")
    if isinstance(error, ValueError):
        return FAILED, one_line(error)
    return FAILED, one_line(f"{type(error).__name__}: {error} (rerun with --debug for the traceback)")


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes / contexts (transformers and diffusers wrap hub errors in ``OSError``)."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _hub_error(name: str) -> type[BaseException] | None:
    try:
        from huggingface_hub import errors
    except ImportError:  # very old huggingface_hub
        return None
    return getattr(errors, name, None)


def _weights_in(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix in (".safetensors", ".bin", ".pt", ".gguf") for p in folder.rglob("*"))


def missing_components(folder: str | os.PathLike) -> list[str]:
    """Model components a local pipeline folder's ``model_index.json`` lists but whose subfolder holds no weights."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return []
    listed = [name for name, entry in index.items() if isinstance(entry, list) and entry and entry[0] is not None
              and name not in ("scheduler", "tokenizer")]
    return [name for name in listed if not _weights_in(folder / name)]


def text_encoder_message(model: str) -> str:
    """The Gemma-3 text encoder is not there: what to do."""
    return (f"{model} has no usable text encoder (text_encoder/ and tokenizer/, Gemma-3-12B): LTX-2 encodes prompts "
            f"with it. For a Hub download, {LOGIN_HINT}; or pass a folder that has text_encoder/ and tokenizer/ "
            f"(`ltx2-diffusers convert --text-encoder <gemma-3 folder>` writes them).")


def load_error_message(error: BaseException, model: str) -> str | None:
    """A failed ``from_pretrained(model)`` -> what went wrong and what to do; ``None`` if it is none of the known
    cases (gated or missing Hub repo, no connection, a local folder missing components or its text encoder)."""
    chain = _chain(error)
    text = " ".join(str(e) for e in chain)
    gated, not_found, offline = (_hub_error(n) for n in ("GatedRepoError", "RepositoryNotFoundError",
                                                         "LocalEntryNotFoundError"))
    if (gated and any(isinstance(e, gated) for e in chain)) or "gated repo" in text.lower():
        return f"cannot download {model}: access is gated. To use it, {LOGIN_HINT}."
    if not_found and any(isinstance(e, not_found) for e in chain):
        return (f"{model!r} is not a local folder, and the Hub has no repository of that name that you can access "
                f"(private and gated repositories need a login: {LOGIN_HINT}).")
    unreachable = any(re.search(r"Connect|Timeout|Offline", type(e).__name__) for e in chain) or re.search(
        r"not fully cached|outgoing traffic has been disabled|couldn't connect", text, re.IGNORECASE)
    if unreachable or (offline and any(isinstance(e, offline) for e in chain)):
        return (f"{model!r} is not in the local Hugging Face cache and the Hub could not be reached (offline, or "
                f"HF_HUB_OFFLINE is set); download it first or pass a local folder.")
    if Path(model).is_dir():
        missing = missing_components(model)
        if "text_encoder" in missing:
            return text_encoder_message(model)
        if missing:
            return (f"{model} is incomplete: {', '.join(f'{m}/' for m in missing)} holds no weights. Re-download "
                    f"or re-convert the folder.")
    if isinstance(error, OSError) and re.search(r"text_encoder|gemma", text, re.IGNORECASE):
        return text_encoder_message(model)
    return None


def is_out_of_memory(error: BaseException) -> bool:
    """torch's ``OutOfMemoryError`` (CUDA), a ``MemoryError``, or a ``RuntimeError`` saying memory ran out (older
    torch, MPS, the CPU allocator)."""
    oom = getattr(torch, "OutOfMemoryError", None)
    if isinstance(error, MemoryError) or (oom is not None and isinstance(error, oom)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def oom_message(error: BaseException) -> str | None:
    """An out-of-memory error -> the options that lower memory use; ``None`` for other errors."""
    if not is_out_of_memory(error):
        return None
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (f"out of memory ({first_line}). Options, roughly from least to most effect on speed: "
            "--low-vram (the ~16 GB profile: Gemma on the CPU, fp8 transformer weights streamed block by block, "
            "tiled refinement and decode); "
            "--dtype bfloat16 (half the memory of float32 weights and activations); "
            "--fp8 (fp8 storage of the transformer's weights, pipe.transformer.enable_layerwise_casting); "
            "--decode-tiling (decode the video in tiles); "
            "--tile-tokens N (smaller transformer calls, e.g. 8192; the refinement of --upsample is tiled by "
            "default); "
            "--offload model (keep only the running component on the GPU; --offload sequential: layer by layer, "
            "least memory, slowest); fewer --frames, a smaller --height/--width, or --num-videos 1.")
