"""Original LTX-2 single-file checkpoint -> complete diffusers pipeline folder (strict, header-driven, atomic).

The original release is one safetensors file whose ``config`` metadata entry (JSON) describes every component
(``transformer``, ``vae``, ``audio_vae``, ``vocoder``); the x2 latent upsampler is a separate file. This module:

* checks the arguments first: the output must not exist, and must not lie inside the text-encoder folder that is
  copied into it (:mod:`.staging`);
* reads the files with ``safe_open`` (no pickle is ever loaded) and, before any tensor data, checks from the headers
  that every tensor is floating point and that every fp8 scale sits next to a float8 weight (:mod:`.tensors`);
* builds every component's config from the header and the tensors' shapes (``*_config_from_original``), after
  checking that the header keys those functions cannot derive from shapes are present;
* assigns every tensor of the file to exactly one component, or to the short allow-list ``IGNORED_KEYS``, or to the
  fp8 scales consumed by de-quantisation; anything else is an error naming the key;
* converts each component strictly (0 missing, 0 unexpected, every shape asserted), casting every tensor to the one
  dtype of the folder and refusing NaN / inf values by tensor name (``allow_non_finite=True`` opts out), and saves it
  with ``save_pretrained`` (sharded safetensors);
* writes everything into a temporary sibling folder named after its process and renames it at the end: a failure
  leaves nothing behind, and the next run removes the temporary folder of a killed one.

Folder layout written: ``model_index.json``, ``transformer/``, ``connectors/``, ``vae/``, ``audio_vae/``,
``vocoder/``, ``scheduler/``, ``text_encoder/`` + ``tokenizer/`` when a local Gemma-3 folder is given, and
``latent_upsampler/`` when an upsampler file is given. The index and configs are in diffusers' LTX-2 format
(:func:`~ltx2_diffusers.pipelines.folder_format.write_folder_format`, shared with ``save_pretrained``), so the folder
loads in diffusers' ``LTX2Pipeline`` as well as in ``LTX2AudioVideoPipeline``; ``model_index.json`` lists every
component the folder holds, the upsampler included (the optional ``latent_upsampler`` used by ``upsample=True``).

One dtype: every floating tensor written (the upsampler's too) is saved in ``dtype`` when given, else in the dtype
chosen from the checkpoint file by :func:`.tensors.choose_dtype`: the one holding the most elements among the
tensors written, float8 counted as bfloat16 and float64 as float32. The text encoder is copied unchanged.

LTX-2.0 and LTX-2.3 files convert alike; the version is read from the header's switches and cross-checked with
the metadata's ``model_version`` (:mod:`.version`), the vocoder class follows the header's vocoder block
(``LTX2Vocoder``, or ``LTX2VocoderWithBWE`` for LTX-2.3's nested ``{"vocoder", "bwe"}`` block), and the version is
recorded in ``ltx2_conversion.json`` (``"version"``) and the model card.

Distilled checkpoints: dev and distilled files hold the same tensors, so the variant comes from the ``variant``
argument, else the metadata, else the file name (``distilled`` in it), in that order (:mod:`.version`). A distilled
folder's scheduler is saved with the fixed 8-step σ list (``LTX2Scheduler(sigmas=DISTILLED_SIGMAS)``, written as
diffusers' distilled flow-match config plus our ``sigmas`` key), and the
distilled settings are also recorded in ``ltx2_conversion.json`` (``"sigmas"``, ``"stage_2_sigmas"``,
``"guidance_scale": 1.0``); the distilled model runs without guidance: ``pipe(..., guidance_scale=1.0, ...)`` with
the other scales neutral.

fp8 checkpoints: float8 tensors are de-quantised in float32, then cast to the folder's dtype. A per-tensor or
per-output-channel ``<name>.weight_scale`` next to a float8 ``<name>.weight`` multiplies it; it must be finite and
positive. ``<name>.input_scale`` next to a float8 ``<name>.weight`` (activation scales, only meaningful for fp8
matmuls) and a top-level ``scaled_fp8`` marker in a file with float8 weights are dropped. The output is never stored
in fp8, so nothing is quantised twice. A scale without a float8 weight next to it is an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging

from .audio import (
    BWE_REQUIRED_HEADER_KEYS,
    audio_vae_config_from_original,
    convert_audio_vae_state_dict,
    convert_vocoder_state_dict,
    rename_audio_vae_key,
    rename_vocoder_key,
    vocoder_config_from_original,
    vocoder_model_class,
)
from .common import expected_shapes
from .model_card import model_card
from .staging import check_output, publish, remove_stale_temp_folders, temp_folder
from .tensors import (
    FP8_NAMES,
    check_file_tensors,
    check_save_dtype,
    choose_dtype,
    header_dtypes,
    header_shapes,
    is_scale_key,
    load_tensor,
    open_safetensors,
    read_weight_scales,
)
from .text import connectors_config_from_original, convert_connectors_state_dict, rename_connectors_key
from .transformer import convert_transformer_state_dict, rename_transformer_key, transformer_config_from_original
from .version import ModelIdentity, check_variant, identify_checkpoint
from .video_vae import (
    convert_latent_upsampler_state_dict,
    convert_video_vae_state_dict,
    latent_upsampler_config_from_original,
    rename_video_vae_key,
    video_vae_config_from_original,
)

logger = logging.get_logger(__name__)

# Tensors of the original file that no component uses (statistics the reference loader ignores as well).
IGNORED_KEYS: frozenset[str] = frozenset(
    f"{part}.per_channel_statistics.{stat}"
    for part in ("vae", "audio_vae")
    for stat in ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")
)

# Header keys that the config functions cannot read from tensor shapes: absent means "unknown", never a default.
REQUIRED_HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "transformer": (
        "num_attention_heads", "attention_head_dim", "cross_attention_dim", "audio_num_attention_heads",
        "audio_attention_head_dim", "audio_cross_attention_dim", "in_channels", "out_channels", "audio_out_channels",
        "positional_embedding_max_pos", "audio_positional_embedding_max_pos", "positional_embedding_theta",
        "timestep_scale_multiplier", "connector_num_attention_heads", "connector_attention_head_dim",
    ),
    "vae": ("encoder_blocks", "decoder_blocks", "patch_size"),
    "audio_vae": ("model.params.ddconfig", "model.params.sampling_rate", "preprocessing.stft.hop_length"),
    "vocoder": ("upsample_rates", "resblock_dilation_sizes"),
}

DISTILLED_SCHEDULE = {"num_inference_steps": 8, "guidance_scale": 1.0}


# ----------------------------------------------------------------------------------------------------------------
# Reading the file
# ----------------------------------------------------------------------------------------------------------------


def _read_header(handle: Any, path: Path) -> dict[str, Any]:  # noqa: ANN401
    text = (handle.metadata() or {}).get("config")
    if text is None:
        raise ValueError(f"{path} has no 'config' metadata entry: it is not an original LTX-2 single-file "
                         f"checkpoint (diffusers-format folders need no conversion).")
    try:
        header = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its 'config' metadata entry is not valid JSON ({error}).") from error
    if not isinstance(header, dict):
        raise ValueError(f"{path}: its 'config' metadata entry must be a JSON object.")
    return header


def _lookup(block: Mapping[str, Any], dotted: str) -> bool:
    node: Any = block
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _required_keys(block: str, header_block: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys a header block must have: LTX-2.3's nested vocoder block needs ``BWE_REQUIRED_HEADER_KEYS``."""
    if block == "vocoder" and "bwe" in header_block:
        return BWE_REQUIRED_HEADER_KEYS
    return REQUIRED_HEADER_KEYS[block]


def check_header(header: Mapping[str, Any], path: Path | str = "the checkpoint") -> None:
    """Raises a ``ValueError`` naming every required ``config`` header key that is absent."""
    missing = [f"config[{block!r}]" for block in REQUIRED_HEADER_KEYS if not isinstance(header.get(block), Mapping)]
    missing += [
        "config[{!r}]{}".format(block, "".join(f"[{part!r}]" for part in key.split(".")))
        for block in REQUIRED_HEADER_KEYS
        if isinstance(header.get(block), Mapping)
        for key in _required_keys(block, header[block])
        if not _lookup(header[block], key)
    ]
    if missing:
        raise ValueError(f"{path}: the 'config' header lacks {', '.join(missing)}; these cannot be read from the "
                         f"tensors and are not guessed. Pass an unmodified original LTX-2 checkpoint.")


# ----------------------------------------------------------------------------------------------------------------
# Routing every tensor to one owner
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Component:
    name: str
    model_class: Callable[[Mapping[str, Any]], type]  # header block -> our class
    owns: Callable[[str], bool]
    config: Callable[[Mapping[str, Any], Mapping[str, torch.Tensor]], dict[str, Any]]
    convert: Callable[..., dict[str, torch.Tensor]]
    header_block: str


def _always(cls: type) -> Callable[[Mapping[str, Any]], type]:
    return lambda _header_block: cls


def _components() -> list[_Component]:
    from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
    from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
    from ..models.text_connectors_ltx2 import LTX2TextConnectors
    from ..models.transformer_ltx2 import LTX2AudioVideoTransformer

    return [
        _Component("transformer", _always(LTX2AudioVideoTransformer), lambda k: rename_transformer_key(k) is not None,
                   transformer_config_from_original, convert_transformer_state_dict, "transformer"),
        _Component("connectors", _always(LTX2TextConnectors), lambda k: rename_connectors_key(k) is not None,
                   connectors_config_from_original, convert_connectors_state_dict, "transformer"),
        _Component("vae", _always(LTX2VideoAutoencoder), lambda k: rename_video_vae_key(k, {}, {}) is not None,
                   video_vae_config_from_original, convert_video_vae_state_dict, "vae"),
        _Component("audio_vae", _always(LTX2AudioAutoencoder), lambda k: rename_audio_vae_key(k) is not None,
                   audio_vae_config_from_original, convert_audio_vae_state_dict, "audio_vae"),
        _Component("vocoder", vocoder_model_class, lambda k: rename_vocoder_key(k) is not None,
                   vocoder_config_from_original, convert_vocoder_state_dict, "vocoder"),
    ]


def route_keys(keys: list[str], components: list[_Component] | None = None, path: Path | str = "the checkpoint"
               ) -> dict[str, list[str]]:
    """Component name -> its keys. Every key goes to exactly one component, ``IGNORED_KEYS`` or fp8 scales; an
    unknown or doubly-claimed key raises a ``ValueError`` naming it."""
    components = components if components is not None else _components()
    routed: dict[str, list[str]] = {c.name: [] for c in components}
    unknown, ambiguous = [], []
    for key in keys:
        if key in IGNORED_KEYS or is_scale_key(key):
            continue
        owners = [c.name for c in components if c.owns(key)]
        if not owners:
            unknown.append(key)
        elif len(owners) > 1:
            ambiguous.append(f"{key} ({' and '.join(owners)})")
        else:
            routed[owners[0]].append(key)
    if unknown or ambiguous:
        shown = ", ".join((unknown + ambiguous)[:8]) + (f", ... ({len(unknown) + len(ambiguous)} in all)"
                                                        if len(unknown) + len(ambiguous) > 8 else "")
        raise ValueError(f"{path}: tensors that no component uses (unknown or claimed twice): {shown}. Only "
                         f"{sorted(IGNORED_KEYS)} and fp8 scales may be left over. Pass an unmodified original "
                         f"LTX-2.0 or LTX-2.3 single file (LoRAs and upsamplers are separate files).")
    return routed


def convert_original_state_dict(
    header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], path: Path | str = "the checkpoint"
) -> dict[str, tuple[type, dict[str, Any], dict[str, torch.Tensor]]]:
    """The rename-and-assert step for a whole single file: component name -> (our class, config, converted state).

    Checks the header, routes every tensor to one component (see :func:`route_keys`) and converts each component
    strictly. Works on meta tensors (names and shapes only), so it validates a real-size key list cheaply.
    """
    check_header(header, path)
    components = _components()
    routed = route_keys(list(state_dict), components, path)
    result = {}
    for component in components:
        state = {k: state_dict[k] for k in routed[component.name]}
        block = header[component.header_block]
        config = component.config(block, state)
        model_class = component.model_class(block)
        with torch.device("meta"):
            expected = expected_shapes(model_class(**config))
        result[component.name] = (model_class, config, component.convert(state, expected))
    return result


# ----------------------------------------------------------------------------------------------------------------
# Saving components, the text encoder and the index
# ----------------------------------------------------------------------------------------------------------------


def _save_model(model_class: type, config: dict[str, Any], converted: dict[str, torch.Tensor], folder: Path,
                max_shard_size: int | str) -> torch.nn.Module:
    with torch.device("meta"):
        model = model_class(**config)
    model.load_state_dict(converted, strict=True, assign=True)  # strict: converted was checked already
    model.save_pretrained(folder, safe_serialization=True, max_shard_size=max_shard_size)
    return model


def _check_text_encoder(source: Path) -> None:
    if not (source / "config.json").is_file() and not (source / "text_encoder" / "config.json").is_file():
        raise ValueError(f"{source} holds no config.json (nor text_encoder/config.json): pass a local Gemma-3 "
                         f"folder saved by transformers.")


def _copy_text_encoder(source: Path, temp: Path) -> None:
    """A local Gemma-3 folder -> ``text_encoder/`` and ``tokenizer/``: either a folder already holding those two
    subfolders (a diffusers pipeline folder), or a transformers model folder (tokenizer files are split off)."""
    _check_text_encoder(source)
    if (source / "text_encoder").is_dir():
        shutil.copytree(source / "text_encoder", temp / "text_encoder")
        shutil.copytree(source / "tokenizer", temp / "tokenizer")
        return
    tokenizer_files = ("tokenizer", "special_tokens_map.json", "added_tokens.json", "chat_template")
    (temp / "text_encoder").mkdir()
    (temp / "tokenizer").mkdir()
    for item in sorted(source.iterdir()):
        if item.is_file():
            goes_to = "tokenizer" if item.name.startswith(tokenizer_files) else "text_encoder"
            shutil.copy2(item, temp / goes_to / item.name)
    if not any((temp / "tokenizer").iterdir()):
        raise ValueError(f"{source} holds no tokenizer files (tokenizer.json / tokenizer.model / "
                         f"tokenizer_config.json).")


def _text_encoder_index(folder: Path) -> list[Any]:
    architectures = json.loads((folder / "text_encoder" / "config.json").read_text()).get("architectures") or []
    tokenizer_config = folder / "tokenizer" / "tokenizer_config.json"
    tokenizer_class = (json.loads(tokenizer_config.read_text()).get("tokenizer_class", "GemmaTokenizer")
                       if tokenizer_config.is_file() else "GemmaTokenizer")
    return [["transformers", architectures[0] if architectures else "Gemma3ForConditionalGeneration"],
            ["transformers", tokenizer_class]]


# ----------------------------------------------------------------------------------------------------------------
# Checking the inputs (headers and fp8 scales only: no tensor data is read)
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """An input file checked from its header: what will be written from it."""

    path: Path
    handle: Any
    dtypes: dict[str, str]  # tensor name -> safetensors dtype name
    scales: dict[str, torch.Tensor]  # fp8 weight scales, read and checked
    routed: dict[str, list[str]]  # component -> its tensors
    classes: dict[str, type]  # component -> our class
    configs: dict[str, dict[str, Any]]  # component -> config
    expected: dict[str, dict[str, torch.Size]]  # component -> converted name -> shape
    identity: ModelIdentity | None = None  # version and variant (the single file only)


def _checked_file(handle: Any, path: Path, allow_non_finite: bool, ignored: frozenset[str] = frozenset()  # noqa: ANN401
                  ) -> tuple[dict[str, str], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(dtypes, weight scales, meta tensors of everything but the scales) of a file whose header passed the checks."""
    dtypes, shapes = header_dtypes(handle), header_shapes(handle)
    check_file_tensors(dtypes, shapes, path, ignored)
    scales = read_weight_scales(handle, dtypes, path, allow_non_finite)
    meta = {k: torch.empty(shape, device="meta") for k, shape in shapes.items() if not is_scale_key(k)}
    return dtypes, scales, meta


def _check_checkpoint(handle: Any, path: Path, allow_non_finite: bool, variant: str | None  # noqa: ANN401
                      ) -> _Source:
    """The single file checked end to end from its header, metadata and shapes."""
    header = _read_header(handle, path)
    check_header(header, path)
    identity = identify_checkpoint(header, handle.metadata() or {}, path.name, variant, path)
    dtypes, scales, meta = _checked_file(handle, path, allow_non_finite, IGNORED_KEYS)
    plan = convert_original_state_dict(header, meta, path)  # names and shapes of every component, strictly
    routed = route_keys(list(dtypes), _components(), path)
    return _Source(path, handle, dtypes, scales, routed, {name: cls for name, (cls, _, _) in plan.items()},
                   {name: config for name, (_, config, _) in plan.items()},
                   {name: {k: v.shape for k, v in state.items()} for name, (_, _, state) in plan.items()}, identity)


def _check_upsampler(handle: Any, path: Path, allow_non_finite: bool) -> _Source:  # noqa: ANN401
    from ..models.latent_upsampler_ltx2 import LTX2LatentUpsampler

    text = (handle.metadata() or {}).get("config")
    try:
        header = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its 'config' metadata entry is not valid JSON ({error}).") from error
    dtypes, scales, meta = _checked_file(handle, path, allow_non_finite)
    try:
        config = latent_upsampler_config_from_original(header, meta)
    except KeyError as error:
        raise ValueError(f"{path} is not an LTX-2 latent upsampler file (it has no {error} tensor); pass the "
                         f"ltx-2-spatial-upscaler-x2 file.") from error
    with torch.device("meta"):
        expected = expected_shapes(LTX2LatentUpsampler(**config))
    convert_latent_upsampler_state_dict(meta, expected)  # names and shapes, strictly
    return _Source(path, handle, dtypes, scales, {"latent_upsampler": list(meta)},
                   {"latent_upsampler": LTX2LatentUpsampler}, {"latent_upsampler": config},
                   {"latent_upsampler": expected})


_SHARD_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*[KMGT]B\s*$", re.IGNORECASE)


def _check_shard_size(max_shard_size: int | str) -> None:
    valid = (isinstance(max_shard_size, int) and not isinstance(max_shard_size, bool) and max_shard_size > 0) or (
        isinstance(max_shard_size, str) and _SHARD_SIZE.match(max_shard_size) is not None)
    if not valid:
        raise ValueError(f"max_shard_size={max_shard_size!r}: pass a positive number of bytes or a size such as "
                         f"'5GB' (units KB, MB, GB, TB).")


# ----------------------------------------------------------------------------------------------------------------
# Writing the folder
# ----------------------------------------------------------------------------------------------------------------


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    upsampler: str | os.PathLike | None = None,
    text_encoder: str | os.PathLike | None = None,
    dtype: torch.dtype | None = None,
    max_shard_size: int | str = "5GB",
    allow_non_finite: bool = False,
    variant: str | None = None,
) -> Path:
    """Converts an original LTX-2 single-file checkpoint into a diffusers pipeline folder (see the module docstring).

    Every check that needs no tensor data (arguments, output location, headers, names, shapes, dtypes, fp8 scales)
    runs before anything is written; NaN / inf values are found while the tensors are read, and the run then stops
    leaving nothing behind.

    Args:
        checkpoint: the original ``.safetensors`` file (``ltx-2-19b-dev.safetensors``, ``ltx-2.3-22b-dev``,
            distilled or fp8 variants).
        output: the folder to create; it must not exist, nor lie inside ``text_encoder``. It appears only once
            everything was written.
        upsampler: optional x2 latent-upsampler file, written to ``latent_upsampler/`` and listed in
            ``model_index.json``.
        text_encoder: optional local Gemma-3 folder, copied to ``text_encoder/`` and ``tokenizer/``.
        dtype: dtype of every saved floating-point weight (float32, bfloat16 or float16); ``None`` chooses one from
            the checkpoint file (:func:`.tensors.choose_dtype`).
        max_shard_size: largest safetensors shard per component (``save_pretrained``'s argument).
        allow_non_finite: write NaN / inf weights and scales instead of refusing them (only if you know they are
            intended).
        variant: ``"dev"`` or ``"distilled"``; ``None`` reads it from the file's metadata, else its name
            (:mod:`.version`).

    Returns:
        The path of the written folder.

    Raises:
        ValueError: a bad argument or input file (``tensors.CheckpointReadError`` when a file cannot be read).
        OSError: writing failed (unwritable location, disk full, or ``output`` appeared meanwhile).
    """
    checkpoint = Path(checkpoint)
    upsampler = Path(upsampler) if upsampler is not None else None
    text_encoder = Path(text_encoder) if text_encoder is not None else None
    if dtype is not None:
        check_save_dtype(dtype)
    check_variant(variant)
    _check_shard_size(max_shard_size)
    output = check_output(Path(output), {"--text-encoder": text_encoder})
    if text_encoder is not None:
        _check_text_encoder(text_encoder)
    remove_stale_temp_folders(output.parent)
    with ExitStack() as files:
        source = _check_checkpoint(files.enter_context(open_safetensors(checkpoint)), checkpoint, allow_non_finite,
                                   variant)
        extra = (None if upsampler is None else
                 _check_upsampler(files.enter_context(open_safetensors(upsampler)), upsampler, allow_non_finite))
        if dtype is None:
            dtype = choose_dtype((source.dtypes[k], tuple(source.handle.get_slice(k).get_shape()))
                                 for keys in source.routed.values() for k in keys)
        temp = temp_folder(output)
        temp.mkdir()
        try:
            summary = _write_folder(source, extra, temp, text_encoder, dtype, max_shard_size, allow_non_finite)
            publish(temp, output)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    for name, entry in summary.items():
        logger.info("%s: %d tensors, %s parameters", name, entry["tensors"], f"{entry['parameters']:,}")
    logger.info("wrote %s", output)
    return output


def _write_component(source: _Source, name: str, convert: Callable[..., dict[str, torch.Tensor]], folder: Path,
                     dtype: torch.dtype, max_shard_size: int | str, allow_non_finite: bool) -> dict[str, int]:
    state = {k: load_tensor(source.handle, k, dtype, source.scales, source.path, allow_non_finite)
             for k in source.routed[name]}
    converted = convert(state, source.expected[name])
    del state
    _save_model(source.classes[name], source.configs[name], converted, folder / name, max_shard_size)
    return {"tensors": len(converted), "parameters": sum(v.numel() for v in converted.values())}


def _write_folder(source: _Source, extra: _Source | None, temp: Path, text_encoder: Path | None, dtype: torch.dtype,
                  max_shard_size: int | str, allow_non_finite: bool) -> dict[str, dict[str, Any]]:
    from ..pipelines.folder_format import write_folder_format
    from ..schedulers import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler

    summary: dict[str, dict[str, Any]] = {}
    classes: dict[str, type] = {}
    for component in _components():
        summary[component.name] = _write_component(source, component.name, component.convert, temp, dtype,
                                                   max_shard_size, allow_non_finite)
        classes[component.name] = source.classes[component.name]
    if extra is not None:
        summary["latent_upsampler"] = _write_component(extra, "latent_upsampler",
                                                       convert_latent_upsampler_state_dict, temp, dtype,
                                                       max_shard_size, allow_non_finite)
        classes["latent_upsampler"] = extra.classes["latent_upsampler"]
    identity = source.identity
    distilled = identity.distilled
    components: dict[str, Any] = {**classes, "scheduler": LTX2Scheduler(
        sigmas=list(DISTILLED_SIGMAS) if distilled else None), "text_encoder": None, "tokenizer": None}
    if text_encoder is not None:
        _copy_text_encoder(text_encoder, temp)
        components["text_encoder"], components["tokenizer"] = _text_encoder_index(temp)
    write_folder_format(temp, components)  # the format LTX2AudioVideoPipeline.save_pretrained writes too
    record = {
        "source": source.path.name, "version": identity.version, "model_version": identity.model_version,
        "variant": identity.variant, "variant_source": identity.variant_source,
        "fp8_source": sorted(set(source.dtypes.values()) & FP8_NAMES),
        "dtype": str(dtype).replace("torch.", ""),
        "ignored_keys": sorted(set(source.dtypes) & IGNORED_KEYS),
        "latent_upsampler": extra.path.name if extra is not None else None,
        "allow_non_finite": allow_non_finite,
        "components": summary,
    }
    if distilled:
        record.update(sigmas=list(DISTILLED_SIGMAS), stage_2_sigmas=list(STAGE_2_DISTILLED_SIGMAS),
                      **DISTILLED_SCHEDULE)
    (temp / "ltx2_conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    (temp / "README.md").write_text(model_card(source.path.name, distilled, list(summary),
                                               has_text_encoder=text_encoder is not None,
                                               version=identity.version))
    return summary


def format_summary(folder: str | os.PathLike) -> str:
    """A human-readable summary of a converted folder, read back from its ``ltx2_conversion.json``."""
    record = json.loads((Path(folder) / "ltx2_conversion.json").read_text())
    version = f"LTX-{record['version']}, " if "version" in record else ""
    how = {"metadata": " per its metadata", "file name": " by its file name"}.get(record.get("variant_source"), "")
    lines = [f"{folder}: {record['source']} ({version}{record['variant']}{how}, weights {record['dtype']})"]
    total = 0
    for name, entry in record["components"].items():
        total += entry["parameters"]
        lines.append(f"  {name:<17} {entry['tensors']:>6} tensors {entry['parameters']:>16,} parameters")
    lines.append(f"  {'total':<17} {'':>6}         {total:>16,} parameters")
    if record["ignored_keys"]:
        lines.append(f"  ignored: {', '.join(record['ignored_keys'])}")
    if "sigmas" in record:
        lines.append(f"  distilled schedule: sigmas={record['sigmas']}, guidance_scale={record['guidance_scale']}")
    return "\n".join(lines)


__all__ = ["IGNORED_KEYS", "REQUIRED_HEADER_KEYS", "check_header", "convert_checkpoint", "convert_original_state_dict",
           "format_summary", "route_keys"]
