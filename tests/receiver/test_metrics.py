"""The Prometheus exposition: every family once with HELP and TYPE, histograms cumulative, labels escaped.

The text is read back by prometheus_client's parser, written by other hands than ours: what it reads is
what Prometheus would scrape.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from receiver.deliver.stats import LATENCY_BUCKETS, Histogram
from receiver.deliver.telemetry import SINK_COUNTERS
from receiver.service.metrics import process_figures, render
from receiver.spool.store import SpoolMeta
from receiver.telemetry.names import FAMILIES, Family
from receiver.telemetry.names import ConnectionRefusal as Refusal

NOW = 1_795_323_666 * 10**9
PROCESS = {"cpu_seconds": 1.5, "resident_bytes": 1 << 20, "max_resident_bytes": 2 << 20}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Counters = dict[tuple[str, tuple[tuple[str, str], ...]], int]


def parse(text: str) -> tuple[dict[str, Family], Samples]:
    """Each family the text declares, as receiver/telemetry/names.py names it, and each sample's value
    by (sample name, sorted labels); fails on a family declared twice or one names.py does not name with
    the same type and help."""
    families: dict[str, Family] = {}
    samples: Samples = {}
    declared = [line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(declared) == len(set(declared)), "a family declared twice"
    for parsed in text_string_to_metric_families(text):
        # The parser drops a counter's _total from the family's name; its samples keep it.
        name = parsed.name + "_total" if parsed.type == "counter" else parsed.name
        family = FAMILIES[name]
        assert (parsed.type, parsed.documentation) == (family.kind, family.help), name
        families[name] = family
        for sample in parsed.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert sorted(families) == sorted(declared)
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


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


def render_all(counters: Mapping[tuple[str, tuple[tuple[str, str], ...]], int]) -> str:
    meta = SpoolMeta(first_seq=5, next_seq=11, segments=6, frames=100, stored_bytes=4096,
                     oldest_receive_time_ns=NOW - 30 * 10**9)
    return render(counters=counters, spool=meta, cursors={'sls"x': 7}, delivery=delivery(), now_ns=NOW,
                  process=PROCESS)


def test_every_family_and_sample() -> None:
    """If ingest counters, the spool, cursors and delivery stats are rendered, then the text parses as the
    exposition format and holds each figure."""
    counters: Counters = {
        ("receiver_frames_received_total", (("listener", "tcp-11111"),)): 100,
        ("receiver_connections_opened_total", (("listener", "tcp-11111"),)): 3,
        ("receiver_connections_closed_total", (("listener", "tcp-11111"),)): 1,
    }
    families, samples = parse(render_all(counters))
    assert families["receiver_frames_received_total"].kind == "counter"
    assert families["receiver_sink_latency_seconds"].kind == "histogram"
    assert value(samples, "receiver_frames_received_total", listener="tcp-11111") == 100
    assert value(samples, "receiver_connections_open") == 2
    assert value(samples, "receiver_spool_oldest_age_seconds") == 30
    sink = 'sls"x'  # a quote in a label value, escaped in the text and read back whole
    assert value(samples, "receiver_sink_lag_segments", sink=sink) == 3
    assert value(samples, "receiver_sink_retries_total", sink=sink) == 3
    assert value(samples, "receiver_records_unknown_tag_total", sink=sink) == 4
    assert value(samples, "receiver_sink_backing_off", sink=sink) == 1
    assert value(samples, "receiver_delivery_stats_age_seconds") == 1
    buckets = [value(samples, "receiver_sink_latency_seconds_bucket", sink=sink, le=f"{b:g}") for b in LATENCY_BUCKETS]
    assert buckets == sorted(buckets) and buckets[LATENCY_BUCKETS.index(0.05)] == 10
    assert value(samples, "receiver_sink_latency_seconds_bucket", sink=sink, le="+Inf") == 15
    assert value(samples, "receiver_sink_latency_seconds_count", sink=sink) == 15
    assert value(samples, "process_resident_memory_bytes") == 1 << 20


def test_reason_codes_are_label_values() -> None:
    """If connections were refused for several reasons, then each reason is one series, its code the value."""
    counters: Counters = {
        ("receiver_connections_refused_total", (("listener", "tls"), ("reason", Refusal.TLS_HANDSHAKE_FAILED))): 4,
        ("receiver_connections_refused_total", (("listener", "tls"), ("reason", Refusal.NOT_ALLOWED))): 1,
    }
    _, samples = parse(render_all(counters))
    assert value(samples, "receiver_connections_refused_total", listener="tls", reason="tls_handshake_failed") == 4
    assert value(samples, "receiver_connections_refused_total", listener="tls", reason="not_allowed") == 1


def test_every_sink_counter_is_shown() -> None:
    """If the stats file holds a sink, then every sink counter of the delivery telemetry is a family of the text."""
    families, _ = parse(render_all({}))
    assert {family.name for family, _ in SINK_COUNTERS} <= set(families)


def test_a_counter_no_family_names_is_refused() -> None:
    """If a counter has a name receiver/telemetry/names.py does not give, then render says so."""
    with pytest.raises(KeyError, match="receiver_made_up_total"):
        render_all({("receiver_made_up_total", ()): 1})


def test_without_delivery_or_spool() -> None:
    """If delivery is off and the spool not open, then the text still parses, without sink families."""
    text = render(counters={}, spool=None, cursors={}, delivery=None, now_ns=NOW,
                  process={"cpu_seconds": 0.0, "resident_bytes": 0, "max_resident_bytes": 0})
    families, _ = parse(text)
    assert not any(name.startswith("receiver_sink_") for name in families)


def test_process_figures() -> None:
    """If the daemon's own figures are read, then they are those of a live process: CPU spent, memory held,
    a peak at least the current."""
    figures = process_figures()
    assert figures["cpu_seconds"] > 0
    assert 0 < figures["resident_bytes"] <= figures["max_resident_bytes"]
