"""The embedded local store: what it keeps, how it searches, retention, and readers beside the writer."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from formats.columns import columns_of
from formats.parse import make_parser
from formats.record import Record
from receiver.config import LocalSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.local_store import (
    SCHEMA_VERSION,
    LocalStore,
    LocalStoreError,
    LocalStoreReader,
    NoStoreError,
    SchemaVersionError,
    StoredRecord,
    _fts_query,
)
from receiver.deliver.sinks import LocalSink
from receiver.filters import FilterError

PARSE = make_parser()
T0 = 1_795_323_666  # seconds
WORDS = (
    "connection", "refused", "accepted", "user", "login", "logout", "session", "timeout", "request", "GET",
    "POST", "/api/v1/tasks", "created", "deleted", "updated", "error", "warning", "retry", "upstream",
    "database", "query", "slow", "cache", "miss", "hit",
)


def ali(n: int, *, app: str = "todo-list", host: str = "web-1", pri: str = "user.notice", msg: str | None = None,
        t: int = T0, tag: str = "sys_tag") -> Record:
    text = msg if msg is not None else f"message number {n}"
    return PARSE(f"0.1 {tag} {t} 10.0.0.{n % 250} {host} {pri} 0 {app} {n} - {text}".encode(), "10.0.0.7", t * 10**9)


def tags(pack_id: str, received_s: int = T0) -> list[tuple[str, str]]:
    return [("__client_ip__", "10.0.0.7"), ("__receive_time__", str(received_s)), ("__hostname__", "appliance"),
            ("__pack_id__", pack_id)]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "local.db"


@pytest.fixture
def store(db: Path) -> Iterator[LocalStore]:
    s = LocalStore(db, max_age_hours=24.0, max_bytes=1 << 40)
    yield s
    s.close()


def search(db: Path, text: str = "", **options: object) -> list[StoredRecord]:
    with LocalStoreReader(db) as reader:
        return list(reader.search(text, **options))  # type: ignore[arg-type]


def messages(found: Sequence[StoredRecord]) -> list[str]:
    return [s.message for s in found]


class TestRoundTrip:
    def test_every_column(self, store: LocalStore, db: Path) -> None:
        """If records of every format are stored, then search gives each back equal, with its columns and group."""
        records = [
            ali(1, msg="Create a new task"),
            PARSE(b"<187>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick", "10.0.0.8", T0 * 10**9),
            PARSE(b"<165>1 2003-10-11T22:14:15.003Z host.example.com evntslog 42 ID47 "
                  b'[exampleSDID@32473 iut="3"] An application event', "10.0.0.9", T0 * 10**9),
            PARSE(b"\xff\xfe not a syslog line", "10.0.0.10", T0 * 10**9),
        ]
        records[0].flags = ("truncated:70000",)
        assert records[3].error is not None and records[3].flags  # a parse error keeps its reason
        assert store.insert(records, pack_id="P-1", group_tags=tags("P-1")) == 4
        found = search(db, newest_first=False)
        by_id = sorted(found, key=lambda s: s.id)
        assert [s.record for s in by_id] == records
        for stored, record in zip(by_id, records, strict=True):
            assert (stored.host, stored.app, stored.severity, stored.facility, stored.message) == tuple(columns_of(record))
            assert stored.tag == record.tags.get("__streamlog_tag__")
            assert stored.group_tags == tuple(tags("P-1"))
            assert stored.pack_id == "P-1"
            assert stored.received_ns == T0 * 10**9
        assert by_id[2].record.time_ns == 3_000_000
        assert by_id[1].severity == 3 and by_id[1].facility == 23

    def test_rows_as_stored(self, store: LocalStore, db: Path) -> None:
        """If a record is stored, then its row holds the documented columns: fields in order, flags and tags as JSON."""
        record = ali(5, pri="local0.err", msg="disk full")
        record.flags = ("incomplete",)
        store.insert([record], pack_id="P-1", group_tags=tags("P-1"))
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM records_with_tags").fetchone()
        conn.close()
        assert list(row.keys()) == [
            "id", "time", "time_ns", "host", "app", "severity", "facility", "message", "source", "tag", "fields",
            "flags", "error", "pack_id", "received_ns", "group_tags",
        ]
        assert (row["time"], row["host"], row["app"], row["severity"], row["facility"]) == (T0, "web-1", "todo-list", 3, 16)
        assert (row["message"], row["source"], row["tag"], row["pack_id"]) == ("disk full", "10.0.0.5", "sys_tag", "P-1")
        assert list(json.loads(row["fields"])) == ["hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid", "msg"]
        assert json.loads(row["flags"]) == ["incomplete"]
        assert json.loads(row["group_tags"]) == [list(t) for t in tags("P-1")]

    def test_repeated_field_names_survive(self, store: LocalStore, db: Path) -> None:
        """If a record has two fields of one name, then both come back, in order."""
        record = Record(T0, 0, ("k", "msg", "k"), ["one", "hello", "two"], "10.0.0.1", {})
        store.insert([record], pack_id="P-1", group_tags=[])
        (stored,) = search(db)
        assert stored.record.fields == [("k", "one"), ("msg", "hello"), ("k", "two")]

    def test_lone_surrogates_are_replaced(self, store: LocalStore, db: Path) -> None:
        """If a value holds a lone surrogate (no parser makes one), then the record is stored with U+FFFD."""
        record = Record(T0, 0, ("msg",), ["bad \udc80 byte"], "10.0.0.1", {})
        assert store.insert([record], pack_id="P-1", group_tags=[]) == 1
        assert messages(search(db)) == ["bad \ufffd byte"]

    def test_to_dict_adds_group_tags(self, store: LocalStore, db: Path) -> None:
        """If a stored record is shown as JSON, then it is the record's dict plus its group tags and receive time."""
        store.insert([ali(1)], pack_id="P-1", group_tags=tags("P-1"))
        (stored,) = search(db)
        assert stored.to_dict() == {**ali(1).to_dict(), "group_tags": dict(tags("P-1")), "received_ns": T0 * 10**9}


class TestIdempotency:
    def test_duplicate_pack_is_a_no_op(self, store: LocalStore, db: Path) -> None:
        """If a group is inserted again with its pack id, then nothing is added; another pack id is."""
        group = [ali(n) for n in range(10)]
        assert store.insert(group, pack_id="P-1", group_tags=tags("P-1")) == 10
        assert store.insert(group, pack_id="P-1", group_tags=tags("P-1")) == 0
        assert store.insert(group[:3], pack_id="P-2", group_tags=tags("P-2")) == 3
        assert len(search(db, limit=0)) == 13

    def test_empty_pack_id_is_never_a_duplicate(self, store: LocalStore, db: Path) -> None:
        """If a group has no pack id, then it is stored every time."""
        store.insert([ali(1)], pack_id="", group_tags=[])
        store.insert([ali(1)], pack_id="", group_tags=[])
        assert len(search(db)) == 2

    def test_failed_insert_leaves_nothing(self, store: LocalStore, db: Path) -> None:
        """If an insert fails half way, then none of the group is stored and its resend is stored whole."""
        good = [ali(n) for n in range(5)]
        broken = Record(T0, 0, ("a", "b"), ["only one"], "x", {})  # values shorter than keys
        with pytest.raises(ValueError):
            store.insert([*good, broken], pack_id="P-1", group_tags=tags("P-1"))
        assert search(db) == []
        assert store.insert(good, pack_id="P-1", group_tags=tags("P-1")) == 5
        assert len(search(db)) == 5

    def test_duplicate_survives_reopening(self, db: Path) -> None:
        """If the receiver restarts and resends its last group, then the group is not stored twice."""
        first = LocalStore(db, max_age_hours=1, max_bytes=1 << 30)
        first.insert([ali(1), ali(2)], pack_id="P-9", group_tags=tags("P-9"))
        first.close()
        second = LocalStore(db, max_age_hours=1, max_bytes=1 << 30)
        assert second.insert([ali(1), ali(2)], pack_id="P-9", group_tags=tags("P-9")) == 0
        second.close()
        assert len(search(db)) == 2


class TestSearch:
    @pytest.fixture
    def filled(self, store: LocalStore, db: Path) -> Path:
        store.insert([
            ali(1, app="todo-list", pri="user.err", msg="Connection refused by upstream", t=T0 + 1),
            ali(2, app="todo-list", pri="user.info", msg="Create a new task", t=T0 + 2),
            ali(3, app="billing", pri="user.warning", msg="connection reset; retrying", t=T0 + 3),
            ali(4, app="billing", pri="user.notice", msg="diskette inserted", t=T0 + 4),
            ali(5, app="billing", pri="user.crit", msg="Disk full on /var", t=T0 + 5, host="db-1"),
        ], pack_id="P-1", group_tags=tags("P-1"))
        store.insert([
            PARSE(b"<11>Nov 22 05:01:12 web-2 todo-list: connection refused again", "10.0.0.20", (T0 + 6) * 10**9),
        ], pack_id="P-2", group_tags=tags("P-2"))
        return db

    def test_full_text_words(self, filled: Path) -> None:
        """If a filter is words, then the messages holding all of them match, whatever their case."""
        assert messages(search(filled, "connection refused")) == [
            "connection refused again", "Connection refused by upstream",
        ]
        assert messages(search(filled, "CONNECTION")) == [
            "connection refused again", "connection reset; retrying", "Connection refused by upstream",
        ]

    def test_full_text_whole_words_and_wildcards(self, filled: Path) -> None:
        """If a word is searched, then it matches on word boundaries only; disk* reaches into words."""
        assert messages(search(filled, "disk")) == ["Disk full on /var"]
        assert messages(search(filled, "disk*")) == ["Disk full on /var", "diskette inserted"]

    def test_phrase(self, filled: Path) -> None:
        """If a quoted phrase is searched, then only messages with those words in that order match."""
        assert messages(search(filled, '"refused by"')) == ["Connection refused by upstream"]
        assert messages(search(filled, '"by refused"')) == []

    def test_field_filters(self, filled: Path) -> None:
        """If a filter compares fields, then it applies to streamlog and syslog records alike."""
        assert messages(search(filled, "app-name=todo-list and _severity_<=4")) == [
            "connection refused again", "Connection refused by upstream",
        ]
        assert messages(search(filled, "host=db-* or app=billing not disk*")) == [
            "Disk full on /var", "connection reset; retrying",
        ]
        assert messages(search(filled, "connection not refused")) == ["connection reset; retrying"]
        assert messages(search(filled, "tag=sys_tag and _severity_=crit")) == ["Disk full on /var"]

    def test_blank_filter_matches_everything(self, filled: Path) -> None:
        """If the filter is blank, then every record matches."""
        assert len(search(filled, "  ")) == 6

    def test_bad_filter_raises_at_the_call(self, filled: Path) -> None:
        """If the filter does not parse, then FilterError comes from search() itself, before any row."""
        with LocalStoreReader(filled) as reader, pytest.raises(FilterError):
            reader.search("app-name=")

    def test_since_until_limit_and_order(self, filled: Path) -> None:
        """If since/until/limit are given, then records in [since, until) come, newest first, at most limit."""
        times = [s.record.time - T0 for s in search(filled, since_ns=(T0 + 2) * 10**9, until_ns=(T0 + 5) * 10**9)]
        assert times == [4, 3, 2]
        assert [s.record.time - T0 for s in search(filled, limit=2)] == [6, 5]
        assert [s.record.time - T0 for s in search(filled, limit=2, newest_first=False)] == [1, 2]
        assert [s.record.time - T0 for s in search(filled, "connection", since_ns=(T0 + 2) * 10**9)] == [6, 3]

    def test_sub_second_bounds(self, store: LocalStore, db: Path) -> None:
        """If records differ below the second, then since/until cut between them."""
        a, b = Record(T0, 100, ("msg",), ["a"], "s", {}), Record(T0, 900, ("msg",), ["b"], "s", {})
        store.insert([a, b], pack_id="P", group_tags=[])
        assert messages(search(db, since_ns=T0 * 10**9 + 500)) == ["b"]
        assert messages(search(db, until_ns=T0 * 10**9 + 500)) == ["a"]

    def test_pages_neither_skip_nor_repeat(self, store: LocalStore, db: Path) -> None:
        """If many records share one time, then reading them page by page gives each exactly once, in order."""
        for g in range(3):
            store.insert([ali(g * 1000 + n, msg=f"same second {g * 1000 + n}") for n in range(700)],
                         pack_id=f"P-{g}", group_tags=[])
        newest = search(db, limit=0)
        assert len(newest) == 2100 and len({s.id for s in newest}) == 2100
        assert [s.id for s in newest] == sorted((s.id for s in newest), reverse=True)
        assert [s.id for s in search(db, "same", limit=1500, newest_first=False)] == sorted(s.id for s in newest)[:1500]

    def test_common_words_walk_the_time_index(self, store: LocalStore, db: Path) -> None:
        """If a word matches many records, then search walks the time index and still gives exactly the matches in order."""
        store.insert(
            [ali(n, msg=f"alpha {n}" if n % 5 else f"beta {n}", t=T0 + n % 97) for n in range(4500)],
            pack_id="P", group_tags=[],
        )
        with LocalStoreReader(db) as reader, contextlib.ExitStack() as cleanup:
            alpha, beta = (reader._matches_table(word, cleanup) for word in ('"alpha"', '"beta"'))
            assert alpha[1] == 3600 and reader._fts_clause(*alpha).startswith("+r.id IN")  # by time
            assert beta[1] == 900 and reader._fts_clause(*beta).startswith("r.id IN")  # by id, then sorted
            # Each page probes the search's match table by id: nothing is rebuilt per page.
            plan = reader._conn.execute(
                f"EXPLAIN QUERY PLAN SELECT r.id FROM records AS r WHERE {reader._fts_clause(*alpha)} LIMIT 5"
            ).fetchall()
            assert any("ROWID SEARCH ON TABLE search_hits" in row[-1] for row in plan), plan
            found = list(reader.search("alpha", limit=0))
            expected = sorted(((T0 + n % 97, n) for n in range(4500) if n % 5), reverse=True)
            assert [(s.record.time, int(s.message.split()[1])) for s in found] == expected
            assert len(list(reader.search("beta", limit=0))) == 900

    def test_fts_pre_filter_query(self) -> None:
        """If the filter requires words, then the FTS5 query asks for each as a quoted string; none means no query."""
        assert _fts_query(("connection", "refused")) == '"connection" AND "refused"'
        assert _fts_query(("and", "near")) == '"and" AND "near"'
        assert _fts_query(()) is None


class TestRetention:
    def fill(self, store: LocalStore, groups: int, per_group: int, *, received_s: int = T0) -> None:
        rnd = random.Random(7)
        for g in range(groups):
            msg = " ".join(rnd.choice(WORDS) for _ in range(12))
            store.insert([ali(g * per_group + n, msg=f"{msg} g{g} n{n}") for n in range(per_group)],
                         pack_id=f"P-{g}", group_tags=tags(f"P-{g}", received_s + g))

    def test_by_age(self, db: Path) -> None:
        """If groups were received before max_age_hours, then they go, and their pack ids with them; younger ones stay."""
        store = LocalStore(db, max_age_hours=1.0, max_bytes=1 << 40)
        store.insert([ali(1, msg="old one"), ali(2, msg="old two")], pack_id="P-old", group_tags=tags("P-old", T0))
        store.insert([ali(3, msg="young")], pack_id="P-young", group_tags=tags("P-young", T0 + 3000))
        report = store.enforce_retention((T0 + 3700) * 10**9)
        assert (report.deleted_by_age, report.deleted_by_size, report.done) == (2, 0, True)
        assert messages(search(db)) == ["young"]
        assert messages(search(db, "old")) == []  # gone from the index too
        # Retention forgets the pack id: a resend now is stored again.
        assert store.insert([ali(1, msg="old one")], pack_id="P-old", group_tags=tags("P-old", T0)) == 1
        store.close()

    def test_by_size_shrinks_the_file(self, db: Path) -> None:
        """If the store is over max_bytes, then the oldest records go until the used pages fit, and the file shrinks."""
        store = LocalStore(db, max_age_hours=1e6, max_bytes=1 << 40)
        self.fill(store, groups=40, per_group=500)
        full = store.used_bytes()
        pages_before = os.path.getsize(db) + os.path.getsize(f"{db}-wal")
        store.max_bytes = full // 3
        report = store.enforce_retention(T0 * 10**9, budget_seconds=60)
        assert report.done and report.deleted_by_size > 0 and report.vacuumed_pages > 0
        assert store.used_bytes() <= full // 3
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_count, freelist = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count"))
        conn.close()
        assert freelist < 2048 and page_count * 4096 < full // 2
        assert os.path.getsize(db) < pages_before // 2
        kept = search(db, limit=0, newest_first=False)
        assert len(kept) == 20_000 - report.deleted_by_size
        assert kept[0].id == report.deleted_by_size + 1 and kept[-1].id == 20_000  # the oldest went
        assert store.insert([ali(1)], pack_id="P-0", group_tags=[]) == 1  # its packs are forgotten
        self.check_index(db)
        store.close()

    def test_large_deletion_is_spread_over_inserts(self, db: Path) -> None:
        """If there is more to delete than one call may take, then it stops early and later inserts finish the work."""
        store = LocalStore(db, max_age_hours=1.0, max_bytes=1 << 40)
        self.fill(store, groups=12, per_group=2000)
        report = store.enforce_retention((T0 + 10**6) * 10**9, budget_seconds=0)
        assert not report.done
        assert 0 < report.deleted_by_age <= 6000  # at most one chunk (whole packs)
        remaining = len(search(db, limit=0))
        for n in range(20):
            store.insert([ali(n, msg="fresh")], pack_id=f"F-{n}", group_tags=tags(f"F-{n}", T0 + 10**6))
        assert messages(search(db, limit=0)) == ["fresh"] * 20
        assert remaining > 0
        store.close()

    def test_nothing_due(self, store: LocalStore) -> None:
        """If nothing is old or over size, then retention deletes nothing."""
        self.fill(store, groups=2, per_group=10)
        assert store.enforce_retention(T0 * 10**9).deleted_by_age == 0
        assert store.enforce_retention(T0 * 10**9).deleted_by_size == 0

    @staticmethod
    def check_index(db: Path) -> None:
        conn = sqlite3.connect(db)
        conn.execute("INSERT INTO records_fts (records_fts, rank) VALUES ('integrity-check', 1)")
        conn.close()


class TestReadersBesideTheWriter:
    def test_reader_while_writer_inserts(self, store: LocalStore, db: Path) -> None:
        """If searches run while the writer inserts, then neither waits for the other and each sees whole groups."""
        store.insert([ali(n, msg=f"before {n}") for n in range(600)], pack_id="P-start", group_tags=[])
        stop = threading.Event()
        slowest_insert = 0.0
        errors: list[BaseException] = []

        def write() -> None:
            nonlocal slowest_insert
            try:
                for g in range(200):
                    if stop.is_set():
                        break
                    started = time.monotonic()
                    store.insert([ali(n, msg=f"group{g} row{n}") for n in range(100)], pack_id=f"P-{g}", group_tags=[])
                    slowest_insert = max(slowest_insert, time.monotonic() - started)
            except BaseException as e:  # reported below
                errors.append(e)

        writer = threading.Thread(target=write)
        with LocalStoreReader(db) as reader:
            # A search left open half way holds no snapshot that would stall the writer.
            held = reader.search("", limit=0, newest_first=False)
            next(held)
            writer.start()
            counts = []
            while writer.is_alive():
                found = list(reader.search("row0 or row99", limit=0))
                groups = {s.message.split()[0] for s in found}
                # Whole groups only: each group seen has both its first and its last row.
                assert len(found) == 2 * len(groups)
                counts.append(len(found))
            writer.join()
            # The held search goes on from where it stopped, into what was written meanwhile.
            assert sum(1 for _ in held) == 600 - 1 + 200 * 100
        assert not errors, errors
        assert counts == sorted(counts) and len(counts) > 1
        assert len(search(db, "row0 or row99", limit=0)) == 400
        assert slowest_insert < 5.0
        assert len(search(db, limit=0)) == 600 + 200 * 100

    def test_search_with_the_daemon_stopped(self, db: Path) -> None:
        """If the writer has closed (its WAL removed), then search still reads, and writes nothing."""
        store = LocalStore(db, max_age_hours=1, max_bytes=1 << 30)
        store.insert([ali(1)], pack_id="P", group_tags=[])
        store.close()
        assert not Path(f"{db}-wal").exists()
        before = db.read_bytes()
        assert len(search(db)) == 1
        assert db.read_bytes() == before

    def test_reader_cannot_write(self, store: LocalStore, db: Path) -> None:
        """If a reader's connection is asked to write, then SQLite refuses: it is opened read-only."""
        with LocalStoreReader(db) as reader, pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            reader._conn.execute("DELETE FROM records")

    def test_no_store_yet(self, tmp_path: Path) -> None:
        """If there is no file, then the reader says so and creates nothing."""
        with pytest.raises(NoStoreError, match="no local store at"):
            LocalStoreReader(tmp_path / "local.db")
        assert not (tmp_path / "local.db").exists()


class TestSchema:
    def test_version_recorded(self, store: LocalStore, db: Path) -> None:
        """If a store is created, then PRAGMA user_version holds the schema version and auto_vacuum is incremental."""
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()

    def test_newer_schema_is_refused(self, store: LocalStore, db: Path) -> None:
        """If the file was written by a newer receiver, then writer and reader refuse it, saying what to do."""
        store.close()
        conn = sqlite3.connect(db)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        message = f"schema version {SCHEMA_VERSION + 1}, written by a newer receiver; this one reads version {SCHEMA_VERSION}"
        with pytest.raises(SchemaVersionError, match=message) as caught:
            LocalStore(db, max_age_hours=1, max_bytes=1 << 30)
        assert "upgrade the receiver" in str(caught.value) and str(db) in str(caught.value)
        with pytest.raises(SchemaVersionError, match=message):
            LocalStoreReader(db)

    def test_foreign_database_is_refused(self, db: Path) -> None:
        """If the path holds some other SQLite database, then the store refuses to touch it."""
        db.parent.mkdir(parents=True)
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE mine (x)")
        conn.close()
        with pytest.raises(SchemaVersionError, match="not a receiver local store"):
            LocalStore(db, max_age_hours=1, max_bytes=1 << 30)

    def test_not_a_database(self, db: Path) -> None:
        """If the path holds something that is not SQLite, then the error names the file and the way out."""
        db.parent.mkdir(parents=True)
        db.write_bytes(b"this is not a database file, not at all. " * 200)
        with pytest.raises(LocalStoreError, match=f"{db}.*not a database.*move it away"):
            LocalStore(db, max_age_hours=1, max_bytes=1 << 30)
        with pytest.raises(LocalStoreError, match="not a database"):
            LocalStoreReader(db)


class TestLocalSinkOutcomes:
    """What the local sink answers the delivery loop when its store fails."""

    def _sink(self, tmp_path: Path) -> LocalSink:
        return LocalSink(LocalSinkConfig(path=tmp_path / "local.db"), tmp_path)

    def _group(self) -> Group:
        return Group("", "10.0.0.7", "10.0.0.7", [ali(1)], tags("ABCDEF0123456789-1"), "ABCDEF0123456789-1")

    @pytest.mark.parametrize("error", [sqlite3.OperationalError("database or disk is full"), OSError(28, "No space")])
    def test_what_can_heal_is_retried(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        """If the store fails with a disk or lock error, then the outcome is retry: the spool keeps the group."""
        sink = self._sink(tmp_path)

        def failing(*args: object, **kwargs: object) -> None:
            raise error

        monkeypatch.setattr(sink._store, "insert", failing)
        assert sink.send(self._group()).kind == "retry"
        sink.close()

    @pytest.mark.parametrize("error", [TypeError("a bug"), sqlite3.IntegrityError("refused row"), KeyError("x")])
    def test_a_bug_is_not_retried_forever(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        """If the store fails in a way that repeats on every attempt (a bug, a refused row), then the outcome
        is permanent: the group becomes a dead letter instead of an endless retry that fills the spool."""
        sink = self._sink(tmp_path)

        def failing(*args: object, **kwargs: object) -> None:
            raise error

        monkeypatch.setattr(sink._store, "insert", failing)
        outcome = sink.send(self._group())
        assert outcome.kind == "permanent" and type(error).__name__ in outcome.reason
        sink.close()
