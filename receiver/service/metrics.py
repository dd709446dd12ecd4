"""Prometheus metrics: the text exposition format at ``/metrics``, served by the daemon.

What is exposed (every family is named, with its type and help, in
receiver/telemetry/names.py; docs/metrics.md explains each):

- ingest and spool counters, as the daemon's :class:`~receiver.telemetry.events.Telemetry`
  counts them (connections, frames and bytes received, truncated, refused,
  UDP drops, commits, backpressure, discards), with their labels;
- gauges read at scrape time: open connections, what the spool holds and
  the age of its oldest frame, each sink's cursor lag in segments;
- each sink's delivery counters, state and receipt-to-acknowledged latency
  histogram, from the delivery process's stats file (receiver/deliver/stats.py);
- the daemon's own CPU seconds and resident memory (psutil, as the guard reads them).

:func:`render` is a pure function of those inputs; :class:`MetricsResource`
gathers them on each scrape.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from receiver.deliver.stats import LATENCY_BUCKETS, read_stats
from receiver.deliver.telemetry import SINK_COUNTERS
from receiver.service.guard import cpu_seconds, resident_bytes
from receiver.spool.store import SpoolMeta
from receiver.telemetry import names
from receiver.telemetry.names import Family

__all__ = ["CONTENT_TYPE", "MetricsResource", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{key}="{_escape(str(value))}"' for key, value in pairs)
    return f"{{{text}}}" if text else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Families:
    """Samples grouped by family, each family with its HELP and TYPE (from receiver/telemetry/names.py) once."""

    def __init__(self) -> None:
        self._families: dict[Family, list[str]] = {}

    def add(self, family: Family, value: float, labels: Iterable[tuple[str, str]] = (), suffix: str = "") -> None:
        self._families.setdefault(family, []).append(f"{family.name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        out = []
        for family, samples in self._families.items():
            out.append(f"# HELP {family.name} {family.help}")
            out.append(f"# TYPE {family.name} {family.kind}")
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
    """The exposition text for these figures; every name in ``counters`` is a family of names.FAMILIES."""
    f = _Families()
    for (name, labels), value in sorted(counters.items()):
        f.add(names.FAMILIES[name], value, labels)
    opened = sum(v for (n, _), v in counters.items() if n == names.CONNECTIONS_OPENED.name)
    closed = sum(v for (n, _), v in counters.items() if n == names.CONNECTIONS_CLOSED.name)
    f.add(names.CONNECTIONS_OPEN, opened - closed)
    if spool is not None:
        _spool(f, spool, cursors, now_ns)
    if delivery is not None:
        age = (now_ns - int(delivery.get("time_ns", now_ns))) / 1e9
        f.add(names.DELIVERY_STATS_AGE, max(0.0, age))
        for sink, figures in sorted((delivery.get("sinks") or {}).items()):
            _sink(f, sink, figures, now_ns)
    f.add(names.PROCESS_CPU_SECONDS, process["cpu_seconds"])
    f.add(names.PROCESS_RESIDENT_MEMORY, process["resident_bytes"])
    f.add(names.PROCESS_MAX_RESIDENT_MEMORY, process["max_resident_bytes"])
    return f.text()


def _spool(f: _Families, spool: SpoolMeta, cursors: Mapping[str, int], now_ns: int) -> None:
    """What the spool holds, and each sink's lag behind it."""
    f.add(names.SPOOL_SEGMENTS, spool.segments)
    f.add(names.SPOOL_FRAMES, spool.frames)
    f.add(names.SPOOL_STORED_BYTES, spool.stored_bytes)
    age = (now_ns - spool.oldest_receive_time_ns) / 1e9 if spool.oldest_receive_time_ns else 0.0
    f.add(names.SPOOL_OLDEST_AGE, max(0.0, age))
    for sink, seq in sorted(cursors.items()):
        f.add(names.SINK_LAG_SEGMENTS, max(0, spool.next_seq - 1 - seq), [("sink", sink)])


def _sink(f: _Families, sink: str, figures: Mapping[str, Any], now_ns: int) -> None:
    """One sink's figures from the delivery process's stats file."""
    label = [("sink", sink)]
    for family, key in SINK_COUNTERS:
        f.add(family, figures.get(key, 0), label)
    f.add(names.SINK_CONCURRENCY, figures.get("concurrency", 1), label)
    f.add(names.SINK_BACKING_OFF, 1 if (figures.get("backoff_until_ns") or 0) > now_ns else 0, label)
    if figures.get("last_success_ns"):
        f.add(names.SINK_LAST_SUCCESS, figures["last_success_ns"] / 1e9, label)
    latency = figures.get("latency") or {}
    counts = latency.get("counts") or []
    if len(counts) == len(LATENCY_BUCKETS) + 1:
        running = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else _number(bound)
            f.add(names.SINK_LATENCY, running, [*label, ("le", le)], suffix="_bucket")
        f.add(names.SINK_LATENCY, latency.get("sum", 0.0), label, suffix="_sum")
        f.add(names.SINK_LATENCY, latency.get("count", 0), label, suffix="_count")


def process_figures() -> dict[str, float]:
    """This process's CPU seconds and resident memory, now and at its peak."""
    resident = resident_bytes()
    # psutil has no peak; getrusage has the kernel's high-water mark (KiB on Linux), which the kernel
    # updates lazily: it can lag the resident figure just read.
    peak = max(resident, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"cpu_seconds": cpu_seconds(), "resident_bytes": resident, "max_resident_bytes": peak}


class MetricsResource(Resource):
    """``/metrics`` of a running :class:`~receiver.service.lifecycle.ReceiverService`."""

    isLeaf = True

    def __init__(self, service: Any) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request: Request) -> bytes:
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
