"""Media given to the pipeline: WAVs of every sample width, multichannel files refused before decoding (in a
subprocess: the old path crashed inside FFmpeg), 16-bit / float / tiny images, frame lists and non-finite values."""

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers.pipelines.conditioning import as_conditions, image_array, preprocess_image
from ltx2_diffusers.pipelines.media import audio_waveform, read_audio, read_video, video_pixels
from ltx2_diffusers.utils.paths import MissingFileError

scipy_wavfile = pytest.importorskip("scipy.io.wavfile")
SRC = str(Path(__file__).resolve().parents[1] / "src")
# half of full scale in each width's own units, and a quarter negative
HALF = {1: (192, 96), 2: (16384, -8192), 4: (2 ** 30, -(2 ** 29))}


def _wav(path, width, channels=2, frames=400, rate=16000):
    """A stdlib-written PCM WAV whose samples alternate +0.5 / -0.25 of full scale (uint8 is offset by 128)."""
    plus, minus = HALF[width]
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
    samples = np.tile(np.array([plus, minus], dtype), frames // 2)
    interleaved = np.repeat(samples[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(interleaved.tobytes())
    return path


@pytest.mark.parametrize("width", [1, 2, 4])
def test_integer_wavs_are_scaled_by_their_width(tmp_path, width):
    waveform, rate = read_audio(_wav(tmp_path / f"pcm{width}.wav", width))
    expected = [0.5, -0.25] if width > 1 else [0.5, -0.25]  # uint8: (192-128)/128, (96-128)/128
    assert rate == 16000 and waveform.shape == (2, 400) and waveform.dtype == torch.float32
    torch.testing.assert_close(waveform[:, :2], torch.tensor([expected, expected]), rtol=0, atol=1e-6)
    mono, _ = audio_waveform(_wav(tmp_path / f"mono{width}.wav", width, channels=1))
    assert mono.shape == (2, 400) and torch.equal(mono[0], mono[1]) and abs(float(mono[0, 0]) - 0.5) < 1e-6


def test_float_wav_is_read_as_is_and_non_finite_is_refused(tmp_path):
    samples = np.tile(np.array([[0.5, -0.25]], np.float32), (300, 1))
    scipy_wavfile.write(tmp_path / "float.wav", 22050, samples)
    waveform, rate = read_audio(tmp_path / "float.wav")
    assert rate == 22050 and waveform[:, 0].tolist() == [0.5, -0.25]
    samples[7, 1] = np.nan
    scipy_wavfile.write(tmp_path / "nan.wav", 22050, samples)
    with pytest.raises(ValueError, match=r"nan\.wav.*NaN or infinite"):
        audio_waveform(str(tmp_path / "nan.wav"))
    scipy_wavfile.write(tmp_path / "loud.wav", 22050, samples[:5] * 0 + 9000.0)  # int16 values stored as float
    with pytest.raises(ValueError, match=r"loud\.wav.*peaking at 9000"):
        read_audio(tmp_path / "loud.wav")


def test_eight_channel_float_wav_is_refused_before_decoding(tmp_path):
    """Decoding this file through FFmpeg's resampler killed the process (SIGSEGV); a subprocess keeps a regression
    from taking pytest down with it."""
    scipy_wavfile.write(tmp_path / "eight.wav", 48000, np.zeros((480, 8), np.float32))
    # bare package modules, so that only media.py and its few imports load (the package's __init__ pulls in
    # diffusers and transformers: seconds per subprocess)
    code = (f"import sys, types\n"
            f"for name in ('', '.pipelines', '.models', '.utils'):\n"
            f"    module = types.ModuleType('ltx2_diffusers' + name)\n"
            f"    module.__path__ = [{SRC!r} + '/ltx2_diffusers' + name.replace('.', '/')]\n"
            f"    sys.modules[module.__name__] = module\n"
            f"from ltx2_diffusers.pipelines.media import read_audio\n"
            f"read_audio({str(tmp_path / 'eight.wav')!r})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, f"exit {result.returncode} (negative = killed by a signal): {result.stderr[-2000:]}"
    assert "ValueError" in result.stderr and "has 8 audio channels" in result.stderr
    assert "downmix it to stereo" in result.stderr


def test_three_channel_and_empty_wavs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="has 3 audio channels"):
        read_audio(_wav(tmp_path / "three.wav", 2, channels=3))
    with pytest.raises(ValueError, match="holds no audio samples"):
        read_audio(_wav(tmp_path / "empty.wav", 2, frames=0))
    with pytest.raises(MissingFileError, match="does not exist"):
        read_audio(tmp_path / "missing.wav")


def test_in_memory_pcm_is_scaled_and_bad_waveforms_are_named():
    int16 = torch.tensor([[16384, -32768]], dtype=torch.int16)
    torch.testing.assert_close(audio_waveform(int16, 8000)[0], torch.tensor([[0.5, -1.0], [0.5, -1.0]]))
    uint8 = np.array([128, 192], np.uint8)
    assert audio_waveform((uint8, 8000))[0][0].tolist() == [0.0, 0.5]
    for bad, message in ((torch.tensor([[0.0, 20000.0]]), "peaking at 20000"),
                         (torch.tensor([[0.0, float("inf")]]), "NaN or infinite"),
                         (np.zeros((2, 0), np.float32), "empty"), (np.zeros(0, np.int16), "empty")):
        with pytest.raises(ValueError, match=message):
            audio_waveform(bad, 8000)


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------


def test_sixteen_bit_png_is_scaled_not_clipped_to_white(tmp_path):
    grey = np.full((6, 8), 32896, np.uint16)  # 16-bit mid grey (= 8-bit 128)
    grey[0, 0] = 65535
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    for source in (tmp_path / "grey16.png", str(tmp_path / "grey16.png"), Image.open(tmp_path / "grey16.png")):
        array = image_array(source)
        assert array.shape == (6, 8, 3) and array.dtype == np.uint8
        assert array[1, 1].tolist() == [128, 128, 128] and array[0, 0].tolist() == [255, 255, 255]
    rgb16 = np.full((4, 4, 3), 65535, np.uint16)
    rgb16[..., 1] = 0
    assert image_array(rgb16)[0, 0].tolist() == [255, 0, 255]
    assert image_array(torch.from_numpy(rgb16.astype(np.float32) / 65535).permute(2, 0, 1))[0, 0].tolist() == [
        255, 0, 255]


def test_float_images_are_scaled_and_out_of_range_or_nan_refused():
    image = np.zeros((4, 6, 3), np.float32)
    image[..., 0] = 0.5
    assert image_array(image)[0, 0].tolist() == [128, 0, 0]
    assert image_array(Image.fromarray(image[..., 0], mode="F"))[0, 0].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match=r"image\[0\] has float pixels in \[2, 2\]"):
        as_conditions(torch.full((3, 4, 6), 2.0), num_frames=9)
    image[1, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"image\[1\] holds 1 NaN"):
        as_conditions([np.zeros((4, 6, 3), np.uint8), (image, 8)], num_frames=9)


@pytest.mark.parametrize("tiny", [Image.new("RGB", (1, 1)), np.zeros((1, 5, 3), np.uint8), Image.new("L", (7, 1))])
def test_images_under_two_pixels_are_a_value_error(tiny):
    with pytest.raises(ValueError, match=r"pass at least 2x2"):
        preprocess_image(tiny, 64, 64)


def test_image_files_missing_or_unreadable(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        image_array(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="could not read"):
        image_array(tmp_path / "junk.png")
    image = Image.new("RGB", (4, 2), (10, 20, 30))
    image.save(tmp_path / "ok.png")
    assert image_array(tmp_path / "ok.png").shape == (2, 4, 3)


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((2, 4, 3), np.uint8)
    array[:, 0] = 255  # left column white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(array).save(tmp_path / "rotated.png", exif=exif)
    shown = image_array(tmp_path / "rotated.png")
    assert shown.shape == (4, 2, 3) and shown[0].min() == 255 and shown[1:].max() == 0  # white row on top


# ----------------------------------------------------------------------------------------------------------------
# Videos
# ----------------------------------------------------------------------------------------------------------------


def test_frame_lists_of_any_mode_and_mixed_sizes():
    frames = [Image.fromarray(np.full((4, 6), 65535, np.uint16)), Image.new("RGB", (6, 4), (255, 0, 0))]
    pixels, fps = video_pixels(frames)
    assert fps is None and pixels.shape == (2, 3, 4, 6)
    assert pixels[0].eq(1).all() and pixels[1, 0].eq(1).all() and pixels[1, 1:].eq(-1).all()
    with pytest.raises(ValueError, match=r"frame 0 is 4x6, frame 2 is 5x6"):
        video_pixels([*frames, Image.new("RGB", (6, 5))])
    with pytest.raises(ValueError, match="at least one"):
        video_pixels([])


def test_video_arrays_by_depth_and_bad_values():
    sixteen = np.full((2, 4, 6, 3), 65535, np.uint16)
    assert video_pixels(sixteen)[0].eq(1).all()
    floats = torch.full((2, 3, 4, 6), 0.25)
    assert torch.equal(video_pixels(floats)[0], torch.full((2, 3, 4, 6), -0.5))
    floats[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="video holds 1 NaN"):
        video_pixels(floats)
    with pytest.raises(ValueError, match="video is empty"):
        video_pixels(np.zeros((0, 4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="int32 pixels"):
        video_pixels(np.zeros((2, 4, 6, 3), np.int32))


def test_video_files_without_frames(tmp_path):
    with pytest.raises(ValueError, match="has no video stream"):
        read_video(_wav(tmp_path / "sound.wav", 2))
    with pytest.raises(MissingFileError):
        video_pixels(str(tmp_path / "missing.mp4"))
