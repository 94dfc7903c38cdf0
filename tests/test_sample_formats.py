"""Sample formats: pixels scaled by their bit depth, PCM by its width, PIL modes, non-finite values refused."""

import numpy as np
import pytest
from PIL import Image

from ltx2_diffusers.utils.sample_formats import (
    FLOAT_AUDIO_PEAK_LIMIT,
    pcm_to_float,
    pil_pixels,
    pixels_to_uint8,
    pixels_to_unit,
)


def test_pixels_scale_by_bit_depth_and_floats_by_255():
    assert pixels_to_uint8(np.array([0, 7, 255], np.uint8)).tolist() == [0, 7, 255]
    sixteen = np.array([0, 257, 32896, 65535], np.uint16)
    assert pixels_to_uint8(sixteen).tolist() == [0, 1, 128, 255]  # 16-bit white stays white, not clipped
    assert pixels_to_uint8(sixteen.astype(">u2")).tolist() == [0, 1, 128, 255]  # big-endian too
    assert pixels_to_uint8(np.array([0.0, 0.5, 1.0], np.float64)).tolist() == [0, 128, 255]
    np.testing.assert_allclose(pixels_to_unit(sixteen), [0, 257 / 65535, 32896 / 65535, 1], rtol=0, atol=1e-7)
    floats = np.array([0.25, 0.75], np.float32)
    assert pixels_to_unit(floats).tolist() == [0.25, 0.75]  # floats are kept, not quantised


@pytest.mark.parametrize("array, message", [
    (np.array([0.0, 1.5]), r"float pixels in \[0, 1.5\]"),
    (np.array([-0.5, 0.5], np.float32), r"must lie in \[0, 1\]"),
    (np.array([0.0, np.nan]), "1 NaN or infinite value"),
    (np.array([np.inf, np.nan, 0.2]), "2 NaN or infinite values"),
    (np.array([0, 300], np.int64), "int64 pixels: pass uint8, uint16"),
    (np.array([True, False]), "bool pixels"),
])
def test_bad_pixels_are_named(array, message):
    with pytest.raises(ValueError, match=message):
        pixels_to_uint8(array, "frame 3")
    with pytest.raises(ValueError, match="frame 3"):
        pixels_to_unit(array, "frame 3")


def test_pcm_scales_by_width_and_centres_unsigned_8_bit():
    assert pcm_to_float(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert pcm_to_float(np.array([-2 ** 31, 2 ** 30], np.int32)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert pcm_to_float(np.array([-128, 64], np.int8)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([-16384], ">i2")).tolist() == [-0.5]
    out = pcm_to_float(np.array([[0.25, -1.5]], np.float64))
    assert out.dtype == np.float32 and out.tolist() == [[0.25, -1.5]]  # headroom up to the limit is kept


@pytest.mark.parametrize("samples, message", [
    (np.array([0.0, 12000.0], np.float32), "peaking at 12000"),  # int16 cast to float without scaling
    (np.array([0.0, -FLOAT_AUDIO_PEAK_LIMIT - 0.1]), "float audio lies in"),
    (np.array([0.1, np.nan], np.float32), "NaN or infinite"),
    (np.array([0, 1], np.int64), "int64 samples"),
    (np.array([0, 1], np.uint16), "uint16 samples"),
])
def test_bad_audio_samples_are_named(samples, message):
    with pytest.raises(ValueError, match=message):
        pcm_to_float(samples, "the voice track")
    with pytest.raises(ValueError, match="the voice track"):
        pcm_to_float(samples, "the voice track")


def test_pil_modes_keep_their_range():
    ramp = np.array([[0, 1000], [32768, 65535]], np.uint16)
    sixteen = pil_pixels(Image.fromarray(ramp), "image")  # mode I;16
    assert sixteen.shape == (2, 2, 3) and sixteen[..., 0].tolist() == [[0, 4], [128, 255]]
    assert (sixteen[..., 0] == sixteen[..., 2]).all()  # grey -> three equal channels
    as_int = pil_pixels(Image.fromarray(ramp.astype(np.int32)), "image")  # mode I (16-bit PNGs in older Pillow)
    assert np.array_equal(as_int, sixteen)
    as_float = pil_pixels(Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)), "image")  # mode F
    assert as_float[..., 1].tolist() == [[0, 128], [255, 64]]
    rgba = Image.fromarray(np.full((2, 2, 4), 200, np.uint8), mode="RGBA")
    assert pil_pixels(rgba, "image").tolist() == [[[200] * 3] * 2] * 2
    with pytest.raises(ValueError, match=r"mode 'I'.*\[0, 65535\]"):
        pil_pixels(Image.fromarray(np.array([[0, 70000]], np.int32)), "image")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        pil_pixels(Image.fromarray(np.array([[0.0, 2.0]], np.float32)), "image")
    with pytest.raises(ValueError, match="NaN"):
        pil_pixels(Image.fromarray(np.array([[0.0, np.nan]], np.float32)), "image")
