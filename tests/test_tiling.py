"""Tile planning for the video VAE (pure functions): coverage, overlaps, blend weights, settings validation."""

import pytest
import torch

from ltx2_diffusers.models.tiling import (
    VideoTiling,
    axis_weight_sum,
    blend_masks,
    pixel_span,
    plan_axis,
    ramp,
    tile_spans,
    tile_starts,
)

CASES = [(length, tile, overlap) for length in (1, 2, 3, 5, 8, 13, 16, 17, 29, 33) for tile in (2, 3, 4, 7, 16)
         for overlap in range(tile)]


def test_spans_cover_every_cell_with_full_tiles_and_enough_overlap():
    for length, tile, overlap in CASES:
        _check_spans(length, tile, overlap)


def _check_spans(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    covered = torch.zeros(length, dtype=torch.bool)
    for start, stop in spans:
        assert stop - start == min(tile, length)  # never a narrow remainder tile
        covered[start:stop] = True
    assert covered.all() and spans[0][0] == 0 and spans[-1][1] == length
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        assert stop - start >= overlap  # neighbours share at least the requested overlap
        assert start > spans[0][0]  # strictly increasing starts
    # the fewest tiles that can honour the overlap
    if length > tile:
        assert len(spans) == -(-(length - overlap) // (tile - overlap))


def test_928_px_width_has_no_one_latent_tile():
    # 928 px = 29 latents; diffusers' 512/448 px tiling leaves a last tile [28, 29) that reflect padding cannot pad
    spans = tile_spans(29, 16, 2)
    assert spans == [(0, 16), (13, 29)]


def test_ramps_are_mirror_images_that_sum_to_one():
    up, down = ramp(5, rising=True), ramp(5, rising=False)
    torch.testing.assert_close(up + down, torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(up, torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64))
    assert (up > 0).all() and (up < 1).all()


def test_two_way_overlaps_sum_to_exactly_one():
    checked = 0
    for length, tile, overlap in CASES:
        spans = tile_spans(length, tile, overlap)
        if any(a_stop > b_start for (_, a_stop), (b_start, _) in zip(spans, spans[2:])):
            continue  # three tiles meet somewhere: only the normalised sum is 1 (next test)
        masks = blend_masks(spans)
        torch.testing.assert_close(axis_weight_sum(spans, masks, length), torch.ones(length, dtype=torch.float64))
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("skip,hard", [(0, False), (1, False), (1, True)])
def test_normalised_weights_are_a_partition_of_unity(skip, hard):
    for length, tile, overlap in CASES:
        _check_partition(length, tile, overlap, skip, hard)


def _check_partition(length, tile, overlap, skip, hard):
    spans = tile_spans(length, tile, max(overlap, skip))
    masks = blend_masks(spans, skip=skip, hard=hard)
    total = axis_weight_sum(spans, masks, length)
    assert (total > 0).all()  # every index gets weight: no division by zero, no hole
    normalised = torch.zeros(length, dtype=torch.float64)
    for (start, stop), mask in zip(spans, masks):
        assert ((mask >= 0) & (mask <= 1)).all()
        normalised[start:stop] += mask / total[start:stop]
    torch.testing.assert_close(normalised, torch.ones(length, dtype=torch.float64))


def test_skip_gives_the_causal_first_sample_to_the_previous_tile():
    spans = [(0, 9), (4, 13)]
    first, second = blend_masks(spans, skip=1)
    assert second[0] == 0 and first[4] == 1  # sample 4 is the second tile's stand-in first frame
    torch.testing.assert_close(first[5:] + second[1:5], torch.ones(4, dtype=torch.float64))


def test_hard_blending_gives_the_whole_overlap_to_the_earlier_tile():
    first, second = blend_masks([(0, 6), (3, 9)], skip=1, hard=True)
    assert first.tolist() == [1.0] * 6 and second.tolist() == [0.0] * 3 + [1.0] * 3


def test_temporal_pixel_spans_follow_the_causal_first_frame():
    assert pixel_span((0, 3), 8, causal=True) == (0, 17)  # 3 latent frames -> 17 frames
    assert pixel_span((2, 5), 8, causal=True) == (16, 33)  # starts on the last frame of latent 2
    assert pixel_span((2, 5), 32, causal=False) == (64, 160)


@pytest.mark.parametrize("latents", [1, 2, 6, 16, 17])
def test_temporal_decode_plan_covers_all_frames(latents):
    plan = plan_axis(latents, tile=4, overlap=2, scale=8, causal=True, output="pixel")
    frames = 8 * (latents - 1) + 1
    assert plan.weight_sum.numel() == frames and (plan.weight_sum > 0).all()
    assert plan.tiles[0].pixel.start == 0 and plan.tiles[-1].pixel.stop == frames
    for tile in plan.tiles:
        assert tile.weight.numel() == tile.pixel.stop - tile.pixel.start
        n = tile.latent.stop - tile.latent.start
        assert tile.pixel.stop - tile.pixel.start == 8 * (n - 1) + 1


def test_encode_plan_weights_live_on_latents():
    plan = plan_axis(10, tile=4, overlap=1, scale=32, causal=False, output="latent")
    assert plan.weight_sum.numel() == 10
    for tile in plan.tiles:
        assert tile.weight.numel() == tile.latent.stop - tile.latent.start == 4
        assert tile.pixel == slice(32 * tile.latent.start, 32 * tile.latent.stop)


def test_untiled_axis_is_one_tile_of_weight_one():
    plan = plan_axis(5, tile=None, overlap=3, scale=32, causal=False, output="pixel")
    assert len(plan) == 1 and plan.tiles[0].pixel == slice(0, 160) and (plan.weight_sum == 1).all()


def test_video_tiling_latent_sizes():
    assert VideoTiling().latent_sizes(32, 8) == (16, 2, 9, 4)
    assert VideoTiling(None, 0, None, 0).latent_sizes(32, 8) == (None, 0, None, 0)
    assert VideoTiling(64, 0, 8, 0).latent_sizes(32, 8) == (2, 0, 2, 1)


@pytest.mark.parametrize("kwargs,message", [
    (dict(tile_size=48), "multiple of 32"),
    (dict(tile_size=32, tile_overlap=0), "at least 64"),
    (dict(tile_size=128, tile_overlap=128), "smaller than tile_size"),
    (dict(tile_overlap=40), "tile_overlap must be"),
    (dict(tile_frames=12), "tile_frames must be"),
    (dict(tile_frames=0), "at least 8"),
    (dict(tile_frames=32, tile_overlap_frames=32), "smaller than tile_frames"),
    (dict(tile_overlap_frames=-8), "tile_overlap_frames must be"),
    (dict(tile_size=128.0), "integer"),
])
def test_tile_settings_that_cannot_work_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VideoTiling(**kwargs).latent_sizes(32, 8)


def test_bad_axis_arguments_raise():
    with pytest.raises(ValueError, match="overlap < tile"):
        tile_starts(10, 4, 4)
    with pytest.raises(ValueError, match="must share"):
        blend_masks([(0, 4), (4, 8)], skip=1)
    with pytest.raises(ValueError, match="output must be"):
        plan_axis(4, 2, 1, 8, True, "frames")
