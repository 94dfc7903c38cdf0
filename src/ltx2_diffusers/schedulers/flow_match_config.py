"""``LTX2Scheduler`` <-> diffusers' ``FlowMatchEulerDiscreteScheduler``: one scheduler config both libraries read.

diffusers' ``LTX2Pipeline`` samples with ``FlowMatchEulerDiscreteScheduler``; a pipeline folder written by this package
names that class, with settings under which diffusers and :class:`LTX2Scheduler` compute the same σ list:

* a static shift (``use_dynamic_shifting=False``) is stored in diffusers' multiplicative form
  ``shift = e^s`` (``σ' = shift·σ / (1 + (shift - 1)·σ)``), which is the reference's ``e^s / (e^s + 1/σ - 1)``;
* ``shift_terminal`` is the same stretch in both libraries;
* a fixed σ list (a distilled model) is kept under the extra key ``sigmas``, which diffusers ignores; such a folder is
  written with diffusers' own distilled settings (no shift, no stretch), so that diffusers uses the list verbatim
  when it is passed to its call.

Reading goes the other way: a flow-match config (or scheduler) becomes the :class:`LTX2Scheduler` with the same
schedule; settings that have no LTX-2 equivalent (Karras / exponential / beta σ, inverted σ, stochastic sampling,
the linear dynamic shift) are refused by name rather than silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from diffusers.utils import logging

from .scheduling_ltx2 import LTX2Scheduler

logger = logging.get_logger(__name__)

FLOW_MATCH_CLASS = "FlowMatchEulerDiscreteScheduler"

# flow-match settings that change the σ list in ways LTX2Scheduler does not implement: key -> the value it must have
_UNSUPPORTED = {"use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
                "invert_sigmas": False, "stochastic_sampling": False}


def flow_match_config(scheduler: LTX2Scheduler) -> dict[str, Any]:
    """The ``scheduler_config.json`` content (diffusers' flow-match class and keys) that gives ``scheduler``'s schedule
    in diffusers' ``LTX2Pipeline`` and in :class:`LTX2Scheduler`."""
    import diffusers

    c = scheduler.config
    fixed = c.sigmas is not None
    if fixed:  # diffusers' distilled folders: the σ list passed to the call is used as it is
        shift, terminal = 1.0, None
    elif c.use_dynamic_shifting:  # both libraries ignore the static shift then
        shift, terminal = 1.0, c.shift_terminal
    else:
        shift, terminal = (math.exp(c.max_shift) if c.shift is None else float(c.shift)), c.shift_terminal
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=c.num_train_timesteps, shift=shift, use_dynamic_shifting=c.use_dynamic_shifting,
        base_shift=c.base_shift, max_shift=c.max_shift, base_image_seq_len=c.base_image_seq_len,
        max_image_seq_len=c.max_image_seq_len, shift_terminal=terminal)
    config = {"_class_name": FLOW_MATCH_CLASS, "_diffusers_version": diffusers.__version__}
    config.update({k: v for k, v in theirs.config.items() if not k.startswith("_")})
    if fixed:
        config["sigmas"] = [float(s) for s in c.sigmas]
    return config


def _resolved_flow_match(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every key as diffusers reads it (absent keys take diffusers' defaults, not ours)."""
    import diffusers

    try:
        return diffusers.FlowMatchEulerDiscreteScheduler.from_config(
            {k: v for k, v in config.items() if k != "sigmas"}).config
    except (TypeError, ValueError, ImportError) as error:
        raise ValueError(f"not a valid {FLOW_MATCH_CLASS} config ({error}).") from error


def ltx2_scheduler_from_flow_match(config: Mapping[str, Any]) -> LTX2Scheduler:
    """The :class:`LTX2Scheduler` computing the σ list that ``FlowMatchEulerDiscreteScheduler`` computes with
    ``config`` in diffusers' ``LTX2Pipeline`` (an extra ``sigmas`` key is our fixed list); unsupported settings raise
    a ``ValueError`` naming them."""
    c = _resolved_flow_match(config)
    wrong = [f"{key}={c[key]!r}" for key, wanted in _UNSUPPORTED.items() if c.get(key, wanted) != wanted]
    if c.use_dynamic_shifting and c.time_shift_type != "exponential":
        wrong.append(f"time_shift_type={c.time_shift_type!r}")
    if wrong:
        raise ValueError(f"{FLOW_MATCH_CLASS} with {', '.join(wrong)} has no LTX-2 equivalent; LTX-2 samples with the "
                         f"plain Euler flow-match schedule (set {', '.join(w.split('=')[0] for w in wrong)} back to "
                         f"the defaults, or pass an LTX2Scheduler).")
    if c.use_dynamic_shifting and (c.base_shift is None or c.max_shift is None):
        raise ValueError(f"{FLOW_MATCH_CLASS}: use_dynamic_shifting needs base_shift and max_shift, got "
                         f"{c.base_shift!r} and {c.max_shift!r}.")
    kwargs = dict(num_train_timesteps=c.num_train_timesteps, use_dynamic_shifting=c.use_dynamic_shifting,
                  base_image_seq_len=c.base_image_seq_len, max_image_seq_len=c.max_image_seq_len,
                  shift=float(c.shift), shift_terminal=c.shift_terminal or None,  # diffusers: 0 means no stretch
                  sigmas=config.get("sigmas"))
    if c.base_shift is not None and c.max_shift is not None:
        kwargs.update(base_shift=c.base_shift, max_shift=c.max_shift)
    return LTX2Scheduler(**kwargs)


def as_ltx2_scheduler(scheduler: Any, where: str = "scheduler") -> LTX2Scheduler:  # noqa: ANN401
    """``scheduler`` itself if it is an :class:`LTX2Scheduler`; diffusers' ``FlowMatchEulerDiscreteScheduler`` mapped
    onto one with the same schedule (logged); anything else is a ``ValueError`` saying what to pass."""
    if isinstance(scheduler, LTX2Scheduler):
        return scheduler
    if type(scheduler).__name__ == FLOW_MATCH_CLASS and hasattr(scheduler, "config"):
        mapped = ltx2_scheduler_from_flow_match(dict(scheduler.config))
        logger.info("%s: mapped diffusers' %s onto LTX2Scheduler with the same schedule (%s).", where,
                    FLOW_MATCH_CLASS, _describe(mapped))
        return mapped
    raise ValueError(f"`{where}` must be an LTX2Scheduler or diffusers' {FLOW_MATCH_CLASS} (mapped onto it), got "
                     f"{type(scheduler).__name__}; LTX-2 samples with the rectified-flow Euler schedule.")


def scheduler_from_config(config: Mapping[str, Any], class_name: str | None = None) -> LTX2Scheduler:
    """An :class:`LTX2Scheduler` from a ``scheduler_config.json`` written by this package (``LTX2Scheduler``) or by
    diffusers (``FlowMatchEulerDiscreteScheduler``); ``class_name`` defaults to the config's ``_class_name``."""
    class_name = class_name or config.get("_class_name")
    if class_name == "LTX2Scheduler":
        return LTX2Scheduler.from_config(config)
    if class_name == FLOW_MATCH_CLASS:
        return ltx2_scheduler_from_flow_match(config)
    raise ValueError(f"scheduler class {class_name!r} has no LTX-2 equivalent; a pipeline folder's scheduler must be "
                     f"LTX2Scheduler or {FLOW_MATCH_CLASS}.")


def _describe(scheduler: LTX2Scheduler) -> str:
    c = scheduler.config
    if c.sigmas is not None:
        return f"fixed σ list of {len(c.sigmas)}"
    shift = "dynamic shift" if c.use_dynamic_shifting else f"shift e^{math.log(c.shift):.4g}" if c.shift else (
        f"shift e^{c.max_shift:.4g}")
    return f"{shift}, terminal {c.shift_terminal}"


__all__ = ["FLOW_MATCH_CLASS", "as_ltx2_scheduler", "flow_match_config", "ltx2_scheduler_from_flow_match",
           "scheduler_from_config"]
