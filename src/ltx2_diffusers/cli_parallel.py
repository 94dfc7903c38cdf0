"""``ltx2-diffusers generate --context-parallel ulysses|ring`` under ``torchrun``: the process group, the device of
each rank, and who speaks.

Every rank runs the same call with the same seed and holds a slice of the video tokens in the transformer; the
first rank decodes, writes the files and prints; the others skip the decode and stay quiet::

    torchrun --nproc_per_node 2 --no-python ltx2-diffusers generate --context-parallel ulysses --model ... --prompt ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

MODES = ("ulysses", "ring")


@dataclass(frozen=True)
class ParallelRun:
    """The context-parallel group of this command: ``mode`` over ``world`` ranks, this one ``rank``."""

    mode: str
    rank: int
    world: int
    owns_group: bool  # this command started the process group and ends it

    @property
    def leads(self) -> bool:
        """The rank that decodes, writes and prints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """Each rank's own accelerator (``LOCAL_RANK``) when the device names none."""
        if device.type != "cpu" and device.index is None:
            device = torch.device(device.type, int(os.environ.get("LOCAL_RANK", self.rank)))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def enable(self, transformer: torch.nn.Module) -> None:
        from diffusers import ContextParallelConfig

        transformer.enable_parallelism(config=ContextParallelConfig(**{f"{self.mode}_degree": self.world}))

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def start_parallel_run(mode: str, device: torch.device) -> ParallelRun:
    """Joins (or starts, from ``torchrun``'s environment) the process group: NCCL on CUDA, gloo otherwise.
    ``ValueError`` when there is no group of at least 2 ranks to join."""
    if mode not in MODES:
        raise ValueError(f"--context-parallel must be one of {MODES}, got {mode!r}.")
    owns = False
    if not dist.is_initialized():
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world < 2 or "RANK" not in os.environ:
            raise ValueError(f"--context-parallel {mode} splits the video over several processes: launch with "
                             f"torchrun --nproc_per_node N --no-python ltx2-diffusers generate ... (N >= 2), or drop "
                             f"the flag.")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) if device.index is None else device.index)
        dist.init_process_group(backend)
        owns = True
    run = ParallelRun(mode, dist.get_rank(), dist.get_world_size(), owns)
    if run.world < 2:
        run.close()
        raise ValueError(f"--context-parallel {mode} needs at least 2 ranks; this group has {run.world}.")
    return run
