"""Which LTX-2 model an original single file holds: its version (LTX-2.0 or LTX-2.3) and variant (dev or distilled).

**Version.** LTX-2.3 files set switches in the ``config`` header that LTX-2.0 files lack (:data:`LTX23_SWITCHES`:
gated attention, text cross-attention AdaLN, the caption projection moved into the text path, gated connectors, and
a nested ``{"vocoder", "bwe"}`` vocoder block). Each component's config function checks its switches against the
tensors it holds (a header that contradicts its tensors is refused naming both); this module names the version
those switches describe: LTX-2.3 when the transformer has gated attention or text cross-attention AdaLN (the rule
:func:`~ltx2_diffusers.pipelines.defaults.model_version` applies to a transformer config), else LTX-2.0. A header
that sets only some of the switches is converted component by component and logged as a warning. The metadata's
``model_version`` (written next to ``config`` in LTX-2.3 files, e.g. ``"2.3.0"``; absent in LTX-2.0 files) must name
the same version; a version this package does not implement (e.g. ``"2.5"``) is refused.

**Variant.** Dev and distilled files hold the same tensors under the same header, so the variant is decided, in this
order, by: the ``variant`` argument (``--variant``) when given; else a metadata entry :data:`VARIANT_METADATA_KEYS`
when the file has one (``"dev"`` or ``"distilled"``); else the file name (``distilled`` in it means distilled), a
fallback that is logged and recorded in ``ltx2_conversion.json`` as ``"variant_source": "file name"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diffusers.utils import logging

from .text import uses_v2_text_projection

logger = logging.get_logger(__name__)

SUPPORTED_VERSIONS: tuple[str, ...] = ("2.0", "2.3")
VARIANTS: tuple[str, ...] = ("dev", "distilled")
# metadata entries (next to ``config``) that may state the variant, read in this order
VARIANT_METADATA_KEYS: tuple[str, ...] = ("model_variant", "variant")
MODEL_VERSION_KEY = "model_version"
# the header switches LTX-2.3 sets and LTX-2.0 lacks (block.key; caption_proj_* = the four caption projection keys)
LTX23_SWITCHES: tuple[str, ...] = (
    "transformer.apply_gated_attention", "transformer.cross_attention_adaln", "transformer.caption_proj_*",
    "transformer.connector_apply_gated_attention", "vocoder.bwe",
)
_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:[.\-+_ ].*)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelIdentity:
    """What a converted file is.

    Args:
        version: ``"2.0"`` or ``"2.3"``.
        variant: ``"dev"`` or ``"distilled"``.
        variant_source: where the variant came from: ``"argument"``, ``"metadata"`` or ``"file name"``.
        model_version: the metadata's ``model_version`` as written, or ``None`` when the file has none.
    """

    version: str
    variant: str
    variant_source: str
    model_version: str | None = None

    @property
    def distilled(self) -> bool:
        return self.variant == "distilled"

    @property
    def name(self) -> str:
        """``"LTX-2.3 distilled"``."""
        return f"LTX-{self.version} {self.variant}"


def header_switches(header: Mapping[str, Any]) -> dict[str, bool]:
    """Each of :data:`LTX23_SWITCHES` -> whether the header sets it (``ValueError`` for a malformed caption_proj*
    set, as :func:`~.text.uses_v2_text_projection` says)."""
    transformer = header.get("transformer") if isinstance(header.get("transformer"), Mapping) else {}
    vocoder = header.get("vocoder") if isinstance(header.get("vocoder"), Mapping) else {}
    return {
        "transformer.apply_gated_attention": transformer.get("apply_gated_attention", False) is True,
        "transformer.cross_attention_adaln": transformer.get("cross_attention_adaln", False) is True,
        "transformer.caption_proj_*": uses_v2_text_projection(transformer),
        "transformer.connector_apply_gated_attention": transformer.get("connector_apply_gated_attention",
                                                                       False) is True,
        "vocoder.bwe": "bwe" in vocoder,
    }


def header_version(header: Mapping[str, Any], path: Any = "the checkpoint") -> str:  # noqa: ANN401
    """``"2.3"`` when the transformer block sets gated attention or text cross-attention AdaLN, else ``"2.0"``; a
    header setting only some of :data:`LTX23_SWITCHES` is logged as a warning."""
    switches = header_switches(header)
    version = "2.3" if switches["transformer.apply_gated_attention"] or switches[
        "transformer.cross_attention_adaln"] else "2.0"
    if len(set(switches.values())) > 1:
        on = [name for name, value in switches.items() if value]
        off = [name for name, value in switches.items() if not value]
        logger.warning("%s: the header sets the LTX-2.3 switches %s but not %s; released LTX-2.0 files set none and "
                       "LTX-2.3 files all of them. Converting each component as its header block says (LTX-%s "
                       "defaults).", path, ", ".join(on), ", ".join(off), version)
    return version


def metadata_version(value: Any, path: Any = "the checkpoint") -> str | None:  # noqa: ANN401
    """The LTX version (``"2.0"`` / ``"2.3"``) a metadata ``model_version`` names, ``None`` when empty; another
    version or an unreadable value raises a ``ValueError`` naming it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    match = _VERSION.match(value) if isinstance(value, str) else None
    version = f"{match.group(1)}.{match.group(2)}" if match else None
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: its metadata says {MODEL_VERSION_KEY}={value!r}, a model version this package "
                         f"does not implement (it converts LTX-{' and LTX-'.join(SUPPORTED_VERSIONS)}).")
    return version


def checked_version(header: Mapping[str, Any], metadata: Mapping[str, Any], path: Any = "the checkpoint"  # noqa: ANN401
                    ) -> str:
    """The file's version from its header switches, which must agree with the metadata's ``model_version`` when the
    file states one (else a ``ValueError`` naming both)."""
    stated = metadata_version(metadata.get(MODEL_VERSION_KEY), path)
    version = header_version(header, path)
    if stated is not None and stated != version:
        switches = header_switches(header)
        detail = (f"the header sets {', '.join(k for k, v in switches.items() if v)}" if version == "2.3" else
                  f"the header sets none of the LTX-2.3 switches ({', '.join(LTX23_SWITCHES)})")
        raise ValueError(f"{path}: its metadata says {MODEL_VERSION_KEY}={metadata[MODEL_VERSION_KEY]!r} (LTX-"
                         f"{stated}) but {detail}, which is LTX-{version}: header and metadata disagree. Pass an "
                         f"unmodified original file.")
    return version


def check_variant(variant: Any) -> str | None:  # noqa: ANN401
    """``None`` or one of :data:`VARIANTS` (case-insensitive), else a ``ValueError``."""
    if variant is None:
        return None
    if not isinstance(variant, str) or variant.strip().lower() not in VARIANTS:
        raise ValueError(f"variant={variant!r}: pass one of {list(VARIANTS)} (or None to read it from the file's "
                         f"metadata, else its name).")
    return variant.strip().lower()


def checkpoint_variant(variant: str | None, metadata: Mapping[str, Any], file_name: str,
                       path: Any = "the checkpoint") -> tuple[str, str]:  # noqa: ANN401
    """``(variant, source)``: the argument, else the metadata (:data:`VARIANT_METADATA_KEYS`), else the file name."""
    chosen = check_variant(variant)
    if chosen is not None:
        return chosen, "argument"
    for key in VARIANT_METADATA_KEYS:
        if key in metadata:
            value = metadata[key]
            if not isinstance(value, str) or value.strip().lower() not in VARIANTS:
                raise ValueError(f"{path}: its metadata says {key}={value!r}; expected one of {list(VARIANTS)}. Pass "
                                 f"variant='dev' or 'distilled' (--variant) to decide.")
            return value.strip().lower(), "metadata"
    chosen = "distilled" if "distilled" in file_name.lower() else "dev"
    logger.info("%s: no variant given and none in the metadata; %r taken from the file name (pass variant='dev' or "
                "'distilled' to be explicit).", path, chosen)
    return chosen, "file name"


def identify_checkpoint(header: Mapping[str, Any], metadata: Mapping[str, Any], file_name: str,
                        variant: str | None = None, path: Any = "the checkpoint") -> ModelIdentity:  # noqa: ANN401
    """Version and variant of an original single file (see the module docstring for the rules)."""
    version = checked_version(header, metadata, path)
    chosen, source = checkpoint_variant(variant, metadata, file_name, path)
    stated = metadata.get(MODEL_VERSION_KEY)
    return ModelIdentity(version, chosen, source, stated if isinstance(stated, str) and stated.strip() else None)


__all__ = ["LTX23_SWITCHES", "ModelIdentity", "SUPPORTED_VERSIONS", "VARIANTS", "VARIANT_METADATA_KEYS",
           "check_variant", "checked_version", "checkpoint_variant", "header_switches", "header_version",
           "identify_checkpoint", "metadata_version"]
