"""How the video VAE reads its diffusers config: per-block lists, re-sampling strides and channel-flow checks.

Pure functions, no tensors. diffusers' ``AutoencoderKLLTX2Video`` indexes its per-block lists without checking their
lengths; :func:`per_block` reads them the same way (so every config diffusers runs, runs here) and turns the lists
that are too short into ``ValueError``s. The width checks reject, at construction, the configs whose channels cannot
flow through the blocks (diffusers builds those and fails in the first forward pass).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Factors = tuple[int, int, int]  # (time, height, width)

STRIDES: dict[str, Factors] = {
    "spatial": (1, 2, 2),
    "temporal": (2, 1, 1),
    "spatiotemporal": (2, 2, 2),
    "conv": (2, 2, 2),
}


def resample_stride(kind: str) -> Factors:
    """(time, height, width) stride of a ``downsample_type`` / ``upsample_type`` value; ``ValueError`` if unknown."""
    if kind not in STRIDES:
        raise ValueError(f"unknown re-sampling type {kind!r}; use one of {sorted(STRIDES)}.")
    return STRIDES[kind]


def per_block(value: bool | Sequence, count: int, name: str, from_end: bool = False) -> tuple:
    """``count`` per-block entries of a config list, read the way diffusers indexes it.

    A bool applies to every block. A longer list is accepted, as diffusers accepts it: its first ``count`` entries are
    used, or its last ``count`` with ``from_end`` (the decoder lists diffusers reverses before indexing, so their
    input-side end counts). A shorter list raises a ``ValueError``.
    """
    values = (value,) * count if isinstance(value, bool) else tuple(value)
    if len(values) < count:
        raise ValueError(f"{name} needs {count} entries (one per block), got {len(values)}: {values}.")
    return values[len(values) - count:] if from_end else values[:count]


def encoder_layers(layers_per_block: Sequence[int], blocks: int) -> tuple[tuple[int, ...], int]:
    """``(layers per down block, mid-block layers)`` as diffusers reads ``layers_per_block``: the first ``blocks``
    entries for the down blocks, the last entry for the mid block (shared with the last down block when the list has
    only ``blocks`` entries)."""
    layers = tuple(layers_per_block)
    if len(layers) < max(blocks, 1):
        raise ValueError(f"layers_per_block needs at least {max(blocks, 1)} entries (one per down block; the last "
                         f"one also sets the mid block), got {layers}.")
    return layers[:blocks], layers[-1]


def check_encoder_widths(in_width: int, widths: Sequence[int], enabled: Sequence[bool], kinds: Sequence[str]) -> None:
    """``ValueError`` unless every down block's re-sampler produces the width the next block is built for."""
    for i, (out, on, kind) in enumerate(zip(widths, enabled, kinds)):
        volume = math.prod(resample_stride(kind))
        if not on or kind == "conv":
            if out != in_width:
                what = "has no down-sampler" if not on else "down-samples with a width-keeping conv"
                raise ValueError(f"down block {i} {what}, so block_out_channels[{i}] must stay {in_width}, got {out}.")
        elif out % volume or (in_width * volume) % out:
            raise ValueError(f"down block {i} ({kind}) turns {in_width} channels into {in_width * volume} by "
                             f"space-to-depth; block_out_channels[{i}]={out} must divide that and be a multiple of "
                             f"{volume}.")
        in_width = out


def check_decoder_widths(mid_width: int, widths: Sequence[int], factors: Sequence[int], enabled: Sequence[bool]
                         ) -> None:
    """``ValueError`` unless the channel flow through the up blocks (input side first) is consistent.

    Up block ``i`` is built for ``in = out_{i-1} / factor_i`` and ``out = width_i / factor_i`` channels; a
    width-changing residual block runs first when they differ, the up-sampler expects ``out · factor_i`` channels.
    """
    width = previous = mid_width
    for i, (w, f, on) in enumerate(zip(widths, factors, enabled)):
        block_in, block_out = previous // f, w // f
        if block_in != block_out:
            if width != block_in:
                raise ValueError(f"up block {i} (from the input side) would change {block_in} -> {block_out} "
                                 f"channels but receives {width}; make decoder_block_out_channels / upsample_factor "
                                 f"consistent (a width change needs upsample_factor 1 at that block).")
            width = block_out
        if on:
            if width != block_out * f:
                raise ValueError(f"up block {i} (from the input side): its up-sampler expects {block_out * f} "
                                 f"channels but receives {width}; check decoder_block_out_channels / upsample_factor.")
            width = block_out
        if width != block_out:
            raise ValueError(f"up block {i} (from the input side) has no up-sampler and keeps {width} channels, but "
                             f"its residual blocks are built for {block_out}; check decoder_block_out_channels.")
        previous = block_out


def total_factors(kinds: Sequence[str], enabled: Sequence[bool], patch: Factors) -> Factors:
    """Overall (time, height, width) compression of a stack of re-samplers after patching."""
    total = list(patch)
    for kind, on in zip(kinds, enabled):
        if on:
            total = [t * s for t, s in zip(total, resample_stride(kind))]
    return tuple(total)
