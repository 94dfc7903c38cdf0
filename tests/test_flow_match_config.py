"""The scheduler config both libraries read: what we write gives diffusers' ``FlowMatchEulerDiscreteScheduler`` (as
``LTX2Pipeline`` drives it) and our ``LTX2Scheduler`` the same σ list; flow-match configs and objects map back onto
``LTX2Scheduler`` with the same schedule, and settings without an LTX-2 equivalent are refused by name."""

import math

import diffusers
import numpy as np
import pytest
import torch

from ltx2_diffusers import LTX2Scheduler
from ltx2_diffusers.schedulers import (
    DISTILLED_SIGMAS,
    as_ltx2_scheduler,
    flow_match_config,
    ltx2_sigmas,
    scheduler_from_config,
    token_shift,
)
from ltx2_diffusers.schedulers.flow_match_config import ltx2_scheduler_from_flow_match

STEPS, TOKENS = 7, 3 * 16 * 24


def _diffusers_schedule(config, steps=STEPS, tokens=TOKENS, sigmas=None):
    """The σ list diffusers' LTX2Pipeline gets from its scheduler: it passes linspace(1, 1/N, N) (or the call's
    sigmas) and, for the dynamic shift, mu from the video token count."""
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(config)
    c = scheduler.config
    mu = token_shift(tokens, c.base_shift, c.max_shift, c.base_image_seq_len, c.max_image_seq_len)
    given = np.linspace(1.0, 1.0 / steps, steps) if sigmas is None else np.array(sigmas)
    scheduler.set_timesteps(sigmas=given, mu=mu)
    return scheduler.sigmas


@pytest.mark.parametrize("ours", [
    LTX2Scheduler(),  # the reference: static shift 2.05, terminal 0.1
    LTX2Scheduler(shift=3.0, shift_terminal=None),
    LTX2Scheduler(use_dynamic_shifting=True),
    LTX2Scheduler(max_shift=1.5, shift_terminal=0.2),
], ids=["reference", "static-3-no-stretch", "dynamic", "other-shift"])
def test_written_config_gives_the_same_schedule_in_both_libraries(ours):
    config = flow_match_config(ours)
    assert config["_class_name"] == "FlowMatchEulerDiscreteScheduler" and config["shift"] is not None
    expected = ours.schedule(STEPS, num_tokens=TOKENS)
    torch.testing.assert_close(_diffusers_schedule(config), expected, rtol=0, atol=1e-6)
    back = scheduler_from_config(config)
    torch.testing.assert_close(back.schedule(STEPS, num_tokens=TOKENS), expected, rtol=0, atol=1e-7)


def test_reference_folder_config_holds_the_static_shift_in_diffusers_form():
    config = flow_match_config(LTX2Scheduler())
    assert config["use_dynamic_shifting"] is False and config["shift_terminal"] == 0.1
    assert math.isclose(config["shift"], math.exp(2.05)) and "sigmas" not in config
    torch.testing.assert_close(scheduler_from_config(config).schedule(40), ltx2_sigmas(40), rtol=0, atol=0)


def test_distilled_list_is_kept_in_our_key_and_used_verbatim_by_both():
    ours = LTX2Scheduler(sigmas=list(DISTILLED_SIGMAS))
    config = flow_match_config(ours)
    assert config["sigmas"] == list(DISTILLED_SIGMAS)
    assert config["shift"] == 1.0 and config["shift_terminal"] is None  # diffusers' own distilled settings
    expected = torch.tensor([*DISTILLED_SIGMAS, 0.0])
    torch.testing.assert_close(_diffusers_schedule(config, sigmas=list(DISTILLED_SIGMAS)), expected, rtol=0,
                               atol=1e-7)
    back = scheduler_from_config(config)
    torch.testing.assert_close(back.schedule(40), expected, rtol=0, atol=0)  # the fixed list wins, as before


def test_absent_flow_match_keys_mean_what_they_mean_in_diffusers():
    """diffusers' defaults (shift 1, no stretch), not ours (shift e^2.05, terminal 0.1)."""
    ours = scheduler_from_config({"_class_name": "FlowMatchEulerDiscreteScheduler"})
    torch.testing.assert_close(ours.schedule(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]), rtol=0, atol=1e-7)
    zero_terminal = scheduler_from_config({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift_terminal": 0.0})
    assert zero_terminal.config.shift_terminal is None  # diffusers stretches only for a truthy terminal


@pytest.mark.parametrize("setting", [dict(use_karras_sigmas=True), dict(invert_sigmas=True),
                                     dict(stochastic_sampling=True),
                                     dict(use_dynamic_shifting=True, time_shift_type="linear")])
def test_flow_match_settings_without_an_ltx2_equivalent_are_refused(setting):
    with pytest.raises(ValueError, match=f"{next(iter(setting))}|time_shift_type"):
        ltx2_scheduler_from_flow_match(setting)


def test_objects_map_onto_ltx2_scheduler_and_other_schedulers_are_refused():
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(shift=math.exp(2.05), shift_terminal=0.1)
    mapped = as_ltx2_scheduler(theirs)
    assert isinstance(mapped, LTX2Scheduler)
    torch.testing.assert_close(mapped.schedule(40), ltx2_sigmas(40), rtol=0, atol=1e-7)
    ours = LTX2Scheduler()
    assert as_ltx2_scheduler(ours) is ours
    with pytest.raises(ValueError, match="must be an LTX2Scheduler or diffusers' FlowMatchEulerDiscreteScheduler"):
        as_ltx2_scheduler(diffusers.DDIMScheduler())
    with pytest.raises(ValueError, match="scheduler class 'DDIMScheduler' has no LTX-2 equivalent"):
        scheduler_from_config({"_class_name": "DDIMScheduler"})
