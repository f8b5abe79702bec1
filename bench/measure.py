"""What every benchmark prints: the machine, wall times and peak memory.

Peak RSS is the kernel's high-water mark (VmHWM) of this process, reset between steps by writing 5
to /proc/self/clear_refs, plus the largest peak of any child process (the ensemble members train in
worker processes). On a shared machine other processes inflate the times.
"""

from __future__ import annotations

import ast
import contextlib
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, gpu {gpu}"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> None:
    """Start a new high-water mark of this process (Linux; a no-op elsewhere)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    """Peak RSS of this process since the last reset, in MB."""
    return _status_kb("VmHWM") / 1024


def children_peak_mb() -> float:
    """The largest peak RSS of any finished child process, in MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def param(text: str) -> tuple[str, object]:
    """`name=value` of a pipeline parameter (`--set`); the value is a Python literal (3, 0.5, (168, 336))."""
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result
