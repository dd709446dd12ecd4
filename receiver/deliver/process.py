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

from receiver.config.model import Config, LocalSinkConfig, SinkConfig
from receiver.config.snapshot import SnapshotError, read_snapshot
from receiver.deliver.batches import pack_id_prefix
from receiver.deliver.building import (
    BatchBuilder,
    Built,
    Segments,
    SinkPlan,
    build_in_worker,
    start_pool,
    warm_pool,
    worker_modules,
)
from receiver.deliver.dead_letters import DeadLetters
from receiver.deliver.outcomes import Sink
from receiver.deliver.registry import build_sink, column_encoder, payload_encoder
from receiver.deliver.telemetry import DeliveryTelemetry
from receiver.deliver.worker import SEGMENTS_PER_BATCH, SinkWorker, full_jitter_backoff
from receiver.runtime.process import load_or_report, set_up_process
from receiver.spool.store import SpoolStore

__all__ = [
    "ARROW_MEMORY_POOL",
    "ENGINE_MALLOC_CONF",
    "Delivery",
    "batch_segments",
    "build_processes",
    "main",
    "run_delivery",
    "settle_cursors",
]

log = logging.getLogger("receiver.deliver")

_SPOOL_WAIT_SECONDS = 30.0
_MERGING_BATCHES_AHEAD = 8
"""Batches built ahead for a sink that merges a stream's groups across them (SLS, HTTP): while sending is
what holds delivery back (a fleet of thousands of hosts, a request a host a batch), the batches
built meanwhile go with the next, each host's lines in one request. 2,000 hosts' million lines:
52,000 requests and 25,236 lines a second with none merged, 16,000 and 66,065 with up to 8 (3 at
most: 36,000 and 34,502); the delivery process held 264 MB at its peak instead of 139."""
_STATS_EVERY_SECONDS = 2.0
ENGINE_MALLOC_CONF = "oversize_threshold:1048576"
"""The embedded store's allocator (chDB's jemalloc reads ``JE_MALLOC_CONF`` when it loads): allocations
of 1 MiB and more, an insert's and a merge's column buffers, come from an arena that gives its pages
back as they are freed, instead of the arenas that keep freed pages for seconds. Under a flood into the
local store the delivery tree's peak Pss_Anon fell from 669-741 to 574-592 MB for ALI lines and from
739-800 to 587-623 for RFC 3164, for 8-10% of the store's rate (delivery_bench, alternating, 2026-12-07;
2 MiB: 605-620 MB for ALI, 4 MiB: 642-657). It still costs that: since merges take at most 10 parts, a
2M-line ALI flood's tree peaks at 465-485 MB with it and 542-561 without, at 207-226k against 226-247k
lines a second, and a flood of the store alone costs 4.1-4.6 CPU-us a row instead of 3.6, with 18 times
the page faults (``local_store_bench --flood-records 4000000``). ``dirty_decay_ms:1000`` instead ran as
fast as the built-in settings, but an RFC 5424 flood's tree reached 580-627 MB. The default keeps every
format under the 600 MB the delivery side is given. Set when the environment has no ``JE_MALLOC_CONF``:
an operator's own setting wins (an empty one keeps the engine's built-in settings)."""
ARROW_MEMORY_POOL = "jemalloc"
"""Arrow's allocator in the delivery process (``ARROW_DEFAULT_MEMORY_POOL``), where Arrow holds the local
store's batches on their way in: its jemalloc gives pages back a second after they are freed, where the
default, mimalloc, kept what a flood batch had taken (the delivery tree's peak Pss_Anon under a flood
into the local store: 593-633 MB with mimalloc, 545-556 with jemalloc, 2026-12-07). The build workers
reuse their memory instead (:func:`receiver.deliver.building.start_pool`). A value the environment
already has wins, in the workers too."""


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
    # Before the store's engine and Arrow load, here and in the worker processes (which inherit them).
    os.environ.setdefault("JE_MALLOC_CONF", ENGINE_MALLOC_CONF)
    operators_arrow = "ARROW_DEFAULT_MEMORY_POOL" in os.environ
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_MEMORY_POOL)
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
    return run_delivery(config, stop, reuse_memory=not operators_arrow)


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


def build_processes(config: Config) -> int:
    """How many worker processes build and encode batches (``[deliver] build_processes``; 0: one per
    core, but for the one the embedded store's engine inserts and merges on when the local sink is
    configured, and at least one).

    The engine, not the workers, bounds the local store: one worker builds its batches in under half
    the time the engine takes to insert them, and a second only holds a batch's memory (130-190 MB
    under a flood) and takes the engine's core.
    """
    if config.deliver.build_processes:
        return config.deliver.build_processes
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    engine = any(isinstance(sink, LocalSinkConfig) for sink in config.sinks)
    return max(1, cores - engine)


def run_delivery(config: Config, stop: threading.Event, *, reuse_memory: bool = True) -> int:
    """Run every sink's worker until ``stop`` is set; returns the exit status (``reuse_memory``: see
    :func:`receiver.deliver.building.start_pool`)."""
    store = _open_spool(config.spool_directory, stop)
    if store is None:
        return 0 if stop.is_set() else 1
    delivery = Delivery(config, store, stop, reuse_memory=reuse_memory)
    delivery.start()
    status = delivery.watch()
    delivery.finish()
    return status


def settle_cursors(store: SpoolStore, sinks: Sequence[SinkConfig]) -> None:
    """Forget the cursors of sinks no longer configured; give a new sink everything the spool holds."""
    configured = {sink.name for sink in sinks}
    for name, seq in store.cursors().items():
        if name not in configured:
            log.warning("delivery: sink %r is no longer configured: forgetting its cursor (segment %d)", name, seq)
            store.delete_cursor(name)
    cursors = store.cursors()
    for sink in sinks:
        if sink.name not in cursors:
            store.set_cursor(sink.name, store.refresh().first_seq - 1)


def batch_segments(config: Config, sink: Sink) -> int:
    """How many spool segments ``sink``'s batches read: ``[deliver]``'s number, else the sink's own."""
    return config.deliver.segments_per_batch or getattr(sink, "segments_per_batch", SEGMENTS_PER_BATCH)


class Delivery:
    """One run of the delivery process, in steps: :meth:`start` a thread per sink, :meth:`watch` them
    until ``stop`` is set (each second: :meth:`check`), then :meth:`finish`."""

    def __init__(self, config: Config, store: SpoolStore, stop: threading.Event, *, reuse_memory: bool = True) -> None:
        self.config = config
        self.reuse_memory = reuse_memory
        self.store = store
        self.stop = stop
        self.telemetry = DeliveryTelemetry(default_sink=config.deliver.default_sink)
        self.workers: list[SinkWorker] = []
        self.threads: list[threading.Thread] = []
        self._dead_letters = DeadLetters(config.state_directory / "dead-letters")
        self._spool_id = store.spool_id()
        self._processes = build_processes(config)
        self._pool: Executor | None = None
        self._next_stats = 0.0

    # -- start ---------------------------------------------------------------

    def start(self) -> None:
        """Settle the cursors, start the build pool when a sink encodes in it, and a thread per sink."""
        config = self.config
        settle_cursors(self.store, config.sinks)
        encoders = [(payload_encoder(s), column_encoder(s)) for s in config.sinks]
        if any(payload for payload, _ in encoders):
            self._pool = start_pool(
                config, self._processes, preload=worker_modules(encoders), reuse_memory=self.reuse_memory
            )
        self.threads = [threading.Thread(target=self.run_sink, args=(s,), name=f"sink-{s.name}") for s in config.sinks]
        for thread in self.threads:
            thread.start()
        if self._pool is not None:  # while the sinks open (the store takes a moment)
            warm_pool(self._pool, self._processes)
        self.telemetry.started([s.name for s in config.sinks], self._processes if self._pool is not None else None)

    def run_sink(self, sink_config: SinkConfig) -> None:
        """One sink's thread: build its worker (retried until it can start), run it until ``stop``."""
        # A sink that cannot start (a key file missing, a bad endpoint) holds back only
        # itself: its cursor stays and the spool keeps its records until it can.
        attempt = 0
        with ThreadPoolExecutor(1, thread_name_prefix=f"build-{sink_config.name}") as builder_thread:
            while not self.stop.is_set():
                try:
                    worker = self.worker_for(sink_config, builder_thread)
                    break
                except Exception as e:  # reported and retried; the other sinks go on
                    attempt += 1
                    wait = min(300.0, 5.0 * 2 ** min(attempt - 1, 6))
                    self.telemetry.sink_cannot_start(sink_config.name, e, wait)
                    self.stop.wait(wait)
            else:
                return
            self.workers.append(worker)
            try:
                worker.run(self.stop)
            finally:
                worker.sink.close()

    def worker_for(self, sink_config: SinkConfig, builder_thread: Executor) -> SinkWorker:
        """The worker of one sink: batches built on its own thread, or in the pool when it has an encoder."""
        config = self.config
        sink = build_sink(sink_config, config)
        plan = SinkPlan(
            sink.name, pack_id_prefix(self._spool_id, sink.name), sink.max_records, sink.max_bytes,
            payload_encoder(sink_config), column_encoder(sink_config),
        )
        builder = BatchBuilder(config)  # this sink's own: its router counts unknown tags for this sink alone
        rebuild = functools.partial(builder.build, plan)
        executor = builder_thread
        ahead = 1
        build: Callable[[SinkPlan, int, Segments], Built] = builder.build
        if self._pool is not None and plan.encoder is not None:
            executor, build = self._pool, build_in_worker
            ahead = self._processes + 1  # every worker busy, and one batch ready to send
            if hasattr(sink, "merge"):
                ahead = max(ahead, _MERGING_BATCHES_AHEAD)

        def build_batch(first_seq: int, segments: Segments) -> Future[Built]:
            return executor.submit(build, plan, first_seq, segments)

        return SinkWorker(
            sink, SpoolStore(config.spool_directory, readonly=True), build_batch=build_batch, rebuild=rebuild,
            dead_letters=self._dead_letters, backoff=full_jitter_backoff(),
            segments_per_batch=batch_segments(config, sink),
            poll_seconds=config.deliver.poll_interval_ms / 1000,
            max_concurrency=getattr(sink_config, "concurrency", 1),  # the local store takes one writer
            batches_ahead=ahead,
        )

    # -- the loop --------------------------------------------------------------

    def watch(self) -> int:
        """Check the sinks every second until ``stop`` is set; returns the exit status."""
        status = 0
        while not self.stop.wait(1.0):
            if not self.check():
                status = 1
        return status

    def check(self) -> bool:
        """One round of the loop: the stats file when due, the sinks' threads, the routing counts.
        Returns False when a sink's thread died, having set ``stop``."""
        if time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + _STATS_EVERY_SECONDS
            self.write_stats()
        alive = True
        dead = [t.name for t in self.threads if not t.is_alive()]
        if dead:
            # A worker can only end by a bug: end the process, the supervisor restarts it.
            self.telemetry.sinks_stopped(dead)
            self.stop.set()
            alive = False
        workers = list(self.workers)
        # Every sink routes every record, so each counts the same unknown tags: take the largest.
        self.telemetry.routed(
            unknown_tags=max((w.unknown_tags for w in workers), default=0),
            dropped=max((w.dropped for w in workers), default=0),
        )
        return alive

    def write_stats(self) -> None:
        self.telemetry.write_stats(
            self.config.state_directory, {worker.sink.name: worker.snapshot() for worker in list(self.workers)}
        )

    # -- stop ------------------------------------------------------------------

    def finish(self) -> None:
        """After ``stop``: wait for every sink's thread, write the last stats, stop the pool, close the spool."""
        for thread in self.threads:
            thread.join()
        self.write_stats()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.store.close()


if __name__ == "__main__":
    sys.exit(main())
