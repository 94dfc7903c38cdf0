"""Tile planning for the video VAE: where tiles go and how their outputs are blended (pure functions).

Tiles are planned one axis at a time on the *latent* grid and then mapped to pixels. An axis of ``length`` latent
cells is covered by tiles of exactly ``tile`` cells (or one tile holding the whole axis when it is shorter) that
overlap their neighbours by at least ``overlap`` cells. The starts are spread evenly between ``0`` and
``length - tile``, so there is never a narrow remainder tile (diffusers' spatial tiling leaves a one-latent-wide last
tile at e.g. 928 px, which reflect padding cannot handle).

Each tile's output is weighted by a 1-D mask with linear ramps across its overlaps. A ramp over ``m`` samples takes
the values ``(i + 1/2) / m``, and the two tiles sharing an overlap get mirrored ramps, so the weights of two
overlapping tiles sum to exactly 1; where more than two tiles meet, dividing by the accumulated weight keeps the
blend a convex combination. An N-D tile mask is the outer product of its axis masks and the tile grid is a Cartesian
product, so the accumulated N-D weight is the outer product of the per-axis sums (:func:`axis_weight_sum`): no
weight buffer is ever needed.

Time is causal: latent frame 0 stands for pixel frame 0 alone, latent frame ``j > 0`` for frames ``8j-7 ... 8j``.
Latent frames ``[a, b)`` therefore decode to pixel frames ``[8a, 8(b-1) + 1)``, and a tile that starts at ``a > 0``
treats latent ``a`` as a first frame: its first output sample is a stand-in, so it gets weight 0 (``skip=1``) and the
previous tile provides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

# ----------------------------------------------------------------------------------------------------------------
# One axis
# ----------------------------------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts of tiles of ``tile`` cells covering ``[0, length)``, neighbours sharing ≥ ``overlap``."""
    if length < 1 or tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need length >= 1, tile >= 1 and 0 <= overlap < tile; got {length}, {tile}, {overlap}.")
    if length <= tile:
        return [0]
    count = -(-(length - overlap) // (tile - overlap))  # ceil: the fewest tiles whose overlaps are all >= overlap
    return [k * (length - tile) // (count - 1) for k in range(count)]


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, stop)`` latent spans of the tiles of :func:`tile_starts` (all ``min(tile, length)`` long)."""
    size = min(tile, length)
    return [(start, start + size) for start in tile_starts(length, tile, overlap)]


def pixel_span(span: tuple[int, int], scale: int, causal: bool) -> tuple[int, int]:
    """Pixel (or frame) interval of a latent span; with ``causal`` a span's first cell stands for one frame."""
    start, stop = span
    return start * scale, (stop - 1) * scale + 1 if causal else stop * scale


def ramp(length: int, rising: bool) -> torch.Tensor:
    """Linear ramp ``(i + 1/2) / length`` (rising) or its mirror; a rising and a falling ramp sum to 1."""
    values = (torch.arange(length, dtype=torch.float64) + 0.5) / length
    return values if rising else values.flip(0)


def blend_masks(spans: list[tuple[int, int]], skip: int = 0, hard: bool = False) -> list[torch.Tensor]:
    """1-D blend weights for tiles placed at ``spans`` (sorted, overlapping their neighbours) in output units.

    Across the overlap of tiles ``k`` and ``k+1`` the weights ramp linearly from ``k`` to ``k+1``. The first ``skip``
    samples of every tile but the first belong to the previous tile alone (weight 0): they are the causal stand-in
    of the tile's first latent frame. With ``hard`` the previous tile keeps the whole overlap (right for causal
    convolutions: the earlier tile has seen more of the past; the overlap only warms the later tile up). Returns
    float64 masks, one per span.
    """
    for before, after in zip(spans, spans[1:]):
        if before[1] - after[0] < skip:
            raise ValueError(f"tiles {before} and {after} must share at least {skip} samples.")
    masks = []
    for k, (start, stop) in enumerate(spans):
        mask = torch.ones(stop - start, dtype=torch.float64)
        if k > 0:
            shared = spans[k - 1][1] - start
            owned = shared if hard else skip  # leading samples that belong to the previous tile
            mask[:owned] = 0.0
            mask[owned:shared] *= ramp(shared - owned, rising=True)
        if k + 1 < len(spans):
            first = stop - start if hard else spans[k + 1][0] - start + skip
            mask[first:] *= ramp(stop - start - first, rising=False)
        masks.append(mask)
    return masks


def axis_weight_sum(spans: list[tuple[int, int]], masks: list[torch.Tensor], length: int) -> torch.Tensor:
    """Accumulated weight of every output sample of an axis of ``length`` samples."""
    total = torch.zeros(length, dtype=torch.float64)
    for (start, stop), mask in zip(spans, masks):
        total[start:stop] += mask
    return total


class AxisTile(NamedTuple):
    """One tile along one axis: its latent cells, its pixel samples and its blend weights (output side)."""

    latent: slice
    pixel: slice
    weight: torch.Tensor  # float64, as long as the output side (pixels when decoding, latents when encoding)


@dataclass(frozen=True)
class AxisPlan:
    """The tiles of one axis and the accumulated weight of every output sample."""

    tiles: list[AxisTile]
    weight_sum: torch.Tensor  # float64 [output length]

    def __len__(self) -> int:
        return len(self.tiles)


def plan_axis(length: int, tile: int | None, overlap: int, scale: int, causal: bool, output: str,
              hard: bool = False) -> AxisPlan:
    """Tiles of a latent axis of ``length`` cells, ``tile``/``overlap`` in cells (``tile=None``: one tile).

    Args:
        length: latent cells along the axis.
        tile, overlap: tile size and minimum overlap in latent cells.
        scale: pixels (or frames) per latent cell.
        causal: whether the axis is causal time (a span's first cell stands for a single frame).
        output: ``"pixel"`` when decoding (blend in pixel space), ``"latent"`` when encoding.
        hard: the previous tile keeps each overlap (see :func:`blend_masks`); for causal convolutions in time.
    """
    if output not in ("pixel", "latent"):
        raise ValueError(f"output must be 'pixel' or 'latent', got {output!r}.")
    spans = tile_spans(length, length if tile is None else tile, 0 if tile is None else overlap)
    pixels = [pixel_span(span, scale, causal) for span in spans]
    out_spans = pixels if output == "pixel" else spans
    masks = blend_masks(out_spans, skip=1 if causal else 0, hard=hard)
    out_length = pixel_span((0, length), scale, causal)[1] if output == "pixel" else length
    tiles = [AxisTile(slice(*s), slice(*p), m) for s, p, m in zip(spans, pixels, masks)]
    return AxisPlan(tiles, axis_weight_sum(out_spans, masks, out_length))


# ----------------------------------------------------------------------------------------------------------------
# Public tiling settings
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoTiling:
    """How the video VAE splits work into tiles, in pixels and frames.

    Spatial tiles are ``tile_size × tile_size`` pixels and overlap by at least ``tile_overlap`` pixels; temporal tiles
    span ``tile_frames`` frame intervals (``tile_frames + 1`` frames) and share at least ``tile_overlap_frames + 1``
    frames. Tiles are blended with linear ramps across the overlaps, normalised by the accumulated weight. Decoding
    produces the video one temporal tile at a time, so memory depends on ``tile_frames``, not on the clip length.

    Args:
        tile_size (`int` or `None`, defaults to 512): spatial tile size in pixels, a multiple of the spatial
            compression (32) and at least two latents (64 px). `None` disables spatial tiling.
        tile_overlap (`int`, defaults to 64): minimum spatial overlap in pixels, a multiple of 32, below `tile_size`.
        tile_frames (`int` or `None`, defaults to 64): temporal tile length in frames, a positive multiple of the
            temporal compression (8). `None` disables temporal tiling.
        tile_overlap_frames (`int`, defaults to 24): minimum temporal overlap in frames, a multiple of 8, below
            `tile_frames`.
    """

    tile_size: int | None = 512
    tile_overlap: int = 64
    tile_frames: int | None = 64
    tile_overlap_frames: int = 24

    def latent_sizes(self, spatial_scale: int, temporal_scale: int) -> tuple[int | None, int, int | None, int]:
        """``(tile, overlap, tile_frames, overlap_frames)`` in latent cells; ``ValueError`` if they cannot work."""
        spatial = temporal = None
        overlap = overlap_t = 0
        if self.tile_size is not None:
            _check_multiple("tile_size", self.tile_size, spatial_scale, minimum=2 * spatial_scale)
            _check_multiple("tile_overlap", self.tile_overlap, spatial_scale, minimum=0)
            if self.tile_overlap >= self.tile_size:
                raise ValueError(f"tile_overlap ({self.tile_overlap}) must be smaller than tile_size "
                                 f"({self.tile_size}); e.g. tile_size={self.tile_size}, tile_overlap="
                                 f"{self.tile_size // 4 // spatial_scale * spatial_scale}.")
            spatial, overlap = self.tile_size // spatial_scale, self.tile_overlap // spatial_scale
        if self.tile_frames is not None:
            _check_multiple("tile_frames", self.tile_frames, temporal_scale, minimum=temporal_scale)
            _check_multiple("tile_overlap_frames", self.tile_overlap_frames, temporal_scale, minimum=0)
            if self.tile_overlap_frames >= self.tile_frames:
                raise ValueError(f"tile_overlap_frames ({self.tile_overlap_frames}) must be smaller than "
                                 f"tile_frames ({self.tile_frames}); e.g. tile_frames=64, tile_overlap_frames=24.")
            # a tile of n frame intervals holds n/8 + 1 latent frames; neighbours share overlap/8 + 1 of them
            temporal = self.tile_frames // temporal_scale + 1
            overlap_t = self.tile_overlap_frames // temporal_scale + 1
        return spatial, overlap, temporal, overlap_t


def _check_multiple(name: str, value: int, step: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value % step:
        suggestion = max(minimum, round(value / step) * step) if isinstance(value, (int, float)) else minimum
        raise ValueError(f"{name} must be an integer multiple of {step} that is at least {minimum}, got {value!r}; "
                         f"use e.g. {suggestion}.")
