"""Our VAEs and latent upsampler as drop-ins for diffusers' classes: configs diffusers accepts (short and long
per-block lists, compression ratios left to None, a one-level audio VAE) construct and run in ours with the same
weights and outputs, and the attributes diffusers' LTX-2 pipelines read have diffusers' values."""

import inspect

import pytest
import torch

from ltx2_diffusers.models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ltx2_diffusers.models.latent_upsampler_ltx2 import LTX2LatentUpsampler
from ltx2_diffusers.models.tiling import VideoTiling

from .video_helpers import random_init_, smooth_video

diffusers = pytest.importorskip("diffusers")
TOL = 1e-4

# one down / up block, one layers_per_block entry, upsample_type left at its 3-entry default, ratios left to None,
# patch 1: the encoder compresses (1, 2, 2), the decoder expands (2, 2, 2) -- diffusers accepts all of it
ONE_BLOCK_VIDEO = dict(
    latent_channels=4, block_out_channels=(8,), decoder_block_out_channels=(8,), layers_per_block=(2,),
    decoder_layers_per_block=(1, 2), spatio_temporal_scaling=(True,), decoder_spatio_temporal_scaling=(True,),
    decoder_inject_noise=(False, False), downsample_type=("spatial",), upsample_residual=(False,),
    upsample_factor=(1,), patch_size=1, patch_size_t=1, decoder_causal=False,
)
# four width-keeping down blocks, ratios None (diffusers would derive 16 / 16; the blocks compress by 8 / 8)
FOUR_BLOCK_VIDEO = dict(
    latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(16, 32, 64),
    layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1), patch_size=1,
    decoder_spatial_padding_mode="zeros", decoder_causal=False,
)
# one level: no compression in the network, though diffusers states 4x (and crops / zero-pads the decode to it)
ONE_LEVEL_AUDIO = dict(
    base_channels=4, output_channels=2, ch_mult=(1,), num_res_blocks=1, attn_resolutions=None, in_channels=2,
    resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height", mid_block_add_attention=False,
    mel_bins=8,
)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _pair(ours_class, theirs_class, config: dict, seed: int = 0):
    theirs = random_init_(theirs_class(**config), seed).eval()
    ours = ours_class(**config).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def _video_pair(config: dict):
    return _pair(LTX2VideoAutoencoder, diffusers.AutoencoderKLLTX2Video, config)


# ----------------------------------------------------------------------------------------------------------------
# Video VAE
# ----------------------------------------------------------------------------------------------------------------


def test_one_block_config_runs_like_diffusers():
    ours, theirs = _video_pair(ONE_BLOCK_VIDEO)
    assert len(ours.encoder.mid_block.resnets) == 2  # the mid block shares the only layers_per_block entry
    assert (ours.spatial_compression_ratio, ours.temporal_compression_ratio) == (2, 2)
    assert (ours.spatial_compression_ratio, ours.temporal_compression_ratio) == (
        theirs.spatial_compression_ratio, theirs.temporal_compression_ratio)
    image, video = smooth_video(frames=1, height=32, width=32), smooth_video(frames=5, height=32, width=32)
    z = torch.randn(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for x in (image, video):  # the encoder does not compress time here: 1 -> 1 and 5 -> 5 latent frames
            posterior = ours.encode(x).latent_dist
            assert posterior.mean.shape[2] == x.shape[2]
            assert _max_diff(posterior.mean, theirs.encode(x).latent_dist.mean) <= TOL
        decoded = ours.decode(z, return_dict=False)[0]
        assert decoded.shape == (1, 3, 5, 32, 32)
        assert _max_diff(decoded, theirs.decode(z, return_dict=False)[0]) <= TOL


def test_ratios_left_to_none_are_resolved_from_the_blocks_and_saved(tmp_path):
    ours, theirs = _video_pair(FOUR_BLOCK_VIDEO)
    assert (ours.spatial_compression_ratio, ours.temporal_compression_ratio) == (8, 8)
    assert (ours.config.spatial_compression_ratio, ours.config.temporal_compression_ratio) == (8, 8)
    assert theirs.spatial_compression_ratio == 16  # diffusers' patch_size * 2^(re-sampling blocks) guess
    x = smooth_video(batch=2, frames=9, height=16, width=16)
    with torch.no_grad():
        out = ours(x, return_dict=False)[0]
        assert out.shape == x.shape and _max_diff(out, theirs(x, return_dict=False)[0]) <= TOL
        assert ours.encode(x).latent_dist.mean.shape == (2, 8, 2, 2, 2)
    ours.save_pretrained(tmp_path)  # the folder states the true ratios, so diffusers gets them right too
    back = diffusers.AutoencoderKLLTX2Video.from_pretrained(tmp_path)
    assert (back.spatial_compression_ratio, back.temporal_compression_ratio) == (8, 8)
    reloaded = LTX2VideoAutoencoder.from_pretrained(tmp_path)
    assert reloaded.spatial_compression_ratio == 8


def test_longer_per_block_lists_are_read_as_diffusers_reads_them():
    # extra entries: encoder lists and upsample_type are read from their start, the other decoder lists (which
    # diffusers reverses) from their input-side end
    config = dict(
        latent_channels=4, block_out_channels=(8, 16), layers_per_block=(1, 2, 9, 3),
        spatio_temporal_scaling=(True, True, False), downsample_type=("spatial", "spatiotemporal", "temporal"),
        down_block_types=("LTX2VideoDownBlock3D",) * 3, decoder_block_out_channels=(8, 16),
        decoder_layers_per_block=(7, 1, 2, 3), decoder_spatio_temporal_scaling=(False, True, True),
        decoder_inject_noise=(True, False, False, True), upsample_type=("spatiotemporal", "spatial", "temporal"),
        upsample_residual=(True, True, False), upsample_factor=(3, 2, 2), patch_size=1,
        decoder_spatial_padding_mode="zeros", decoder_causal=False,
    )
    ours, theirs = _video_pair(config)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert len(ours.encoder.mid_block.resnets) == 3 and len(ours.decoder.mid_block.resnets) == 3
    assert ours.decoder.mid_block.resnets[0].per_channel_scale1 is not None  # inject_noise's last entry
    assert ours.decoder.up_blocks[1].resnets[0].per_channel_scale1 is None
    with torch.no_grad():  # no injected noise, so the outputs can be compared (diffusers' forward draws it unseeded)
        for model in (ours, theirs):
            for name, p in model.named_parameters():
                if "per_channel_scale" in name:
                    p.zero_()
    x = smooth_video(frames=5, height=16, width=16)
    with torch.no_grad():
        out, ref = ours(x).sample, theirs(x).sample
    assert out.shape == ref.shape == (1, 3, 5, 16, 16) and _max_diff(out, ref) <= TOL


@pytest.mark.parametrize("overrides, message", [
    (dict(layers_per_block=()), "layers_per_block needs at least 1"),
    (dict(decoder_layers_per_block=(1,)), "decoder_layers_per_block .* needs 2 entries"),
    (dict(upsample_type=()), "upsample_type needs 1 entries"),
    (dict(downsample_type=("sideways",)), "unknown re-sampling type 'sideways'"),
    (dict(block_out_channels=(12,)), "must divide that and be a multiple of 4"),
    (dict(spatio_temporal_scaling=(False,)), "down block 0 has no down-sampler, so block_out_channels\\[0\\] must "
                                             "stay 4"),
    (dict(decoder_spatio_temporal_scaling=(False,), upsample_factor=(2,)), "up block 0 .* has no up-sampler and "
                                                                           "keeps 8 channels"),
    (dict(spatial_compression_ratio=32), "spatial_compression_ratio=32 does not match the blocks, which compress "
                                         "by 2"),
])
def test_configs_that_cannot_run_raise_at_construction(overrides, message):
    with pytest.raises(ValueError, match=message):
        LTX2VideoAutoencoder(**{**ONE_BLOCK_VIDEO, **overrides})


def test_decoder_channel_flow_is_checked():
    # a width change inside an up block whose up-sampler also reduces channels cannot run (diffusers fails later)
    with pytest.raises(ValueError, match="would change 8 -> 4 channels but receives 16"):
        LTX2VideoAutoencoder(**{**FOUR_BLOCK_VIDEO, "decoder_block_out_channels": (8, 32, 64)})


def test_methods_take_diffusers_arguments_in_diffusers_order():
    for name in ("encode", "decode", "forward", "enable_tiling"):
        theirs = list(inspect.signature(getattr(diffusers.AutoencoderKLLTX2Video, name)).parameters)
        ours = list(inspect.signature(getattr(LTX2VideoAutoencoder, name)).parameters)
        assert ours[: len(theirs)] == theirs, name
    for name in ("encode", "decode", "forward"):
        theirs = list(inspect.signature(getattr(diffusers.AutoencoderKLLTX2Audio, name)).parameters)
        assert list(inspect.signature(getattr(LTX2AudioAutoencoder, name)).parameters)[: len(theirs)] == theirs


def test_enable_tiling_with_diffusers_positional_arguments():
    vae = LTX2VideoAutoencoder(**FOUR_BLOCK_VIDEO)
    vae.enable_tiling(64, 64, 32, 48, 48, 16)  # sizes then strides, as diffusers orders them
    assert vae.use_tiling and vae.tiling == VideoTiling(64, 16, 32, 16)
    vae.enable_tiling(VideoTiling(None, 0, 16, 8))  # ours: a VideoTiling, positionally or as tiling=
    assert vae.tiling == VideoTiling(None, 0, 16, 8)
    vae.enable_tiling(tiling=VideoTiling(32, 8, None, 0), tile_sample_stride_height=16)
    assert vae.tiling == VideoTiling(32, 16, None, 0)
    vae.disable_tiling()
    assert not vae.use_tiling
    with pytest.raises(ValueError, match="tiles are square"):
        vae.enable_tiling(64, 96)
    vae.enable_slicing()
    assert vae.use_slicing
    vae.disable_slicing()
    assert not vae.use_slicing


def test_tiling_and_slicing_keep_diffusers_outputs_on_small_inputs():
    ours, theirs = _video_pair(FOUR_BLOCK_VIDEO)
    x = smooth_video(batch=2, frames=9, height=16, width=16)
    with torch.no_grad():
        reference = theirs(x).sample
        ours.enable_tiling()
        ours.enable_slicing()
        assert _max_diff(ours(x).sample, reference) <= TOL


# ----------------------------------------------------------------------------------------------------------------
# Audio VAE and latent upsampler
# ----------------------------------------------------------------------------------------------------------------


def test_one_level_audio_vae_runs_like_diffusers():
    ours, theirs = _pair(LTX2AudioAutoencoder, diffusers.AutoencoderKLLTX2Audio, ONE_LEVEL_AUDIO, seed=3)
    assert (ours.temporal_compression_ratio, ours.mel_compression_ratio) == (4, 4)
    assert (ours.temporal_compression_ratio, ours.mel_compression_ratio) == (
        theirs.temporal_compression_ratio, theirs.mel_compression_ratio)
    mel = torch.randn(2, 2, 12, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, 2, 5, 2, generator=torch.Generator().manual_seed(1))  # what diffusers' pipeline sizes
    with torch.no_grad():
        posterior = ours.encode(mel).latent_dist
        assert posterior.mean.shape == (2, 2, 12, 8)
        assert _max_diff(posterior.mean, theirs.encode(mel).latent_dist.mean) <= TOL
        decoded = ours.decode(z).sample
        assert decoded.shape == (2, 2, 17, 8)  # 4 L - 3 rows, mel_bins bins (zero-padded, as diffusers does)
        assert _max_diff(decoded, theirs.decode(z).sample) <= TOL
        round_trip = ours(mel).sample
        assert _max_diff(round_trip, theirs(mel).sample) <= TOL
    with pytest.raises(ValueError, match="2 or 8 mel bins"):
        ours.decode(torch.zeros(1, 2, 5, 3))


def test_latent_upsampler_defaults_and_small_config_match_diffusers():
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    def public(config):
        return {k: v for k, v in config.items() if not k.startswith("_")}

    with torch.device("meta"):
        assert public(LTX2LatentUpsampler().config) == public(LTX2LatentUpsamplerModel().config)
    ours, theirs = _pair(LTX2LatentUpsampler, LTX2LatentUpsamplerModel,
                         dict(in_channels=4, mid_channels=32, num_blocks_per_stage=1), seed=5)
    x = torch.randn(1, 4, 2, 3, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert _max_diff(ours(x), theirs(x)) <= TOL


def test_attributes_the_pipelines_read_have_diffusers_values():
    video_ours, video_theirs = _video_pair(ONE_BLOCK_VIDEO)
    audio_ours, audio_theirs = _pair(LTX2AudioAutoencoder, diffusers.AutoencoderKLLTX2Audio, ONE_LEVEL_AUDIO)
    for ours, theirs, names in (
        (video_ours, video_theirs, ["spatial_compression_ratio", "temporal_compression_ratio", "latents_mean",
                                    "latents_std", "dtype", "use_tiling", "use_slicing", "config.scaling_factor",
                                    "config.timestep_conditioning", "config.latent_channels"]),
        (audio_ours, audio_theirs, ["mel_compression_ratio", "temporal_compression_ratio", "latents_mean",
                                    "latents_std", "dtype", "use_slicing", "config.sample_rate",
                                    "config.mel_hop_length", "config.mel_bins", "config.latent_channels"]),
    ):
        for name in names:
            a, b = ours, theirs
            for part in name.split("."):
                a, b = getattr(a, part), getattr(b, part)
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, name


# ----------------------------------------------------------------------------------------------------------------
# In diffusers' own pipelines
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parity
def test_diffusers_ltx2_pipeline_runs_with_our_vaes(tmp_path):
    from ltx2_diffusers.utils.tiny import tiny_pipeline

    from .oracles_pipeline import diffusers_pipeline_from_folder

    ours = tiny_pipeline(seed=0)
    ours.save_pretrained(tmp_path)
    pipe = diffusers_pipeline_from_folder(str(tmp_path), ours.text_encoder, ours.tokenizer)
    call = dict(prompt="a dog", negative_prompt="blurry", num_frames=9, height=64, width=64, num_inference_steps=1,
                max_sequence_length=16, output_type="pt", guidance_scale=1.0, return_dict=False)
    video, audio = pipe(**call, generator=torch.Generator().manual_seed(0))[:2]
    pipe.vae = LTX2VideoAutoencoder.from_pretrained(tmp_path, subfolder="vae").eval()
    pipe.audio_vae = LTX2AudioAutoencoder.from_pretrained(tmp_path, subfolder="audio_vae").eval()
    video_ours, audio_ours = pipe(**call, generator=torch.Generator().manual_seed(0))[:2]
    assert video.shape == (1, 9, 3, 64, 64) and _max_diff(video_ours, video) <= TOL
    assert _max_diff(audio_ours, audio) <= TOL


@pytest.mark.parity
def test_diffusers_latent_upsample_pipeline_runs_with_ours():
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline, LTX2LatentUpsamplerModel

    vae, vae_theirs = _video_pair(FOUR_BLOCK_VIDEO)
    upsampler, upsampler_theirs = _pair(LTX2LatentUpsampler, LTX2LatentUpsamplerModel,
                                        dict(in_channels=8, mid_channels=32, num_blocks_per_stage=1), seed=6)
    latents = torch.randn(1, 8, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    outputs = []
    for v, u in ((vae_theirs, upsampler_theirs), (vae, upsampler)):
        pipe = LTX2LatentUpsamplePipeline(vae=v, latent_upsampler=u)
        pipe.set_progress_bar_config(disable=True)
        outputs.append(pipe(latents=latents, height=32, width=48, num_frames=9, output_type="pt",
                            return_dict=False)[0])
    assert outputs[0].shape == (1, 9, 3, 32, 48) and _max_diff(outputs[1], outputs[0]) <= TOL
