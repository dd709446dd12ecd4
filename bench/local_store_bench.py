"""The local store alone: insert, retention and search rates on one core.

    python bench/local_store_bench.py [-n 100000] [--search-records 1000000]

Streamlog records with eight random words and an id in each message, parsed
before the clock starts; inserted in groups of 4096 and of 256 (best of 3,
each run into a new database); then retention by size and by age over the
result; then searches on a store of ``--search-records`` records (best of 3).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from formats.parse import make_parser
from formats.record import Record
from receiver.deliver.local_store import LocalStore, LocalStoreReader

PARSE = make_parser()
T0 = 1_795_323_666
WORDS = (
    "connection", "refused", "accepted", "user", "login", "logout", "session", "timeout", "request", "GET",
    "POST", "/api/v1/tasks", "created", "deleted", "updated", "error", "warning", "retry", "upstream",
    "database", "query", "slow", "cache", "miss", "hit",
)


def ali(n: int, host: str, t: int, msg: str) -> Record:
    line = f"0.1 sys_tag {t} 10.0.0.{n % 250} {host} user.notice 0 todo-list {n} - {msg}"
    return PARSE(line.encode(), "10.0.0.7", t * 10**9)


def tags(pack_id: str) -> list[tuple[str, str]]:
    return [("__client_ip__", "10.0.0.7"), ("__receive_time__", str(T0)), ("__hostname__", "appliance"),
            ("__pack_id__", pack_id)]


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def messages(rnd: random.Random, n: int, offset: int = 0) -> list[Record]:
    return [
        ali(i, f"web-{i % 20}", T0 + i // 1000,
            " ".join(rnd.choice(WORDS) for _ in range(8)) + f" id={rnd.randrange(10**9)} took {rnd.randrange(1000)}ms")
        for i in range(offset, offset + n)
    ]


def insert_all(store: LocalStore, records: Sequence[Record], group_size: int) -> None:
    for i in range(0, len(records), group_size):
        store.insert(records[i : i + group_size], pack_id=f"P-{i}", group_tags=tags(f"P-{i}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="records to insert")
    parser.add_argument("--search-records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="local-store-bench-"))
    records = messages(random.Random(1), args.n)
    for group_size in (4096, 256):
        rates = []
        used = 0
        for run in range(3):
            store = LocalStore(directory / f"insert-{group_size}-{run}.db", max_age_hours=24, max_bytes=1 << 40)
            rates.append(len(records) / timed(lambda store=store, size=group_size: insert_all(store, records, size)))
            used = store.used_bytes()
            store.close()
        print(f"insert, groups of {group_size}: {max(rates):,.0f} rows/s best of 3 "
              f"({', '.join(f'{r:,.0f}' for r in rates)}); {used / len(records):.0f} bytes/record")
    store = LocalStore(directory / "insert-4096-1.db", max_age_hours=24, max_bytes=1 << 40)
    store.max_bytes = store.used_bytes() // 2
    seconds = timed(lambda: store.enforce_retention(T0 * 10**9, budget_seconds=600))
    print(f"retention by size, half the store: {len(records) / 2 / seconds:,.0f} rows/s deleted, vacuum included")
    store.max_bytes = 1 << 40
    seconds = timed(lambda: store.enforce_retention((T0 + 10**6) * 10**9, budget_seconds=600))
    print(f"retention by age, the other half: {len(records) / 2 / seconds:,.0f} rows/s deleted, vacuum included")
    store.close()

    rnd = random.Random(2)
    path = directory / "search.db"
    store = LocalStore(path, max_age_hours=1e6, max_bytes=1 << 40)
    for g in range(0, args.search_records, 4000):
        store.insert(messages(rnd, 4000, g), pack_id=f"P-{g}", group_tags=tags(f"P-{g}"))
    print(f"{args.search_records:,} records for searching: {store.used_bytes() / 1e6:,.0f} MB")
    store.close()
    with LocalStoreReader(path) as reader:
        for text, limit in (
            ("refused", 100), ("refused", 5000), ("refused", 0), ("refused timeout slow", 100),
            ("hostname=web-3 and refused", 100), ("hostname=web-3", 100), ("app-name=nope", 100), ("", 100),
        ):
            found = 0

            def run(text: str = text, limit: int = limit) -> None:
                nonlocal found
                found = sum(1 for _ in reader.search(text, limit=limit))

            seconds = min(timed(run) for _ in range(3))
            print(f"search {text!r} --limit {limit}: {found} records in {seconds * 1000:,.0f} ms")
    for p in directory.iterdir():
        p.unlink()
    directory.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
