"""What the receiving-side scenarios share: work directories, process clean-up, counts, metrics."""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from reliability.outcome import Size

__all__ = [
    "by_size",
    "metric_total",
    "prefix_seqs",
    "stopping",
    "wait_for",
    "workspace",
]


T = TypeVar("T")


class _Closable(Protocol):
    def close(self) -> None: ...


def by_size(size: Size, ci: T, full: T) -> T:
    """``ci`` or ``full``, by the size asked for."""
    return ci if size == "ci" else full


@contextlib.contextmanager
def workspace(name: str) -> Iterator[Path]:
    """A fresh temporary directory for one scenario, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"reliability-{name}-") as directory:
        yield Path(directory)


@contextlib.contextmanager
def stopping() -> Iterator[Callable[[_Closable], None]]:
    """``stop_later(program)``: every program handed to it is closed (by PID) on the way out, last first."""
    programs: list[_Closable] = []
    try:
        yield programs.append
    finally:
        for program in reversed(programs):
            with contextlib.suppress(Exception):  # clean-up must reach every program
                program.close()


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true (True) or ``timeout`` s pass (False): a scenario reports, it does not raise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def prefix_seqs(
    frames: list[bytes], line_of: Callable[[int], bytes], seq_of: Callable[[bytes], int | None]
) -> tuple[list[int], int]:
    """(the sequence numbers of ``frames``, how many frames differ from the line of their number).

    ``line_of(seq)`` is the line as sent (with its LF); a frame is byte-exact when it is that line minus the LF.
    """
    seqs: list[int] = []
    altered = 0
    for frame in frames:
        seq = seq_of(frame)
        if seq is None:
            altered += 1
            continue
        seqs.append(seq)
        if frame + b"\n" != line_of(seq):
            altered += 1
    return seqs, altered


_SAMPLE = re.compile(r"^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.M)


def metric_total(metrics_url: str, name: str) -> float:
    """The sum of ``name`` over all its label sets, from the receiver's Prometheus text (0 if absent)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(value) for metric, value in _SAMPLE.findall(text) if metric == name)
