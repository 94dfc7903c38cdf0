"""Vocoder layers: filter taps, resamplers, SnakeBeta and the reach arithmetic used for chunked vocoding."""

import math

import pytest
import torch

from ltx2_diffusers.models.vocoder_layers import (
    AntiAliasAct1d,
    DownSample1d,
    ResBlock,
    SnakeBeta,
    UpSample1d,
    antialias_reach,
    downsample_reach,
    hann_sinc_filter1d,
    kaiser_sinc_filter1d,
    make_activation,
    same_conv_reach,
    upsample_reach,
)


@pytest.mark.parametrize("cutoff, half_width, size", [(0.25, 0.3, 12), (0.125, 0.15, 24), (0.2, 0.3, 11)])
def test_kaiser_filter_matches_both_references(cutoff, half_width, size):
    from diffusers.pipelines.ltx2.vocoder import kaiser_sinc_filter1d as diffusers_filter

    ours = kaiser_sinc_filter1d(cutoff, half_width, size)
    assert ours.shape == (size,) and abs(ours.sum().item() - 1.0) < 1e-6
    assert torch.allclose(ours, ours.flip(0), atol=1e-7)  # linear phase
    assert (ours - diffusers_filter(cutoff, half_width, size)).abs().max() < 1e-7
    assert torch.equal(kaiser_sinc_filter1d(0.0, 0.3, 12), torch.zeros(12))
    with pytest.raises(ValueError, match="cutoff"):
        kaiser_sinc_filter1d(0.6, 0.3, 12)


def test_hann_resampler_filter_and_a_sine_at_three_times_the_rate():
    from diffusers.pipelines.ltx2.vocoder import UpSample1d as DiffusersUpSample1d

    taps = hann_sinc_filter1d(3)
    assert taps.shape == (43,)  # 2 · ceil(6 / 0.99) · 3 + 1
    assert (taps - DiffusersUpSample1d(3, window_type="hann").filter.flatten()).abs().max() < 1e-7
    resampler = UpSample1d(3, window_type="hann", persistent=False)
    assert "filter" not in resampler.state_dict()
    n = torch.arange(800.0)
    wave = resampler(torch.sin(2 * math.pi * 1000 * n / 16000)[None, None])[0, 0]  # 1 kHz at 16 kHz -> 48 kHz
    assert wave.shape == (2400,)
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(2400.0) / 48000)
    assert (wave - expected)[100:-100].abs().max() < 1e-3


def test_antialiased_activation_lengths_and_low_pass():
    up, down = UpSample1d(2, 12), DownSample1d(2, 12)
    x = torch.randn(2, 3, 50)
    assert up(x).shape == (2, 3, 100) and down(x).shape == (2, 3, 25)
    constant = torch.full((1, 1, 40), 0.7)  # replicate padding: a constant passes through unchanged
    assert torch.allclose(up(constant), torch.full((1, 1, 80), 0.7), atol=1e-6)
    assert torch.allclose(down(constant), torch.full((1, 1, 20), 0.7), atol=1e-6)
    nyquist = torch.tensor([1.0, -1.0] * 40)[None, None]  # content at the high rate's Nyquist frequency is removed
    assert down(nyquist)[..., 5:-5].abs().max() < 0.05
    aa = AntiAliasAct1d(SnakeBeta(3), 2, 12)
    assert aa(x).shape == x.shape
    assert sorted(aa.state_dict()) == ["act.alpha", "act.beta", "downsample.filter", "upsample.filter"]


def test_snake_beta_values():
    act = SnakeBeta(2)
    with torch.no_grad():
        act.alpha.copy_(torch.log(torch.tensor([2.0, 1.0])))
        act.beta.copy_(torch.log(torch.tensor([0.5, 4.0])))
    x = torch.tensor([[[0.3, -1.2], [0.7, 2.0]]])
    expected = torch.stack([x[0, 0] + torch.sin(2 * x[0, 0]) ** 2 / 0.5, x[0, 1] + torch.sin(x[0, 1]) ** 2 / 4.0])
    assert torch.allclose(act(x)[0], expected, atol=1e-6)
    snake = SnakeBeta(2, use_beta=False)  # amplitude = alpha
    assert snake.beta is None and list(snake.state_dict()) == ["alpha"]
    assert torch.allclose(snake(x), x + torch.sin(x) ** 2, atol=1e-6)


def _measured_reach(module: torch.nn.Module, rate: float) -> float:
    """Largest distance (in input samples) between a perturbed input sample and an output sample it changes."""
    x = torch.randn(1, 1, 100)
    bumped = x.clone()
    bumped[..., 50] += 1.0
    changed = ((module(x) - module(bumped)).abs() > 0)[0, 0].nonzero().flatten().float()
    return max(50 - changed.min().item() / rate, changed.max().item() / rate - 50)


def test_reach_bounds_what_each_layer_really_reaches():
    with torch.no_grad():
        assert _measured_reach(UpSample1d(2, 12), 2) == upsample_reach(2, 12) == 3.0
        assert _measured_reach(DownSample1d(2, 12), 0.5) / 2 == downsample_reach(2, 12) == 3.0
        assert 5.0 <= _measured_reach(AntiAliasAct1d(SnakeBeta(1), 2, 12), 1) <= antialias_reach(2, 12) == 6.0
        assert 6.0 <= _measured_reach(UpSample1d(3, window_type="hann"), 3) <= upsample_reach(3, 43, "hann") == 7.0
    assert same_conv_reach(11, 5) == 25 and same_conv_reach(4) == 2 and same_conv_reach(1) == 0


def test_residual_block_names_follow_diffusers():
    from diffusers.pipelines.ltx2.vocoder import ResBlock as DiffusersResBlock

    ours = ResBlock(4, 3, [1, 3], act_fn="snakebeta", antialias=True)
    theirs = DiffusersResBlock(4, 3, dilations=(1, 3), act_fn="snakebeta", antialias=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 4, 30)
    assert (ours(x) - theirs(x)).abs().max() < 1e-6
    assert isinstance(make_activation("leaky_relu", 4), torch.nn.LeakyReLU)
    with pytest.raises(ValueError, match="act_fn"):
        make_activation("gelu", 4)
