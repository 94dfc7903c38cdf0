"""Our video VAE on its own: real-size structure, diffusers-model behaviour, tiling, and input validation."""

import pytest
import torch
from torch import nn

from ltx2_diffusers.models.autoencoder_ltx2_video import (
    LTX2VideoAutoencoder,
    denormalize_latents,
    normalize_latents,
)
from ltx2_diffusers.models.tiling import VideoTiling

from .video_helpers import LATENT, TINY_VAE, random_init_, smooth_video, statistics


def tiny_vae(seed: int = 0, **overrides) -> LTX2VideoAutoencoder:
    vae = random_init_(LTX2VideoAutoencoder(**{**TINY_VAE, **overrides}), seed).eval()
    mean, std = statistics()
    vae.latents_mean.copy_(mean)
    vae.latents_std.copy_(std)
    return vae


def make_local_(module: nn.Module, time_tap: int) -> nn.Module:
    """Keeps only one tap of every 3×3×3 kernel, making each conv pointwise: tiling must then be exact."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv3d) and m.kernel_size == (3, 3, 3):
                keep = m.weight[:, :, time_tap, 1, 1].clone()
                m.weight.zero_()
                m.weight[:, :, time_tap, 1, 1] = keep
    return module


def latents(batch=1, frames=3, height=2, width=3, seed=1) -> torch.Tensor:
    return torch.randn(batch, LATENT, frames, height, width, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# Structure and conventions
# ----------------------------------------------------------------------------------------------------------------


def test_default_config_is_the_ltx2_0_vae():
    with torch.device("meta"):
        vae = LTX2VideoAutoencoder()
        conditioned = LTX2VideoAutoencoder(timestep_conditioning=True)
    assert sum(p.numel() for p in vae.parameters()) == 1_222_479_601
    assert len(vae.state_dict()) == 184 and len(conditioned.state_dict()) == 226
    assert (vae.spatial_compression_ratio, vae.temporal_compression_ratio) == (32, 8)
    assert vae.config.decoder_causal is False and vae.config.decoder_spatial_padding_mode == "reflect"
    assert vae.latents_mean.shape == vae.latents_std.shape == (128,)


def test_compression_ratios_must_match_the_blocks():
    assert LTX2VideoAutoencoder(**TINY_VAE, spatial_compression_ratio=None).spatial_compression_ratio == 32
    with pytest.raises(ValueError, match="compress by 32"):
        LTX2VideoAutoencoder(**TINY_VAE, spatial_compression_ratio=64)
    with pytest.raises(ValueError, match="compress by 8"):
        LTX2VideoAutoencoder(**TINY_VAE, temporal_compression_ratio=16)
    # diffusers accepts one entry per down block (the mid block shares the last one); fewer is an error
    with pytest.raises(ValueError, match="layers_per_block needs at least 4"):
        LTX2VideoAutoencoder(**{**TINY_VAE, "layers_per_block": (1, 1, 1)})


def test_shapes_and_posterior():
    vae = tiny_vae()
    x = smooth_video(batch=2)
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        assert posterior.mean.shape == (2, LATENT, 3, 2, 3)
        # one shared log-variance channel
        torch.testing.assert_close(posterior.logvar, posterior.logvar[:, :1].expand_as(posterior.logvar))
        a = posterior.sample(torch.Generator().manual_seed(0))
        b = posterior.sample(torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and not torch.equal(a, posterior.mode())
        video = vae.decode(posterior.mode()).sample
        assert video.shape == (2, 3, 17, 64, 96)
        (same,) = vae.decode(posterior.mode(), return_dict=False)
        assert torch.equal(same, video)
        assert vae(x).sample.shape == video.shape


def test_normalisation_round_trip_and_formula():
    vae = tiny_vae(scaling_factor=0.5)
    z = latents()
    n = vae.normalize_latents(z)
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    torch.testing.assert_close(n, (z - mean) * 0.5 / std)
    torch.testing.assert_close(vae.denormalize_latents(n), z)
    mean, std = statistics()
    torch.testing.assert_close(denormalize_latents(normalize_latents(z, mean, std), mean, std), z)
    expected = (z - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)
    torch.testing.assert_close(normalize_latents(z, mean, std), expected)


def test_slicing_matches_batched_calls():
    vae = tiny_vae(timestep_conditioning=True)
    x, z = smooth_video(batch=2), latents(batch=2)
    t = torch.tensor([0.05, 0.3])
    with torch.no_grad():
        enc = vae.encode(x).latent_dist.mode()
        dec = vae.decode(z, t).sample
        vae.enable_slicing()
        torch.testing.assert_close(vae.encode(x).latent_dist.mode(), enc, rtol=0, atol=1e-5)
        torch.testing.assert_close(vae.decode(z, t).sample, dec, rtol=0, atol=1e-5)  # diffusers crashes here


def test_save_and_load_round_trip(tmp_path):
    vae = tiny_vae()
    vae.save_pretrained(tmp_path)
    loaded, info = LTX2VideoAutoencoder.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    z = latents()
    with torch.no_grad():
        assert torch.equal(loaded.eval().decode(z).sample, vae.decode(z).sample)
    assert torch.equal(loaded.latents_std, vae.latents_std)


def test_gradient_checkpointing_gives_the_same_gradients():
    vae = tiny_vae()
    x = smooth_video(frames=9, height=64, width=64)

    def grads():
        vae.zero_grad()
        vae.decode(vae.encode(x).latent_dist.mode()).sample.square().mean().backward()
        return vae.decoder.mid_block.resnets[0].conv1.conv.weight.grad.clone()

    plain = grads()
    vae.enable_gradient_checkpointing()
    torch.testing.assert_close(grads(), plain, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Timestep conditioning and decode noise
# ----------------------------------------------------------------------------------------------------------------


def test_reference_decode_mixes_seeded_noise_and_explicit_timestep_does_not():
    vae = tiny_vae(timestep_conditioning=True)
    z = latents()
    with torch.no_grad():
        a = vae.decode(z, generator=torch.Generator().manual_seed(0)).sample
        b = vae.decode(z, generator=torch.Generator().manual_seed(0)).sample
        c = vae.decode(z, generator=torch.Generator().manual_seed(1)).sample
        assert torch.equal(a, b) and (a - c).abs().max() > 1e-3  # the noise follows the generator
        no_noise = vae.decode(z, 0.05).sample  # diffusers convention: temb given, no noise unless asked
        assert torch.equal(no_noise, vae.decode(z, torch.tensor([0.05])).sample)
        mixed = vae.decode(z, 0.05, decode_noise_scale=0.025, generator=torch.Generator().manual_seed(0)).sample
        torch.testing.assert_close(mixed, a, rtol=0, atol=1e-6)
        assert (vae.decode(z, 0.5).sample - no_noise).abs().max() > 1e-3  # the timestep matters


def test_timestep_conditioning_inputs_are_checked():
    plain, conditioned = tiny_vae(), tiny_vae(timestep_conditioning=True)
    with pytest.raises(ValueError, match="not timestep-conditioned"):
        plain.decode(latents(), 0.05)
    with pytest.raises(ValueError, match="not timestep-conditioned"):
        plain.decode(latents(), decode_noise_scale=0.1)
    with pytest.raises(ValueError, match="one per batch element"):
        conditioned.decode(latents(batch=2), torch.tensor([0.1, 0.2, 0.3]))


# ----------------------------------------------------------------------------------------------------------------
# Tiling
# ----------------------------------------------------------------------------------------------------------------

TILINGS = [
    VideoTiling(64, 32, None), VideoTiling(96, 32, None), VideoTiling(None, 0, 8, 0), VideoTiling(None, 0, 16, 8),
    VideoTiling(64, 0, 16, 8), VideoTiling(128, 64, 24, 16),
]


@pytest.mark.parametrize("timestep_conditioning", [False, True])
def test_tiled_decode_is_exact_for_a_pointwise_decoder(timestep_conditioning):
    # With pointwise convolutions nothing crosses a tile border, so any blending, placement or normalisation error
    # (including the causal first frame of later temporal tiles) shows up directly.
    vae = tiny_vae(timestep_conditioning=timestep_conditioning)
    make_local_(vae.decoder, time_tap=1)
    z = latents(frames=5, height=5, width=7)  # 33 x 160 x 224: remainders everywhere
    with torch.no_grad():
        full = vae.decode(z, generator=torch.Generator().manual_seed(0)).sample
        for tiling in TILINGS:
            tiled = vae.decode(z, generator=torch.Generator().manual_seed(0), tiling=tiling).sample
            torch.testing.assert_close(tiled, full, rtol=0, atol=2e-5, msg=str(tiling))


def test_tiled_encode_is_exact_for_a_pointwise_encoder():
    vae = tiny_vae()
    make_local_(vae.encoder, time_tap=2)  # causal conv: the last tap is the current frame
    x = smooth_video(frames=33, height=160, width=224)
    with torch.no_grad():
        full = vae.encode(x).latent_dist.mean
        for tiling in TILINGS:
            tiled = vae.encode(x, tiling=tiling).latent_dist.mean
            torch.testing.assert_close(tiled, full, rtol=0, atol=2e-5, msg=str(tiling))


def test_tiled_decode_of_a_smooth_video_is_close_to_untiled():
    # A random-weight decoder has a receptive field wider than the tiles, so seams cannot vanish. Measured on this
    # seed with 128/64 px and 24/16 frames (2 x 1 spatial, 3 temporal tiles): max 1.15, mean 0.097 for an output with
    # max |x| 3.2, mean |x| 0.48. ltx-core's own tiling of the same decoder does worse (test_video_vae_parity.py).
    vae = tiny_vae()
    x = smooth_video(frames=41, height=128, width=192)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        full = vae.decode(z).sample
        diff = (vae.decode(z, tiling=VideoTiling(128, 64, 24, 16)).sample - full).abs()
    assert diff.mean() < 0.12 and diff.max() < 1.4
    assert full.abs().max() > 3.0  # the bound is relative to a non-trivial output


def test_tiled_encode_of_a_smooth_video_is_close_to_untiled():
    # Measured: mean 0.045, max 0.31 for latents with mean |z| 0.29; time only (16/8 frames): mean 0.032. The encoder
    # is causal, so in time the earlier tile keeps the overlap and the later one only warms up on it.
    vae = tiny_vae()
    x = smooth_video(frames=41, height=128, width=192)
    with torch.no_grad():
        full = vae.encode(x).latent_dist.mode()
        diff = (vae.encode(x, tiling=VideoTiling(128, 64, 32, 24)).latent_dist.mode() - full).abs()
        temporal = vae.encode(x, tiling=VideoTiling(None, 0, 16, 8)).latent_dist.mode()
    assert diff.mean() < 0.06 and diff.max() < 0.4
    assert (temporal - full).abs().mean() < 0.04


def test_decode_chunks_stream_the_tiled_decode():
    vae = tiny_vae()
    z = latents(frames=6, height=2, width=3)  # 41 frames
    tiling = VideoTiling(None, 0, 16, 8)  # 3 latent frames per tile, 2 shared: 4 temporal tiles
    with torch.no_grad():
        chunks = list(vae.decode_chunks(z, tiling=tiling))
        whole = vae.decode(z, tiling=tiling).sample
    assert len(chunks) == 4 and sum(c.shape[2] for c in chunks) == 41
    assert torch.equal(torch.cat(chunks, dim=2), whole)
    vae.enable_tiling(tiling)
    with torch.no_grad():
        assert torch.equal(vae.decode(z).sample, whole)
    with pytest.raises(ValueError, match="latent channels"):  # raised at the call, before any chunk is computed
        vae.decode_chunks(torch.zeros(1, 3, 2, 2, 2))


def test_enable_tiling_accepts_diffusers_keywords():
    vae = tiny_vae()
    vae.enable_tiling(tile_sample_min_height=256, tile_sample_stride_height=192, tile_sample_min_num_frames=32,
                      tile_sample_stride_num_frames=24)
    assert vae.use_tiling and vae.tiling == VideoTiling(256, 64, 32, 8)
    vae.disable_tiling()
    assert not vae.use_tiling
    with pytest.raises(ValueError, match="multiple of 32"):
        vae.enable_tiling(VideoTiling(100, 32))


def test_928_px_width_with_reflect_padding_decodes_tiled():
    # diffusers' spatial tiling crashes here (a one-latent-wide last tile; see test_video_vae_parity.py)
    vae = tiny_vae()
    make_local_(vae.decoder, time_tap=1)
    z = latents(frames=2, height=2, width=29)
    with torch.no_grad():
        tiled = vae.decode(z, tiling=VideoTiling(512, 64, None)).sample
        full = vae.decode(z).sample
    assert tiled.shape == (1, 3, 9, 64, 928)
    torch.testing.assert_close(tiled, full, rtol=0, atol=2e-5)


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,message", [
    ((1, 3, 12, 64, 64), "needs 8k\\+1 frames; pass 9 or 17"),
    ((1, 3, 16, 64, 64), "pass 9 or 17"),
    ((1, 3, 9, 70, 64), "height 70 is not a multiple of 32; resize or crop to 64 or 96"),
    ((1, 3, 9, 64, 20), "width 20 is not a multiple of 32; resize or crop to 32"),
    ((1, 4, 9, 64, 64), "expects 3 channels"),
    ((1, 3, 64, 64), "unsqueeze"),
])
def test_bad_videos_raise(shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae().encode(torch.zeros(shape))


def test_reflect_padding_needs_two_cells():
    with pytest.raises(ValueError, match="at least 2 cells"):
        tiny_vae().decode(latents(height=1))
    with pytest.raises(ValueError, match="at least 64 pixels"):
        tiny_vae(encoder_spatial_padding_mode="reflect").encode(torch.zeros(1, 3, 9, 32, 64))


@pytest.mark.parametrize("z,message", [
    (torch.zeros(1, LATENT, 2, 2), "unpack transformer tokens"),
    (torch.zeros(1, LATENT + 1, 2, 2, 2), f"expects {LATENT} latent channels"),
    ([0.0], "got list"),
])
def test_bad_latents_raise(z, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae().decode(z)


@pytest.mark.parametrize("tiling,message", [
    (VideoTiling(48, 0), "multiple of 32"),
    (VideoTiling(64, 64), "smaller than tile_size"),
    (VideoTiling(tile_frames=12), "tile_frames must be"),
])
def test_bad_tile_sizes_raise_before_compute(tiling, message):
    vae = tiny_vae()
    with pytest.raises(ValueError, match=message):
        vae.decode(latents(), tiling=tiling)
    with pytest.raises(ValueError, match=message):
        vae.encode(smooth_video(frames=9, height=64, width=64), tiling=tiling)
