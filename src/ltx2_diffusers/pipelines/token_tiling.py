"""Tiled refinement: the transformer sees overlapping windows of the video latent instead of the whole grid.

A refinement pass over a large latent (stage 2 of a 1080p run has ~25k video tokens) is split into overlapping
spatial (and, when a single spatial cell column is still too long, temporal) tiles. Every step, each tile's video
tokens run through the transformer together with the *whole* audio stream, and the tiles' x0 predictions are blended
with weights that sum to one at every token. The audio x0 is the average of the tiles' audio predictions, weighted by
the share of video tokens each tile owns.

The plan is a pure function of the latent grid and a :class:`TokenTiling`; :func:`predict_x0_tiled` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from .denoising import StreamInputs, predict_x0

# ----------------------------------------------------------------------------------------------------------------
# The tile plan: pure functions
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTiling:
    """How to tile a refinement pass.

    Args:
        max_tokens: video tokens per transformer call (the budget); a grid within it is not tiled. Stage 2 of the
            default two-stage run (121 frames, 1024×1536) has 24,576 tokens, so the default tiles it in two.
        spatial_overlap: latent cells (32 px each) shared by neighbouring tiles along height and width.
        temporal_overlap: latent frames (8 frames each) shared by neighbouring tiles along time.
    """

    max_tokens: int = 20480
    spatial_overlap: int = 4
    temporal_overlap: int = 1

    def __post_init__(self) -> None:
        for name in ("max_tokens", "spatial_overlap", "temporal_overlap"):
            value = getattr(self, name)
            minimum = 1 if name == "max_tokens" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"TokenTiling.{name} must be an integer >= {minimum}, got {value!r}.")


@dataclass(frozen=True)
class TileWindow:
    """A window ``[start, stop)`` of one latent axis and its blend weight at each position of the window."""

    start: int
    stop: int
    weights: torch.Tensor  # [stop - start] float64


@dataclass(frozen=True)
class TokenTile:
    """One tile: a window per axis (frames, rows, columns) of the latent grid."""

    frames: TileWindow
    rows: TileWindow
    cols: TileWindow

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(a.stop - a.start for a in (self.frames, self.rows, self.cols))

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    def token_indices(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """Indices of the tile's tokens in the packed (frame, row, column) order of ``grid``."""
        _, height, width = grid
        f, h, w = (torch.arange(a.start, a.stop) for a in (self.frames, self.rows, self.cols))
        return (f.view(-1, 1, 1) * height * width + h.view(1, -1, 1) * width + w.view(1, 1, -1)).flatten()

    def token_weights(self) -> torch.Tensor:
        """``[num_tokens]`` float64 blend weights of the tile's tokens (same order as :meth:`token_indices`)."""
        f, h, w = (a.weights for a in (self.frames, self.rows, self.cols))
        return (f.view(-1, 1, 1) * h.view(1, -1, 1) * w.view(1, 1, -1)).flatten()


def axis_tile_length(size: int, count: int, overlap: int) -> int:
    """Window length that splits ``size`` positions into ``count`` windows overlapping by at least ``overlap``."""
    if count <= 1:
        return size
    return min(size, math.ceil((size + (count - 1) * overlap) / count))


def plan_windows(size: int, count: int, overlap: int) -> list[TileWindow]:
    """``count`` evenly spaced windows over ``size`` positions, neighbours overlapping by ``>= overlap``.

    Each window's raw weight ramps up linearly over ``overlap`` positions where it has a left neighbour and down
    where it has a right one (1 elsewhere, always > 0); the weights are then normalised so that at every position
    they sum to exactly one over the windows covering it.
    """
    if size < 1 or count < 1 or overlap < 0:
        raise ValueError(f"plan_windows needs size >= 1, count >= 1 and overlap >= 0, got {size}, {count}, {overlap}.")
    count = min(count, size)
    length = axis_tile_length(size, count, overlap)
    starts = [0] if count == 1 else [round(i * (size - length) / (count - 1)) for i in range(count)]
    raw = []
    for i in range(count):
        position = torch.arange(length, dtype=torch.float64)
        weight = torch.ones(length, dtype=torch.float64)
        if i > 0 and overlap:
            weight = torch.minimum(weight, (position + 1) / (overlap + 1))
        if i < count - 1 and overlap:
            weight = torch.minimum(weight, (length - position) / (overlap + 1))
        raw.append(weight)
    total = torch.zeros(size, dtype=torch.float64)
    for start, weight in zip(starts, raw):
        total[start:start + length] += weight
    return [TileWindow(start, start + length, weight / total[start:start + length])
            for start, weight in zip(starts, raw)]


def min_tile_tokens(grid: tuple[int, int, int], tiling: TokenTiling) -> int:
    """Tokens of the smallest tile the plan can make: each axis at ``2·overlap + 1`` positions (or its whole size)."""
    overlaps = (tiling.temporal_overlap, tiling.spatial_overlap, tiling.spatial_overlap)
    return math.prod(min(size, 2 * overlap + 1) for size, overlap in zip(grid, overlaps))


def plan_token_tiles(grid: tuple[int, int, int], tiling: TokenTiling) -> list[TokenTile]:
    """Tiles for a latent ``grid = (frames, height, width)`` under ``tiling``.

    One tile when the grid fits the budget; otherwise the fewest tiles that fit, tiling space before time, then
    preferring the most even split. Windows along an axis are at least ``2·overlap + 1`` long, so a budget below
    :func:`min_tile_tokens` is a ``ValueError``.
    """
    if len(grid) != 3 or any(int(s) != s or s < 1 for s in grid):
        raise ValueError(f"grid must be (frames, height, width) positive integers, got {grid!r}.")
    grid = tuple(int(s) for s in grid)
    overlaps = (tiling.temporal_overlap, tiling.spatial_overlap, tiling.spatial_overlap)
    smallest = min_tile_tokens(grid, tiling)
    if tiling.max_tokens < smallest:
        raise ValueError(f"TokenTiling.max_tokens={tiling.max_tokens} is below the smallest tile of the {grid} latent "
                         f"grid with overlaps {overlaps} ({smallest} tokens); raise max_tokens or lower the overlaps.")

    def lengths(counts: tuple[int, int, int]) -> tuple[int, ...] | None:
        out = []
        for size, count, overlap in zip(grid, counts, overlaps):
            length = axis_tile_length(size, count, overlap)
            if count > 1 and length < min(size, 2 * overlap + 1):
                return None
            out.append(length)
        return tuple(out)

    best = None
    for frames in range(1, grid[0] + 1):
        for rows in range(1, grid[1] + 1):
            for cols in range(1, grid[2] + 1):
                sizes = lengths((frames, rows, cols))
                if sizes is None or math.prod(sizes) > tiling.max_tokens:
                    continue
                key = (frames, rows * cols, abs(sizes[1] - sizes[2]), math.prod(sizes))
                if best is None or key < best[0]:
                    best = (key, (frames, rows, cols))
        if best is not None:  # the fewest temporal tiles that work
            break
    counts = best[1]
    axes = [plan_windows(size, count, overlap) for size, count, overlap in zip(grid, counts, overlaps)]
    return [TokenTile(f, h, w) for f in axes[0] for h in axes[1] for w in axes[2]]


# ----------------------------------------------------------------------------------------------------------------
# Applying a plan
# ----------------------------------------------------------------------------------------------------------------


def _select(stream: StreamInputs, index: torch.Tensor) -> StreamInputs:
    levels = None if stream.mask_levels is None else stream.mask_levels.select(index)
    return replace(
        stream,
        latents=stream.latents[:, index],
        coords=stream.coords[:, :, index],
        denoise_mask=None if levels is None else levels.mask,
        clean=None if stream.clean is None else stream.clean[:, index],
        mask_levels=levels,
    )


def tile_token_layout(tile: TokenTile, grid: tuple[int, int, int], extra_tokens: int, num_time_tiles: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and blend weights of a tile's tokens: its grid window, plus the appended keyframe tokens (``extra``
    tokens after the grid, in blocks of one latent frame) that fall in its spatial window, each weighted by the
    tile's spatial weight shared evenly between the ``num_time_tiles`` temporal tiles."""
    index, weight = tile.token_indices(grid), tile.token_weights()
    if extra_tokens:
        _, height, width = grid
        per_frame = height * width
        if extra_tokens % per_frame:
            raise ValueError(f"{extra_tokens} appended tokens are not whole latent frames of {height}x{width}.")
        spatial = TokenTile(TileWindow(0, 1, torch.ones(1, dtype=torch.float64)), tile.rows, tile.cols)
        cells, cell_weights = spatial.token_indices((1, height, width)), spatial.token_weights() / num_time_tiles
        blocks = torch.arange(extra_tokens // per_frame).view(-1, 1)
        index = torch.cat([index, (math.prod(grid) + blocks * per_frame + cells).flatten()])
        weight = torch.cat([weight, cell_weights.repeat(blocks.numel())])
    return index, weight


@dataclass(frozen=True)
class TileLayout:
    """Where one tile's tokens sit in the packed video stream, their blend weights, and the tile's share of the
    audio prediction (its grid weight over the grid size)."""

    index: torch.Tensor  # [n] long
    weight: torch.Tensor  # [n] float32
    audio_share: float


def tile_layouts(tiles: list[TokenTile], grid: tuple[int, int, int], num_tokens: int,
                 device: torch.device | str | None = None) -> list[TileLayout]:
    """The layouts of ``tiles`` for a video stream of ``num_tokens`` (the ``grid`` tokens, then any appended keyframe
    tokens); computed once per denoising stage, not per step."""
    grid_tokens = math.prod(grid)
    num_time_tiles = len({(t.frames.start, t.frames.stop) for t in tiles})
    layouts = []
    for tile in tiles:
        index, weight = tile_token_layout(tile, grid, num_tokens - grid_tokens, num_time_tiles)
        layouts.append(TileLayout(index.to(device), weight.to(device=device, dtype=torch.float32),
                                  float(tile.token_weights().sum()) / grid_tokens))
    return layouts


def predict_x0_tiled(
    transformer: torch.nn.Module,
    video: StreamInputs,
    audio: StreamInputs | None,
    sigma: torch.Tensor,
    fps: float,
    layouts: list[TileLayout],
    batch_passes: bool = True,
    use_cross_timestep: bool = True,
    attention_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Guided x0 of both streams, the video predicted tile by tile (see the module docstring); ``layouts`` from
    :func:`tile_layouts` for this video stream; the call's options as :func:`predict_x0` takes them."""
    device = video.latents.device
    x0_video = torch.zeros(video.latents.shape, dtype=torch.float32, device=device)
    x0_audio = None if audio is None else torch.zeros(audio.latents.shape, dtype=torch.float32, device=device)
    for layout in layouts:
        tile_video, tile_audio = predict_x0(transformer, _select(video, layout.index), audio, sigma, fps,
                                            batch_passes, use_cross_timestep, attention_kwargs)
        x0_video.index_add_(1, layout.index, tile_video.float() * layout.weight.view(1, -1, 1))  # [B, T, C]
        if audio is not None:
            x0_audio += tile_audio.float() * layout.audio_share
    return x0_video.to(video.latents.dtype), None if audio is None else x0_audio.to(audio.latents.dtype)
