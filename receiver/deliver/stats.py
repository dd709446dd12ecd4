"""What the delivery process tells the daemon: each sink's counters, state and latency.

The delivery process writes a snapshot every two seconds to
``<state>/delivery-stats.json`` (written aside and renamed, so a reader
never sees half a file); the daemon reads it when asked (metrics, status).
A file rather than a pipe: it survives the delivery process's restarts,
costs nothing when nobody looks, and ``cat`` reads it.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["COUNTERS", "LATENCY_BUCKETS", "STATS_FILE", "Histogram", "read_stats", "write_stats"]

STATS_FILE = "delivery-stats.json"
"""In the state directory."""

COUNTERS = (
    "delivered_records", "delivered_groups", "retried", "dead_lettered_records",
    "unknown_tags", "dropped", "damaged_segments", "damaged_dead_letters", "filter_errors",
)
"""The counters of a sink's snapshot (``SinkWorker.snapshot``), as ``receiverctl stats`` lists them."""

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds in seconds of the receipt-to-acknowledged histogram (Prometheus ``le``)."""


@dataclasses.dataclass(slots=True)
class Histogram:
    """Records by receipt-to-acknowledged time: ``counts[i]`` is those within ``LATENCY_BUCKETS[i]``
    and not within the one before (the last counts the rest)."""

    counts: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    sum: float = 0.0
    count: int = 0

    def observe(self, seconds: float, n: int = 1) -> None:
        seconds = max(0.0, seconds)
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += n
        self.sum += seconds * n
        self.count += n

    def to_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.sum, "count": self.count}


def write_stats(state_directory: Path, snapshot: dict[str, Any]) -> None:
    """Replace the stats file with ``snapshot`` (no fsync: it is rewritten in two seconds)."""
    path = state_directory / STATS_FILE
    tmp = path.with_name(f".{STATS_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(snapshot, separators=(",", ":")))
    tmp.replace(path)


def read_stats(state_directory: Path) -> dict[str, Any] | None:
    """The last snapshot, or None when there is none (delivery off, or not started yet)."""
    try:
        value = json.loads((state_directory / STATS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
