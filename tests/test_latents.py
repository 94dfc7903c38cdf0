"""Latent shape arithmetic and packing."""

import pytest
import torch

from ltx2_diffusers.pipelines.latents import (
    VideoLatentShape,
    check_video_size,
    pack_video_latents,
    unpack_video_latents,
)


def test_pixel_latent_round_trip_for_the_default_clip():
    shape = VideoLatentShape.from_pixels(121, 704, 1280)
    assert shape == (16, 22, 40, 128) and shape.num_tokens == 14_080
    assert shape.to_pixels() == (121, 704, 1280)
    assert VideoLatentShape.from_pixels(1, 32, 928).num_tokens == 29  # one frame, remainder one latent wide


@pytest.mark.parametrize("args, message", [
    ((120, 512, 768), "use 113 or 121"),
    ((121, 500, 768), "height must be a multiple of 32, got 500; use 480 or 512"),
    ((121, 512, 20), "use 32"),
    ((0, 512, 768), "positive integer"),
    ((121.5, 512, 768), "positive integer"),
])
def test_bad_sizes_name_valid_alternatives(args, message):
    with pytest.raises(ValueError, match=message):
        check_video_size(*args)


def test_pack_order_is_frame_row_column_and_round_trips():
    latents = torch.arange(2 * 3 * 2 * 2 * 4, dtype=torch.float32).view(2, 3, 2, 2, 4)
    tokens = pack_video_latents(latents)
    assert tokens.shape == (2, 16, 3)
    torch.testing.assert_close(tokens[0, 5], latents[0, :, 0, 1, 1])  # token 5 = frame 0, row 1, column 1
    torch.testing.assert_close(tokens[1, 12], latents[1, :, 1, 1, 0])
    assert torch.equal(unpack_video_latents(tokens, VideoLatentShape(2, 2, 4, 3)), latents)


def test_pack_rejects_wrong_rank_and_unpack_wrong_token_count():
    with pytest.raises(ValueError, match="channels, frames, height, width"):
        pack_video_latents(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\[batch, 16, 3\]"):
        unpack_video_latents(torch.zeros(2, 15, 3), VideoLatentShape(2, 2, 4, 3))
