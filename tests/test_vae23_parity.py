"""LTX-2.3 video VAE and latent upsampler parity on tiny random weights (fp32): ltx-core 1.0.0 built from a tiny
2.3-style header (ground truth) and diffusers 0.42.1 built from the config diffusers' converter writes."""

import pytest
import torch

from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder

from .oracles_vae23 import tiny_diffusers_vae_config_23, vae_header_23
from .oracles_video import (
    LATENT,
    diffusers_vae_from_original,
    ltxcore_upsampler,
    ltxcore_vae,
    our_upsampler_from_original,
    our_vae_from_original,
    random_init_,
    smooth_video,
    statistics,
    upsampler_header,
)

pytestmark = pytest.mark.parity
TOL = 1e-4
diffusers = pytest.importorskip("diffusers")


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _latents(batch: int = 2, seed: int = 4) -> torch.Tensor:
    return torch.randn(batch, LATENT, 2, 2, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "timestep-conditioned"])
def vae23(request):
    header = vae_header_23(LATENT, timestep_conditioning=request.param)
    encoder, decoder, original = ltxcore_vae(header, seed=21)
    return dict(header=header, encoder=encoder, decoder=decoder, ours=our_vae_from_original(header, original),
                theirs=diffusers_vae_from_original(header, original))


def test_2_3_encoder_matches_ltxcore_and_diffusers(vae23):
    x = smooth_video(batch=1, frames=17, height=64, width=96)
    ours = vae23["ours"]
    with torch.no_grad():
        reference = vae23["encoder"](x)  # normalised means
        posterior = ours.encode(x).latent_dist
        theirs = vae23["theirs"].encode(x).latent_dist
    assert reference.shape == (1, LATENT, 3, 2, 3)
    assert _max_diff(ours.normalize_latents(posterior.mode()), reference) <= TOL
    assert _max_diff(posterior.mean, theirs.mean) <= TOL and _max_diff(posterior.logvar, theirs.logvar) <= TOL


def test_2_3_decoder_matches_ltxcore_and_diffusers(vae23):
    ours, conditioned = vae23["ours"], vae23["header"]["timestep_conditioning"]
    assert ours.config.timestep_conditioning is conditioned
    assert ours.config.upsample_type == ["spatiotemporal", "spatiotemporal", "temporal", "spatial"]
    z = _latents()
    raw = ours.denormalize_latents(z)
    with torch.no_grad():
        # the reference decode (for a conditioned decoder: timestep 0.05 and 2.5 % noise from the generator)
        reference = vae23["decoder"](z, generator=torch.Generator().manual_seed(11))
        video = ours.decode(raw, generator=torch.Generator().manual_seed(11)).sample
        assert video.shape == (2, 3, 9, 64, 96)
        assert _max_diff(video, reference) <= TOL
        temb = torch.tensor([0.05, 0.4]) if conditioned else None
        assert _max_diff(ours.decode(raw, temb).sample, vae23["theirs"].decode(raw, temb).sample) <= TOL
        if conditioned:
            reference = vae23["decoder"](z, timestep=temb, generator=torch.Generator().manual_seed(12))
            video = ours.decode(raw, temb, decode_noise_scale=0.025, generator=torch.Generator().manual_seed(12))
            assert _max_diff(video.sample, reference) <= TOL


def test_encoder_with_a_width_keeping_conv_downsampler():
    # ltx-core's encoder "compress_all" block (a stride-2 causal conv) is diffusers' downsample_type "conv"
    header = vae_header_23(LATENT)
    header["encoder_blocks"][7] = ["compress_all", {}]
    encoder, decoder, original = ltxcore_vae(header, seed=31)
    ours, theirs = our_vae_from_original(header, original), diffusers_vae_from_original(header, original)
    assert ours.config.downsample_type[-1] == "conv" and ours.config.block_out_channels[-1] == 8 * LATENT
    x = smooth_video(batch=1, frames=9, height=64, width=64)
    with torch.no_grad():
        reference = encoder(x)
        posterior = ours.encode(x).latent_dist
        assert _max_diff(ours.normalize_latents(posterior.mode()), reference) <= TOL
        assert _max_diff(posterior.mean, theirs.encode(x).latent_dist.mean) <= TOL


def test_diffusers_2_3_config_folder_loads_and_matches(tmp_path):
    timestep_conditioning = True  # the larger layout (44 more tensors); without it: the ltx-core parity above
    config = tiny_diffusers_vae_config_23(LATENT, timestep_conditioning=timestep_conditioning)
    theirs = random_init_(diffusers.AutoencoderKLLTX2Video(**config), seed=41).eval()
    mean, std = statistics(LATENT)
    theirs.latents_mean.copy_(mean)
    theirs.latents_std.copy_(std)
    theirs.save_pretrained(tmp_path)
    ours, info = LTX2VideoAutoencoder.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    ours.eval()
    x = smooth_video(batch=1, frames=9, height=32, width=64)
    temb = torch.tensor([0.3]) if timestep_conditioning else None
    with torch.no_grad():
        z = theirs.encode(x).latent_dist.mode()
        assert _max_diff(ours.encode(x).latent_dist.mode(), z) <= TOL
        video = ours.decode(z, temb).sample
        assert video.shape == (1, 3, 9, 32, 64)
        assert _max_diff(video, theirs.decode(z, temb).sample) <= TOL
    # and back: the folder we write loads into diffusers strictly
    ours.save_pretrained(tmp_path / "ours")
    back, info = diffusers.AutoencoderKLLTX2Video.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert (back.spatial_compression_ratio, back.temporal_compression_ratio) == (32, 8)


@pytest.mark.parametrize("variant", [
    {"rational_resampler": False},  # x2 1.1: plain upsampler.0 layout
    {"spatial_upsample": True, "temporal_upsample": True, "rational_resampler": False},  # x2 in time and space
])
def test_upsampler_variants_match_ltxcore_and_diffusers(variant):
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    from ltx2_diffusers.conversion.video_vae import latent_upsampler_config_from_original

    header = upsampler_header(**variant)
    reference = ltxcore_upsampler(header, seed=51)
    original = dict(reference.state_dict())
    ours = our_upsampler_from_original(header, original)
    theirs = LTX2LatentUpsamplerModel(**latent_upsampler_config_from_original(header, original)).eval()
    theirs.load_state_dict(original, strict=True)
    x = torch.randn(2, LATENT, 3, 4, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = ours(x)
        assert _max_diff(out, reference(x)) <= TOL and _max_diff(out, theirs(x)) <= TOL
    frames = 5 if variant.get("temporal_upsample") else 3
    assert out.shape == (2, LATENT, frames, 8, 12)
