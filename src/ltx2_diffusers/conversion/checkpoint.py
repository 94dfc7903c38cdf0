"""Original LTX-2 single-file checkpoint -> complete diffusers pipeline folder (strict, atomic).

The original release is one safetensors file whose ``config`` metadata entry (JSON) describes every component
(``transformer``, ``vae``, ``audio_vae``, ``vocoder``); the x2 latent upsampler is a separate file. This module:

* reads the file with ``safe_open`` (no pickle is ever loaded) and only the header for the shapes;
* builds every component's config from the header and the tensors' shapes (``*_config_from_original``), after
  checking that the header keys those functions cannot derive from shapes are present;
* assigns every tensor of the file to exactly one component, or to the short allow-list ``IGNORED_KEYS``, or to the
  fp8 scales consumed by de-quantisation; anything else is an error naming the key;
* converts each component strictly (0 missing, 0 unexpected, every shape asserted) and saves it with
  ``save_pretrained`` (sharded safetensors);
* writes everything into a temporary sibling folder and renames it at the end: a failure leaves nothing behind.

Folder layout written: ``model_index.json``, ``transformer/``, ``connectors/``, ``vae/``, ``audio_vae/``,
``vocoder/``, ``scheduler/``, ``text_encoder/`` + ``tokenizer/`` when a local Gemma-3 folder is given, and
``latent_upsampler/`` when an upsampler file is given. The pipeline has no ``latent_upsampler`` component, so that
subfolder is *not* listed in ``model_index.json``; load it with ``LTX2LatentUpsampler.from_pretrained(folder,
subfolder="latent_upsampler")``.

Distilled checkpoints (file name containing ``distilled``): the scheduler is saved with the fixed 8-step σ list
(``LTX2Scheduler(sigmas=DISTILLED_SIGMAS)``), and the distilled settings are also recorded in ``ltx2_conversion.json``
(``"sigmas"``, ``"stage_2_sigmas"``, ``"guidance_scale": 1.0``); the distilled model runs without guidance:
``pipe(..., guidance_scale=1.0, ...)`` with the other scales neutral.

fp8 checkpoints: float8 tensors are de-quantised to the target dtype (``dtype``, else bfloat16). A per-tensor or
per-output-channel ``<name>.weight_scale`` next to a float8 ``<name>.weight`` multiplies it; ``<name>.input_scale``
(activation scales, only meaningful for fp8 matmuls) and a top-level ``scaled_fp8`` marker are dropped. The output is
never stored in fp8, so nothing is quantised twice. A scale without a float8 weight is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging
from safetensors import safe_open

from .audio import (
    audio_vae_config_from_original,
    convert_audio_vae_state_dict,
    convert_vocoder_state_dict,
    rename_audio_vae_key,
    rename_vocoder_key,
    vocoder_config_from_original,
)
from .common import expected_shapes
from .model_card import model_card
from .text import connectors_config_from_original, convert_connectors_state_dict, rename_connectors_key
from .transformer import convert_transformer_state_dict, rename_transformer_key, transformer_config_from_original
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
FP8_DTYPES: frozenset[torch.dtype] = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})
WEIGHT_SCALE_SUFFIX = ".weight_scale"
INPUT_SCALE_SUFFIX = ".input_scale"
FP8_MARKER_KEYS: frozenset[str] = frozenset({"scaled_fp8"})

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


def _open(path: Path) -> Any:  # noqa: ANN401
    """``safe_open`` with a readable error for missing, truncated or corrupt files."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; pass the original LTX-2 .safetensors file.")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError (header too large, incomplete, ...)
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt? safetensors says: "
                         f"{error}); download it again.") from error


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


def check_header(header: Mapping[str, Any], path: Path | str = "the checkpoint") -> None:
    """Raises a ``ValueError`` naming every required ``config`` header key that is absent."""
    missing = [f"config[{block!r}]" for block in REQUIRED_HEADER_KEYS if not isinstance(header.get(block), Mapping)]
    missing += [
        f"config[{block!r}][{key!r}]"
        for block, keys in REQUIRED_HEADER_KEYS.items()
        if isinstance(header.get(block), Mapping)
        for key in keys
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
    model_class: type
    owns: Callable[[str], bool]
    config: Callable[[Mapping[str, Any], Mapping[str, torch.Tensor]], dict[str, Any]]
    convert: Callable[..., dict[str, torch.Tensor]]
    header_block: str


def _components() -> list[_Component]:
    from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
    from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
    from ..models.text_connectors_ltx2 import LTX2TextConnectors
    from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
    from ..models.vocoder_ltx2 import LTX2Vocoder

    return [
        _Component("transformer", LTX2AudioVideoTransformer, lambda k: rename_transformer_key(k) is not None,
                   transformer_config_from_original, convert_transformer_state_dict, "transformer"),
        _Component("connectors", LTX2TextConnectors, lambda k: rename_connectors_key(k) is not None,
                   connectors_config_from_original, convert_connectors_state_dict, "transformer"),
        _Component("vae", LTX2VideoAutoencoder, lambda k: rename_video_vae_key(k, {}, {}) is not None,
                   video_vae_config_from_original, convert_video_vae_state_dict, "vae"),
        _Component("audio_vae", LTX2AudioAutoencoder, lambda k: rename_audio_vae_key(k) is not None,
                   audio_vae_config_from_original, convert_audio_vae_state_dict, "audio_vae"),
        _Component("vocoder", LTX2Vocoder, lambda k: rename_vocoder_key(k) is not None,
                   vocoder_config_from_original, convert_vocoder_state_dict, "vocoder"),
    ]


def _is_scale(key: str) -> bool:
    return key.endswith((WEIGHT_SCALE_SUFFIX, INPUT_SCALE_SUFFIX)) or key in FP8_MARKER_KEYS


def route_keys(keys: list[str], components: list[_Component] | None = None, path: Path | str = "the checkpoint"
               ) -> dict[str, list[str]]:
    """Component name -> its keys. Every key goes to exactly one component, ``IGNORED_KEYS`` or fp8 scales; an
    unknown or doubly-claimed key raises a ``ValueError`` naming it."""
    components = components if components is not None else _components()
    routed: dict[str, list[str]] = {c.name: [] for c in components}
    unknown, ambiguous = [], []
    for key in keys:
        if key in IGNORED_KEYS or _is_scale(key):
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
                         f"{sorted(IGNORED_KEYS)} and fp8 scales may be left over; is this an LTX-2.0 checkpoint?")
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
        config = component.config(header[component.header_block], state)
        with torch.device("meta"):
            expected = expected_shapes(component.model_class(**config))
        result[component.name] = (component.model_class, config, component.convert(state, expected))
    return result


# ----------------------------------------------------------------------------------------------------------------
# Loading tensors (fp8 de-quantisation, dtype)
# ----------------------------------------------------------------------------------------------------------------


def _target_dtype(stored: torch.dtype, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return torch.bfloat16 if stored in FP8_DTYPES else stored


def _load_tensor(handle: Any, key: str, keys: set[str], dtype: torch.dtype | None) -> torch.Tensor:  # noqa: ANN401
    tensor = handle.get_tensor(key)
    if not tensor.is_floating_point():
        return tensor
    target = _target_dtype(tensor.dtype, dtype)
    scale_key = key[: -len(".weight")] + WEIGHT_SCALE_SUFFIX if key.endswith(".weight") else None
    if tensor.dtype in FP8_DTYPES:
        values = tensor.to(torch.float32)
        if scale_key in keys:
            scale = handle.get_tensor(scale_key).to(torch.float32)
            if scale.numel() not in (1, values.shape[0]):
                raise ValueError(f"{scale_key} has shape {tuple(scale.shape)}: only per-tensor or per-output-channel "
                                 f"fp8 scales are supported.")
            if scale.numel() > 1:  # per output channel: [C_out] -> [C_out, 1, ...]
                scale = scale.reshape(-1, *([1] * (values.ndim - 1)))
            values = values * scale.reshape(scale.shape if scale.numel() > 1 else ())
        return values.to(target)
    if scale_key in keys:
        raise ValueError(f"{scale_key} scales {key}, which is stored as {tensor.dtype}, not float8: refusing to "
                         f"apply a quantisation scale twice.")
    return tensor.to(target)


# ----------------------------------------------------------------------------------------------------------------
# Writing the folder
# ----------------------------------------------------------------------------------------------------------------


def _meta_shapes(handle: Any, keys: list[str]) -> dict[str, torch.Tensor]:  # noqa: ANN401
    """Shape-only (meta) tensors, for the config functions, without reading any data."""
    return {k: torch.empty(handle.get_slice(k).get_shape(), device="meta") for k in keys}


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


def _model_index(classes: Mapping[str, type | None], text: list[Any] | None) -> dict[str, Any]:
    import diffusers

    index: dict[str, Any] = {"_class_name": "LTX2AudioVideoPipeline", "_diffusers_version": diffusers.__version__}
    for name, cls in sorted(classes.items()):
        index[name] = [cls.__module__, cls.__name__]
    index["text_encoder"], index["tokenizer"] = text if text is not None else ([None, None], [None, None])
    return dict(sorted(index.items()))


def _convert_upsampler(path: Path, temp: Path, dtype: torch.dtype | None, max_shard_size: int | str
                       ) -> dict[str, Any]:
    from ..models.latent_upsampler_ltx2 import LTX2LatentUpsampler

    with _open(path) as handle:
        text = (handle.metadata() or {}).get("config")
        try:
            header = json.loads(text) if text else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: its 'config' metadata entry is not valid JSON ({error}).") from error
        keys = list(handle.keys())
        config = latent_upsampler_config_from_original(header, _meta_shapes(handle, keys))
        with torch.device("meta"):
            expected = expected_shapes(LTX2LatentUpsampler(**config))
        state = {k: _load_tensor(handle, k, set(keys), dtype) for k in keys}
    converted = convert_latent_upsampler_state_dict(state, expected)
    _save_model(LTX2LatentUpsampler, config, converted, temp / "latent_upsampler", max_shard_size)
    return {"tensors": len(converted), "parameters": sum(v.numel() for v in converted.values())}


def _output_dir(output: Path) -> None:
    if output.exists():
        raise ValueError(f"{output} already exists; remove it or pass another --output (nothing is overwritten).")
    if not output.parent.is_dir():
        raise ValueError(f"{output.parent} does not exist; create the parent folder of --output first.")


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    upsampler: str | os.PathLike | None = None,
    text_encoder: str | os.PathLike | None = None,
    dtype: torch.dtype | None = None,
    max_shard_size: int | str = "5GB",
) -> Path:
    """Converts an original LTX-2 single-file checkpoint into a diffusers pipeline folder (see the module docstring).

    Args:
        checkpoint: the original ``.safetensors`` file (``ltx-2-19b-dev.safetensors``, distilled or fp8 variants).
        output: the folder to create; it must not exist. It appears only once everything was written.
        upsampler: optional x2 latent-upsampler file, written to ``latent_upsampler/``.
        text_encoder: optional local Gemma-3 folder, copied to ``text_encoder/`` and ``tokenizer/``.
        dtype: dtype of the saved floating-point weights; ``None`` keeps the stored dtype (fp8 -> bfloat16).
        max_shard_size: largest safetensors shard per component (``save_pretrained``'s argument).

    Returns:
        The path of the written folder.
    """
    checkpoint, output = Path(checkpoint), Path(output).absolute()
    _output_dir(output)
    temp = output.parent / f".{output.name}.converting-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    try:
        summary = _convert_into(checkpoint, temp, upsampler, text_encoder, dtype, max_shard_size)
        os.replace(temp, output)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    for name, entry in summary.items():
        logger.info("%s: %d tensors, %s parameters", name, entry["tensors"], f"{entry['parameters']:,}")
    logger.info("wrote %s", output)
    return output


def _convert_into(checkpoint: Path, temp: Path, upsampler: str | os.PathLike | None,
                  text_encoder: str | os.PathLike | None, dtype: torch.dtype | None,
                  max_shard_size: int | str) -> dict[str, dict[str, Any]]:
    from ..schedulers import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler

    if text_encoder is not None:  # cheap checks first, before any heavy work
        _check_text_encoder(Path(text_encoder))
    summary: dict[str, dict[str, Any]] = {}
    components = _components()
    with _open(checkpoint) as handle:
        header = _read_header(handle, checkpoint)
        keys = list(handle.keys())
        key_set = set(keys)
        fp8 = sorted({str(handle.get_slice(k).get_dtype()) for k in keys} & {"F8_E4M3", "F8_E5M2"})
        orphan_scales = [k for k in keys if k.endswith(WEIGHT_SCALE_SUFFIX)
                         and k[: -len(WEIGHT_SCALE_SUFFIX)] + ".weight" not in key_set]
        if orphan_scales:
            raise ValueError(f"{checkpoint}: fp8 scales without a weight: {orphan_scales[:8]}.")
        # names and shapes of every component are checked before any tensor data is read
        plan = convert_original_state_dict(header, _meta_shapes(handle, keys), checkpoint)
        routed = route_keys(keys, components, checkpoint)
        for component in components:
            _, config, checked = plan[component.name]
            state = {k: _load_tensor(handle, k, key_set, dtype) for k in routed[component.name]}
            converted = component.convert(state, {k: v.shape for k, v in checked.items()})
            del state
            _save_model(component.model_class, config, converted, temp / component.name, max_shard_size)
            summary[component.name] = {"tensors": len(converted),
                                       "parameters": sum(v.numel() for v in converted.values())}
            del converted
    distilled = "distilled" in checkpoint.name.lower()
    LTX2Scheduler(sigmas=list(DISTILLED_SIGMAS) if distilled else None).save_pretrained(temp / "scheduler")
    classes: dict[str, type] = {c.name: c.model_class for c in components}
    classes["scheduler"] = LTX2Scheduler
    text_index = None
    if text_encoder is not None:
        _copy_text_encoder(Path(text_encoder), temp)
        text_index = _text_encoder_index(temp)
    (temp / "model_index.json").write_text(json.dumps(_model_index(classes, text_index), indent=2) + "\n")
    if upsampler is not None:
        summary["latent_upsampler"] = _convert_upsampler(Path(upsampler), temp, dtype, max_shard_size)
    record = {
        "source": checkpoint.name, "variant": "distilled" if distilled else "dev", "fp8_source": fp8,
        "dtype": str(dtype).replace("torch.", "") if dtype is not None else "as stored",
        "ignored_keys": sorted(key_set & IGNORED_KEYS),
        "latent_upsampler": "latent_upsampler/ (not a pipeline component)" if upsampler is not None else None,
        "components": summary,
    }
    if distilled:
        record.update(sigmas=list(DISTILLED_SIGMAS), stage_2_sigmas=list(STAGE_2_DISTILLED_SIGMAS),
                      **DISTILLED_SCHEDULE)
    (temp / "ltx2_conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    (temp / "README.md").write_text(model_card(checkpoint.name, distilled, list(summary),
                                               has_text_encoder=text_encoder is not None))
    return summary


def format_summary(folder: str | os.PathLike) -> str:
    """A human-readable summary of a converted folder, read back from its ``ltx2_conversion.json``."""
    record = json.loads((Path(folder) / "ltx2_conversion.json").read_text())
    lines = [f"{folder}: {record['source']} ({record['variant']}, weights {record['dtype']})"]
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
