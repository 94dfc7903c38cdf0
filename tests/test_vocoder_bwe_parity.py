"""LTX-2.3 vocoder parity: ltx-core 1.0.0 ``VocoderWithBWE`` (ground truth, converted from its original layout) and
diffusers 0.42.1 ``LTX2VocoderWithBWE`` on identical random weights, fp32. Max-abs errors are printed (``-s``)."""

import pytest
import torch

from ltx2_diffusers.conversion.audio import convert_vocoder_state_dict, vocoder_config_from_original
from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.models.vocoder_bwe_ltx2 import LTX2VocoderWithBWE

from .oracles_voc23 import TINY_BWE_HEADER, bwe_input, diffusers_bwe, tiny_ltxcore_bwe

pytestmark = pytest.mark.parity
TOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread():
    """Long sequences through narrow convolutions: on a shared 2-core machine one thread is many times faster."""
    torch.set_num_threads(1)


def _max_diff(name: str, ours: torch.Tensor, reference: torch.Tensor) -> float:
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    assert ours.abs().max() > 0.05  # a real waveform, not silence
    diff = (ours - reference).abs().max().item()
    print(f"{name}: max-abs error {diff:.2e}")
    return diff


def test_ltxcore_parity():
    reference = tiny_ltxcore_bwe()
    original = {"vocoder." + k: v for k, v in reference.state_dict().items()}  # the single file's layout
    ours = LTX2VocoderWithBWE(**vocoder_config_from_original(TINY_BWE_HEADER, original)).eval()
    ours.load_state_dict(convert_vocoder_state_dict(original, expected_shapes(ours)), strict=True)
    assert ours.config.final_act_fn == "clamp"  # the reference clamps the 16 kHz stage
    mel = bwe_input(21, batch=2)
    with torch.no_grad():
        expected = reference(mel)
        assert expected.shape == (2, 2, 21 * 480)
        assert _max_diff("ltx-core VocoderWithBWE", ours(mel), expected) <= TOL


@pytest.mark.parametrize("final_act_fn", [None, "clamp"], ids=["diffusers-converter", "clamp-as-reference"])
def test_diffusers_parity(final_act_fn):
    reference = diffusers_bwe(final_act_fn=final_act_fn)
    ours = LTX2VocoderWithBWE(**reference.config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    mel = bwe_input(21, batch=2, seed=12)
    with torch.no_grad():
        expected = reference(mel)
        assert _max_diff(f"diffusers LTX2VocoderWithBWE (final_act_fn={final_act_fn})", ours(mel), expected) <= TOL
