"""Figures of running processes (CPU, memory, children), read with psutil.

One reader for the integration tests, the benchmarks and the reliability
scenarios. A process that has gone counts as nothing (0, None or no children)
rather than raising: the programs measured may exit between two readings.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil

__all__ = [
    "child_running",
    "cpu_seconds",
    "descendants",
    "exited",
    "peak_rss_kb",
    "rss_kb",
    "thread_cpu_seconds",
    "tree_cpu_seconds",
    "tree_peak_rss_kb",
    "tree_rss_kb",
]

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (all its threads) and of its children it has waited for."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of each live thread of ``pid``, keyed ``tid:name``."""
    out = {}
    for thread in psutil.Process(pid).threads():
        # psutil gives threads' times but not their names; Linux names a thread in its own /proc entry.
        with contextlib.suppress(*_GONE):
            out[f"{thread.id}:{psutil.Process(thread.id).name()}"] = thread.user_time + thread.system_time
    return out


def rss_kb(pid: int) -> int | None:
    """The resident set size of ``pid`` now, in KiB (None once it has gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss) // 1024
    except _GONE:
        return None


def peak_rss_kb(pid: int) -> int | None:
    """The largest resident set size ``pid`` has had (VmHWM), in KiB (None once it has gone).

    psutil has no reading of the peak, so this one comes from /proc.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    """``pid``'s children, theirs, and so on (the delivery process's worker processes); [] once it has gone."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except _GONE:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant."""
    total = 0.0
    for p in (pid, *descendants(pid)):
        with contextlib.suppress(*_GONE):
            total += cpu_seconds(p)
    return total


def tree_rss_kb(pid: int) -> int:
    """The resident set sizes of ``pid`` and its live descendants, summed, in KiB."""
    return sum(rss_kb(p) or 0 for p in (pid, *descendants(pid)))


def tree_peak_rss_kb(pid: int) -> int:
    """The peak resident set sizes (VmHWM) of ``pid`` and its live descendants, summed, in KiB."""
    return sum(peak_rss_kb(p) or 0 for p in (pid, *descendants(pid)))


def tree_pss_kb(pid: int) -> int:
    """The proportional set sizes of ``pid`` and its live descendants, summed, in KiB: the memory the
    tree holds, each page shared by processes (a library, what a forkserver loaded before forking its
    workers) counted once, where summing their resident sets counts it in each of them."""
    total = 0
    for p in (pid, *descendants(pid)):
        with contextlib.suppress(*_GONE):
            total += int(psutil.Process(p).memory_full_info().pss) // 1024
    return total


def child_running(pid: int, command_part: str) -> int | None:
    """The pid of a child of ``pid`` whose command line contains ``command_part`` (None if there is none)."""
    try:
        children = psutil.Process(pid).children()
    except _GONE:
        return None
    for child in children:
        with contextlib.suppress(*_GONE):
            if any(command_part in arg for arg in child.cmdline()):
                return child.pid
    return None


def exited(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for a parent that is gone too counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
