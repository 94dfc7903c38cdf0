"""LTX-2.3 vocoder (BigVGAN-v2 + bandwidth extension): diffusers-format folders both ways, real-size structure,
lengths and rate, float32 under bf16, exact chunks, bad inputs and configs."""

import pytest
import torch

from ltx2_diffusers.models.vocoder_bwe_ltx2 import LTX2VocoderWithBWE
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder

from .oracles_voc23 import TINY_DIFFUSERS_BWE, bwe_input, diffusers_bwe, seeded_bwe_

# the first stage gives 120 samples per mel frame: 1.5 STFT hops, so chunk starts must fall on even frames; lighter
# residual blocks than LTX-2.3 (a 30-frame margin instead of 63)
UNALIGNED = dict(upsample_factors=[5, 3, 2, 2, 2], upsample_kernel_sizes=[11, 5, 4, 4, 4], resnet_kernel_sizes=[3, 5],
                 resnet_dilations=[[1, 2]] * 2, bwe_resnet_kernel_sizes=[3], bwe_resnet_dilations=[[1]])

@pytest.fixture(autouse=True)
def _one_thread():
    """Long sequences through narrow convolutions: on a shared 2-core machine one thread is many times faster."""
    torch.set_num_threads(1)


def _tiny(**config) -> LTX2VocoderWithBWE:
    return seeded_bwe_(LTX2VocoderWithBWE(**{**TINY_DIFFUSERS_BWE, "final_act_fn": "clamp", **config}), seed=6)


def test_real_size_structure_matches_diffusers():
    from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE as DiffusersVocoderWithBWE

    with torch.device("meta"):
        ours, theirs = LTX2VocoderWithBWE(), DiffusersVocoderWithBWE()
    assert sum(p.numel() for p in ours.parameters()) == 128_537_448
    state = ours.state_dict()
    assert len(state) == 1227 and "resampler.filter" not in state
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert state["vocoder.resnets.17.acts2.2.downsample.filter"].shape == (1, 1, 12)
    assert state["mel_stft.stft_fn.forward_basis"].shape == (514, 1, 512)
    assert ours.upsample_factor == 480 and ours.config.output_sampling_rate == 48000
    assert ours._context == 63  # 44.6 frames of BigVGAN + (432 STFT samples + 27.7 BWE frames x 80) / 160, +1


def test_loads_a_diffusers_folder_and_diffusers_loads_ours(tmp_path):
    from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE as DiffusersVocoderWithBWE

    reference = diffusers_bwe()
    reference.save_pretrained(tmp_path / "theirs")
    ours, info = LTX2VocoderWithBWE.from_pretrained(tmp_path / "theirs", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    state = reference.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in ours.state_dict().items())  # bases and filters from the file
    assert torch.equal(ours.resampler.filter, reference.resampler.filter)  # computed, never stored
    assert ours.config.final_act_fn is None and ours.config.output_sampling_rate == 48000

    mine = _tiny()
    mine.save_pretrained(tmp_path / "ours")
    theirs, info = DiffusersVocoderWithBWE.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    mel = bwe_input(9)
    with torch.no_grad():
        assert (theirs.eval()(mel) - mine(mel)).abs().max() <= 1e-4  # the clamp travels as final_act_fn


def test_lengths_rate_and_layouts():
    model = _tiny()
    mel = bwe_input(13, batch=2)
    with torch.no_grad():
        wave = model(mel)
        assert torch.equal(model(mel.transpose(2, 3), time_last=True), wave)
    assert wave.shape == (2, 2, 13 * 480) and wave.dtype == torch.float32
    assert wave.abs().max() <= 1.0 and 0.0 < (wave.abs() == 1.0).float().mean() < 0.2  # clamped, mostly inside
    assert model.vocoder.config.output_sampling_rate == 16000 and model.config.output_sampling_rate == 48000


def test_runs_in_float32_when_the_pipeline_is_bf16(tmp_path):
    _tiny().save_pretrained(tmp_path / "vocoder")
    model = LTX2VocoderWithBWE.from_pretrained(tmp_path / "vocoder", torch_dtype=torch.bfloat16)
    model.to(torch.bfloat16)
    model.to("cpu", torch.float16)
    model.half()
    model.bfloat16()
    assert {t.dtype for t in [*model.parameters(), *model.buffers()]} == {torch.float32}
    mel = bwe_input(7).bfloat16()
    with torch.no_grad():
        wave = model(mel)
        assert wave.dtype == torch.float32 and torch.equal(wave, model(mel.float()))


def test_chunked_vocoding_equals_the_whole_run():
    model = _tiny()  # LTX-2.3 structure: a 63-frame margin; both chunks are cut, one on each side
    mel = bwe_input(140)
    with torch.no_grad():
        whole = model(mel)
        model.enable_tiling(tile_mel_frames=70)
        chunked = model(mel)
    assert chunked.shape == whole.shape == (1, 2, 140 * 480)
    assert (chunked - whole).abs().max() <= 1e-5


def test_chunks_start_on_stft_hops_and_need_their_margin():
    model = _tiny(**UNALIGNED)
    assert model._align == 2 and model._context == 30 and model.upsample_factor == 360
    mel = bwe_input(90)
    with torch.no_grad():
        whole = model(mel)
        model.enable_tiling(tile_mel_frames=29)  # rounded up to 30 frames = 45 hops
        chunked = model(mel)
        assert chunked.shape == whole.shape == (1, 2, 90 * 360)
        assert (chunked - whole).abs().max() <= 1e-5
        model._context = 4  # less margin than the receptive field: chunk seams show
        assert (model(mel) - whole).abs().max() > 1e-4
        model.disable_tiling()
        assert torch.equal(model(mel), whole)


def test_the_margin_covers_what_one_mel_frame_really_changes():
    model = _tiny(**UNALIGNED)
    mel = bwe_input(100)
    bumped = mel.clone()
    bumped[:, :, 50] += 3.0
    with torch.no_grad():
        changed = ((model(mel) - model(bumped)).abs() > 0).flatten(0, 1).any(0).nonzero().flatten()
    u = model.upsample_factor  # frames outside the bumped one that changed, on either side
    reach = max(50 - changed.min().item() / u, (changed.max().item() + 1) / u - 51)
    assert 0.4 * model._context < reach <= model._context


@pytest.mark.parametrize("mel, match", [
    (torch.randn(2, 20, 64), "channels \\* bins = 128"),
    (torch.randn(1, 2, 20, 80), "channels \\* bins = 128"),
    (torch.randn(1, 2, 0, 64), "channels \\* bins = 128"),
    (torch.zeros(1, 2, 20, 64, dtype=torch.int64), "channels \\* bins = 128"),
    (torch.full((1, 2, 20, 64), float("nan")), "NaN or infinite"),
])
@pytest.mark.parametrize("model_class", [LTX2VocoderWithBWE, LTX2Vocoder])
def test_bad_input(model_class, mel, match):
    model = model_class(hidden_channels=64) if model_class is LTX2Vocoder else _tiny()
    with pytest.raises(ValueError, match=match):
        model(mel)


@pytest.mark.parametrize("config, match", [
    ({"output_sampling_rate": 44100}, "whole multiple"),
    ({"input_sampling_rate": 16000.0}, "whole number of Hz"),
    ({"bwe_in_channels": 64}, "bwe_in_channels = 128"),
    ({"bwe_upsample_factors": [6, 5, 2, 2, 1], "bwe_upsample_kernel_sizes": [12, 11, 4, 4, 3]}, "exactly hop_length"),
    ({"bwe_upsample_kernel_sizes": [12, 11, 4, 4, 5]}, "kernel - factor"),
    ({"window_length": 400}, "window_length == filter_length"),
    ({"act_fn": "gelu"}, "the first stage: act_fn"),
    ({"bwe_hidden_channels": 16}, "BWE generator \\(bwe_\\* arguments\\): hidden_channels"),
])
def test_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        LTX2VocoderWithBWE(**{**TINY_DIFFUSERS_BWE, **config})


def test_bad_tiling():
    with pytest.raises(ValueError, match="tile_mel_frames"):
        _tiny().enable_tiling(0)
    with pytest.raises(ValueError, match="line up"):
        _tiny(upsample_kernel_sizes=[11, 4, 4, 4, 4, 5]).enable_tiling()
