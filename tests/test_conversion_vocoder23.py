"""LTX-2.3 vocoder conversion: the nested header block, rename rules (both ways), strict 1:1 mapping at real size."""

import pytest
import torch

from ltx2_diffusers.conversion.audio import (
    VOCODER_PREFIX,
    convert_vocoder_state_dict,
    original_vocoder_key,
    rename_vocoder_key,
    vocoder_config_from_original,
    vocoder_model_class,
)
from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.models.vocoder_bwe_ltx2 import LTX2VocoderWithBWE
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder

from .oracles_voc23 import ltxcore_bwe, ltxcore_bwe_header


def _as_lists(value: object) -> object:
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return [_as_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.fixture(scope="module")
def original_23() -> dict[str, torch.Tensor]:
    """Every vocoder tensor of the LTX-2.3 single file as ltx-core 1.0.0 names them (meta device, real header)."""
    return {"vocoder." + k: v for k, v in ltxcore_bwe(ltxcore_bwe_header(), device="meta").state_dict().items()}


def test_23_vocoder_maps_one_to_one_onto_ours_and_diffusers(original_23):
    from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE as DiffusersVocoderWithBWE

    header = ltxcore_bwe_header()
    assert vocoder_model_class(header) is LTX2VocoderWithBWE and vocoder_model_class({}) is LTX2Vocoder
    config = vocoder_config_from_original(header, original_23)
    with torch.device("meta"):
        ours, default, theirs = LTX2VocoderWithBWE(**config), LTX2VocoderWithBWE(), DiffusersVocoderWithBWE()
    converted = convert_vocoder_state_dict(original_23, expected_shapes(ours))  # strict: raises on any mismatch
    assert len(original_23) == len(converted) == 1227
    assert {k: v.shape for k, v in converted.items()} == expected_shapes(theirs)
    assert sum(p.numel() for p in ours.parameters()) == 128_537_448
    # the released model = the class defaults, except the first stage's clamp (diffusers' converter drops it)
    assert config.pop("final_act_fn") == "clamp"
    assert _as_lists(config) == _as_lists({k: default.config[k] for k in config})


def test_rename_rules_and_inverse(original_23):
    examples = {
        "vocoder.conv_pre.weight": "vocoder.conv_in.weight",
        "vocoder.ups.5.bias": "vocoder.upsamplers.5.bias",
        "bwe_generator.resblocks.14.acts1.2.upsample.filter": "bwe_generator.resnets.14.acts1.2.upsample.filter",
        "vocoder.resblocks.0.acts2.0.downsample.lowpass.filter": "vocoder.resnets.0.acts2.0.downsample.filter",
        "vocoder.act_post.act.beta": "vocoder.act_out.act.beta",
        "bwe_generator.conv_post.weight": "bwe_generator.conv_out.weight",
        "mel_stft.stft_fn.forward_basis": "mel_stft.stft_fn.forward_basis",
        "mel_stft.mel_basis": "mel_stft.mel_basis",
    }
    for original, ours in examples.items():
        assert rename_vocoder_key(VOCODER_PREFIX + original) == ours
    for key in original_23:  # every real key round-trips
        assert original_vocoder_key(rename_vocoder_key(key)) == key
    assert rename_vocoder_key("audio_vae.decoder.up.0.upsample.conv.conv.weight") is None
    assert rename_vocoder_key("vocoder.ups.0.weight") == "upsamplers.0.weight"  # LTX-2.0 names unchanged


@pytest.mark.parametrize("block, key, value, match", [
    ("vocoder", "resblock", "1", "config\\['vocoder'\\]\\['vocoder'\\]\\['resblock'\\] is '1'"),
    ("bwe", "activation", "snake", "config\\['vocoder'\\]\\['bwe'\\]\\['activation'\\] is 'snake'"),
    ("bwe", "stereo", None, "\\['stereo'\\] is None"),
    ("bwe", "hop_length", None, "lacks config\\['vocoder'\\]\\['bwe'\\]\\['hop_length'\\]"),
    ("vocoder", "upsample_rates", None, "lacks config\\['vocoder'\\]\\['vocoder'\\]\\['upsample_rates'\\]"),
    ("bwe", "upsample_rates", [6, 5, 2, 2], "lists 4 upsample rates .* 5 stages"),
    ("bwe", "n_fft", 1024, "'n_fft'\\] is 1024 but the mel_stft tensors have 512"),
])
def test_header_checks(original_23, block, key, value, match):
    header = ltxcore_bwe_header()
    if value is None:
        del header[block][key]
    else:
        header[block][key] = value
    with pytest.raises(ValueError, match=match):
        vocoder_config_from_original(header, original_23)


def test_header_without_the_tensors(original_23):
    first_stage_missing = {k: v for k, v in original_23.items() if not k.startswith("vocoder.vocoder.")}
    with pytest.raises(ValueError, match="tensors do not hold it"):
        vocoder_config_from_original(ltxcore_bwe_header(), first_stage_missing)
