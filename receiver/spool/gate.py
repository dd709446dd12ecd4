"""Backpressure: while any reason holds, every stream transport stops reading.

Paused TCP connections leave data in the kernel, the receive window closes
and senders queue on their side (rsyslog's disk queue, syslog-ng's buffer).
The gate remembers which producers it paused itself and resumes only those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

__all__ = ["BackpressureGate", "Pausable"]

log = logging.getLogger(__name__)


class Pausable(Protocol):
    """What the gate pauses: a push producer (a connection, a transport)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


class BackpressureGate:
    """Shared by every stream listener; reasons are short words (``memory``, ``disk``)."""

    def __init__(self, on_change: Callable[[frozenset[str]], None] | None = None) -> None:
        self._reasons: set[str] = set()
        self._producers: set[Pausable] = set()
        self._paused: set[Pausable] = set()
        self._on_change = on_change

    @property
    def closed(self) -> bool:
        """Whether reading is stopped now."""
        return bool(self._reasons)

    @property
    def reasons(self) -> frozenset[str]:
        return frozenset(self._reasons)

    def register(self, producer: Pausable) -> None:
        self._producers.add(producer)
        if self._reasons:
            self._pause(producer)

    def unregister(self, producer: Pausable) -> None:
        self._producers.discard(producer)
        self._paused.discard(producer)

    def hold(self, reason: str) -> None:
        """Stop every stream transport until :meth:`release` of every reason."""
        if reason in self._reasons:
            return
        self._reasons.add(reason)
        if len(self._reasons) == 1:
            for producer in list(self._producers):
                self._pause(producer)
        self._changed()

    def release(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons:
            for producer in list(self._paused):
                self._paused.discard(producer)
                producer.resumeProducing()
        self._changed()

    def open_all(self) -> None:
        """Resume everything this gate paused, whatever the reasons (shutdown drains)."""
        had_reasons = bool(self._reasons)
        self._reasons.clear()
        for producer in list(self._paused):
            producer.resumeProducing()
        self._paused.clear()
        if had_reasons:
            self._changed()

    def _pause(self, producer: Pausable) -> None:
        if producer not in self._paused:
            self._paused.add(producer)
            producer.pauseProducing()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(frozenset(self._reasons))
