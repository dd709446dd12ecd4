"""Every metric family ``/metrics`` shows, in one table: name, type, help, labels, and reason codes.

The daemon's counters (:class:`~receiver.telemetry.events.Telemetry`), the
gauges read at scrape time and the delivery process's figures are all named
here; receiver/service/metrics.py writes each family's HELP and TYPE from
this table, and tests/test_docs.py checks docs/metrics.md against it.

A ``reason`` label takes its values from a fixed vocabulary (one
:class:`~enum.StrEnum` per family, as Vector's ``error_type``): short
snake_case codes. The sentence that says what happened, with its addresses,
OpenSSL text or configured numbers, goes to the log line only: as a label it
would make a new series for every variant, and alerts could not match it.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Literal

__all__ = [
    "FAMILIES",
    "ConnectionRefusal",
    "Family",
    "RelpPause",
    "RelpRefusal",
    "SpoolDiscard",
    "UdpDrop",
]


class ConnectionRefusal(StrEnum):
    """Why a TCP, TLS or RELP connection was refused (``receiver_connections_refused_total``)."""

    NOT_ALLOWED = "not_allowed"
    MAX_CONNECTIONS = "max_connections"
    MAX_CONNECTIONS_PER_SOURCE = "max_connections_per_source"
    TLS_PEER_NOT_ALLOWED = "tls_peer_not_allowed"
    TLS_HANDSHAKE_TIMEOUT = "tls_handshake_timeout"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"


class UdpDrop(StrEnum):
    """Why UDP datagrams were dropped (``receiver_udp_datagrams_dropped_total``)."""

    BACKPRESSURE = "backpressure"
    NOT_ALLOWED = "not_allowed"
    RATE_LIMITED = "rate_limited"
    RECEIVE_BUFFER_OVERFLOW = "receive_buffer_overflow"


class RelpPause(StrEnum):
    """Why reading from a RELP sender paused (``receiver_relp_reading_paused_total``)."""

    REPLIES_UNREAD = "replies_unread"
    WINDOW_FULL = "window_full"


class RelpRefusal(StrEnum):
    """Why a RELP frame was answered 500 (``receiver_relp_frames_refused_total``)."""

    BEFORE_OPEN = "before_open"
    UNKNOWN_COMMAND = "unknown_command"
    SECOND_OPEN = "second_open"
    OPEN_WITHOUT_SYSLOG = "open_without_syslog"


class SpoolDiscard(StrEnum):
    """Why retention removed frames before every sink had them (``receiver_spool_frames_discarded_total``)."""

    AGE = "age"
    SIZE = "size"


Kind = Literal["counter", "gauge", "histogram"]


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """One metric family; ``reasons`` is the vocabulary of its ``reason`` label, when it has one."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    reasons: type[StrEnum] | None = None


FAMILIES: dict[str, Family] = {}
"""Every family by name."""


def _family(name: str, kind: Kind, help_text: str, *labels: str, reasons: type[StrEnum] | None = None) -> Family:
    assert name not in FAMILIES, f"{name} named twice"
    assert (reasons is not None) == ("reason" in labels), f"{name}: a reason label needs its vocabulary"
    family = FAMILIES[name] = Family(name, kind, help_text, labels, reasons)
    return family


# -- ingest (counted by the daemon) --------------------------------------------

CONNECTIONS_OPENED = _family("receiver_connections_opened_total", "counter", "TCP connections accepted.", "listener")
CONNECTIONS_CLOSED = _family("receiver_connections_closed_total", "counter", "TCP connections closed.", "listener")
CONNECTIONS_OPEN = _family("receiver_connections_open", "gauge", "TCP connections open now.")
CONNECTIONS_REFUSED = _family(
    "receiver_connections_refused_total", "counter", "TCP connections refused, by reason.",
    "listener", "reason", reasons=ConnectionRefusal,
)
CONNECTIONS_IDLE_CLOSED = _family(
    "receiver_connections_idle_closed_total", "counter", "TCP connections closed after their idle timeout.", "listener"
)
FRAMES_RECEIVED = _family("receiver_frames_received_total", "counter", "Frames received, by listener.", "listener")
BYTES_RECEIVED = _family("receiver_bytes_received_total", "counter", "Frame bytes received, by listener.", "listener")
FRAMES_EMPTY = _family("receiver_frames_empty_total", "counter", "Empty frames skipped.", "listener")
FRAMES_TRUNCATED = _family(
    "receiver_frames_truncated_total", "counter", "Frames cut at max_frame_bytes (kept, flagged truncated).", "listener"
)
FRAMES_INCOMPLETE = _family(
    "receiver_frames_incomplete_total", "counter", "Frames the sender's close cut short (kept, flagged incomplete).",
    "listener",
)
FRAMES_FRAMING_ERRORS = _family(
    "receiver_frames_framing_errors_total", "counter", "Octet-counted frames without a valid count (read up to LF).",
    "listener",
)
UDP_DATAGRAMS_DROPPED = _family(
    "receiver_udp_datagrams_dropped_total", "counter", "UDP datagrams dropped, by reason.",
    "listener", "reason", reasons=UdpDrop,
)
RATE_LIMITED = _family(
    "receiver_rate_limited_total", "counter", "Times a TCP or RELP sender's reading paused for its rate limit.",
    "listener",
)
RATE_LIMIT_BUCKETS_EVICTED = _family(
    "receiver_rate_limit_buckets_evicted_total", "counter",
    "Per-source rate limits forgotten to keep at most 100,000 sources.", "listener",
)
SENDERS_FORGOTTEN = _family(
    "receiver_senders_forgotten_total", "counter", "Senders forgotten to keep at most 100,000 (receiverctl senders)."
)
RELP_SESSIONS_BROKEN = _family(
    "receiver_relp_sessions_broken_total", "counter", "RELP sessions the receiver ended.", "listener"
)
RELP_READING_PAUSED = _family(
    "receiver_relp_reading_paused_total", "counter", "Times reading from a RELP sender paused, by reason.",
    "listener", "reason", reasons=RelpPause,
)
RELP_FRAMES_REFUSED = _family(
    "receiver_relp_frames_refused_total", "counter", "RELP frames answered 500, by reason.",
    "listener", "reason", reasons=RelpRefusal,
)
BACKPRESSURE_CHANGES = _family(
    "receiver_backpressure_changes_total", "counter", "Times TCP reading paused or resumed."
)
DELIVERY_MEMORY_RESTARTS = _family(
    "receiver_delivery_memory_restarts_total", "counter",
    "Delivery restarts over [limits] delivery_memory_limit_bytes.",
)

# -- spool (counted by the daemon; gauges read at scrape time) ----------------------

SPOOL_SEGMENTS_COMMITTED = _family("receiver_spool_segments_committed_total", "counter", "Spool segments committed.")
SPOOL_FRAMES_COMMITTED = _family("receiver_spool_frames_committed_total", "counter", "Frames committed to the spool.")
SPOOL_BYTES_COMMITTED = _family(
    "receiver_spool_bytes_committed_total", "counter", "Frame bytes committed to the spool."
)
SPOOL_FRAMES_DISCARDED = _family(
    "receiver_spool_frames_discarded_total", "counter",
    "Frames retention removed before every sink had them, by reason.", "reason", reasons=SpoolDiscard,
)
SPOOL_SEGMENTS_DELIVERED = _family(
    "receiver_spool_segments_delivered_total", "counter", "Segments removed because every sink had delivered them."
)
SPOOL_SEGMENTS_QUARANTINED = _family(
    "receiver_spool_segments_quarantined_total", "counter", "Damaged segments moved to quarantine."
)
SPOOL_COMMIT_FAILURES = _family(
    "receiver_spool_commit_failures_total", "counter",
    "Spool commits that failed other than by the disk errors retried.",
)
SPOOL_FRAMES_LOST = _family(
    "receiver_spool_frames_lost_total", "counter", "Frames of failed spool commits: read, never stored."
)
SPOOL_SEGMENTS = _family("receiver_spool_segments", "gauge", "Segments the spool holds.")
SPOOL_FRAMES = _family("receiver_spool_frames", "gauge", "Frames the spool holds.")
SPOOL_STORED_BYTES = _family("receiver_spool_stored_bytes", "gauge", "Bytes the spool holds on disk.")
SPOOL_OLDEST_AGE = _family(
    "receiver_spool_oldest_age_seconds", "gauge", "Age of the oldest frame the spool holds."
)
SINK_LAG_SEGMENTS = _family(
    "receiver_sink_lag_segments", "gauge", "Segments committed that the sink has not delivered.", "sink"
)

# -- delivery (reported by the delivery process: receiver/deliver/telemetry.py) -----

DELIVERY_STATS_AGE = _family(
    "receiver_delivery_stats_age_seconds", "gauge",
    "Age of the delivery process's last report (it reports every 2 s).",
)
SINK_DELIVERED_RECORDS = _family(
    "receiver_sink_delivered_records_total", "counter", "Records the upstream accepted.", "sink"
)
SINK_DELIVERED_REQUESTS = _family(
    "receiver_sink_delivered_requests_total", "counter", "Requests (groups) the upstream accepted.", "sink"
)
SINK_RETRIES = _family("receiver_sink_retries_total", "counter", "Requests retried after a transient answer.", "sink")
SINK_DEAD_LETTERED_RECORDS = _family(
    "receiver_sink_dead_lettered_records_total", "counter",
    "Records the upstream rejected for good, kept as dead letters.", "sink",
)
SINK_CONCURRENCY = _family("receiver_sink_concurrency", "gauge", "Requests the sink may have in flight now.", "sink")
SINK_BACKING_OFF = _family("receiver_sink_backing_off", "gauge", "1 while the sink waits to retry.", "sink")
SINK_LAST_SUCCESS = _family(
    "receiver_sink_last_success_timestamp_seconds", "gauge", "When the upstream last accepted.", "sink"
)
RECORDS_UNKNOWN_TAG = _family(
    "receiver_records_unknown_tag_total", "counter",
    "Records whose streamlog tag no route names (sent to the default sink).", "sink",
)
RECORDS_DROPPED = _family("receiver_records_dropped_total", "counter", "Records a drop route took.", "sink")
RECORDS_FILTER_ERRORS = _family(
    "receiver_records_filter_errors_total", "counter",
    "Records a route's filter failed on (sent to the default sink).", "sink",
)
SINK_DAMAGED_DEAD_LETTERS = _family(
    "receiver_sink_damaged_dead_letters_total", "counter",
    "Replay files that were not dead letters, moved aside unsent.", "sink",
)
SINK_LATENCY = _family(
    "receiver_sink_latency_seconds", "histogram",
    "Records by time from receipt to the upstream's acknowledgement.", "sink",
)

# -- the daemon's own process ------------------------------------------------------

PROCESS_CPU_SECONDS = _family("process_cpu_seconds_total", "counter", "The daemon's user and system CPU time.")
PROCESS_RESIDENT_MEMORY = _family("process_resident_memory_bytes", "gauge", "The daemon's resident memory.")
PROCESS_MAX_RESIDENT_MEMORY = _family(
    "process_max_resident_memory_bytes", "gauge", "The daemon's peak resident memory."
)
