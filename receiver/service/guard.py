"""Self-protection: the daemon watches its own memory and CPU and slows senders before it hurts.

Logtail protects its host by dropping data when it uses too much CPU or
memory; this receiver never drops what TCP senders send. Instead:

- **memory**: above ``memory_limit_bytes`` times ``soft_fraction`` (90%)
  the daemon stops reading TCP (backpressure: senders queue on their side;
  UDP is dropped and counted, as for any backpressure) until it is back
  under 80%. Above the limit itself, something is wrong that waiting will
  not cure: it commits everything read, stops cleanly with exit status 3,
  and systemd (``Restart=on-failure``) starts it again. Nothing acknowledged
  is lost; senders with disk queues resend what they had in flight.
- **CPU**: when the daemon used more than ``cpu_limit_percent`` of a core
  over the last five seconds, reading pauses for the next second, so ingest
  runs at the rate the limit allows and senders queue the rest.
- **delivery's memory**: the delivery process and its worker processes
  (the embedded store's engine runs there) are counted together, as
  anonymous memory (the engine's library is some 300 MB of file pages the
  kernel may take back, not memory it holds), each page once: the workers
  share what their forkserver loaded before forking them. Above
  ``delivery_memory_limit_bytes`` the delivery process is restarted: its
  cursors are in the spool, so it goes on where it was, and nothing is lost.

Checked once a second on the reactor (a hung reactor is systemd's watchdog's
business). 0 turns a limit off. Memory and CPU are read through psutil, as
/metrics reads them; delivery's memory on a thread, since the kernel takes
20 to 35 ms to add up the engine's pages under a flood, which the reactor
would spend not reading.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

from receiver.spool.gate import BackpressureGate

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = ["EXIT_OVER_MEMORY_LIMIT", "ResourceGuard", "anonymous_bytes_of_tree", "cpu_seconds", "resident_bytes"]

log = logging.getLogger("receiver")

EXIT_OVER_MEMORY_LIMIT = 3
"""The daemon's exit status when it stopped itself over its memory limit (systemd restarts it)."""

_SOFT = 0.9
_RESUME = 0.8
_CPU_WINDOW = 5


def resident_bytes() -> int:
    """This process's resident memory now."""
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return 0


def anonymous_bytes_of_tree(pid: int) -> int:
    """Anonymous resident memory of process ``pid`` and all its descendants, each page counted once
    (0 for what has ended)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in tree:
        try:
            total += _anonymous_share(process)
        except (psutil.Error, OSError):  # ended since the tree was read
            continue
    return total


def _anonymous_share(process: psutil.Process) -> int:
    """The anonymous memory ``process`` holds, a page it shares with n processes (copy-on-write after
    a fork) counted as 1/n: the kernel's Pss_Anon, which psutil does not read.

    Not file pages (the embedded store's library), which the kernel may take back. Summed over
    the delivery tree, RssAnon would count what the forkserver loaded (Arrow, the encoders) once
    in it and once more in every worker forked from it.
    """
    try:
        with open(f"/proc/{process.pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss_Anon:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        if not process.is_running():
            raise
    memory = process.memory_info()  # a kernel before 5.7: RssAnon, shared pages in each process
    return int(memory.rss - memory.shared)


def cpu_seconds() -> float:
    """This process's user and system CPU time so far."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


class ResourceGuard:
    """The checks of the module docstring; :meth:`check` runs once a second."""

    def __init__(
        self,
        gate: BackpressureGate,
        *,
        memory_limit_bytes: int,
        cpu_limit_percent: float,
        on_over_memory: Callable[[str], None],
        clock: Callable[[], float],
        rss: Callable[[], int] = resident_bytes,
        cpu: Callable[[], float] = cpu_seconds,
        delivery_memory_limit_bytes: int = 0,
        delivery_memory: Callable[[], int] | None = None,
        on_delivery_over_memory: Callable[[str], None] | None = None,
        in_thread: Callable[[Callable[[], int]], Deferred[int]] | None = None,
    ) -> None:
        self._gate = gate
        self._memory_limit = memory_limit_bytes
        self._cpu_limit = cpu_limit_percent / 100.0
        self._on_over_memory = on_over_memory
        self._clock = clock
        self._rss = rss
        self._cpu = cpu
        self._cpu_samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=_CPU_WINDOW + 1)
        self._over = False
        self._delivery_limit = delivery_memory_limit_bytes
        self._delivery_memory = delivery_memory
        self._on_delivery_over = on_delivery_over_memory
        self._in_thread = in_thread  # runs delivery_memory off the reactor; None: here and now
        self._measuring = False

    def check(self) -> None:
        if self._memory_limit:
            self._check_memory()
        if self._cpu_limit:
            self._check_cpu()
        if self._delivery_limit and self._delivery_memory is not None and self._on_delivery_over is not None:
            self._check_delivery()

    def _check_delivery(self) -> None:
        assert self._delivery_memory is not None
        if self._in_thread is None:
            self._judge_delivery(self._delivery_memory())
            return
        if self._measuring:
            return  # the last reading is still being taken: its answer comes first
        self._measuring = True

        def done(result: object) -> object:
            self._measuring = False
            return result

        reading = self._in_thread(self._delivery_memory)
        reading.addBoth(done)
        reading.addCallback(self._judge_delivery)
        reading.addErrback(lambda failure: log.warning("reading delivery's memory failed: %s", failure.getErrorMessage()))

    def _judge_delivery(self, used: int) -> None:
        assert self._on_delivery_over is not None
        if used > self._delivery_limit:
            self._on_delivery_over(
                f"the delivery process and its workers hold {used / 2**20:,.0f} MiB, over [limits] "
                f"delivery_memory_limit_bytes ({self._delivery_limit / 2**20:,.0f} MiB): restarting delivery "
                "(it goes on from its cursors; nothing is lost)"
            )

    def _check_memory(self) -> None:
        rss = self._rss()
        limit = self._memory_limit
        if rss > limit and not self._over:
            self._over = True
            self._on_over_memory(
                f"resident memory {rss / 2**20:,.0f} MiB is over [limits] memory_limit_bytes "
                f"({limit / 2**20:,.0f} MiB): committing everything read and stopping (exit status "
                f"{EXIT_OVER_MEMORY_LIMIT}) for systemd to restart the receiver"
            )
        elif rss > limit * _SOFT:
            if "memory-limit" not in self._gate.reasons:
                log.warning("resident memory %.0f MiB is near the limit (%.0f MiB): pausing TCP reading",
                            rss / 2**20, limit / 2**20)
            self._gate.hold("memory-limit")
        elif rss < limit * _RESUME and "memory-limit" in self._gate.reasons:
            log.info("resident memory %.0f MiB: reading again", rss / 2**20)
            self._gate.release("memory-limit")

    def _check_cpu(self) -> None:
        now, used = self._clock(), self._cpu()
        samples = self._cpu_samples
        samples.append((now, used))
        if len(samples) < 2:
            return
        (then, before) = samples[0]
        share = (used - before) / (now - then) if now > then else 0.0
        if share > self._cpu_limit:
            self._gate.hold("cpu-limit")
        elif "cpu-limit" in self._gate.reasons:
            self._gate.release("cpu-limit")

    def start(self, reactor: Any) -> Any:
        from twisted.internet.task import LoopingCall

        loop = LoopingCall(self.check)
        loop.clock = reactor
        loop.start(1.0, now=True)
        return loop
