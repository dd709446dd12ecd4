"""The delivery process: one worker thread per sink, reading the spool the daemon writes.

    python -m receiver.deliver.process [-c FILE | --snapshot FILE]

``receiver run`` starts and supervises it (receiver/deliver/supervisor.py)
with ``--snapshot``: the configuration the daemon runs, as it wrote it to its
state directory. With ``-c`` (or neither: the built-in defaults) it can run
on its own, e.g. to catch up on a spool after the daemon stopped. SIGTERM
stops it between requests; its cursors are in the spool.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from receiver.config.model import Config, SinkConfig
from receiver.config.snapshot import SnapshotError, read_snapshot
from receiver.deliver.batches import pack_id_prefix
from receiver.deliver.building import (
    BatchBuilder,
    Built,
    Segments,
    SinkPlan,
    build_in_worker,
    start_pool,
)
from receiver.deliver.dead_letters import DeadLetters
from receiver.deliver.registry import build_sink, column_encoder, payload_encoder
from receiver.deliver.stats import write_stats
from receiver.deliver.worker import SinkWorker, full_jitter_backoff
from receiver.runtime.process import load_or_report, set_up_process
from receiver.spool.store import SpoolStore

__all__ = ["build_processes", "main", "run_delivery"]

log = logging.getLogger("receiver.deliver")

_SPOOL_WAIT_SECONDS = 30.0
_STATS_EVERY_SECONDS = 2.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="receiver-deliver", description="Deliver spooled frames to the sinks.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", type=Path, help="a configuration file")
    source.add_argument("--snapshot", type=Path, help="the configuration a running daemon wrote (running-config.json)")
    parser.add_argument(
        "--exit-with-parent", action="store_true",
        help="stop when standard input closes (the supervising daemon holds its other end, so it closes "
        "when the daemon dies, even by kill -9)",
    )
    args = parser.parse_args(argv)
    if args.snapshot is not None:
        try:
            config: Config | None = read_snapshot(args.snapshot)
        except (OSError, SnapshotError) as e:
            print(f"receiver-deliver: cannot read the daemon's configuration {args.snapshot}: {e}", file=sys.stderr)
            return 2
    else:
        config = load_or_report(args.config, "receiver-deliver")
    if config is None:
        return 2
    set_up_process(config)  # the file modes are the daemon's already; set again when run on its own
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("delivery: stopping after the requests in flight")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_with_parent:
        threading.Thread(target=_stop_at_eof, args=(stop,), name="parent-watch", daemon=True).start()
    return run_delivery(config, stop)


def _stop_at_eof(stop: threading.Event) -> None:
    """Set ``stop`` when standard input ends: the daemon that started this process is gone."""
    # os.read, not sys.stdin: a daemon thread blocked in a buffered reader aborts interpreter shutdown.
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    if not stop.is_set():
        log.warning("delivery: the receiver daemon is gone; stopping")
        stop.set()


def _open_spool(directory: Path, stop: threading.Event) -> SpoolStore | None:
    deadline = time.monotonic() + _SPOOL_WAIT_SECONDS
    failures = 0
    while not stop.is_set():
        try:
            return SpoolStore(directory, readonly=True)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                log.error("delivery: no spool in %s after %g s; is the daemon running?", directory, _SPOOL_WAIT_SECONDS)
                return None
            stop.wait(0.2)
        except sqlite3.OperationalError as e:
            # Opening writes a little (diskcache's settings): on a full disk, wait for room rather
            # than exit and be restarted over and over.
            failures += 1
            if failures in (1, 10) or failures % 100 == 0:
                log.error("delivery: cannot open the spool in %s (%s; is its disk full?); retrying", directory, e)
            stop.wait(1.0)
    return None


def _write_stats(config: Config, workers: Sequence[SinkWorker]) -> None:
    try:
        write_stats(config.state_directory, {
            "time_ns": time.time_ns(), "pid": os.getpid(),
            "sinks": {worker.sink.name: worker.snapshot() for worker in list(workers)},
        })
    except OSError as e:  # a full disk: the stats wait, delivery does not
        log.warning("delivery: cannot write its stats file: %s", e)


def build_processes(config: Config) -> int:
    """How many worker processes build and encode batches (``[deliver] build_processes``; 0: one per core)."""
    return config.deliver.build_processes or os.cpu_count() or 1


def run_delivery(config: Config, stop: threading.Event) -> int:
    """Run every sink's worker until ``stop`` is set; returns the exit status."""
    store = _open_spool(config.spool_directory, stop)
    if store is None:
        return 0 if stop.is_set() else 1
    dead_letters = DeadLetters(config.state_directory / "dead-letters")
    spool_id = store.spool_id()
    configured = {sink.name for sink in config.sinks}
    for name, seq in store.cursors().items():
        if name not in configured:
            log.warning("delivery: sink %r is no longer configured: forgetting its cursor (segment %d)", name, seq)
            store.delete_cursor(name)
    processes = build_processes(config)
    pool = start_pool(config, processes) if any(payload_encoder(s) for s in config.sinks) else None
    workers: list[SinkWorker] = []

    def worker_for(sink_config: SinkConfig, builder_thread: ThreadPoolExecutor) -> SinkWorker:
        sink = build_sink(sink_config, config)
        plan = SinkPlan(
            sink.name, pack_id_prefix(spool_id, sink.name), sink.max_records, sink.max_bytes,
            payload_encoder(sink_config), column_encoder(sink_config),
        )
        builder = BatchBuilder(config)  # this sink's own: its router counts unknown tags for this sink alone
        rebuild = functools.partial(builder.build, plan)
        executor: Executor = builder_thread
        ahead = 1
        build: Callable[[SinkPlan, int, Segments], Built] = builder.build
        if pool is not None and plan.encoder is not None:
            executor, build = pool, build_in_worker
            ahead = processes + 1  # every worker busy, and one batch ready to send

        def build_batch(first_seq: int, segments: Segments) -> Future[Built]:
            return executor.submit(build, plan, first_seq, segments)

        return SinkWorker(
            sink, SpoolStore(config.spool_directory, readonly=True), build_batch=build_batch, rebuild=rebuild,
            dead_letters=dead_letters, backoff=full_jitter_backoff(),
            segments_per_batch=config.deliver.segments_per_batch,
            poll_seconds=config.deliver.poll_interval_ms / 1000,
            max_concurrency=getattr(sink_config, "concurrency", 1),  # the local store takes one writer
            batches_ahead=ahead,
        )

    def run_sink(sink_config: SinkConfig) -> None:
        # A sink that cannot start (a key file missing, a bad endpoint) holds back only
        # itself: its cursor stays and the spool keeps its records until it can.
        attempt = 0
        with ThreadPoolExecutor(1, thread_name_prefix=f"build-{sink_config.name}") as builder_thread:
            while not stop.is_set():
                try:
                    worker = worker_for(sink_config, builder_thread)
                    break
                except Exception as e:  # reported and retried; the other sinks go on
                    attempt += 1
                    wait = min(300.0, 5.0 * 2 ** min(attempt - 1, 6))
                    log.error("%s: cannot start (%s); retrying in %.0f s", sink_config.name, e, wait)
                    stop.wait(wait)
            else:
                return
            workers.append(worker)
            try:
                worker.run(stop)
            finally:
                worker.sink.close()

    for sink_config in config.sinks:
        if sink_config.name not in store.cursors():
            store.set_cursor(sink_config.name, store.refresh().first_seq - 1)  # a new sink gets everything held
    threads = [threading.Thread(target=run_sink, args=(s,), name=f"sink-{s.name}") for s in config.sinks]
    for thread in threads:
        thread.start()
    log.info(
        "delivery: %d sinks (%s)%s", len(threads), ", ".join(s.name for s in config.sinks),
        f"; {processes} worker processes build and encode batches" if pool is not None else "",
    )
    status = 0
    reported_unknown = reported_dropped = 0
    next_unknown_report = next_dropped_report = 0.0
    next_stats = 0.0
    while not stop.wait(1.0):
        if time.monotonic() >= next_stats:
            next_stats = time.monotonic() + _STATS_EVERY_SECONDS
            _write_stats(config, workers)
        dead = [t.name for t in threads if not t.is_alive()]
        if dead:
            # A worker can only end by a bug: end the process, the supervisor restarts it.
            log.error("delivery: %s stopped unexpectedly; restarting delivery", ", ".join(dead))
            stop.set()
            status = 1
        # Every sink routes every record, so each counts the same unknown tags: take the largest.
        unknown = max((w.unknown_tags for w in workers), default=0)
        if unknown != reported_unknown and time.monotonic() >= next_unknown_report:
            log.warning(
                "delivery: %d records had a streamlog tag no route names; they went to the default sink %r",
                unknown - reported_unknown, config.deliver.default_sink,
            )
            reported_unknown = unknown
            next_unknown_report = time.monotonic() + 60.0
        dropped = max((w.dropped for w in workers), default=0)
        if dropped != reported_dropped and time.monotonic() >= next_dropped_report:
            log.info("delivery: routes with drop = true dropped %d records", dropped - reported_dropped)
            reported_dropped = dropped
            next_dropped_report = time.monotonic() + 60.0
    for thread in threads:
        thread.join()
    _write_stats(config, workers)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    store.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
