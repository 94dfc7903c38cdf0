"""The video VAE's config reading (pure functions): per-block lists as diffusers indexes them, strides, widths."""

import pytest

from ltx2_diffusers.models.video_vae_config import (
    check_decoder_widths,
    check_encoder_widths,
    encoder_layers,
    per_block,
    resample_stride,
    total_factors,
)


def test_per_block_reads_lists_as_diffusers_indexes_them():
    assert per_block(True, 3, "x") == (True, True, True)
    assert per_block((1, 2, 3, 4), 2, "x") == (1, 2)  # indexed from the start
    assert per_block((1, 2, 3, 4), 2, "x", from_end=True) == (3, 4)  # reversed, then indexed: the end counts
    assert per_block((1, 2), 2, "x", from_end=True) == (1, 2)
    with pytest.raises(ValueError, match="upsample_type needs 3 entries"):
        per_block(("spatial",), 3, "upsample_type")


def test_encoder_layers_mid_block_takes_the_last_entry():
    assert encoder_layers((4, 6, 4, 2, 2), 4) == ((4, 6, 4, 2), 2)
    assert encoder_layers((3,), 1) == ((3,), 3)  # one entry per down block: shared with the mid block
    assert encoder_layers((1, 2, 9, 5), 2) == ((1, 2), 5)
    with pytest.raises(ValueError, match="needs at least 2"):
        encoder_layers((1,), 2)


def test_strides_and_total_factors():
    assert resample_stride("temporal") == (2, 1, 1) and resample_stride("conv") == (2, 2, 2)
    with pytest.raises(ValueError, match="unknown re-sampling type 'up'"):
        resample_stride("up")
    # LTX-2.3 decoder (input side first) after a 4x4 patch: 32 x 32 x 8
    kinds = ("spatiotemporal", "spatiotemporal", "temporal", "spatial")
    assert total_factors(kinds, (True,) * 4, (1, 4, 4)) == (8, 32, 32)
    assert total_factors(kinds, (True, False, False, True), (1, 4, 4)) == (2, 16, 16)


def test_width_checks_accept_the_released_layouts_and_name_the_broken_block():
    # LTX-2.0 / 2.3 encoders and decoders (decoder widths and factors input side first)
    check_encoder_widths(128, (256, 512, 1024, 2048), (True,) * 4, ("spatial", "temporal") + ("spatiotemporal",) * 2)
    check_encoder_widths(128, (256, 512, 1024, 1024), (True,) * 4, ("spatial", "temporal") + ("spatiotemporal",) * 2)
    check_decoder_widths(1024, (1024, 512, 256), (2, 2, 2), (True,) * 3)
    check_decoder_widths(1024, (1024, 512, 512, 256), (2, 1, 2, 2), (True,) * 4)
    check_decoder_widths(64, (64, 128, 32), (2, 1, 1), (True,) * 3)  # width changes where the factor is 1
    with pytest.raises(ValueError, match="down block 1 down-samples with a width-keeping conv"):
        check_encoder_widths(8, (16, 32), (True, True), ("spatial", "conv"))
    with pytest.raises(ValueError, match="up block 1 .* would change 256 -> 128 channels but receives 512"):
        check_decoder_widths(1024, (1024, 256), (2, 2), (True, True))
