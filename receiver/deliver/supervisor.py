"""The daemon's side of delivery: start the delivery process, keep it running, stop it last.

Delivery runs in its own process so that parsing and encoding use the second
core while the reactor reads sockets. The daemon starts it once the spool is
open, restarts it (with growing pauses) if it dies, and on shutdown stops it
after ingest has committed everything: it finishes the request in flight,
its cursors are already on disk, and the next start resumes from them.

The delivery process gets the configuration the daemon runs, written to the
state directory (receiver/config/snapshot.py), never the configuration file.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IDelayedCall, IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["DeliverySupervisor", "delivery_command"]

log = logging.getLogger("receiver")

_RESTART_FIRST_SECONDS = 1.0
_RESTART_MAX_SECONDS = 60.0
_HEALTHY_AFTER_SECONDS = 300.0


def delivery_command(snapshot: Path) -> list[str]:
    """How to start the delivery process for the configuration the daemon runs.

    ``snapshot`` is that configuration as the daemon wrote it
    (receiver/config/snapshot.py), not the configuration file: the file may
    have changed since, and the daemon keeps some settings until restart.
    """
    return [sys.executable, "-m", "receiver.deliver.process", "--exit-with-parent", "--snapshot", str(snapshot.resolve())]


def _child_environment() -> dict[str, str]:
    """The daemon's environment without systemd's notify variables: only the daemon talks to systemd."""
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}


class _Child(ProcessProtocol):
    def __init__(self, supervisor: DeliverySupervisor) -> None:
        self.supervisor = supervisor
        self.ended: Deferred[int] = Deferred()

    def processExited(self, reason: Failure) -> None:
        # Exited, not Ended: Ended waits for every holder of the child's stdin pipe to close
        # it, and the delivery process's worker processes inherit it.
        code = 0 if reason.check(ProcessDone) else getattr(reason.value, "exitCode", None)
        signalled = getattr(reason.value, "signal", None)
        status = -signalled if signalled else (code if code is not None else -1)
        if not self.ended.called:
            self.ended.callback(status)


class DeliverySupervisor:
    """Keeps one delivery process running while the daemon runs."""

    def __init__(self, reactor: Any, argv: Sequence[str], *, stop_timeout_seconds: float = 30.0) -> None:
        self._reactor = reactor
        self._argv = list(argv)
        self._stop_timeout = stop_timeout_seconds
        self._transport: IProcessTransport | None = None
        self._child: _Child | None = None
        self._stopping = False
        self._pause = _RESTART_FIRST_SECONDS
        self._started_at = 0.0
        self._restart_call: IDelayedCall | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._transport.pid if self._transport is not None else None

    def start(self) -> None:
        self._child = child = _Child(self)
        self._started_at = self._reactor.seconds()
        # The child writes its log to the daemon's stderr (the journal under systemd).
        self._transport = self._reactor.spawnProcess(
            child, self._argv[0], self._argv, env=_child_environment(), childFDs={0: "w", 1: 1, 2: 2}
        )
        log.info("delivery process started (pid %s)", self.pid)
        child.ended.addCallback(self._ended)

    def _ended(self, status: int) -> int:
        self._transport = None
        if self._stopping:
            return status
        ran = self._reactor.seconds() - self._started_at
        if ran >= _HEALTHY_AFTER_SECONDS:
            self._pause = _RESTART_FIRST_SECONDS
        log.error(
            "delivery process ended unexpectedly (status %s after %.0f s); restarting in %.0f s. "
            "Nothing is lost: its cursors are in the spool.", status, ran, self._pause,
        )
        self.restarts += 1
        self._restart_call = self._reactor.callLater(self._pause, self.start)
        self._pause = min(self._pause * 2, _RESTART_MAX_SECONDS)
        return status

    def stop(self) -> Deferred[Any]:
        """SIGTERM, then SIGKILL after ``stop_timeout_seconds``; fires when it has exited."""
        self._stopping = True
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        if self._transport is None or self._child is None:
            return succeed(None)
        transport = self._transport
        transport.signalProcess(signal.SIGTERM)

        def kill() -> None:
            if self._transport is not None:
                log.error("delivery process did not stop within %g s: killing it", self._stop_timeout)
                transport.signalProcess(signal.SIGKILL)

        timer = self._reactor.callLater(self._stop_timeout, kill)

        def done(status: int) -> int:
            if timer.active():
                timer.cancel()
            log.info("delivery process stopped (status %s)", status)
            return status

        return self._child.ended.addCallback(done)

    def restart(self) -> Deferred[Any]:
        """Stop (gracefully, as :meth:`stop`) and start again: the new process reads the snapshot anew.

        Its cursors are in the spool, so the new process goes on where the old
        one stopped; a request in flight is finished first.
        """

        def again(_: object) -> None:
            self._stopping = False
            self._pause = _RESTART_FIRST_SECONDS
            self.start()

        return self.stop().addCallback(again)
