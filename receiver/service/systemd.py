"""systemd's notify protocol: READY, STATUS, WATCHDOG and STOPPING from the daemon.

Under ``Type=notify`` (systemd/receiver.service) systemd starts the
receiver's dependents only after ``READY=1``, which the daemon sends once its
listeners are bound, its spool is open and the reactor runs (SIGTERM is then
handled gracefully). ``STATUS=`` is the one line ``systemctl status`` shows,
refreshed every few seconds. With ``WatchdogSec=`` systemd sets
``WATCHDOG_USEC``, and the reactor itself sends ``WATCHDOG=1`` at half that
interval: if the reactor hangs, the pings stop and systemd restarts the
service, which loses nothing the spool committed. ``STOPPING=1`` goes out
when a graceful stop begins.

Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Notifier", "watchdog_interval_seconds"]

log = logging.getLogger("receiver")

STATUS_EVERY_SECONDS = 5.0


def watchdog_interval_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's watchdog timeout for this process, or None when there is no watchdog.

    ``WATCHDOG_PID``, when set, must be this process: a child that inherited
    the variables must not ping on its parent's behalf.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Notifier:
    """Sends sd_notify messages when systemd asked for them (``NOTIFY_SOCKET``, read by sdnotify)."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.enabled = False
        self._notifier: Any = None
        if not address:
            return
        # sdnotify swallows every error (and leaks its socket on one): find out first, and say so.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect("\0" + address[1:] if address.startswith("@") else address)
        except OSError as e:
            log.warning("NOTIFY_SOCKET %s cannot be reached (%s); systemd will not hear from the receiver",
                        address, e.strerror or e)
            return
        finally:
            probe.close()
        import sdnotify

        self._notifier = sdnotify.SystemdNotifier()
        self.enabled = self._notifier.socket is not None

    def send(self, *fields: str) -> None:
        """One notification of ``KEY=value`` fields."""
        if self.enabled:
            self._notifier.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def start_loops(self, reactor: Any, status: Callable[[], str]) -> list[Any]:
        """Reactor loops: the watchdog ping (if systemd set a watchdog) and the status line.

        Both run on the reactor thread on purpose: a reactor that stops turning
        stops pinging.
        """
        from twisted.internet.task import LoopingCall

        if not self.enabled:
            return []
        loops = []
        interval = watchdog_interval_seconds()
        if interval is not None:
            ping = LoopingCall(self.watchdog)
            ping.clock = reactor
            ping.start(interval, now=True)
            loops.append(ping)
            log.info("systemd watchdog: pinging every %.1f s", interval)
        refresh = LoopingCall(lambda: self.status(status()))
        refresh.clock = reactor
        refresh.start(STATUS_EVERY_SECONDS, now=False)
        loops.append(refresh)
        return loops
