"""The local store alone (the embedded ClickHouse): insert rate, bytes stored, and search.

    python bench/local_store_bench.py [-n 1000000] [--search-records 10000000] [--flood-records 0]

Streamlog records with eight random words and an id in each message: ``-n``
of them parsed and inserted as the local sink inserts them (Arrow payloads
made from groups, a batch of 32 groups of 4,096 per insert; best of 3, each
into a new store), with the stored bytes against the raw lines' bytes; then
``--search-records`` records (made as Arrow columns directly, inserted 250k
at a time, so that a large store takes minutes, not hours) with a few rare tokens,
searched as ``receiverctl search`` does (best of 3).

``--flood-records N`` measures instead what a steady flood costs the engine:
N relay-shaped lines (bench/blast.py's, 100 senders over one connection)
built into payloads by the delivery workers' code, as the local sink's
batches (16 spool segments), inserted one batch at a time, and the process's
CPU counted until the engine's merges have settled: inserting and merging
together, per row, and where the engine's threads spent it by its own counters (system.events:
inserts, merges, the word index). The first million rows' payloads are reused for the rest.
``--segments`` and ``--setting NAME=VALUE`` (the table's MergeTree settings)
set them otherwise, to compare: 8 segments and ``merge_selector_base = 5``
were the defaults before 2026-12-06, ``min_bytes_for_wide_part = 10485760``
before 2026-12-07.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa

from formats.parse import make_parser
from receiver.deliver.batches import Group
from receiver.deliver.sinks.local.store import (
    EmbeddedStore,
    arrow_payload,
    search,
    table_from_columns,
)

PARSE = make_parser()
WORDS = (
    "connection", "refused", "accepted", "user", "login", "logout", "session", "timeout", "request", "GET",
    "POST", "/api/v1/tasks", "created", "deleted", "updated", "error", "warning", "retry", "upstream",
    "database", "query", "slow", "cache", "miss", "hit",
)
RARE = ("zebracorn", "quokkafish")
"""Tokens put in a handful of records of the search store."""


def line(rnd: random.Random, n: int, t: int) -> str:
    message = " ".join(rnd.choice(WORDS) for _ in range(8)) + f" id={rnd.randrange(10**9)} took {rnd.randrange(1000)}ms"
    return f"0.1 sys_tag {t} 10.0.0.{n % 250} web-{n % 20} user.notice 0 todo-list {n} - {message}"


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def open_store(directory: Path) -> EmbeddedStore:
    return EmbeddedStore(directory, max_age_hours=1e6, max_bytes=1 << 50, memory_limit_bytes=512 << 20)


def bench_inserts(directory: Path, n: int) -> None:
    now = int(time.time())
    rnd = random.Random(1)
    lines = [line(rnd, i, now) for i in range(n)]
    raw_bytes = sum(len(x) + 1 for x in lines)
    records = [PARSE(x.encode(), "10.0.0.7", now * 10**9) for x in lines]

    def groups_received(at: int) -> list[Group]:
        tags = [("__client_ip__", "10.0.0.7"), ("__receive_time__", str(at)), ("__hostname__", "appliance")]
        return [Group("", "10.0.0.7", "10.0.0.7", records[i : i + 4096], [*tags, ("__pack_id__", f"P-{i}")], f"P-{i}")
                for i in range(0, n, 4096)]

    groups = groups_received(now)
    encode_seconds = timed(lambda: [arrow_payload(g) for g in groups])
    payloads = [arrow_payload(g) for g in groups]
    rates = []
    stored = 0
    for run in range(3):
        store = open_store(directory / f"insert-{run}")
        try:
            def insert_all(store: EmbeddedStore = store) -> None:
                for i in range(0, len(payloads), 32):
                    store.insert_payloads(payloads[i : i + 32], token=f"B-{i}")

            rates.append(n / timed(insert_all))
            store.query("OPTIMIZE TABLE receiver.records FINAL")
            stored = store.stats()["bytes_on_disk"]
        finally:
            store.close()
        shutil.rmtree(directory / f"insert-{run}")
    print(f"encode Arrow payloads (worker side): {n / encode_seconds:,.0f} records/s on one core")
    print(f"insert {n:,} records, batches of 32 x 4,096: {max(rates):,.0f} records/s best of 3 "
          f"({', '.join(f'{r:,.0f}' for r in rates)})")
    print(f"stored {stored / 1e6:,.1f} MB for {raw_bytes / 1e6:,.1f} MB of raw lines: {100 * stored / raw_bytes:.1f}% "
          f"({stored / n:.1f} bytes/record) while fresh")
    # The same records received two hours ago: the merge applies the store's recompression TTL.
    store = open_store(directory / "recompressed")
    try:
        old = [arrow_payload(g) for g in groups_received(now - 7200)]
        for i in range(0, len(old), 32):
            store.insert_payloads(old[i : i + 32], token=f"B-{i}")
        store.query("OPTIMIZE TABLE receiver.records FINAL")
        stored = store.stats()["bytes_on_disk"]
    finally:
        store.close()
    print(f"stored {stored / 1e6:,.1f} MB once recompressed (an hour after their hour): "
          f"{100 * stored / raw_bytes:.1f}% ({stored / n:.1f} bytes/record)")


def search_table(rnd: random.Random, start: int, count: int, now: int) -> pa.Table:
    """``count`` records as the store's columns, made directly (no parser): for a large store in minutes."""
    messages = [" ".join(rnd.choices(WORDS, k=8)) + f" id={rnd.randrange(10**9)}" for _ in range(count)]
    for i in range(0, count, 1_000_000):  # a few rare tokens in every million
        messages[i] += f" {RARE[0]}"
        messages[(i + 500_000) % count] += f" {RARE[1]}"
    hosts = [f"web-{(start + i) % 20}" for i in range(count)]
    keys = ("hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid", "msg")
    values = [[h, "user.notice", "0", "todo-list", str(start + i), "-", m] for i, (h, m) in enumerate(zip(hosts, messages, strict=True))]
    times = [now - (count - i) // 1000 for i in range(count)]
    columns = [
        times, [0] * count, hosts, ["todo-list"] * count, [5] * count, [1] * count, ["10.0.0.7"] * count,
        ["10.0.0.7"] * count, ["sys_tag"] * count, [keys] * count, values, [()] * count, [""] * count, [""] * count,
        [now] * count, ["appliance"] * count, [f"S-{start}"] * count, list(range(count)),
    ]
    return table_from_columns(columns)


def bench_search(directory: Path, total: int) -> None:
    now = int(time.time())
    rnd = random.Random(2)
    store = open_store(directory / "search")
    try:
        made = 0
        started = time.perf_counter()
        while made < total:
            count = min(1_000_000, total - made)
            table = search_table(rnd, made, count, now)
            for offset in range(0, count, 40_000):  # inserts the size of a local sink's batch of 200-byte lines
                store.insert([table.slice(offset, 40_000)], token=f"S-{made + offset}")
            made += count
        load = time.perf_counter() - started
        stats = store.stats()
        print(f"{total:,} records for searching, loaded in {load:,.0f} s: {stats['bytes_on_disk'] / 1e6:,.0f} MB on disk")
        for text, limit in (
            (RARE[0], 100), (RARE[1], 0), (f"{RARE[0]} and hostname=web-0", 100), ("refused", 100),
            ("refused timeout slow", 100), ("hostname=web-3", 100), ("app-name=nope", 100), ("", 100),
        ):
            found = 0

            def run(text: str = text, limit: int = limit) -> None:
                nonlocal found
                found = sum(1 for _ in search(store, text, limit=limit))

            seconds = min(timed(run) for _ in range(3))
            print(f"search {text!r} --limit {limit}: {found} records in {seconds * 1000:,.0f} ms")
    finally:
        store.close()


def bench_flood(directory: Path, n: int, segments_per_batch: int | None, settings: Sequence[str]) -> None:
    """Engine CPU per row for ``n`` rows inserted as the local sink's batches, merges included
    (``segments_per_batch`` and table ``settings``, ``NAME=VALUE``, other than the store's own, to compare)."""
    import dataclasses
    import resource

    from bench.blast import build_lines
    from receiver.config.model import LocalSinkConfig, default_config
    from receiver.deliver.building import BatchBuilder, SinkPlan
    from receiver.deliver.registry import column_encoder, payload_encoder
    from receiver.deliver.sinks.local.sink import LocalSink
    from receiver.deliver.worker import RAW_BYTES_PER_SEGMENT
    from receiver.spool.segment import Entry, encode_segment, read_summary

    sink = LocalSinkConfig()
    config = dataclasses.replace(default_config(), sinks=(sink,))
    lines = build_lines(min(n, 1_000_000))
    received = time.time_ns()
    per_segment, per_entry = 2600, 300  # about 512 KiB of 200-byte lines, read 300 at a time
    segments = [
        encode_segment([Entry(received, "127.0.0.1", 1, "tcp-11111", "tcp", lines[at : at + per_entry])
                        for at in range(start, min(start + per_segment, len(lines)), per_entry)])
        for start in range(0, len(lines), per_segment)
    ]
    step = segments_per_batch or LocalSink.segments_per_batch
    spans: list[list[bytes]] = []  # as the sink's worker reads batches: `step` segments, or fewer once they hold so much log text
    size = 0
    for segment in segments:
        body = read_summary(segment).raw_bytes
        if not spans or len(spans[-1]) == step or size + body > step * RAW_BYTES_PER_SEGMENT:
            spans.append([])
            size = 0
        spans[-1].append(segment)
        size += body
    plan = SinkPlan("local", "P", LocalSink.max_records, LocalSink.max_bytes, payload_encoder(sink), column_encoder(sink))
    builder = BatchBuilder(config)
    batches, at = [], 0
    for span in spans:
        batches.append([g.payload for g in builder.build(plan, at, list(enumerate(span, at)), encode=True).groups])
        at += len(span)
    store = open_store(directory / "flood")
    if settings:
        store.query(f"ALTER TABLE receiver.records MODIFY SETTING {', '.join(s.replace('=', ' = ', 1) for s in settings)}")

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    try:
        counted = engine_events(store)
        started, inserted = cpu(), 0
        while inserted < n:
            for number, payloads in enumerate(batches):
                store.insert_payloads([p for p in payloads if p is not None], token=f"{inserted}-{number}")
            inserted += len(lines)
        inserts_done = cpu()
        quiet = 0
        while quiet < 3:  # merges settled: none running for 1.5 s
            time.sleep(0.5)
            quiet = quiet + 1 if store.query("SELECT count() FROM system.merges").strip() == "0" else 0
        settled = cpu()
        events = {name: value - counted.get(name, 0) for name, value in engine_events(store).items()}
        parts = store.query("SELECT count() FROM system.parts WHERE database = 'receiver' AND active").strip()
    finally:
        store.close()
    described = ", ".join(settings) or "the store's settings"
    print(f"flood of {inserted:,} rows in batches of up to {step} segments ({len(lines) // len(batches):,} rows), "
          f"{described}: "
          f"{inserts_done - started:.1f} CPU-s inserting, {settled - inserts_done:.1f} more until merges settled, "
          f"{(settled - started) / inserted * 1e6:.2f} us a row; {parts} parts")

    def per_row(name: str, scale: float = 1.0) -> float:
        return events.get(name, 0) * scale / inserted

    # The engine's own ProfileEvents (chDB's library has no symbols for a profiler): where its CPU goes.
    print(f"the engine's own counters, a row: {per_row('OSCPUVirtualTimeMicroseconds'):.2f} us of CPU in its "
          f"threads; inserts {per_row('InsertQueryTimeMicroseconds'):.2f} us (of wall time), merges "
          f"{per_row('MergeTotalMilliseconds', 1000):.2f} us ({per_row('MergedRows'):.2f} rows merged a row); "
          f"the word index and other skip indexes, inserts and merges: "
          f"{per_row('MergeTreeDataWriterSkipIndicesCalculationMicroseconds'):.2f} us")


def engine_events(store: EmbeddedStore) -> dict[str, int]:
    """The engine's ProfileEvents counted so far in this process (system.events)."""
    text = store.query("SELECT event, value FROM system.events")
    return {name: int(value) for name, value in (row.split("\t") for row in text.splitlines())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="records to parse and insert")
    parser.add_argument("--search-records", type=int, default=10_000_000)
    parser.add_argument("--flood-records", type=int, default=0, help="instead: the engine's CPU under a flood of so many rows")
    parser.add_argument("--segments", type=int, help="with --flood-records: spool segments a batch reads (the sink's own)")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="with --flood-records: a MergeTree setting of the table other than the store's own (repeatable)")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="local-store-bench-"))
    try:
        if args.flood_records:
            bench_flood(directory, args.flood_records, args.segments, args.setting)
        else:
            bench_inserts(directory, args.n)
            bench_search(directory, args.search_records)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
