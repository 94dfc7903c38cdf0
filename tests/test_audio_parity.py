"""Audio parity: ltx-core 1.0.0 (ground truth) and diffusers 0.42.1 on identical random weights, fp32.

ltx-core's encoder returns *normalised* latent means and its decoder takes normalised latents; ours (like diffusers)
encodes to and decodes from un-normalised latents and standardises the packed tokens separately.
"""

import pytest
import torch

from ltx2_diffusers.conversion.audio import (
    audio_vae_config_from_original,
    convert_audio_vae_state_dict,
    convert_vocoder_state_dict,
    vocoder_config_from_original,
)
from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.models.audio_processing import unpack_audio_latents
from ltx2_diffusers.models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder

from .oracles_audio import (
    diffusers_audio_vae,
    diffusers_vocoder,
    ltxcore_audio_header,
    ltxcore_vocoder_header,
    original_audio_state_dict,
    tiny_ltxcore_audio,
    tiny_ltxcore_vocoder,
)

pytestmark = pytest.mark.parity
TOL = 1e-4

VARIANTS = {
    "ltx2-structure": {},  # real block structure (3 levels, 2 resnets, no attention), tiny widths
    "attention": {"mid_block_add_attention": True, "attn_resolutions": [128], "num_res_blocks": 1},
    "causal-mel": {"causality_axis": "width", "num_res_blocks": 1},  # time not causal; mel columns dropped
}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _ours_from_ltxcore(ddconfig: dict):
    encoder, decoder = tiny_ltxcore_audio(**ddconfig)
    vocoder = tiny_ltxcore_vocoder()
    original = original_audio_state_dict(encoder, decoder, vocoder)
    header = ltxcore_audio_header(ch=32, z_channels=2, **ddconfig)
    vae = LTX2AudioAutoencoder(**audio_vae_config_from_original(header, original)).eval()
    vae.load_state_dict(convert_audio_vae_state_dict(original, expected_shapes(vae)), strict=True)
    voc_header = ltxcore_vocoder_header(upsample_initial_channel=64)
    voc = LTX2Vocoder(**vocoder_config_from_original(voc_header, original)).eval()
    voc.load_state_dict(convert_vocoder_state_dict(original, expected_shapes(voc)), strict=True)
    return (encoder, decoder, vocoder), (vae, voc)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_ltxcore_parity_encoder_decoder_vocoder(name):
    (encoder, decoder, vocoder), (vae, voc) = _ours_from_ltxcore(VARIANTS[name])
    g = torch.Generator().manual_seed(7)
    mel = torch.randn(2, 2, 103, 64, generator=g)
    latents = torch.randn(2, 2, 30, 16, generator=g)  # normalised, as ltx-core's decoder takes them
    with torch.no_grad():
        reference = encoder(mel)  # normalised means [B, 2, 26, 16]
        mean = vae.encode(mel).latent_dist.mode()
        assert _max_diff(unpack_audio_latents(vae.normalize_latents(mean), 16), reference) <= TOL

        reference_mel = decoder(latents)  # [B, 2, 117, 64]
        ours_mel = vae.decode(vae.denormalize_latents(latents.transpose(1, 2).flatten(2))).sample
        assert reference_mel.shape == (2, 2, 4 * 30 - 3, 64)
        assert _max_diff(ours_mel, reference_mel) <= TOL

        assert _max_diff(voc(reference_mel), vocoder(reference_mel)) <= TOL


def test_ltxcore_parity_decode_audio_chain():
    import ltx_core.model.audio_vae as reference_audio

    (_, decoder, vocoder), (vae, voc) = _ours_from_ltxcore({})
    latents = torch.randn(1, 2, 26, 16, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        audio = reference_audio.decode_audio(latents, decoder, vocoder)  # Audio(waveform [2, N], rate)
        ours = voc(vae.decode(vae.denormalize_latents(latents.transpose(1, 2).flatten(2))).sample)
    assert audio.sampling_rate == voc.config.output_sampling_rate == 24000
    assert ours.shape == (1, 2, 101 * 240)
    assert _max_diff(ours[0], audio.waveform) <= TOL


@pytest.mark.parametrize("name", list(VARIANTS))
def test_diffusers_parity_audio_vae(name):
    reference = diffusers_audio_vae(**VARIANTS[name])
    ours = LTX2AudioAutoencoder(**reference.config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    g = torch.Generator().manual_seed(9)
    mel = torch.randn(2, 2, 97, 64, generator=g)
    z = torch.randn(2, 2, 21, 16, generator=g)
    with torch.no_grad():
        a, b = reference.encode(mel).latent_dist, ours.encode(mel).latent_dist
        assert _max_diff(b.mean, a.mean) <= TOL and _max_diff(b.logvar, a.logvar) <= TOL
        assert _max_diff(ours.decode(z).sample, reference.decode(z).sample) <= TOL
        assert _max_diff(ours(mel).sample, reference(mel).sample) <= TOL


def test_diffusers_parity_vocoder():
    reference = diffusers_vocoder()
    ours = LTX2Vocoder(**reference.config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    mel = torch.randn(2, 2, 37, 64, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert _max_diff(ours(mel), reference(mel)) <= TOL
        assert _max_diff(ours(mel.transpose(2, 3), time_last=True), reference(mel.transpose(2, 3), time_last=True)) \
            <= TOL
