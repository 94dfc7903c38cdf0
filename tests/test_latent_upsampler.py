"""Latent upsampler: parity with ltx-core 1.0.0 and diffusers 0.42.1 (both key layouts), conversion, validation."""

import pytest
import torch

from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.conversion.video_vae import (
    convert_latent_upsampler_state_dict,
    latent_upsampler_config_from_original,
)
from ltx2_diffusers.models.latent_upsampler_ltx2 import (
    LTX2LatentUpsampler,
    binomial_kernel,
    upsample_normalized_latents,
)

from .video_helpers import LATENT, random_init_, statistics

TOL = 1e-4


def latents(batch=2, frames=3, height=4, width=6, seed=2) -> torch.Tensor:
    return torch.randn(batch, LATENT, frames, height, width, generator=torch.Generator().manual_seed(seed))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------------------------------------------
# Structure, layouts and validation (no oracle needed)
# ----------------------------------------------------------------------------------------------------------------


def test_default_config_is_the_ltx2_0_x2_upsampler():
    with torch.device("meta"):
        rational = LTX2LatentUpsampler()
        plain = LTX2LatentUpsampler(use_rational_resampler=False)
    assert sum(p.numel() for p in rational.parameters()) == 497_867_904
    assert len(rational.state_dict()) == 73 and "upsampler.blur_down.kernel" in rational.state_dict()
    assert len(plain.state_dict()) == 72 and "upsampler.0.weight" in plain.state_dict()


def test_both_x2_layouts_compute_the_same_with_the_same_weights():
    rational = random_init_(LTX2LatentUpsampler(LATENT, 32, 1, use_rational_resampler=True)).eval()
    state = {k.replace("upsampler.conv.", "upsampler.0."): v for k, v in rational.state_dict().items()
             if k != "upsampler.blur_down.kernel"}
    plain = LTX2LatentUpsampler(LATENT, 32, 1, use_rational_resampler=False).eval()
    plain.load_state_dict(state, strict=True)
    x = latents()
    with torch.no_grad():
        out = rational(x)
        assert out.shape == (2, LATENT, 3, 8, 12)
        torch.testing.assert_close(plain(x), out, rtol=0, atol=1e-6)


def test_blur_kernel_is_the_normalised_binomial():
    k = binomial_kernel(5)[0, 0]
    row = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    torch.testing.assert_close(k, row[:, None] * row[None, :])


def test_normalised_helper_round_trips_the_statistics():
    upsampler = random_init_(LTX2LatentUpsampler(LATENT, 32, 1)).eval()
    mean, std = statistics()
    z = latents()
    with torch.no_grad():
        expected = (upsampler(z * std.view(1, -1, 1, 1, 1) + mean.view(1, -1, 1, 1, 1)) - mean.view(1, -1, 1, 1, 1))
        expected = expected / std.view(1, -1, 1, 1, 1)
        torch.testing.assert_close(upsample_normalized_latents(upsampler, z, mean, std), expected)


def test_save_and_load_round_trip(tmp_path):
    upsampler = random_init_(LTX2LatentUpsampler(LATENT, 32, 1)).eval()
    upsampler.save_pretrained(tmp_path)
    loaded, info = LTX2LatentUpsampler.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        assert torch.equal(loaded.eval()(latents()), upsampler(latents()))


@pytest.mark.parametrize("kwargs,message", [
    (dict(mid_channels=48), "multiple of 32"),
    (dict(spatial_upsample=False), "spatial_upsample and/or temporal_upsample"),
    (dict(rational_spatial_scale=3.0), "rational_spatial_scale must be one of"),
    (dict(dims=1), "dims must be 2 or 3"),
    (dict(dims=2, temporal_upsample=True), "needs dims=3"),
])
def test_bad_configs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LTX2LatentUpsampler(**{"in_channels": LATENT, "mid_channels": 32, **kwargs})


@pytest.mark.parametrize("x,message", [
    (torch.zeros(1, LATENT, 4, 6), "un-normalised latents"),
    (torch.zeros(1, LATENT + 1, 2, 4, 6), f"\\[batch, {LATENT}, frames"),
])
def test_bad_inputs_raise(x, message):
    with pytest.raises(ValueError, match=message):
        LTX2LatentUpsampler(LATENT, 32, 1)(x)


def test_rational_scale_needs_divisible_sizes():
    with pytest.raises(ValueError, match="divisible by 2"):
        LTX2LatentUpsampler(LATENT, 32, 1, rational_spatial_scale=1.5)(latents(height=3, width=4))


# ----------------------------------------------------------------------------------------------------------------
# Parity and conversion
# ----------------------------------------------------------------------------------------------------------------

VARIANTS = {
    "x2-rational": {},  # LTX-2.0 layout: upsampler.conv + upsampler.blur_down.kernel
    "x2-plain": {"rational_resampler": False},  # LTX-2.3 layout: upsampler.0
    "x1.5-rational": {"spatial_scale": 1.5},
    "temporal-x2": {"spatial_upsample": False, "temporal_upsample": True, "rational_resampler": False},
}


@pytest.mark.parity
@pytest.mark.parametrize("name", list(VARIANTS))
def test_parity_with_ltxcore_and_diffusers(name):
    oracles = pytest.importorskip("tests.oracles_video")
    diffusers_ltx2 = pytest.importorskip("diffusers.pipelines.ltx2")
    header = oracles.upsampler_header(**VARIANTS[name])
    reference = oracles.ltxcore_upsampler(header)
    original = dict(reference.state_dict())
    ours = oracles.our_upsampler_from_original(header, original)
    config = latent_upsampler_config_from_original(header, original)
    theirs = diffusers_ltx2.LTX2LatentUpsamplerModel(**config).eval()
    theirs.load_state_dict(original, strict=True)
    x = latents()
    with torch.no_grad():
        out = ours(x)
        assert _max_diff(out, reference(x)) <= TOL
        assert _max_diff(out, theirs(x)) <= TOL
    expected_shape = {"x1.5-rational": (2, LATENT, 3, 6, 9), "temporal-x2": (2, LATENT, 5, 4, 6)}
    assert out.shape == expected_shape.get(name, (2, LATENT, 3, 8, 12))


@pytest.mark.parity
def test_normalised_upsampling_matches_ltxcore_upsample_video():
    oracles = pytest.importorskip("tests.oracles_video")
    header = oracles.upsampler_header()
    reference = oracles.ltxcore_upsampler(header)
    ours = oracles.our_upsampler_from_original(header, dict(reference.state_dict()))
    encoder, _, original = oracles.ltxcore_vae(oracles.vae_header())
    mean = original["vae.per_channel_statistics.mean-of-means"]
    std = original["vae.per_channel_statistics.std-of-means"]
    z = latents()
    with torch.no_grad():
        expected = oracles.upsample_video(z, encoder, reference)  # un-normalise with the encoder's stats
        assert _max_diff(upsample_normalized_latents(ours, z, mean, std), expected) <= TOL


@pytest.mark.parity
def test_loads_diffusers_folder_unchanged(tmp_path):
    diffusers_ltx2 = pytest.importorskip("diffusers.pipelines.ltx2")
    for rational in (True, False):
        theirs = random_init_(diffusers_ltx2.LTX2LatentUpsamplerModel(
            in_channels=LATENT, mid_channels=32, num_blocks_per_stage=2, use_rational_resampler=rational)).eval()
        theirs.save_pretrained(tmp_path / str(rational))
        ours, info = LTX2LatentUpsampler.from_pretrained(tmp_path / str(rational), output_loading_info=True)
        assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
        with torch.no_grad():
            assert _max_diff(ours.eval()(latents()), theirs(latents())) <= TOL


def test_conversion_reads_the_layout_and_is_strict():
    rational = LTX2LatentUpsampler(LATENT, 32, 3)
    original = dict(rational.state_dict())
    config = latent_upsampler_config_from_original({}, original)
    assert config == {"in_channels": LATENT, "mid_channels": 32, "num_blocks_per_stage": 3, "dims": 3,
                      "spatial_upsample": True, "temporal_upsample": False, "rational_spatial_scale": 2.0,
                      "use_rational_resampler": True}
    plain = dict(LTX2LatentUpsampler(LATENT, 32, 3, use_rational_resampler=False).state_dict())
    assert latent_upsampler_config_from_original({}, plain)["use_rational_resampler"] is False
    expected = expected_shapes(rational)
    assert convert_latent_upsampler_state_dict(original, expected).keys() == original.keys()
    with pytest.raises(ValueError, match="missing: upsampler.blur_down.kernel"):
        convert_latent_upsampler_state_dict({k: v for k, v in original.items() if "blur" not in k}, expected)
    with pytest.raises(ValueError, match="unexpected: upsampler.0.weight"):
        convert_latent_upsampler_state_dict({**original, "upsampler.0.weight": torch.zeros(1)}, expected)
    with pytest.raises(ValueError, match="exactly one of"):
        latent_upsampler_config_from_original({}, {**original, "upsampler.0.weight": torch.zeros(1)})
