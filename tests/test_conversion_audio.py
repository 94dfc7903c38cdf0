"""Audio VAE and vocoder rename tables: original single-file names -> diffusers names, strictly checked."""

import pytest
import torch

from ltx2_diffusers.conversion.audio import (
    AUDIO_VAE_PREFIX,
    VOCODER_PREFIX,
    audio_vae_config_from_original,
    convert_audio_vae_state_dict,
    convert_vocoder_state_dict,
    original_audio_vae_key,
    original_vocoder_key,
    rename_audio_vae_key,
    rename_vocoder_key,
    vocoder_config_from_original,
)
from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder

from .oracles_audio import (
    ltxcore_audio_header,
    ltxcore_audio_modules,
    ltxcore_vocoder,
    ltxcore_vocoder_header,
    original_audio_state_dict,
)


def _as_lists(value: object) -> object:
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return [_as_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.fixture(scope="module")
def original_19b() -> dict[str, torch.Tensor]:
    """Every audio-VAE and vocoder tensor of the 19B single file as ltx-core 1.0.0 names them (meta device)."""
    encoder, decoder = ltxcore_audio_modules(ltxcore_audio_header(), device="meta")
    state = original_audio_state_dict(encoder, decoder, ltxcore_vocoder(ltxcore_vocoder_header(), device="meta"))
    state["audio_vae.per_channel_statistics.mean-of-stds"] = torch.empty(128, device="meta")  # unused extra
    return state


def test_19b_audio_vae_maps_one_to_one_onto_our_model(original_19b):
    config = audio_vae_config_from_original(ltxcore_audio_header(), original_19b)
    with torch.device("meta"):
        ours, default = LTX2AudioAutoencoder(**config), LTX2AudioAutoencoder()
    converted = convert_audio_vae_state_dict(original_19b, expected_shapes(ours))  # strict: raises on any mismatch
    assert len(converted) == 102
    assert _as_lists(config) == _as_lists({k: default.config[k] for k in config})  # the released model = defaults


def test_19b_vocoder_maps_one_to_one_onto_our_model(original_19b):
    config = vocoder_config_from_original(ltxcore_vocoder_header(), original_19b)
    with torch.device("meta"):
        ours, default = LTX2Vocoder(**config), LTX2Vocoder()
    converted = convert_vocoder_state_dict(original_19b, expected_shapes(ours))
    assert len(converted) == 194
    assert _as_lists(config) == _as_lists({k: default.config[k] for k in config})  # the released model = defaults


def test_config_reads_widths_and_attention_from_shapes():
    header = ltxcore_audio_header(ch=32, z_channels=2, num_res_blocks=1, mid_block_add_attention=True,
                                  attn_resolutions=[64])
    encoder, decoder = ltxcore_audio_modules(header, device="meta")
    state = original_audio_state_dict(encoder, decoder)
    del header["model"]["params"]["ddconfig"]["mid_block_add_attention"]  # shapes, not the header, decide
    config = audio_vae_config_from_original(header, state)
    assert config["base_channels"] == 32 and config["latent_channels"] == 2 and config["num_res_blocks"] == 1
    assert config["mid_block_add_attention"] is True and config["attn_resolutions"] == (64,)
    with torch.device("meta"):
        ours = LTX2AudioAutoencoder(**config)
    convert_audio_vae_state_dict(state, expected_shapes(ours))


def test_rename_examples_and_inverse():
    vae = {
        "per_channel_statistics.mean-of-means": "latents_mean",
        "per_channel_statistics.std-of-means": "latents_std",
        "encoder.down.1.block.0.nin_shortcut.conv.weight": "encoder.down.1.block.0.nin_shortcut.conv.weight",
        "decoder.up.2.upsample.conv.conv.bias": "decoder.up.2.upsample.conv.conv.bias",
    }
    for original, ours in vae.items():
        assert rename_audio_vae_key(AUDIO_VAE_PREFIX + original) == ours
        assert original_audio_vae_key(ours) == AUDIO_VAE_PREFIX + original
    vocoder = {
        "conv_pre.weight": "conv_in.weight",
        "ups.3.bias": "upsamplers.3.bias",
        "resblocks.14.convs2.1.weight": "resnets.14.convs2.1.weight",
        "conv_post.bias": "conv_out.bias",
    }
    for original, ours in vocoder.items():
        assert rename_vocoder_key(VOCODER_PREFIX + original) == ours
        assert original_vocoder_key(ours) == VOCODER_PREFIX + original
    assert rename_audio_vae_key("audio_vae.per_channel_statistics.channel") is None
    assert rename_audio_vae_key("vae.encoder.conv_in.conv.weight") is None
    assert rename_vocoder_key("audio_vae.encoder.conv_in.conv.weight") is None


def test_strict_and_clear_errors():
    with pytest.raises(ValueError, match="audio_vae: the checkpoint does not match") as info:
        convert_audio_vae_state_dict({"audio_vae.latents_extra": torch.zeros(1),
                                      "audio_vae.per_channel_statistics.mean-of-means": torch.zeros(3)},
                                     {"latents_mean": (4,), "latents_std": (4,)})
    assert "missing: latents_std" in str(info.value) and "unexpected: latents_extra" in str(info.value)
    assert "latents_mean: checkpoint (3,) vs model (4,)" in str(info.value)
    with pytest.raises(ValueError, match="No vocoder tensors"):
        convert_vocoder_state_dict({"audio_vae.encoder.conv_in.conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unknown LTX-2.3 vocoder variant"):  # nested blocks: LTX-2.3 (test_*23)
        vocoder_config_from_original({"bwe": {}}, {})
    with pytest.raises(ValueError, match="unknown vocoder variant: .* resblock 'AMP1'"):
        vocoder_config_from_original({"resblock": "AMP1"}, {})
