"""Pure helpers behind LTX-2.3 loading: which class loads a folder's component, what components must agree on, and
the waveform length per version (configs only: no model runs)."""


import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2Vocoder, LTX2VocoderWithBWE
from ltx2_diffusers.models.latent_upsampler_ltx2 import LTX2LatentUpsampler
from ltx2_diffusers.pipelines.compatibility import check_fit, component_drifts, component_mismatches
from ltx2_diffusers.pipelines.folder_loading import folder_component_class
from ltx2_diffusers.pipelines.model_facts import PipelineFacts
from ltx2_diffusers.utils.tiny import tiny_components

MODELS = ("transformer", "vae", "audio_vae", "vocoder", "connectors", "latent_upsampler")


@pytest.fixture(scope="module")
def parts():
    return {version: {k: v for k, v in tiny_components(0, version).items() if k in MODELS}
            for version in ("2.0", "2.3")}


def test_the_folder_names_the_vocoder_class():
    for entry, expected in ((["ltx2", "LTX2VocoderWithBWE"], LTX2VocoderWithBWE),
                            (["ltx2", "LTX2Vocoder"], LTX2Vocoder),
                            (["ltx2_diffusers", "LTX2VocoderWithBWE"], LTX2VocoderWithBWE)):
        assert folder_component_class(LTX2AudioVideoPipeline, "vocoder", entry) is expected
    with pytest.raises(ValueError, match=r"is a x.OtherVocoder, which this package cannot load as its vocoder"):
        folder_component_class(LTX2AudioVideoPipeline, "vocoder", ["x", "OtherVocoder"])


def test_matching_components_fit_and_each_mismatch_is_named(parts):
    for version in ("2.0", "2.3"):
        assert component_mismatches(**parts[version]) == []
        check_fit([])
    new, old = parts["2.3"], parts["2.0"]
    with torch.device("meta"):
        other_upsampler = LTX2LatentUpsampler(in_channels=16, mid_channels=32, num_blocks_per_stage=1)
        slow_vocoder = LTX2Vocoder(hidden_channels=32, output_sampling_rate=22050)
    cases = {
        "text connectors give 32 / 32-wide video / audio contexts but the transformer takes 32 / 16": dict(
            new, connectors=old["connectors"]),
        "latent upsampler takes 16 channels": dict(new, latent_upsampler=other_upsampler),
    }
    for message, components in cases.items():
        problems = component_mismatches(**components)
        assert len(problems) == 1 and message in problems[0], (message, problems)
        with pytest.raises(ValueError, match="do not fit together"):
            check_fit(problems)
    # disagreements that run (as in diffusers, whose test fixtures have them) but place or time tokens unlike training
    drifts = {
        "(10.8844 ms) but the audio VAE's mel frames last 10 ms": dict(old, vocoder=slow_vocoder),
        "vae_scale_factors=(8, 16, 16)": dict(old, transformer=_with(old["transformer"],
                                                                     vae_scale_factors=(8, 16, 16))),
        "audio tokens with (sampling rate, hop, compression) (24000": dict(
            old, transformer=_with(old["transformer"], audio_sampling_rate=24000)),
    }
    for message, components in drifts.items():
        assert component_mismatches(**components) == []
        found = _drifts(components)
        assert len(found) == 1 and message in found[0], (message, found)
    assert all(_drifts(parts[version]) == [] for version in parts)


def _drifts(components):
    return component_drifts(**{k: v for k, v in components.items() if k not in ("connectors", "latent_upsampler")})


def _with(transformer, **changes):
    from ltx2_diffusers import LTX2AudioVideoTransformer

    with torch.device("meta"):
        return LTX2AudioVideoTransformer(**{**transformer.config, **changes})


def test_waveform_length_follows_the_vocoder(parts):
    lengths = {}
    for version, rate in (("2.0", 24000), ("2.3", 48000)):
        facts = PipelineFacts.from_components(**parts[version], scheduler=None, has_text_encoder=False,
                                              device=torch.device("meta"))
        assert facts.vocoder_rate == rate and facts.mismatches == ()
        lengths[version] = (facts.samples_per_mel_frame, facts.waveform_samples(126))
    assert lengths == {"2.0": (240, 120_240), "2.3": (480, 240_480)}  # 126 tokens -> 501 mel frames -> 5.01 s
