"""What delivery counts: each sink's figures for /metrics.

Each sink's worker keeps its counters (``SinkWorker.snapshot``); the delivery
process writes them all to the stats file every 2 s (receiver/deliver/stats.py)
and the daemon's /metrics reads that file. :data:`SINK_COUNTERS` says which
key of a sink's snapshot feeds which family of receiver/telemetry/names.py.
"""

from __future__ import annotations

from receiver.telemetry import names
from receiver.telemetry.names import Family

__all__ = ["SINK_COUNTERS"]

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
