"""A spool writer driven without a reactor or a thread: a Twisted ``Clock``, commits run at once (or held).

Used by the spool's unit tests and by the reliability scenarios of clocks,
which move the writer's wall clock (``Harness.wall_ns``) instead of the machine's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from receiver.config.model import SpoolConfig
from receiver.spool import SpoolReader
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry
from receiver.spool.store import SpoolStore
from receiver.spool.writer import SpoolWriter
from receiver.telemetry.events import Telemetry

__all__ = ["NOW_NS", "Harness", "ThreadRunner", "entry"]

NOW_NS = 1_800_000_000 * 10**9
"""The harness's wall clock at start, in ns since the epoch (in 2027)."""


def entry(frames: list[bytes], *, at: int = NOW_NS, peer: str = "10.0.0.1", listener: str = "tcp") -> Entry:
    """A spool entry: ``frames`` read by TCP listener ``listener`` from ``peer`` at ``at`` ns."""
    return Entry(at, peer, 50514, listener, "tcp", frames)


class ThreadRunner:
    """Stands in for the writer thread: runs work at once, or holds it until released."""

    def __init__(self) -> None:
        self.hold = False
        self.held: list[tuple[Callable[[], Any], Deferred[Any]]] = []

    def __call__(self, work: Callable[[], Any]) -> Deferred[Any]:
        if not self.hold:
            return maybeDeferred(work)
        d: Deferred[Any] = Deferred()
        self.held.append((work, d))
        return d

    def release_one(self) -> None:
        work, d = self.held.pop(0)
        d.callback(work())


class Harness:
    """A ``SpoolWriter`` on a spool under ``tmp_path``, with ``config`` over the defaults; time moves by ``clock.advance``."""

    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.clock = Clock()
        self.store = SpoolStore(tmp_path / "spool")
        self.runner = ThreadRunner()
        self.gate = BackpressureGate()
        self.wall_ns = NOW_NS
        self.telemetry = Telemetry(clock=self.clock.seconds)
        self.writer = SpoolWriter(
            self.store,
            dataclasses.replace(SpoolConfig(), **config),
            clock=self.clock,
            run_in_thread=self.runner,
            gate=self.gate,
            telemetry=self.telemetry,
            wall_clock_ns=lambda: self.wall_ns,
        )

    def frames(self) -> list[bytes]:
        with SpoolReader(self.store.directory) as reader:
            return [f for e in reader.entries() for f in e.frames]
