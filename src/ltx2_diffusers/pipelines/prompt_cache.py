"""A prompt-embedding cache on disk, so a repeated prompt never loads or runs Gemma-3.

One safetensors file per (prompt, text length) under a folder named by the **text identity**: what decides the
embeddings apart from the prompt, computed without loading the text encoder:

* from a pipeline folder (:func:`folder_text_identity`): every file of ``text_encoder/``, ``tokenizer/`` and
  ``connectors/``, each by its SHA-256 (Hugging Face cache blobs are named by it; small files are hashed; large
  weight files by their safetensors header, size and 16 sampled 64 KiB chunks of their data);
* from loaded modules (:func:`module_text_identity`): configs, parameter shapes and a strided sample of every
  tensor's values;

plus the compute variant (the connectors' dtype, an int8 text encoder). Entries are written atomically (a temporary
file renamed over the entry), so concurrent writers of one entry leave one complete file; an entry that does not read
back exactly as written (truncated, damaged, other prompt, wrong shapes, non-finite values) is ignored with a warning
and recomputed. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from diffusers.utils import logging
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

logger = logging.get_logger(__name__)

CACHE_FORMAT = "ltx2-prompt-embeddings/1"
TEXT_SUBFOLDERS = ("text_encoder", "tokenizer", "connectors")
_HASH_WHOLE_BELOW = 64 * 2**20
_CHUNKS, _CHUNK = 16, 64 * 2**10


def default_prompt_cache_dir() -> Path:
    """``$HF_HOME/ltx2_diffusers/prompt_embeddings`` (``~/.cache/huggingface/...`` by default)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "ltx2_diffusers" / "prompt_embeddings"


# ----------------------------------------------------------------------------------------------------------------
# Identities
# ----------------------------------------------------------------------------------------------------------------


def file_fingerprint(path: str | os.PathLike) -> str:
    """A SHA-256 that changes with the file's content, read cheaply: a Hub cache blob's own name, a small file's
    hash, or for a large file its size, safetensors header and 16 sampled chunks."""
    resolved = Path(path).resolve()
    name = resolved.name
    if resolved.parent.name == "blobs" and len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        return name  # the Hub names LFS blobs by their SHA-256
    size = resolved.stat().st_size
    digest = hashlib.sha256()
    with open(resolved, "rb") as f:
        if size < _HASH_WHOLE_BELOW:
            digest.update(f.read())
            return digest.hexdigest()
        digest.update(str(size).encode())
        head = f.read(8)
        if resolved.suffix == ".safetensors" and len(head) == 8:
            (header_len,) = struct.unpack("<Q", head)
            digest.update(f.read(min(header_len, size)))
        for i in range(_CHUNKS):
            f.seek(i * max(size - _CHUNK, 0) // (_CHUNKS - 1))
            digest.update(f.read(_CHUNK))
    return digest.hexdigest()


def folder_text_identity(folder: str | os.PathLike) -> str:
    """The text identity of a pipeline folder (``text_encoder/``, ``tokenizer/``, ``connectors/``), read from its
    files without loading any model. Raises a ``ValueError`` when the folder lacks one of them."""
    root = Path(folder)
    entries = []
    for sub in TEXT_SUBFOLDERS:
        files = sorted(p for p in (root / sub).rglob("*") if p.is_file()) if (root / sub).is_dir() else []
        if not files:
            raise ValueError(f"{root} has no {sub}/ files: the prompt cache identifies the text encoder by the "
                             f"folder's text_encoder/, tokenizer/ and connectors/; pass a complete pipeline folder.")
        entries += [(p.relative_to(root).as_posix(), file_fingerprint(p)) for p in files]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _tensor_sample(tensor: torch.Tensor, count: int = 256) -> bytes:
    flat = tensor.detach().reshape(-1)
    step = max(flat.numel() // count, 1)
    sample = flat[::step][:count].float().cpu()
    return sample.numpy().tobytes()


def module_text_identity(text_encoder: nn.Module | None, tokenizer: object, connectors: nn.Module) -> str:
    """The text identity of loaded modules: configs, tensor names and shapes, and a strided sample of every tensor."""
    digest = hashlib.sha256()
    for module in (text_encoder, connectors):
        if module is None:
            raise ValueError("module_text_identity needs the text encoder and the connectors.")
        config = getattr(module, "config", None)
        digest.update(json.dumps(config.to_dict() if hasattr(config, "to_dict") else dict(config or {}),
                                 sort_keys=True, default=str).encode())
        for name, tensor in module.state_dict().items():
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(_tensor_sample(tensor))
    vocab = getattr(tokenizer, "get_vocab", lambda: {})()
    digest.update(json.dumps(sorted(vocab.items())).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------------------------


class DiskPromptCache:
    """Prompt embeddings ``(video [T, Dv], audio [T, Da], mask [T])`` in ``directory/<identity>/<entry>.safetensors``.

    Args:
        directory: the cache's root folder (created when an entry is first written).
        identity: the text identity (:func:`folder_text_identity` / :func:`module_text_identity`) joined with the
            compute variant; entries of another identity are never read.
    """

    def __init__(self, directory: str | os.PathLike, identity: str) -> None:
        if not isinstance(identity, str) or not identity:
            raise ValueError("identity must be a non-empty string (see folder_text_identity).")
        self.identity = identity
        self.folder = Path(directory) / hashlib.sha256(identity.encode()).hexdigest()[:32]
        self.hits = self.misses = self.rejected = 0

    def path(self, prompt: str, max_sequence_length: int) -> Path:
        key = hashlib.sha256(f"{self.identity}\0{max_sequence_length}\0{prompt}".encode()).hexdigest()
        return self.folder / f"{key}.safetensors"

    def load(self, prompt: str, max_sequence_length: int, widths: tuple[int, int]
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The stored embeddings, or ``None`` when absent or not trustworthy (then a warning says why)."""
        path = self.path(prompt, max_sequence_length)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            value = _read_entry(path.read_bytes(), self.identity, prompt, max_sequence_length, widths)
        except Exception as error:  # noqa: BLE001 - any damage means: recompute
            self.rejected += 1
            self.misses += 1
            logger.warning("Ignoring the prompt-cache entry %s (%s); the prompt is encoded again and the entry "
                           "rewritten.", path, error)
            return None
        self.hits += 1
        return value

    def save(self, prompt: str, max_sequence_length: int, value: tuple[torch.Tensor, ...]) -> Path:
        """Writes one entry atomically (temporary file, fsync, rename)."""
        video, audio, mask = (t.detach().to("cpu").contiguous() for t in value)
        metadata = {"format": CACHE_FORMAT, "identity": self.identity, "prompt": prompt,
                    "max_sequence_length": str(max_sequence_length)}
        data = save_safetensors({"video_embeds": video, "audio_embeds": audio, "attention_mask": mask}, metadata)
        path = self.path(prompt, max_sequence_length)
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def _read_entry(data: bytes, identity: str, prompt: str, max_sequence_length: int, widths: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if len(data) < 8:
        raise ValueError("truncated file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError("truncated header")
    metadata = json.loads(data[8: 8 + header_len]).get("__metadata__") or {}
    expected = {"format": CACHE_FORMAT, "identity": identity, "prompt": prompt,
                "max_sequence_length": str(max_sequence_length)}
    if metadata != expected:
        raise ValueError("its metadata names another prompt, length, text identity or format")
    tensors = load_safetensors(data)
    if set(tensors) != {"video_embeds", "audio_embeds", "attention_mask"}:
        raise ValueError(f"unexpected tensors {sorted(tensors)}")
    video, audio, mask = tensors["video_embeds"], tensors["audio_embeds"], tensors["attention_mask"]
    if video.shape != (max_sequence_length, widths[0]) or audio.shape != (max_sequence_length, widths[1]) or \
            mask.shape != (max_sequence_length,):
        raise ValueError(f"shapes {tuple(video.shape)}, {tuple(audio.shape)}, {tuple(mask.shape)} do not match "
                         f"T={max_sequence_length} and widths {widths}")
    if not (video.is_floating_point() and audio.is_floating_point()) or not bool(
            torch.isfinite(video).all() & torch.isfinite(audio).all()):
        raise ValueError("non-finite or non-float embeddings")
    return video, audio, mask


# ----------------------------------------------------------------------------------------------------------------
# The pipeline's switch
# ----------------------------------------------------------------------------------------------------------------


class LTX2PromptCacheMixin:
    """``enable_prompt_cache`` for the pipeline (uses its ``text_encoder``, ``tokenizer``, ``connectors``)."""

    _disk_cache_settings: tuple[Path, str] | None = None

    def enable_prompt_cache(self, directory: str | os.PathLike | None = None, identity: str | None = None) -> Path:
        """Keeps prompt embeddings on disk across processes (see :mod:`~ltx2_diffusers.pipelines.prompt_cache`).

        Args:
            directory: the cache folder (default :func:`default_prompt_cache_dir`, under the Hugging Face cache).
            identity: the text identity; default: :func:`folder_text_identity` of the folder the pipeline was loaded
                from, else :func:`module_text_identity` of the loaded text encoder and connectors.

        Returns:
            The cache folder.
        """
        directory = Path(directory) if directory is not None else default_prompt_cache_dir()
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"prompt cache directory {directory} is a file; pass a folder.")
        if identity is None:
            source = self.config.get("_name_or_path") if hasattr(self, "config") else None
            if source and all((Path(source) / sub).is_dir() for sub in TEXT_SUBFOLDERS):
                identity = folder_text_identity(source)
            elif self.text_encoder is not None:
                identity = module_text_identity(self.text_encoder, self.tokenizer, self.connectors)
            else:
                raise ValueError("enable_prompt_cache cannot identify the text encoder: the pipeline has none and was "
                                 "not loaded from a local folder; pass identity=folder_text_identity(folder).")
        self._disk_cache_settings = (directory, identity)
        return directory

    def _disk_prompt_cache(self) -> DiskPromptCache | None:
        """The cache for the current compute variant (connectors' and text encoder's dtypes, int8 weights)."""
        if self._disk_cache_settings is None:
            return None
        from .low_memory import is_int8_quantized

        directory, identity = self._disk_cache_settings
        profile = getattr(self, "low_memory", None)
        int8 = is_int8_quantized(self.text_encoder) or (profile is not None and profile.text_encoder == "int8")
        text_dtype = self.text_encoder.dtype if self.text_encoder is not None else self.connectors.dtype
        return DiskPromptCache(directory, variant_identity(identity, text_dtype, self.connectors.dtype, int8))


def variant_identity(identity: str, text_dtype: torch.dtype, connectors_dtype: torch.dtype, int8: bool) -> str:
    """A text identity joined with what else decides the numbers: the compute dtypes and int8 text weights."""
    return f"{identity}|{text_dtype}|{connectors_dtype}|int8={bool(int8)}"
