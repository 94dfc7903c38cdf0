from .flow_match_config import as_ltx2_scheduler, flow_match_config, scheduler_from_config
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
    "as_ltx2_scheduler",
    "euler_step",
    "flow_match_config",
    "ltx2_sigmas",
    "scheduler_from_config",
    "token_shift",
    "velocity_from_x0",
    "x0_from_velocity",
]
