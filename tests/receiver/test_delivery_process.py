"""The delivery process's steps (receiver/deliver/process.py) and its telemetry (receiver/deliver/telemetry.py),
without starting sinks: cursors settled at start, one round of the loop, the log lines it says."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.config.model import Config, LocalSinkConfig
from receiver.deliver.process import (
    ARROW_MEMORY_POOL,
    ENGINE_MALLOC_CONF,
    Delivery,
    main,
    settle_cursors,
)
from receiver.deliver.stats import read_stats
from receiver.deliver.telemetry import DeliveryTelemetry
from receiver.spool.segment import Entry, encode_segment, read_summary
from receiver.spool.store import SpoolStore

T0 = 1_795_323_666 * 10**9


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpoolStore]:
    """A spool holding segments 1 to 3."""
    store = SpoolStore(tmp_path / "spool")
    for n in range(3):
        blob = encode_segment([Entry(T0, "10.0.0.7", 1, "tcp", "tcp", [b"<13>m%d" % n])])
        store.append(blob, read_summary(blob))
    yield store
    store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestSettleCursors:
    def test_removed_sinks_forgotten_new_ones_get_everything(self, store: SpoolStore) -> None:
        """If a sink left the configuration and another joined it, then the first one's cursor is forgotten,
        the new one starts before the oldest segment held, and a sink that stays keeps its place."""
        store.set_cursor("gone", 3)
        store.set_cursor("kept", 2)
        settle_cursors(store, (LocalSinkConfig(name="kept"), LocalSinkConfig(name="new")))
        assert store.cursors() == {"kept": 2, "new": 0}


class TestCheck:
    def delivery(self, tmp_path: Path, store: SpoolStore) -> Delivery:
        config = Config(state_directory=tmp_path, listeners=())
        return Delivery(config, store, threading.Event())

    def test_a_sink_thread_that_ended_stops_delivery(
        self, tmp_path: Path, store: SpoolStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """If a sink's thread has ended while delivery runs, then the round says so, sets stop and reports a
        failure (the supervisor starts delivery again); the stats file is written all the same."""
        delivery = self.delivery(tmp_path, store)
        ended = threading.Thread(target=lambda: None, name="sink-local")
        ended.start()
        ended.join()
        delivery.threads = [ended]
        with caplog.at_level(logging.ERROR, logger="receiver.deliver"):
            assert delivery.check() is False
        assert delivery.stop.is_set()
        assert caplog.messages == ["delivery: sink-local stopped unexpectedly; restarting delivery"]
        assert read_stats(tmp_path) is not None

    def test_running_sinks_go_on(self, tmp_path: Path, store: SpoolStore) -> None:
        """If every sink's thread runs, then the round goes on without setting stop."""
        delivery = self.delivery(tmp_path, store)
        running = threading.Thread(target=delivery.stop.wait, name="sink-local")
        running.start()
        delivery.threads = [running]
        try:
            assert delivery.check() is True
            assert not delivery.stop.is_set()
        finally:
            delivery.stop.set()
            running.join()


class TestDeliveryTelemetry:
    def test_routing_counts_said_once_a_minute(self, caplog: pytest.LogCaptureFixture) -> None:
        """If records without a route keep coming, then the first ones are said at once and the rest a minute
        later, in one line with how many came since; a quiet minute says nothing."""
        clock = Clock()
        telemetry = DeliveryTelemetry(default_sink="local", clock=clock)
        with caplog.at_level(logging.INFO, logger="receiver.deliver"):
            telemetry.routed(unknown_tags=5, dropped=0)
            clock.now += 1
            telemetry.routed(unknown_tags=7, dropped=2)
            clock.now += 30
            telemetry.routed(unknown_tags=9, dropped=2)
            clock.now += 30
            telemetry.routed(unknown_tags=9, dropped=2)
            clock.now += 60
            telemetry.routed(unknown_tags=9, dropped=2)
        assert caplog.messages == [
            "delivery: 5 records had a streamlog tag no route names; they went to the default sink 'local'",
            "delivery: routes with drop = true dropped 2 records",
            "delivery: 4 records had a streamlog tag no route names; they went to the default sink 'local'",
        ]

    def test_stats_that_cannot_be_written_are_said(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """If the stats file cannot be written (its directory is gone, the disk is full), then a warning says so
        and delivery goes on."""
        with caplog.at_level(logging.WARNING, logger="receiver.deliver"):
            DeliveryTelemetry(default_sink="local").write_stats(tmp_path / "gone", {"local": {}})
        assert [r.message.split(":")[0] for r in caplog.records] == ["delivery"]
        assert "cannot write its stats file" in caplog.text


def test_batches_read_the_sinks_own_number_of_segments_unless_deliver_says() -> None:
    """If ``[deliver] segments_per_batch`` is 0 (the default), then the local store's, SLS's and HTTP's batches
    read 16 segments (one part to merge later; fewer requests for a relay's hosts) and ClickHouse's 8; if it
    is set, every sink reads that."""
    import dataclasses

    from receiver.config.model import default_config
    from receiver.deliver.process import batch_segments
    from receiver.deliver.sinks.clickhouse import ClickHouseSink
    from receiver.deliver.sinks.http import HttpSink
    from receiver.deliver.sinks.local.sink import LocalSink
    from receiver.deliver.sinks.sls.sink import SlsSink

    config = default_config()
    assert config.deliver.segments_per_batch == 0
    for sink in (LocalSink, SlsSink, HttpSink):  # the class says it
        assert batch_segments(config, sink) == 16  # type: ignore[arg-type]
    assert batch_segments(config, ClickHouseSink) == 8  # type: ignore[arg-type]
    told = dataclasses.replace(config, deliver=dataclasses.replace(config.deliver, segments_per_batch=4))
    assert batch_segments(told, LocalSink) == batch_segments(told, HttpSink) == 4  # type: ignore[arg-type]


def test_build_processes_leave_the_engine_a_core_when_the_local_store_is_a_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If ``[deliver] build_processes`` is 0 (the default), then there is a worker per core, but one fewer when
    the local store is a sink (its engine inserts and merges on that core), and never none; a number set is kept."""
    import dataclasses
    import os

    from receiver.config.model import HttpSinkConfig, default_config
    from receiver.deliver.process import build_processes

    config = default_config()
    http = dataclasses.replace(config, sinks=(HttpSinkConfig(name="h", url="http://127.0.0.1:9/"),))
    both = dataclasses.replace(config, sinks=(*config.sinks, *http.sinks))
    for cores, local, other in ((4, 3, 4), (2, 1, 2), (1, 1, 1)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert (build_processes(config), build_processes(both), build_processes(http)) == (local, local, other)
    told = dataclasses.replace(config, deliver=dataclasses.replace(config.deliver, build_processes=3))
    assert build_processes(told) == 3


@pytest.mark.parametrize("operators", [None, ("", "mimalloc")])
def test_the_allocators_get_their_settings_unless_the_operator_set_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, operators: tuple[str, str] | None
) -> None:
    """If the delivery process starts without JE_MALLOC_CONF and ARROW_DEFAULT_MEMORY_POOL, then it sets
    the embedded store's and Arrow's (before either loads; its workers inherit the environment); an
    operator's own settings are left as they are."""
    for name, value in zip(("JE_MALLOC_CONF", "ARROW_DEFAULT_MEMORY_POOL"), operators or (None, None), strict=True):
        monkeypatch.setenv(name, "")  # (recorded first, so that what main() sets is undone after the test)
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    assert main(["--snapshot", str(tmp_path / "none.json")]) == 2  # stops at the missing configuration
    assert (os.environ["JE_MALLOC_CONF"], os.environ["ARROW_DEFAULT_MEMORY_POOL"]) == (
        operators or (ENGINE_MALLOC_CONF, ARROW_MEMORY_POOL)
    )


@pytest.mark.parametrize(("operators", "reused"), [(None, True), ("mimalloc", False), ("jemalloc", False)])
def test_the_workers_reuse_memory_unless_the_operator_chose_arrows_pool(
    monkeypatch: pytest.MonkeyPatch, operators: str | None, reused: bool
) -> None:
    """If the environment names no Arrow pool, then the delivery process starts its build workers on
    the allocators that reuse a batch's memory; if the operator named one (even the delivery process's
    own), then the workers keep it."""
    import signal

    from receiver.deliver import process

    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "")  # (recorded, so that what main() sets is undone)
    if operators is None:
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
    else:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", operators)
    monkeypatch.setenv("JE_MALLOC_CONF", "")
    asked: list[bool] = []
    monkeypatch.setattr(process, "set_up_process", lambda config: None)  # (no umask or logging of its own here)
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)

    def run_delivery(config: Config, stop: threading.Event, *, reuse_memory: bool) -> int:
        asked.append(reuse_memory)
        return 0

    monkeypatch.setattr(process, "run_delivery", run_delivery)
    assert main([]) == 0
    assert asked == [reused]
