from .scheduling_ltx2 import (
    DISTILLED_SIGMAS,
    STAGE_2_DISTILLED_SIGMAS,
    LTX2Scheduler,
    LTX2SchedulerOutput,
    euler_step,
    ltx2_sigmas,
    token_shift,
    velocity_from_x0,
    x0_from_velocity,
)

__all__ = [
    "DISTILLED_SIGMAS",
    "LTX2Scheduler",
    "LTX2SchedulerOutput",
    "STAGE_2_DISTILLED_SIGMAS",
    "euler_step",
    "ltx2_sigmas",
    "token_shift",
    "velocity_from_x0",
    "x0_from_velocity",
]
