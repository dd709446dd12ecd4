"""Prometheus metrics: the text exposition format at ``/metrics``, served by the daemon.

What is exposed (docs/metrics.md lists every family):

- ingest and spool counters, as the daemon's :class:`~receiver.telemetry.events.Telemetry`
  counts them (connections, frames and bytes received, truncated, refused,
  UDP drops, commits, backpressure, discards), with their labels;
- gauges read at scrape time: open connections, what the spool holds and
  the age of its oldest frame, each sink's cursor lag in segments;
- each sink's delivery counters, state and receipt-to-acknowledged latency
  histogram, from the delivery process's stats file (receiver/deliver/stats.py);
- the daemon's own CPU seconds and resident memory.

:func:`render` is a pure function of those inputs; :class:`MetricsResource`
gathers them on each scrape.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from receiver.deliver.stats import LATENCY_BUCKETS
from receiver.spool.store import SpoolMeta

__all__ = ["CONTENT_TYPE", "MetricsResource", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "receiver_connections_opened_total": "TCP connections accepted.",
    "receiver_connections_closed_total": "TCP connections closed.",
    "receiver_connections_refused_total": "TCP connections refused (limits), by reason.",
    "receiver_connections_idle_closed_total": "TCP connections closed after their idle timeout.",
    "receiver_frames_received_total": "Frames received, by listener.",
    "receiver_bytes_received_total": "Frame bytes received, by listener.",
    "receiver_frames_empty_total": "Empty frames skipped.",
    "receiver_frames_truncated_total": "Frames cut at max_frame_bytes (kept, flagged truncated).",
    "receiver_frames_incomplete_total": "Frames the sender's close cut short (kept, flagged incomplete).",
    "receiver_frames_framing_errors_total": "Octet-counted frames without a valid count (read up to LF).",
    "receiver_udp_datagrams_dropped_total": "UDP datagrams dropped, by reason.",
    "receiver_rate_limit_buckets_evicted_total": "Per-source rate limits forgotten to keep at most 100,000 sources.",
    "receiver_senders_forgotten_total": "Senders forgotten to keep at most 100,000 (receiverctl senders).",
    "receiver_spool_segments_committed_total": "Spool segments committed.",
    "receiver_spool_frames_committed_total": "Frames committed to the spool.",
    "receiver_spool_bytes_committed_total": "Frame bytes committed to the spool.",
    "receiver_spool_frames_discarded_total": "Frames retention removed before every sink had them, by reason.",
    "receiver_spool_segments_delivered_total": "Segments removed because every sink had delivered them.",
    "receiver_spool_segments_quarantined_total": "Damaged segments moved to quarantine.",
    "receiver_spool_commit_failures_total": "Spool commits that failed other than by the disk errors retried.",
    "receiver_spool_frames_lost_total": "Frames of failed spool commits: read, never stored.",
    "receiver_rate_limited_total": "Times a TCP or RELP sender's reading paused for its rate limit.",
    "receiver_relp_sessions_broken_total": "RELP sessions the receiver ended.",
    "receiver_relp_reading_paused_total": "Times reading from a RELP sender paused, by reason.",
    "receiver_relp_frames_refused_total": "RELP frames answered 500, by reason.",
    "receiver_delivery_memory_restarts_total": "Delivery restarts over [limits] delivery_memory_limit_bytes.",
    "receiver_backpressure_changes_total": "Times TCP reading paused or resumed.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{key}="{_escape(str(value))}"' for key, value in pairs)
    return f"{{{text}}}" if text else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Families:
    """Samples grouped by family, each family with its HELP and TYPE once."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, labels: Iterable[tuple[str, str]] = (),
            suffix: str = "") -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        family[2].append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        out = []
        for name, (kind, help_text, samples) in self._families.items():
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + "\n"


def render(
    *,
    counters: Mapping[tuple[str, tuple[tuple[str, str], ...]], int],
    spool: SpoolMeta | None,
    cursors: Mapping[str, int],
    delivery: Mapping[str, Any] | None,
    now_ns: int,
    process: Mapping[str, float],
) -> str:
    """The exposition text for these figures."""
    f = _Families()
    for (name, labels), value in sorted(counters.items()):
        kind = "counter" if name.endswith("_total") else "gauge"
        f.add(name, kind, _HELP.get(name, name.replace("_", " ") + "."), value, labels)
    opened = sum(v for (n, _), v in counters.items() if n == "receiver_connections_opened_total")
    closed = sum(v for (n, _), v in counters.items() if n == "receiver_connections_closed_total")
    f.add("receiver_connections_open", "gauge", "TCP connections open now.", opened - closed)
    if spool is not None:
        f.add("receiver_spool_segments", "gauge", "Segments the spool holds.", spool.segments)
        f.add("receiver_spool_frames", "gauge", "Frames the spool holds.", spool.frames)
        f.add("receiver_spool_stored_bytes", "gauge", "Bytes the spool holds on disk.", spool.stored_bytes)
        age = (now_ns - spool.oldest_receive_time_ns) / 1e9 if spool.oldest_receive_time_ns else 0.0
        f.add("receiver_spool_oldest_age_seconds", "gauge", "Age of the oldest frame the spool holds.", max(0.0, age))
        for sink, seq in sorted(cursors.items()):
            lag = max(0, spool.next_seq - 1 - seq)
            f.add("receiver_sink_lag_segments", "gauge", "Segments committed that the sink has not delivered.",
                  lag, [("sink", sink)])
    sinks = (delivery or {}).get("sinks") or {}
    if delivery is not None:
        age = (now_ns - int(delivery.get("time_ns", now_ns))) / 1e9
        f.add("receiver_delivery_stats_age_seconds", "gauge",
              "Age of the delivery process's last report (it reports every 2 s).", max(0.0, age))
    for sink, s in sorted(sinks.items()):
        label = [("sink", sink)]
        f.add("receiver_sink_delivered_records_total", "counter", "Records the upstream accepted.",
              s.get("delivered_records", 0), label)
        f.add("receiver_sink_delivered_requests_total", "counter", "Requests (groups) the upstream accepted.",
              s.get("delivered_groups", 0), label)
        f.add("receiver_sink_retries_total", "counter", "Requests retried after a transient answer.",
              s.get("retried", 0), label)
        f.add("receiver_sink_dead_lettered_records_total", "counter",
              "Records the upstream rejected for good, kept as dead letters.", s.get("dead_lettered_records", 0), label)
        f.add("receiver_sink_concurrency", "gauge", "Requests the sink may have in flight now.",
              s.get("concurrency", 1), label)
        f.add("receiver_sink_backing_off", "gauge", "1 while the sink waits to retry.",
              1 if (s.get("backoff_until_ns") or 0) > now_ns else 0, label)
        if s.get("last_success_ns"):
            f.add("receiver_sink_last_success_timestamp_seconds", "gauge", "When the upstream last accepted.",
                  s["last_success_ns"] / 1e9, label)
        f.add("receiver_records_unknown_tag_total", "counter",
              "Records whose streamlog tag no route names (sent to the default sink).", s.get("unknown_tags", 0), label)
        f.add("receiver_records_dropped_total", "counter", "Records a drop route took.", s.get("dropped", 0), label)
        f.add("receiver_records_filter_errors_total", "counter",
              "Records a route's filter failed on (sent to the default sink).", s.get("filter_errors", 0), label)
        f.add("receiver_sink_damaged_dead_letters_total", "counter",
              "Replay files that were not dead letters, moved aside unsent.", s.get("damaged_dead_letters", 0), label)
        latency = s.get("latency") or {}
        counts = latency.get("counts") or []
        if len(counts) == len(LATENCY_BUCKETS) + 1:
            name = "receiver_sink_latency_seconds"
            help_text = "Records by time from receipt to the upstream's acknowledgement."
            running = 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else _number(bound)
                f.add(name, "histogram", help_text, running, [*label, ("le", le)], suffix="_bucket")
            f.add(name, "histogram", help_text, latency.get("sum", 0.0), label, suffix="_sum")
            f.add(name, "histogram", help_text, latency.get("count", 0), label, suffix="_count")
    f.add("process_cpu_seconds_total", "counter", "The daemon's user and system CPU time.", process["cpu_seconds"])
    f.add("process_resident_memory_bytes", "gauge", "The daemon's resident memory.", process["resident_bytes"])
    f.add("process_max_resident_memory_bytes", "gauge", "The daemon's peak resident memory.",
          process["max_resident_bytes"])
    return f.text()


def process_figures() -> dict[str, float]:
    """This process's CPU seconds and resident memory, now and at its peak."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        resident = 0
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "resident_bytes": resident,
        "max_resident_bytes": usage.ru_maxrss * 1024,
    }


class MetricsResource(Resource):
    """``/metrics`` of a running :class:`~receiver.service.lifecycle.ReceiverService`."""

    isLeaf = True

    def __init__(self, service: Any) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request: Request) -> bytes:
        from receiver.deliver.stats import read_stats

        if request.path not in (b"/metrics", b"/metrics/"):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found: the metrics are at /metrics\n"
        service = self._service
        store = service.store
        text = render(
            counters=service.telemetry.counters,
            spool=store.meta if store is not None else None,
            cursors=store.cursors() if store is not None else {},
            delivery=read_stats(service.config.state_directory) if service.delivery is not None else None,
            now_ns=time.time_ns(),
            process=process_figures(),
        )
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return text.encode()
