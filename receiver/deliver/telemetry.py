"""What delivery counts and says: each sink's figures for /metrics, and the delivery process's log lines.

Each sink's worker keeps its counters (``SinkWorker.snapshot``); the delivery
process writes them all to the stats file every 2 s (receiver/deliver/stats.py)
and the daemon's /metrics reads that file. :data:`SINK_COUNTERS` says which
key of a sink's snapshot feeds which family of receiver/telemetry/names.py.

:class:`DeliveryTelemetry` is the delivery process's side, one method per
happening, as the daemon's :class:`~receiver.telemetry.events.Telemetry`:
records no route names and records drop routes took are said at most once a
minute, through the same :class:`~receiver.telemetry.throttle.LogThrottle`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from receiver.deliver.stats import write_stats
from receiver.telemetry import names
from receiver.telemetry.names import Family
from receiver.telemetry.throttle import LogThrottle

__all__ = ["SINK_COUNTERS", "DeliveryTelemetry"]

log = logging.getLogger("receiver.deliver")

SINK_COUNTERS: tuple[tuple[Family, str], ...] = (
    (names.SINK_DELIVERED_RECORDS, "delivered_records"),
    (names.SINK_DELIVERED_REQUESTS, "delivered_groups"),
    (names.SINK_RETRIES, "retried"),
    (names.SINK_DEAD_LETTERED_RECORDS, "dead_lettered_records"),
    (names.RECORDS_UNKNOWN_TAG, "unknown_tags"),
    (names.RECORDS_DROPPED, "dropped"),
    (names.RECORDS_FILTER_ERRORS, "filter_errors"),
    (names.SINK_DAMAGED_DEAD_LETTERS, "damaged_dead_letters"),
)
"""Each sink counter /metrics shows, with the key of a sink's stats snapshot it is read from."""

_UNKNOWN_TAGS, _DROPPED = "unknown-tags", "dropped"


class DeliveryTelemetry:
    """The delivery process's log lines and stats file; ``clock`` gives monotonic seconds."""

    def __init__(
        self, *, default_sink: str, clock: Callable[[], float] = time.monotonic, repeat_interval_seconds: float = 60.0
    ) -> None:
        self._default_sink = default_sink
        self._throttle = LogThrottle(clock, repeat_interval_seconds)
        self._routed = {_UNKNOWN_TAGS: 0, _DROPPED: 0}  # the totals as last seen

    def started(self, sinks: Sequence[str], build_processes: int | None) -> None:
        """Every sink's worker started; ``build_processes``: the pool that builds batches, if any."""
        log.info(
            "delivery: %d sinks (%s)%s", len(sinks), ", ".join(sinks),
            f"; {build_processes} worker processes build and encode batches" if build_processes is not None else "",
        )

    def sink_cannot_start(self, sink: str, error: Exception, retry_seconds: float) -> None:
        log.error("%s: cannot start (%s); retrying in %.0f s", sink, error, retry_seconds)

    def sinks_stopped(self, threads: Sequence[str]) -> None:
        """Sink threads ended while delivery runs: only a bug ends one."""
        log.error("delivery: %s stopped unexpectedly; restarting delivery", ", ".join(threads))

    def routed(self, unknown_tags: int, dropped: int) -> None:
        """The totals so far of records whose tag no route names and of records drop routes took.

        Called every second; says what is new since its last line, once a minute at most.
        """
        unknown = self._newly(_UNKNOWN_TAGS, unknown_tags)
        if unknown:
            log.warning(
                "delivery: %d records had a streamlog tag no route names; they went to the default sink %r",
                unknown, self._default_sink,
            )
        dropped = self._newly(_DROPPED, dropped)
        if dropped:
            log.info("delivery: routes with drop = true dropped %d records", dropped)

    def _newly(self, key: str, total: int) -> int:
        """How many of ``total`` to say now (0: nothing new, or said less than an interval ago)."""
        new, self._routed[key] = total - self._routed[key], total
        return self._throttle.due(key, new)

    def write_stats(self, state_directory: Path, sinks: Mapping[str, Mapping[str, object]]) -> None:
        """Replace the stats file with each sink's snapshot; a full disk delays the stats, not delivery."""
        try:
            write_stats(state_directory, {"time_ns": time.time_ns(), "pid": os.getpid(), "sinks": dict(sinks)})
        except OSError as e:
            log.warning("delivery: cannot write its stats file: %s", e)
