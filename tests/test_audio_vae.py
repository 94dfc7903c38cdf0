"""Audio VAE: diffusers-format loading, real-size structure, shapes, token statistics, chunked decode, bad input."""

import pytest
import torch

from ltx2_diffusers.models.audio_processing import log_mel_spectrogram, pack_audio_latents
from ltx2_diffusers.models.autoencoder_ltx2_audio import LTX2AudioAutoencoder, decoder_time_context

from .oracles_audio import TINY_VAE, diffusers_audio_vae, random_init_, random_statistics


def _tiny(**config) -> LTX2AudioAutoencoder:
    model = random_init_(LTX2AudioAutoencoder(**{**TINY_VAE, **config}), seed=3)
    mean, std = random_statistics(model.latents_mean.numel())
    model.latents_mean.copy_(mean)
    model.latents_std.copy_(std)
    return model.eval()


def test_loads_a_diffusers_saved_folder_with_no_missing_keys(tmp_path):
    from diffusers import AutoencoderKLLTX2Audio

    reference = diffusers_audio_vae()
    reference.save_pretrained(tmp_path / "audio_vae")
    ours, info = LTX2AudioAutoencoder.from_pretrained(tmp_path / "audio_vae", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert info["error_msgs"] == []
    assert torch.equal(ours.latents_std, reference.latents_std) and ours.config.base_channels == 32
    state = reference.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in ours.state_dict().items())
    # and the other way round: our folders load into diffusers unchanged
    ours.save_pretrained(tmp_path / "ours")
    _, back = AutoencoderKLLTX2Audio.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert back["missing_keys"] == [] and back["unexpected_keys"] == [] and back["mismatched_keys"] == []


def test_real_size_structure():
    with torch.device("meta"):
        model = LTX2AudioAutoencoder()
    assert sum(p.numel() for p in model.encoder.parameters()) == 21_333_008
    assert sum(p.numel() for p in model.decoder.parameters()) == 31_915_138
    assert len(model.state_dict()) == 102 and model.latents_mean.shape == (128,)
    assert model.temporal_compression_ratio == model.mel_compression_ratio == 4
    assert model.state_dict()["encoder.down.1.block.0.nin_shortcut.conv.weight"].shape == (256, 128, 1, 1)
    assert model.state_dict()["decoder.up.2.upsample.conv.conv.weight"].shape == (512, 512, 3, 3)


@pytest.mark.parametrize("axis, rows", [("height", 4 * 7 - 3), ("width", 4 * 7 - 3), ("none", 4 * 7)])
def test_shapes(axis, rows):
    model = _tiny(num_res_blocks=1, causality_axis=axis)
    with torch.no_grad():
        posterior = model.encode(torch.randn(2, 2, 101, 64)).latent_dist
        mel = model.decode(torch.randn(1, 2, 7, 16)).sample
    assert posterior.mean.shape == (2, 2, 26 if axis == "height" else 25, 16)
    assert mel.shape == (1, 2, rows, 64)


def test_token_statistics_apply_to_packed_channel_major_features():
    model = _tiny()
    z = torch.randn(2, 2, 9, 16)
    tokens = model.normalize_latents(z)
    assert tokens.shape == (2, 9, 32)
    expected = (pack_audio_latents(z) - model.latents_mean) / model.latents_std
    assert torch.allclose(tokens, expected)
    assert torch.allclose(model.denormalize_latents(tokens), z, atol=1e-6)
    with pytest.raises(ValueError, match="base_channels"):
        _tiny(base_channels=16).normalize_latents(z)


def test_mel_spectrogram_uses_the_config_front_end():
    model = _tiny()
    wave = 0.1 * torch.randn(2, 48000)
    assert torch.equal(model.mel_spectrogram(wave, 48000), log_mel_spectrogram(wave, 48000))
    assert model.mel_spectrogram(wave, 48000).shape == (1, 2, 101, 64)


def test_slicing_and_sampling():
    model = _tiny(num_res_blocks=1)
    mel = torch.randn(3, 2, 41, 64)
    with torch.no_grad():
        whole = model(mel).sample
        model.enable_slicing()
        assert (model(mel).sample - whole).abs().max() < 1e-5
        a = model(mel, sample_posterior=True, generator=torch.Generator().manual_seed(5)).sample
        b = model(mel, sample_posterior=True, generator=torch.Generator().manual_seed(5)).sample
    assert torch.equal(a, b) and not torch.allclose(a, whole)


# ----------------------------------------------------------------------------------------------------------------
# Chunked decode
# ----------------------------------------------------------------------------------------------------------------


def test_chunked_decode_of_a_20s_clip_equals_the_whole_decode():
    model = _tiny(base_channels=16, num_res_blocks=1)
    z = torch.randn(1, 2, 500, 16)  # 20 s
    seen = []
    model.decoder.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[2]))
    with torch.no_grad():
        whole = model.decode(z).sample
        model.enable_tiling(tile_latent_frames=125)
        seen.clear()
        chunked = model.decode(z).sample
    assert chunked.shape == whole.shape == (1, 2, 1997, 64)
    assert (chunked - whole).abs().max() <= 1e-5  # stated tolerance: exact up to float rounding
    before, after = model._decode_context
    assert len(seen) == 4 and max(seen) <= 125 + before and after == 0  # never more than one chunk + history


@pytest.mark.parametrize("axis", ["none", "width"])
def test_chunked_decode_with_look_ahead_when_time_is_not_causal(axis):
    model = _tiny(num_res_blocks=1, causality_axis=axis)
    z = torch.randn(2, 2, 90, 16)
    with torch.no_grad():
        whole = model.decode(z).sample
        model.enable_tiling(tile_latent_frames=20)
        chunked = model.decode(z).sample
    assert model._decode_context[1] > 0
    assert chunked.shape == whole.shape and (chunked - whole).abs().max() <= 1e-5


def test_chunked_decode_needs_its_receptive_field():
    model = _tiny(num_res_blocks=1)
    z = torch.randn(1, 2, 80, 16)
    with torch.no_grad():
        whole = model.decode(z).sample
        model.enable_tiling(tile_latent_frames=20)
        model._decode_context = (3, 0)  # far less history than the decoder reads
        assert (model.decode(z).sample - whole).abs().max() > 1e-3
    # LTX-2: (1 + 4 + 6 + 1/2 + 3 + 1/4 + 3/2 + 1/4) convs at latent rate × 2 rows of history each, + 1
    assert decoder_time_context(3, 2, "height") == (34, 0)


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mel, match", [
    (torch.randn(2, 101, 64), r"\[batch, 2, frames >= 1, 64\]"),
    (torch.randn(1, 1, 101, 64), r"\[batch, 2, frames >= 1, 64\]"),
    (torch.randn(1, 2, 101, 80), r"\[batch, 2, frames >= 1, 64\]"),
    (torch.randn(1, 2, 0, 64), r"frames >= 1"),
    (torch.zeros(1, 2, 101, 64, dtype=torch.int32), "floating point"),
])
def test_encode_bad_input(mel, match):
    with pytest.raises(ValueError, match=match):
        _tiny(num_res_blocks=1).encode(mel)


@pytest.mark.parametrize("z", [torch.randn(1, 8, 10, 16), torch.randn(1, 2, 10, 64), torch.randn(2, 10, 32)])
def test_decode_bad_input(z):
    with pytest.raises(ValueError, match=r"\[batch, 2, frames >= 1, 16\]"):
        _tiny(num_res_blocks=1).decode(z)


@pytest.mark.parametrize("config, match", [
    ({"causality_axis": "time"}, "causality_axis"),
    ({"norm_type": "batch"}, "norm_type"),
    ({"norm_type": "group"}, "causality_axis='none'"),
    ({"ch_mult": ()}, "ch_mult"),
])
def test_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        LTX2AudioAutoencoder(**{**TINY_VAE, **config})


def test_bad_tile_size():
    with pytest.raises(ValueError, match="tile_latent_frames"):
        _tiny(num_res_blocks=1).enable_tiling(0)
