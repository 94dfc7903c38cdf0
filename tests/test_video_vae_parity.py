"""Video VAE parity: ltx-core 1.0.0 (ground truth) and diffusers 0.42.1 on identical random weights, fp32; plus the
conversion of the original single-file ``vae.*`` keys and loading of diffusers-saved folders."""

import pytest
import torch

from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.conversion.video_vae import (
    LTX2_DECODER_BLOCK_RENAMES,
    LTX2_ENCODER_BLOCK_RENAMES,
    convert_video_vae_state_dict,
    video_vae_config_from_original,
)
from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ltx2_diffusers.models.tiling import VideoTiling

from .oracles_video import (
    LATENT,
    diffusers_vae_from_original,
    ltxcore_vae,
    our_vae_from_original,
    random_init_,
    smooth_video,
    vae_header,
)

pytestmark = pytest.mark.parity
TOL = 1e-4
diffusers = pytest.importorskip("diffusers")

# LTX-2.3-style layout at tiny widths: zeros padding, a width-keeping x2 block, temporal-only and spatial-only
# up-samplers without residuals, a last encoder stage that keeps the width.
HEADER_23 = vae_header(
    spatial_padding_mode="zeros",
    encoder_blocks=[["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}],
                    ["res_x", {"num_layers": 1}], ["compress_time_res", {"multiplier": 2}],
                    ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 2}],
                    ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 1}],
                    ["res_x", {"num_layers": 1}]],
    decoder_blocks=[["res_x", {"num_layers": 2}], ["compress_space", {"multiplier": 2}],
                    ["res_x", {"num_layers": 1}], ["compress_time", {"multiplier": 2}],
                    ["res_x", {"num_layers": 1}], ["compress_all", {"multiplier": 1}],
                    ["res_x", {"num_layers": 2}], ["compress_all", {"multiplier": 2}],
                    ["res_x", {"num_layers": 1}]],
)


def _oracles(header: dict) -> dict:
    encoder, decoder, original = ltxcore_vae(header)
    return dict(header=header, encoder=encoder, decoder=decoder, original=original,
                ours=our_vae_from_original(header, original), theirs=diffusers_vae_from_original(header, original))


@pytest.fixture(scope="module")
def plain():
    return _oracles(vae_header(timestep_conditioning=False))


@pytest.fixture(scope="module")
def conditioned():
    return _oracles(vae_header(timestep_conditioning=True))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _normalised_latents(batch: int = 2, seed: int = 4) -> torch.Tensor:
    return torch.randn(batch, LATENT, 3, 2, 3, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# Encoder and decoder
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "ltx23"])
def test_encoder_parity(plain, name):
    o = plain if name == "plain" else _oracles(HEADER_23)
    x = smooth_video(batch=2, frames=17, height=64, width=96)
    with torch.no_grad():
        reference = o["encoder"](x)  # ltx-core returns normalised means
        ours = o["ours"].encode(x).latent_dist
        theirs = o["theirs"].encode(x).latent_dist
    assert reference.shape == (2, LATENT, 3, 2, 3)
    assert _max_diff(o["ours"].normalize_latents(ours.mode()), reference) <= TOL
    assert _max_diff(ours.mean, theirs.mean) <= TOL and _max_diff(ours.logvar, theirs.logvar) <= TOL
    if name == "ltx23":
        z = _normalised_latents()
        with torch.no_grad():
            video = o["ours"].decode(o["ours"].denormalize_latents(z)).sample
            assert _max_diff(video, o["decoder"](z)) <= TOL
            assert _max_diff(video, o["theirs"].decode(o["ours"].denormalize_latents(z)).sample) <= TOL


def test_decoder_parity(plain):
    z = _normalised_latents()
    with torch.no_grad():
        reference = plain["decoder"](z)
        raw = plain["ours"].denormalize_latents(z)  # diffusers convention: decode takes un-normalised latents
        ours = plain["ours"].decode(raw).sample
        theirs = plain["theirs"].decode(raw).sample
    assert ours.shape == (2, 3, 17, 64, 96)
    assert _max_diff(ours, reference) <= TOL and _max_diff(ours, theirs) <= TOL


def test_timestep_conditioned_decoder_parity(conditioned):
    o = conditioned
    z = _normalised_latents()
    raw = o["ours"].denormalize_latents(z)
    timesteps = torch.tensor([0.05, 0.3])
    with torch.no_grad():
        # the reference decode: timestep 0.05 and 2.5 % noise from the generator
        reference = o["decoder"](z, generator=torch.Generator().manual_seed(11))
        ours = o["ours"].decode(raw, generator=torch.Generator().manual_seed(11)).sample
        assert _max_diff(ours, reference) <= TOL
        # per-sample timesteps, noise scale as the reference
        reference = o["decoder"](z, timestep=timesteps, generator=torch.Generator().manual_seed(12))
        ours = o["ours"].decode(raw, timesteps, decode_noise_scale=0.025,
                                generator=torch.Generator().manual_seed(12)).sample
        assert _max_diff(ours, reference) <= TOL
        # diffusers' decode with a timestep mixes no noise (its pipeline does that)
        assert _max_diff(o["ours"].decode(raw, timesteps).sample, o["theirs"].decode(raw, timesteps).sample) <= TOL


# ----------------------------------------------------------------------------------------------------------------
# Tiling against the references
# ----------------------------------------------------------------------------------------------------------------


# measured mean |tiled - untiled| (ours vs ltx-core): space + time 0.109 vs 0.179; time only 0.091 vs 0.102
@pytest.mark.parametrize("tile_size,overlap,frames,overlap_frames", [(128, 64, 24, 16), (512, 64, 16, 8)])
def test_tiled_decode_seams_are_no_worse_than_ltxcore(plain, tile_size, overlap, frames, overlap_frames):
    from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

    ours = plain["ours"]
    x = smooth_video(frames=41, height=128, width=192)  # 6 latent frames: 3 temporal tiles
    with torch.no_grad():
        z = ours.encode(x).latent_dist.mode()
        full = ours.decode(z).sample
        tiled = ours.decode(z, tiling=VideoTiling(tile_size, overlap, frames, overlap_frames)).sample
        config = TilingConfig(SpatialTilingConfig(tile_size, overlap), TemporalTilingConfig(frames, overlap_frames))
        reference = torch.cat(list(plain["decoder"].tiled_decode(ours.normalize_latents(z), config)), dim=2)
    ours_error, reference_error = (tiled - full).abs().mean(), (reference - full).abs().mean()
    assert ours_error <= reference_error


def test_928_px_width_crashes_diffusers_but_not_us(plain):
    z = _normalised_latents(batch=1)[:, :, :2, :2, :1].repeat(1, 1, 1, 1, 29)  # 9 x 64 x 928
    theirs = plain["theirs"]
    theirs.enable_tiling()  # 512 px tiles, 448 px stride: the last tile is one latent wide
    with pytest.raises(RuntimeError, match="Padding size"):
        with torch.no_grad():
            theirs.decode(z)
    theirs.disable_tiling()
    with torch.no_grad():
        video = plain["ours"].decode(z, tiling=VideoTiling(512, 64, None)).sample
    assert video.shape == (1, 3, 9, 64, 928) and torch.isfinite(video).all()


# ----------------------------------------------------------------------------------------------------------------
# diffusers folders and the original single file
# ----------------------------------------------------------------------------------------------------------------


def test_loads_diffusers_folder_unchanged(tmp_path):
    config = dict(latent_channels=LATENT, block_out_channels=(16, 32, 64, 128), layers_per_block=(1, 2, 1, 1, 2),
                  decoder_block_out_channels=(16, 32, 64), decoder_layers_per_block=(1, 2, 1, 3),
                  timestep_conditioning=True, decoder_causal=False, spatial_compression_ratio=32,
                  temporal_compression_ratio=8)
    theirs = random_init_(diffusers.AutoencoderKLLTX2Video(**config), seed=9).eval()
    theirs.save_pretrained(tmp_path)
    ours, info = LTX2VideoAutoencoder.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert set(ours.state_dict()) == set(theirs.state_dict())
    x, t = smooth_video(frames=9, height=64, width=64), torch.tensor([0.1])
    with torch.no_grad():
        z = theirs.encode(x).latent_dist.mode()
        assert _max_diff(ours.encode(x).latent_dist.mode(), z) <= TOL
        assert _max_diff(ours.decode(z, t).sample, theirs.decode(z, t).sample) <= TOL


def test_rename_tables_match_the_documented_layout():
    assert LTX2_ENCODER_BLOCK_RENAMES == {0: "down_blocks.0", 1: "down_blocks.0.downsamplers.0", 2: "down_blocks.1",
                                          3: "down_blocks.1.downsamplers.0", 4: "down_blocks.2",
                                          5: "down_blocks.2.downsamplers.0", 6: "down_blocks.3",
                                          7: "down_blocks.3.downsamplers.0", 8: "mid_block"}
    assert LTX2_DECODER_BLOCK_RENAMES == {0: "mid_block", 1: "up_blocks.0.upsamplers.0", 2: "up_blocks.0",
                                          3: "up_blocks.1.upsamplers.0", 4: "up_blocks.1",
                                          5: "up_blocks.2.upsamplers.0", 6: "up_blocks.2"}


def test_config_from_original_header(conditioned):
    config = video_vae_config_from_original(conditioned["header"], conditioned["original"])
    # the header lists decoder blocks from the output side, as diffusers does: the 3-layer res_x is the mid block
    assert config["decoder_layers_per_block"] == [1, 2, 1, 3] and config["layers_per_block"] == [1, 2, 1, 1, 2]
    assert config["block_out_channels"] == [16, 32, 64, 128] and config["decoder_block_out_channels"] == [16, 32, 64]
    assert config["timestep_conditioning"] is True  # read from vae.decoder.last_time_embedder.* keys
    assert (config["encoder_spatial_padding_mode"], config["decoder_spatial_padding_mode"]) == ("zeros", "reflect")
    assert (config["spatial_compression_ratio"], config["temporal_compression_ratio"]) == (32, 8)
    assert len(conditioned["ours"].decoder.mid_block.resnets) == 3
    config_23 = video_vae_config_from_original(HEADER_23, ltxcore_vae(HEADER_23)[2])
    assert config_23["upsample_type"] == ["spatiotemporal", "spatiotemporal", "temporal", "spatial"]
    assert config_23["upsample_factor"] == [2, 2, 1, 2] and config_23["upsample_residual"] == [False] * 4
    assert config_23["decoder_spatial_padding_mode"] == "zeros" and config_23["timestep_conditioning"] is False
    with pytest.raises(ValueError, match="latent_log_var"):
        video_vae_config_from_original({**HEADER_23, "latent_log_var": "per_channel"}, {})
    with pytest.raises(ValueError, match="alternate"):
        video_vae_config_from_original({**HEADER_23, "decoder_blocks": [["res_x", 1], ["res_x", 1]]}, {})


def test_conversion_is_strict(plain):
    original, expected = plain["original"], expected_shapes(plain["ours"])
    converted = convert_video_vae_state_dict(original, expected)
    assert "latents_mean" in converted and not any("channel" in k or "stds" in k for k in converted)
    assert torch.equal(converted["latents_std"], original["vae.per_channel_statistics.std-of-means"])
    unrelated = {**original, "model.diffusion_model.proj_out.weight": torch.zeros(1)}  # other components ignored
    assert convert_video_vae_state_dict(unrelated, expected).keys() == converted.keys()

    broken = dict(original)
    del broken["vae.decoder.conv_out.conv.bias"]
    with pytest.raises(ValueError, match="missing: decoder.conv_out.conv.bias"):
        convert_video_vae_state_dict(broken, expected)
    with pytest.raises(ValueError, match="unexpected: encoder.extra.weight"):
        convert_video_vae_state_dict({**original, "vae.encoder.extra.weight": torch.zeros(1)}, expected)
    with pytest.raises(ValueError, match="unexpected: per_channel_statistics.new-stat"):
        convert_video_vae_state_dict({**original, "vae.per_channel_statistics.new-stat": torch.zeros(1)}, expected)
    wrong = {**original, "vae.per_channel_statistics.mean-of-means": torch.zeros(LATENT + 1)}
    with pytest.raises(ValueError, match="shape mismatch: latents_mean"):
        convert_video_vae_state_dict(wrong, expected)
    with pytest.raises(ValueError, match="No video VAE tensors"):
        convert_video_vae_state_dict({"audio_vae.x": torch.zeros(1)})
