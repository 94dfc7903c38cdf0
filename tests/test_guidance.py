"""Modality-aware guidance: the formula by hand, neutrality, and the reference guider."""

import pytest
import torch

from ltx2_diffusers.pipelines.guidance import GuidanceParams, guide, passes_needed, validate_stg_blocks


def _preds(batch=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, 6, 4, generator=g) for _ in range(4)]


def test_neutral_scales_return_cond_exactly():
    cond, uncond, perturbed, isolated = _preds()
    assert torch.equal(guide(GuidanceParams(), cond), cond)
    assert torch.equal(guide(GuidanceParams(), cond, uncond, perturbed, isolated), cond)


def test_formula_by_hand():
    cond, uncond, perturbed, isolated = _preds()
    params = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0)
    expected = cond + 2 * (cond - uncond) + 1 * (cond - perturbed) + 2 * (cond - isolated)
    torch.testing.assert_close(guide(params, cond, uncond, perturbed, isolated), expected)


def test_rescale_pulls_std_towards_cond_per_sample():
    cond, uncond, _, _ = _preds()
    cond[1] *= 10  # samples with very different scales stay independent
    full = guide(GuidanceParams(guidance_scale=7.0, guidance_rescale=1.0), cond, uncond)
    for b in range(2):
        assert full[b].std().item() == pytest.approx(cond[b].std().item(), rel=1e-5)
    half = guide(GuidanceParams(guidance_scale=7.0, guidance_rescale=0.5), cond[:1], uncond[:1])
    raw = guide(GuidanceParams(guidance_scale=7.0), cond[:1], uncond[:1])
    torch.testing.assert_close(half, raw * (0.5 * cond[:1].std() / raw.std() + 0.5))


def test_missing_prediction_for_active_scale_is_an_error():
    cond, *_ = _preds()
    with pytest.raises(ValueError, match="uncond"):
        guide(GuidanceParams(guidance_scale=2.0), cond)
    with pytest.raises(ValueError, match="perturbed"):
        guide(GuidanceParams(stg_scale=1.0), cond)


@pytest.mark.parametrize("kwargs", [dict(guidance_scale=-1.0), dict(stg_scale=-0.5), dict(guidance_rescale=1.5),
                                    dict(modality_scale=float("nan")), dict(guidance_scale="3")])
def test_bad_scales_are_rejected(kwargs):
    with pytest.raises(ValueError):
        GuidanceParams(**kwargs)


def test_passes_are_only_the_needed_ones():
    off = GuidanceParams()
    assert passes_needed(off, off) == ("cond",)
    assert passes_needed(GuidanceParams(guidance_scale=1.0), GuidanceParams(guidance_scale=7.0)) == ("cond", "uncond")
    assert passes_needed(GuidanceParams(3.0, 1.0, 3.0, 0.7), off) == ("cond", "uncond", "perturbed", "isolated")


def test_stg_blocks_validation():
    assert validate_stg_blocks([29, 3, 29], 48) == [3, 29]
    with pytest.raises(ValueError, match=r"\[0, 48\)"):
        validate_stg_blocks([48], 48)


@pytest.mark.parity
def test_matches_reference_guider_at_batch_one():
    pytest.importorskip("ltx_core")
    import ltx_core.loader  # noqa: F401
    from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams

    cond, uncond, perturbed, isolated = (p[:1] for p in _preds())
    reference = MultiModalGuider(MultiModalGuiderParams(cfg_scale=3.0, stg_scale=1.0, stg_blocks=[29],
                                                        rescale_scale=0.7, modality_scale=3.0, skip_step=0))
    ours = guide(GuidanceParams(3.0, 1.0, 3.0, 0.7), cond, uncond, perturbed, isolated)
    torch.testing.assert_close(ours, reference.calculate(cond, uncond, perturbed, isolated), rtol=0, atol=1e-6)
