"""Measuring time, memory and output differences, for the benchmarks and the command line (one implementation).

Time: wall seconds of a call, with queued CUDA work waited for. Memory: the peak above the start of a block, from
``torch.cuda.max_memory_allocated`` on CUDA, or from the kernel's peak resident set size (``VmHWM``, reset through
``/proc/self/clear_refs``) on a Linux CPU.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


def synchronize(device: torch.device | None) -> None:
    """Waits for queued CUDA work, so a timestamp taken next covers it."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device | None = None) -> tuple[Any, float]:  # noqa: ANN401
    """``(fn(), wall seconds)``, CUDA work included."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def max_abs(a: Any, b: Any) -> float:  # noqa: ANN401
    """Largest absolute difference of two tensors, or of two equally long sequences of tensors."""
    pairs = zip(a, b) if isinstance(a, (tuple, list)) else [(a, b)]
    return max((x.float() - y.float()).abs().max().item() for x, y in pairs)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Builds modules in ``dtype`` inside the block (as ``from_pretrained(torch_dtype=...)`` does)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def process_memory_bytes(field: str = "VmRSS") -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS`` now, ``VmHWM`` peak) in bytes; ``None`` off Linux."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def process_peak_bytes() -> int | None:
    """The process's peak resident set size over its lifetime (``None`` where the platform cannot tell)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.bytes``: the block's peak memory above its start (CUDA
    allocations, or the CPU's resident set; ``None`` where it cannot be measured)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes: int | None = None
        self._base: int | None = None

    def __enter__(self) -> PeakMemory:
        gc.collect()
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the peak resident set (VmHWM) to the current one
            self._base = process_memory_bytes("VmRSS")
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        if self.device.type == "cuda":
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            peak = process_memory_bytes("VmHWM")
            self.bytes = None if peak is None or self._base is None else peak - self._base

    @property
    def mib(self) -> float | None:
        return None if self.bytes is None else self.bytes / 2**20
