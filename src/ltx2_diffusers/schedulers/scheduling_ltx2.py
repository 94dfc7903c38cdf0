"""Rectified-flow sampling for LTX-2: the noise schedule as pure functions and a diffusers Euler scheduler.

Rectified flow interpolates ``x_σ = (1 - σ) x0 + σ ε``; the transformer predicts the velocity ``v = ε - x0``, so
``x0 = x_σ - σ v`` and an Euler step from σ to σ' is ``x' = x + (σ' - σ) v``.

LTX-2's schedule starts from ``t_i = 1 - i/N``, shifts it with ``σ = e^s / (e^s + 1/t - 1)`` where the shift ``s``
grows linearly with the number of video tokens (0.95 at 1024 tokens, 2.05 at 4096, unclamped; the reference
pipelines use the fixed 2.05), stretches it so the last non-zero σ is 0.1, and ends at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput, logging

logger = logging.get_logger(__name__)

BASE_SHIFT_TOKENS = 1024
MAX_SHIFT_TOKENS = 4096

# The distilled model's 8-step schedule and the 3-step schedule of the second (refinement) stage, without the final 0.
DISTILLED_SIGMAS = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875)
STAGE_2_DISTILLED_SIGMAS = (0.909375, 0.725, 0.421875)

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def token_shift(
    num_tokens: int,
    base_shift: float = 0.95,
    max_shift: float = 2.05,
    base_tokens: int = BASE_SHIFT_TOKENS,
    max_tokens: int = MAX_SHIFT_TOKENS,
) -> float:
    """Schedule shift for ``num_tokens`` video tokens: the line through (1024, 0.95) and (4096, 2.05), unclamped."""
    if num_tokens <= 0:
        raise ValueError(f"num_tokens must be positive, got {num_tokens}.")
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return base_shift + slope * (num_tokens - base_tokens)


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """``σ -> e^s / (e^s + 1/σ - 1)``; σ = 0 stays 0."""
    scale = math.exp(shift)
    shifted = scale / (scale + (1 / sigmas - 1))
    return torch.where(sigmas != 0, shifted, torch.zeros_like(sigmas))


def stretch_to_terminal(sigmas: torch.Tensor, terminal: float = 0.1) -> torch.Tensor:
    """Affinely maps ``1 - σ`` of the non-zero σ so the last non-zero σ equals ``terminal``; zeros stay.

    A schedule with a single non-zero σ (one step) has nothing to stretch and is returned unchanged: the formula
    would divide 0 by 0 (NaN) or, with σ a rounding below 1, move the only step to ``terminal``.
    """
    if not 0 <= terminal < 1:
        raise ValueError(f"terminal must lie in [0, 1), got {terminal}.")
    nonzero = sigmas != 0
    one_minus = 1.0 - sigmas[nonzero]
    if one_minus.numel() < 2 or one_minus[-1] == 0:
        return sigmas
    stretched = sigmas.clone()
    stretched[nonzero] = 1.0 - one_minus / (one_minus[-1] / (1.0 - terminal))
    return stretched


def ltx2_sigmas(
    num_steps: int, shift: float = 2.05, terminal: float | None = 0.1
) -> torch.Tensor:
    """The LTX-2 schedule: ``num_steps + 1`` float32 values from 1 to 0 (last non-zero = ``terminal``).

    ``terminal=None`` skips the stretch. The reference's 40-step schedule is ``ltx2_sigmas(40)``.
    """
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
    sigmas = shift_sigmas(torch.linspace(1.0, 0.0, num_steps + 1), shift)
    if terminal is not None:
        sigmas = stretch_to_terminal(sigmas, terminal)
    return sigmas.to(torch.float32)


def x0_from_velocity(sample: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x0 = x - σ v`` (σ a number, per sample or per token; float32 math, returned in the sample's dtype)."""
    return (sample.float() - _as_float(sigma, sample) * velocity.float()).to(sample.dtype)


def velocity_from_x0(sample: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``v = (x - x0) / σ`` (σ > 0)."""
    return ((sample.float() - x0.float()) / _as_float(sigma, sample)).to(sample.dtype)


def euler_step(
    sample: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float
) -> torch.Tensor:
    """``x' = x + (σ' - σ) v`` in float32, returned in the sample's dtype."""
    dt = _as_float(sigma_next, sample) - _as_float(sigma, sample)
    return (sample.float() + dt * velocity.float()).to(sample.dtype)


def euler_step_from_x0(
    sample: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float
) -> torch.Tensor:
    """The Euler step towards a predicted ``x0``: ``x + (σ' - σ)(x - x0)/σ``."""
    return euler_step(sample, velocity_from_x0(sample, x0, sigma), sigma, sigma_next)


def _check_given_sigmas(given: torch.Tensor) -> torch.Tensor:
    if given.numel() == 0 or bool((given <= 0).any()) or bool((given > 1).any()):
        raise ValueError(f"sigmas must be values in (0, 1] without the final 0, got {given.tolist()}.")
    if bool((given[1:] > given[:-1]).any()):
        raise ValueError(f"sigmas must be non-increasing, got {given.tolist()}.")
    return given


def _as_float(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """σ as float32 on ``like``'s device; a per-token ``[B, T]`` σ gains a trailing axis to broadcast over channels."""
    value = torch.as_tensor(value, dtype=torch.float32, device=like.device)
    return value.unsqueeze(-1) if 0 < value.ndim == like.ndim - 1 else value


# ----------------------------------------------------------------------------------------------------------------
# Scheduler
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LTX2SchedulerOutput(BaseOutput):
    """``prev_sample``: the sample at the next σ."""

    prev_sample: torch.Tensor


class LTX2Scheduler(SchedulerMixin, ConfigMixin):
    r"""Rectified-flow Euler scheduler with the LTX-2 schedule.

    Args:
        num_train_timesteps: ``timesteps = σ · num_train_timesteps`` (display and callbacks; the transformer
            takes σ).
        base_shift / max_shift: shift at ``base_image_seq_len`` and ``max_image_seq_len`` video tokens.
        use_dynamic_shifting: derive the shift from the video token count passed to :meth:`set_timesteps`; when
            ``False`` (the reference pipelines' behaviour) the shift is ``max_shift``, or ``log(shift)``.
        shift_terminal: the last non-zero σ after stretching (``None``: no stretch).
        shift: a static shift in diffusers' multiplicative form ``σ' = shift·σ / (1 + (shift - 1)·σ)`` (that is
            ``e^s = shift``), as ``FlowMatchEulerDiscreteScheduler`` configs store it; ``None`` uses ``max_shift``.
        sigmas: a fixed σ list (without the final 0) used whenever a call gives no ``sigmas``, whatever its step
            count: how a distilled checkpoint's folder stores its 8-step schedule (:data:`DISTILLED_SIGMAS`).
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        base_shift: float = 0.95,
        max_shift: float = 2.05,
        base_image_seq_len: int = BASE_SHIFT_TOKENS,
        max_image_seq_len: int = MAX_SHIFT_TOKENS,
        use_dynamic_shifting: bool = False,
        shift_terminal: float | None = 0.1,
        shift: float | None = None,
        sigmas: Sequence[float] | None = None,
    ) -> None:
        if shift is not None and not shift > 0:
            raise ValueError(f"shift must be positive (multiplicative form), got {shift}.")
        if sigmas is not None:
            _check_given_sigmas(torch.as_tensor(sigmas, dtype=torch.float32).flatten())
        self.sigmas = torch.tensor([1.0, 0.0])
        self.timesteps = self.sigmas[:-1] * num_train_timesteps
        self._step_index = 0

    @property
    def step_index(self) -> int:
        return self._step_index

    def schedule(
        self,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | torch.Tensor | None = None,
        num_tokens: int | None = None,
    ) -> torch.Tensor:
        """The σ list a call would use, ending with 0 (float32, CPU); the scheduler's state is not touched.

        Args:
            num_inference_steps: number of steps of the LTX-2 schedule.
            sigmas: the steps' σ values without the terminal 0, used exactly as given (never shifted or stretched),
                e.g. :data:`DISTILLED_SIGMAS`. Must be positive and non-increasing.
            num_tokens: video token count, for the dynamic shift.
        """
        c = self.config
        if sigmas is None and c.sigmas is not None:
            if num_inference_steps not in (None, len(c.sigmas)):
                logger.info("This scheduler has a fixed %d-step σ list (a distilled model): num_inference_steps=%s "
                            "is ignored.", len(c.sigmas), num_inference_steps)
            sigmas = c.sigmas
        if sigmas is not None:
            given = _check_given_sigmas(torch.as_tensor(sigmas, dtype=torch.float32).flatten().cpu())
            return torch.cat([given, given.new_zeros(1)])
        if num_inference_steps is None:
            raise ValueError("Pass num_inference_steps or sigmas.")
        if c.use_dynamic_shifting:
            if num_tokens is None:
                raise ValueError("use_dynamic_shifting needs num_tokens (the number of video tokens).")
            shift = token_shift(num_tokens, c.base_shift, c.max_shift, c.base_image_seq_len, c.max_image_seq_len)
        else:
            shift = c.max_shift if c.shift is None else math.log(c.shift)
        return ltx2_sigmas(num_inference_steps, shift, c.shift_terminal)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: torch.device | str | None = None,
        sigmas: Sequence[float] | torch.Tensor | None = None,
        num_tokens: int | None = None,
    ) -> None:
        """Prepares the σ schedule of :meth:`schedule` for :meth:`step`."""
        self.sigmas = self.schedule(num_inference_steps, sigmas, num_tokens).to(device)
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps
        self.num_inference_steps = len(self.timesteps)
        self._step_index = 0

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor | float | None,
        sample: torch.Tensor,
        return_dict: bool = True,
    ) -> LTX2SchedulerOutput | tuple[torch.Tensor]:
        """One Euler step with the velocity ``model_output``; ``timestep`` is accepted for API symmetry."""
        if self._step_index >= len(self.timesteps):
            raise ValueError(f"All {len(self.timesteps)} steps were taken; call set_timesteps again.")
        sigma, sigma_next = self.sigmas[self._step_index], self.sigmas[self._step_index + 1]
        prev = euler_step(sample, model_output, sigma, sigma_next)
        self._step_index += 1
        return LTX2SchedulerOutput(prev_sample=prev) if return_dict else (prev,)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
