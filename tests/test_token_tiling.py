"""Tiled refinement: the tile plan (pure) and the tiled x0 prediction against the untiled one."""

import math

import pytest
import torch

from ltx2_diffusers.pipelines.denoising import StreamInputs, predict_x0
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.pipelines.token_tiling import (
    TokenTiling,
    min_tile_tokens,
    plan_token_tiles,
    plan_windows,
    predict_x0_tiled,
    tile_layouts,
    tile_token_layout,
)
from ltx2_diffusers.utils.tiny import tiny_pipeline


def _coverage(tiles, grid):
    """Sum of every tile's weight at every grid token."""
    total = torch.zeros(math.prod(grid), dtype=torch.float64)
    for tile in tiles:
        total.index_add_(0, tile.token_indices(grid), tile.token_weights())
    return total


# ----------------------------------------------------------------------------------------------------------------
# Plan
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,count,overlap", [(48, 2, 4), (47, 3, 4), (13, 4, 2), (9, 3, 1), (5, 1, 3), (31, 5, 0)])
def test_axis_weights_sum_to_one_and_neighbours_overlap_as_requested(size, count, overlap):
    tiles = plan_windows(size, count, overlap)
    assert len(tiles) == count and tiles[0].start == 0 and tiles[-1].stop == size
    total = torch.zeros(size, dtype=torch.float64)
    for t in tiles:
        assert t.weights.shape == (t.stop - t.start,) and bool((t.weights > 0).all())
        total[t.start:t.stop] += t.weights
    torch.testing.assert_close(total, torch.ones(size, dtype=torch.float64), rtol=0, atol=1e-12)
    for left, right in zip(tiles, tiles[1:]):
        assert left.stop - right.start >= overlap  # shared positions
        assert right.start > left.start
    if count > 1 and overlap:  # a ramp, not a hard seam: the left tile fades out across the overlap
        left = tiles[0]
        shared = left.weights[-(left.stop - tiles[1].start):]
        assert bool((shared[1:] <= shared[:-1]).all()) and shared[-1] < 0.5


def test_stage_2_of_the_default_two_stage_run_is_split_in_two_along_the_width():
    grid = (16, 32, 48)  # 121 frames at 1024x1536: 24,576 tokens
    tiles = plan_token_tiles(grid, TokenTiling())
    assert len(tiles) == 2
    assert all(t.num_tokens <= 20480 for t in tiles)
    assert {t.shape[:2] for t in tiles} == {(16, 32)}  # whole clip, full height
    (a, b) = (t.cols for t in tiles)
    assert (a.start, b.stop) == (0, 48) and a.stop - b.start >= 4
    torch.testing.assert_close(_coverage(tiles, grid), torch.ones(math.prod(grid), dtype=torch.float64))


def test_a_grid_within_the_budget_is_one_tile_covering_everything():
    tiles = plan_token_tiles((3, 4, 5), TokenTiling(max_tokens=60))
    assert len(tiles) == 1 and tiles[0].shape == (3, 4, 5)
    assert torch.equal(tiles[0].token_weights(), torch.ones(60, dtype=torch.float64))


@pytest.mark.parametrize("grid,tiling", [
    ((5, 13, 17), TokenTiling(max_tokens=300, spatial_overlap=2, temporal_overlap=1)),
    ((7, 9, 11), TokenTiling(max_tokens=60, spatial_overlap=1, temporal_overlap=1)),  # needs temporal tiles too
    ((1, 33, 7), TokenTiling(max_tokens=100, spatial_overlap=3, temporal_overlap=0)),
])
def test_odd_grids_are_covered_with_weights_summing_to_one_within_budget(grid, tiling):
    tiles = plan_token_tiles(grid, tiling)
    assert len(tiles) > 1 and all(t.num_tokens <= tiling.max_tokens for t in tiles)
    torch.testing.assert_close(_coverage(tiles, grid), torch.ones(math.prod(grid), dtype=torch.float64),
                               rtol=0, atol=1e-12)
    assert math.isclose(sum(layout.audio_share for layout in tile_layouts(tiles, grid, math.prod(grid))), 1.0)


def test_time_is_tiled_only_when_space_alone_cannot_meet_the_budget():
    spatial_only = plan_token_tiles((7, 9, 11), TokenTiling(max_tokens=400, spatial_overlap=1))
    assert {(t.frames.start, t.frames.stop) for t in spatial_only} == {(0, 7)}
    both = plan_token_tiles((7, 9, 11), TokenTiling(max_tokens=60, spatial_overlap=1, temporal_overlap=1))
    assert len({(t.frames.start, t.frames.stop) for t in both}) > 1


def test_budget_below_one_tile_is_a_clear_error():
    grid = (16, 32, 48)
    tiling = TokenTiling(max_tokens=100, spatial_overlap=4, temporal_overlap=1)
    assert min_tile_tokens(grid, tiling) == 3 * 9 * 9
    with pytest.raises(ValueError, match="below the smallest tile"):
        plan_token_tiles(grid, tiling)
    for bad in (dict(max_tokens=0), dict(spatial_overlap=-1), dict(temporal_overlap=1.5)):
        with pytest.raises(ValueError, match="TokenTiling"):
            TokenTiling(**bad)


def test_keyframe_tokens_join_every_tile_over_their_cells_with_weights_summing_to_one():
    grid = (3, 4, 6)
    tiles = plan_token_tiles(grid, TokenTiling(max_tokens=30, spatial_overlap=1, temporal_overlap=0))
    extra = 2 * 4 * 6  # two appended keyframes
    times = len({(t.frames.start, t.frames.stop) for t in tiles})
    total = torch.zeros(math.prod(grid) + extra, dtype=torch.float64)
    for tile in tiles:
        index, weight = tile_token_layout(tile, grid, extra, times)
        assert index.unique().numel() == index.numel()
        total.index_add_(0, index, weight)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# Tiled prediction
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def streams():
    pipe = tiny_pipeline(seed=0)
    t = pipe.transformer
    g = torch.Generator().manual_seed(0)
    grid = (2, 3, 4)
    video = StreamInputs(
        latents=torch.randn(1, math.prod(grid), t.config.in_channels, generator=g),
        coords=t.video_coordinates(*grid, fps=24.0), context=torch.randn(1, 8, t.config.caption_channels,
                                                                         generator=g),
        negative_context=torch.randn(1, 8, t.config.caption_channels, generator=g),
        guidance=GuidanceParams(guidance_scale=2.0, stg_scale=0.5, modality_scale=1.5), stg_blocks=(1,))
    audio = StreamInputs(
        latents=torch.randn(1, 5, t.config.audio_in_channels, generator=g), coords=t.audio_coordinates(5),
        context=torch.randn(1, 8, t.config.caption_channels, generator=g),
        negative_context=torch.randn(1, 8, t.config.caption_channels, generator=g),
        guidance=GuidanceParams(guidance_scale=3.0), stg_blocks=(1,))
    return t, video, audio, grid


def test_one_tile_covering_everything_equals_the_untiled_prediction(streams):
    transformer, video, audio, grid = streams
    sigma = torch.tensor(0.7)
    (tile,) = plan_token_tiles(grid, TokenTiling(max_tokens=math.prod(grid)))
    with torch.no_grad():
        tiled = predict_x0_tiled(transformer, video, audio, sigma, 24.0, tile_layouts([tile], grid, math.prod(grid)))
        plain = predict_x0(transformer, video, audio, sigma, 24.0)
    torch.testing.assert_close(tiled[0], plain[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(tiled[1], plain[1], rtol=0, atol=1e-6)


def test_several_tiles_blend_into_a_prediction_close_to_but_not_equal_to_the_whole(streams):
    transformer, video, audio, grid = streams
    sigma = torch.tensor(0.7)
    tiles = plan_token_tiles(grid, TokenTiling(max_tokens=12, spatial_overlap=1, temporal_overlap=0))
    assert len(tiles) == 2
    with torch.no_grad():
        tiled = predict_x0_tiled(transformer, video, audio, sigma, 24.0, tile_layouts(tiles, grid, math.prod(grid)))
        plain = predict_x0(transformer, video, audio, sigma, 24.0)
    assert tiled[0].shape == plain[0].shape and tiled[1].shape == plain[1].shape
    difference = (tiled[0] - plain[0]).abs().max().item()
    assert 0 < difference < plain[0].abs().max().item()  # tiles see less context, so they differ, but sanely
