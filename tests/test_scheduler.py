"""The LTX-2 schedule and Euler scheduler."""

import math

import pytest
import torch

from ltx2_diffusers.schedulers.scheduling_ltx2 import (
    DISTILLED_SIGMAS,
    LTX2Scheduler,
    euler_step,
    ltx2_sigmas,
    shift_sigmas,
    stretch_to_terminal,
    token_shift,
    velocity_from_x0,
    x0_from_velocity,
)


def test_token_shift_is_the_unclamped_line_through_the_anchors():
    assert token_shift(1024) == pytest.approx(0.95)
    assert token_shift(4096) == pytest.approx(2.05)
    assert token_shift(6144) == pytest.approx(0.95 + 1.1 * 5120 / 3072)  # 2.783, beyond max_shift
    with pytest.raises(ValueError):
        token_shift(0)


@pytest.mark.parametrize("steps", [1, 2, 8, 40])
def test_schedule_endpoints_monotone_and_finite(steps):
    sigmas = ltx2_sigmas(steps)
    assert sigmas.shape == (steps + 1,) and sigmas.dtype == torch.float32
    assert torch.isfinite(sigmas).all()
    assert sigmas[0].item() == pytest.approx(1.0, abs=1e-6) and sigmas[-1] == 0.0  # float32, as the reference
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    if steps > 1:
        assert sigmas[-2].item() == pytest.approx(0.1)
    else:  # one step goes from pure noise to the end (no NaN, no jump to the terminal σ)
        assert sigmas[0].item() == pytest.approx(1.0, abs=1e-6)


def test_reference_40_step_values():
    sigmas = ltx2_sigmas(40)
    expected_head = [1.0, 0.9964, 0.9927, 0.9889, 0.9848]
    expected_tail = [0.5448, 0.4884, 0.4207, 0.3378, 0.2339, 0.1, 0.0]
    torch.testing.assert_close(sigmas[:5], torch.tensor(expected_head), atol=6e-5, rtol=0)
    torch.testing.assert_close(sigmas[-7:], torch.tensor(expected_tail), atol=6e-5, rtol=0)


def test_token_count_schedule_matches_the_documented_8_step_example():
    sigmas = ltx2_sigmas(8, token_shift(16 * 16 * 24))
    expected = [1.0, 0.9739, 0.9398, 0.8934, 0.8265, 0.7217, 0.5338, 0.1, 0.0]
    torch.testing.assert_close(sigmas, torch.tensor(expected), atol=6e-5, rtol=0)


def test_shift_formula_and_stretch_by_hand():
    s = 1.3
    shifted = shift_sigmas(torch.tensor([0.5, 0.0]), s)
    assert shifted[0].item() == pytest.approx(math.exp(s) / (math.exp(s) + 1.0))
    assert shifted[1] == 0
    stretched = stretch_to_terminal(torch.tensor([1.0, 0.8, 0.6, 0.0]), terminal=0.1)
    # 1 - σ = (0, 0.2, 0.4) scaled by 0.9 / 0.4
    torch.testing.assert_close(stretched, torch.tensor([1.0, 0.55, 0.1, 0.0]))


def test_velocity_x0_round_trip_and_euler_endpoint():
    x0, noise = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    sigma = 0.7
    x = (1 - sigma) * x0 + sigma * noise
    v = noise - x0
    torch.testing.assert_close(x0_from_velocity(x, v, sigma), x0)
    torch.testing.assert_close(velocity_from_x0(x, x0, sigma), v)
    torch.testing.assert_close(euler_step(x, v, sigma, 0.0), x0)  # exact flow reaches x0 in one step


def test_scheduler_uses_given_sigmas_exactly():
    scheduler = LTX2Scheduler()
    scheduler.set_timesteps(sigmas=DISTILLED_SIGMAS)
    torch.testing.assert_close(scheduler.sigmas, torch.tensor([*DISTILLED_SIGMAS, 0.0]))
    torch.testing.assert_close(scheduler.timesteps, torch.tensor(DISTILLED_SIGMAS) * 1000)


def test_scheduler_steps_along_the_schedule():
    scheduler = LTX2Scheduler(use_dynamic_shifting=True)
    scheduler.set_timesteps(num_inference_steps=4, num_tokens=2048)
    torch.testing.assert_close(scheduler.sigmas, ltx2_sigmas(4, token_shift(2048)))
    x0, noise = torch.randn(3, 4), torch.randn(3, 4)
    x = noise.clone()
    for i, t in enumerate(scheduler.timesteps):
        assert scheduler.step_index == i
        x = scheduler.step(noise - x0, t, x).prev_sample
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="set_timesteps again"):
        scheduler.step(noise - x0, 0, x)


@pytest.mark.parametrize("sigmas", [[], [0.5, 0.0], [0.5, 0.7], [1.5]])
def test_scheduler_rejects_bad_sigmas(sigmas):
    with pytest.raises(ValueError):
        LTX2Scheduler().set_timesteps(sigmas=sigmas)


def test_dynamic_shift_needs_token_count():
    with pytest.raises(ValueError, match="num_tokens"):
        LTX2Scheduler(use_dynamic_shifting=True).set_timesteps(8)


@pytest.mark.parity
def test_schedule_parity_with_ltx_core():
    pytest.importorskip("ltx_core")
    import ltx_core.loader  # noqa: F401
    from ltx_core.components.schedulers import LTX2Scheduler as ReferenceScheduler

    reference = ReferenceScheduler()
    for steps in (2, 8, 40):
        torch.testing.assert_close(ltx2_sigmas(steps), reference.execute(steps), rtol=0, atol=1e-7)
    latent = torch.zeros(1, 128, 3, 16, 24)
    torch.testing.assert_close(ltx2_sigmas(15, token_shift(3 * 16 * 24)), reference.execute(15, latent=latent),
                               rtol=0, atol=1e-7)


def test_static_shift_in_diffusers_form_matches_the_exponent_form():
    diffusers = pytest.importorskip("diffusers")
    ours = LTX2Scheduler(shift=3.0, shift_terminal=None)
    ours.set_timesteps(6)
    torch.testing.assert_close(ours.sigmas, ltx2_sigmas(6, math.log(3.0), terminal=None))
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    theirs.set_timesteps(sigmas=[1.0, 0.8, 0.5, 0.2])
    torch.testing.assert_close(shift_sigmas(torch.tensor([1.0, 0.8, 0.5, 0.2]), math.log(3.0)), theirs.sigmas[:-1],
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        LTX2Scheduler(shift=0.0)


def test_fixed_sigma_list_in_the_config_wins_over_step_counts():
    scheduler = LTX2Scheduler(sigmas=list(DISTILLED_SIGMAS))
    scheduler.set_timesteps(num_inference_steps=40)
    torch.testing.assert_close(scheduler.sigmas, torch.tensor([*DISTILLED_SIGMAS, 0.0]))
    scheduler.set_timesteps(sigmas=[0.5, 0.25])  # an explicit list still wins
    torch.testing.assert_close(scheduler.sigmas, torch.tensor([0.5, 0.25, 0.0]))
    with pytest.raises(ValueError):
        LTX2Scheduler(sigmas=[0.5, 0.9])
