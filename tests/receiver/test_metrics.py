"""The Prometheus exposition: every family once with HELP and TYPE, histograms cumulative, labels escaped."""

from __future__ import annotations

import re

from receiver.deliver.stats import LATENCY_BUCKETS, Histogram
from receiver.service.metrics import render
from receiver.spool.store import SpoolMeta

NOW = 1_795_323_666 * 10**9
SAMPLE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$')


def parse(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """TYPE by family, and value by sample line; fails on any line that is neither."""
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name} declared twice"
            types[name] = kind
            continue
        assert SAMPLE.match(line), line
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return types, samples


def delivery() -> dict[str, object]:
    latency = Histogram()
    latency.observe(0.03, 10)
    latency.observe(2.0, 5)
    return {
        "time_ns": NOW - 10**9,
        "sinks": {
            'sls"x': {
                "delivered_records": 15, "delivered_groups": 2, "retried": 3, "dead_lettered_records": 1,
                "last_success_ns": NOW, "backoff_until_ns": NOW + 10**9, "concurrency": 2,
                "unknown_tags": 4, "dropped": 0, "latency": latency.to_dict(),
            }
        },
    }


def test_every_family_and_sample() -> None:
    """If ingest counters, the spool, cursors and delivery stats are rendered, then the text parses as the
    exposition format and holds each figure."""
    counters = {
        ("receiver_frames_received_total", (("listener", "tcp-11111"),)): 100,
        ("receiver_connections_opened_total", (("listener", "tcp-11111"),)): 3,
        ("receiver_connections_closed_total", (("listener", "tcp-11111"),)): 1,
    }
    meta = SpoolMeta(first_seq=5, next_seq=11, segments=6, frames=100, stored_bytes=4096,
                     oldest_receive_time_ns=NOW - 30 * 10**9)
    text = render(counters=counters, spool=meta, cursors={'sls"x': 7}, delivery=delivery(), now_ns=NOW,
                  process={"cpu_seconds": 1.5, "resident_bytes": 1 << 20, "max_resident_bytes": 2 << 20})
    types, samples = parse(text)
    assert types["receiver_frames_received_total"] == "counter"
    assert types["receiver_sink_latency_seconds"] == "histogram"
    assert samples['receiver_frames_received_total{listener="tcp-11111"}'] == 100
    assert samples["receiver_connections_open"] == 2
    assert samples["receiver_spool_oldest_age_seconds"] == 30
    assert samples['receiver_sink_lag_segments{sink="sls\\"x"}'] == 3
    assert samples['receiver_sink_retries_total{sink="sls\\"x"}'] == 3
    assert samples['receiver_sink_backing_off{sink="sls\\"x"}'] == 1
    assert samples["receiver_delivery_stats_age_seconds"] == 1
    buckets = [samples[f'receiver_sink_latency_seconds_bucket{{sink="sls\\"x",le="{b:g}"}}'] for b in LATENCY_BUCKETS]
    assert buckets == sorted(buckets) and buckets[LATENCY_BUCKETS.index(0.05)] == 10
    assert samples['receiver_sink_latency_seconds_bucket{sink="sls\\"x",le="+Inf"}'] == 15
    assert samples['receiver_sink_latency_seconds_count{sink="sls\\"x"}'] == 15
    assert samples["process_resident_memory_bytes"] == 1 << 20


def test_without_delivery_or_spool() -> None:
    """If delivery is off and the spool not open, then the text still parses, without sink families."""
    text = render(counters={}, spool=None, cursors={}, delivery=None, now_ns=NOW,
                  process={"cpu_seconds": 0.0, "resident_bytes": 0, "max_resident_bytes": 0})
    types, _ = parse(text)
    assert not any(name.startswith("receiver_sink_") for name in types)
