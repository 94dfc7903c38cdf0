"""Vocoder: diffusers-format loading, real-size structure, lengths and rate, float32 under bf16, chunks, bad input."""

import pytest
import torch

from ltx2_diffusers.models.audio_processing import waveform_length
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder, vocoder_context_frames

from .oracles_audio import TINY_VOCODER, diffusers_vocoder, random_init_


@pytest.fixture(autouse=True)
def _one_thread():
    """Long sequences through narrow convolutions: on a shared 2-core machine one thread is many times faster."""
    torch.set_num_threads(1)


def _tiny(**config) -> LTX2Vocoder:
    return random_init_(LTX2Vocoder(**{**TINY_VOCODER, **config}), seed=4).eval()


def test_loads_a_diffusers_saved_folder_with_no_missing_keys(tmp_path):
    reference = diffusers_vocoder()
    reference.save_pretrained(tmp_path / "vocoder")
    ours, info = LTX2Vocoder.from_pretrained(tmp_path / "vocoder", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    state = reference.state_dict()
    assert len(state) == len(ours.state_dict()) == 2 + 2 * 5 + 5 * 3 * 12 + 2
    assert all(torch.equal(v, state[k]) for k, v in ours.state_dict().items())
    assert ours.config.output_sampling_rate == 24000


def test_real_size_structure():
    with torch.device("meta"):
        model = LTX2Vocoder()
    assert sum(p.numel() for p in model.parameters()) == 55_592_802
    assert len(model.state_dict()) == 194
    assert model.upsample_factor == 240 and model._context == 22
    assert model.state_dict()["upsamplers.1.weight"].shape == (512, 256, 15)
    assert model.state_dict()["resnets.14.convs1.2.weight"].shape == (32, 32, 11)


def test_lengths_and_output_rate():
    model = _tiny(output_sampling_rate=22050)
    mel = torch.randn(2, 2, 33, 64)
    with torch.no_grad():
        wave = model(mel)
        assert torch.equal(model(mel.transpose(2, 3), time_last=True), wave)
    assert wave.shape == (2, 2, waveform_length(9)) == (2, 2, 33 * 240)
    assert wave.dtype == torch.float32 and wave.abs().max() <= 1.0  # tanh
    assert model.config.output_sampling_rate == 22050


def test_runs_in_float32_when_the_pipeline_is_bf16(tmp_path):
    _tiny().save_pretrained(tmp_path / "vocoder")
    model = LTX2Vocoder.from_pretrained(tmp_path / "vocoder", torch_dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    model.to(torch.bfloat16)
    model.to("cpu", torch.float16)
    model.half()
    model.bfloat16()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    mel = torch.randn(1, 2, 20, 64).bfloat16()
    with torch.no_grad():
        wave = model(mel)
        assert wave.dtype == torch.float32
        assert torch.equal(wave, model(mel.float()))


def test_final_activation_options():
    mel = torch.randn(1, 2, 8, 64)
    raw = _tiny(final_act_fn=None)
    with torch.no_grad():
        x = raw(mel)
        assert torch.allclose(_tiny(final_act_fn="clamp")(mel), x.clamp(-1, 1))
        assert torch.allclose(_tiny()(mel), torch.tanh(x))
    assert _tiny(final_bias=False).conv_out.bias is None


def test_chunked_vocoding_equals_the_whole_run():
    model = _tiny()
    mel = torch.randn(1, 2, 500, 64)  # 5 s
    with torch.no_grad():
        whole = model(mel)
        model.enable_tiling(tile_mel_frames=120)
        chunked = model(mel)
        assert chunked.shape == whole.shape == (1, 2, 120_000)
        assert (chunked - whole).abs().max() <= 1e-5  # stated tolerance: exact up to float rounding
        model._context = 2  # less margin than the receptive field: chunk seams show
        assert (model(mel) - whole).abs().max() > 1e-4
        model.disable_tiling()
        assert torch.equal(model(mel), whole)
    assert vocoder_context_frames([6, 5, 2, 2, 2], [16, 15, 8, 4, 4], [3, 7, 11], [[1, 3, 5]] * 3) == 22


@pytest.mark.parametrize("mel", [
    torch.randn(2, 20, 64),
    torch.randn(1, 1, 20, 64),
    torch.randn(1, 2, 20, 80),
    torch.randn(1, 2, 0, 64),
    torch.zeros(1, 2, 20, 64, dtype=torch.int64),
])
def test_bad_input(mel):
    with pytest.raises(ValueError, match="channels \\* bins = 128"):
        _tiny()(mel)


@pytest.mark.parametrize("config, match", [
    ({"act_fn": "gelu"}, "act_fn must be one of"),
    ({"antialias": True}, "antialias=True needs act_fn"),
    ({"act_fn": "snakebeta", "antialias_kernel_size": 1}, "antialias_ratio <= antialias_kernel_size"),
    ({"upsample_factors": [6, 5, 2, 2]}, "same, non-zero length"),
    ({"resnet_dilations": [[1, 3, 5]] * 2}, "same, non-zero length"),
    ({"hidden_channels": 16}, "at least 32"),
    ({"final_act_fn": "sigmoid"}, "final_act_fn"),
])
def test_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        LTX2Vocoder(**{**TINY_VOCODER, **config})


def test_bad_tiling():
    with pytest.raises(ValueError, match="tile_mel_frames"):
        _tiny().enable_tiling(0)
    with pytest.raises(ValueError, match="line up"):
        _tiny(upsample_kernel_sizes=[16, 15, 8, 4, 5]).enable_tiling()


# configs diffusers' LTX2Vocoder accepts beyond LTX-2.0 (issue 15): same structure, names and numbers
DIFFUSERS_CONFIGS = {
    "width-not-divisible": dict(hidden_channels=100),  # 100 -> 50 -> 25 -> 12 -> 6 -> 3 (floor halving)
    "bigvgan": dict(hidden_channels=32, act_fn="snakebeta", antialias=True, final_act_fn=None, final_bias=False,
                    upsample_factors=[5, 2, 2], upsample_kernel_sizes=[11, 4, 4]),
    "snake-no-antialias": dict(hidden_channels=24, act_fn="snake", upsample_factors=[4, 2],
                               upsample_kernel_sizes=[8, 4], resnet_kernel_sizes=[3, 5],
                               resnet_dilations=[[1, 2]] * 2),
}


@pytest.mark.parametrize("name", list(DIFFUSERS_CONFIGS))
def test_configs_diffusers_accepts_have_the_same_meaning(name):
    reference = diffusers_vocoder(**DIFFUSERS_CONFIGS[name])
    ours = LTX2Vocoder(**reference.config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    mel = torch.randn(1, 2, 23, 64, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        expected = reference(mel)
        assert expected.shape == (1, 2, 23 * ours.upsample_factor)
        assert (ours(mel) - expected).abs().max() <= 1e-4


def test_bigvgan_chunked_vocoding_equals_the_whole_run():
    model = _tiny(**DIFFUSERS_CONFIGS["bigvgan"])
    assert vocoder_context_frames([5, 2, 2], [11, 4, 4], [3, 7, 11], [[1, 3, 5]] * 3, activation_reach=6.0,
                                  final_activation_reach=6.0) == model._context == 42  # 40.65 frames rounded up, +1
    mel = torch.randn(1, 2, 130, 64)
    with torch.no_grad():
        whole = model(mel)
        model.enable_tiling(tile_mel_frames=45)
        assert (model(mel) - whole).abs().max() <= 1e-5
        model._context = 3  # the anti-aliasing filters reach further than plain convolutions
        assert (model(mel) - whole).abs().max() > 1e-4
