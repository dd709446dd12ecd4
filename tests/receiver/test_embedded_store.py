"""The embedded store (chDB): rows, idempotent inserts, search, retention, SQL, queries from other processes,
and the import of an older release's SQLite store.

One store directory per process at a time (the engine is one embedded server):
every test closes the store it opened (the ``store`` fixture does).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.parse import make_parser
from formats.record import Record
from receiver.config.model import LocalSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.sinks.local.server import StoreClient, StoreServer, stored_line
from receiver.deliver.sinks.local.sink import LocalSink
from receiver.deliver.sinks.local.sqlite_import import SqliteImport
from receiver.deliver.sinks.local.store import (
    EmbeddedStore,
    SqlRefusedError,
    StoreError,
    arrow_payload,
    arrow_table,
    run_sql,
    search,
)
from receiver.filters.expression import FilterError, parse_filter

PARSE = make_parser()
NOW = int(time.time())


def ali(n: int, *, app: str = "todo-list", host: str = "web-1", pri: str = "user.notice", msg: str | None = None,
        t: int = NOW, tag: str = "sys_tag") -> Record:
    text = msg if msg is not None else f"message number {n}"
    return PARSE(f"0.1 {tag} {t} 10.0.0.{n % 250} {host} {pri} 0 {app} {n} - {text}".encode(), "10.0.0.7", t * 10**9)


def group(records: list[Record], pack_id: str, *, received: int = NOW, client_ip: str = "10.0.0.7") -> Group:
    tags = [("__client_ip__", client_ip), ("__receive_time__", str(received)), ("__hostname__", "appliance"),
            ("__machine_group__", "web db"), ("__pack_id__", pack_id)]
    return Group("", client_ip, client_ip, records, tags, pack_id)


def open_store(directory: Path, **settings: Any) -> EmbeddedStore:
    options: dict[str, Any] = {"max_age_hours": 24.0, "max_bytes": 1 << 40, "memory_limit_bytes": 256 << 20}
    options.update(settings)
    return EmbeddedStore(directory, **options)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    s = open_store(tmp_path / "store")
    yield s
    s.close()


def messages(found: Iterator[Any]) -> list[str]:
    return [stored.message for stored in found]


class TestRows:
    def test_every_column_round_trips(self, store: EmbeddedStore) -> None:
        """If records of every format are stored, then search gives each back as it was parsed, with its
        columns and its group's tags."""
        frames = [
            b"0.1 sys_tag %d 10.0.0.9 web-1 local0.err 1 todo-list 705 - disk failed" % NOW,
            b'<165>1 2026-12-06T10:00:00.123456Z host5 app5 42 ID7 [ex@1 a="b"] structured',
            b"<13>Dec  6 10:00:01 host3 app3[9]: classic",
            b"\xff not a syslog line",
        ]
        records = [PARSE(frame, "10.0.0.7", NOW * 10**9) for frame in frames]
        store.insert_groups([group(records, "P-1")], token="P-1")
        found = {stored.record.get("_content_") or stored.record.get("msg"): stored
                 for stored in search(store, "", limit=0)}
        assert len(found) == 4
        for record in records:
            stored = found[record.get("_content_") or record.get("msg")]
            assert (stored.record.time, stored.record.time_ns, stored.record.keys, stored.record.values) == (
                record.time, record.time_ns, record.keys, record.values)
            assert (stored.record.source, stored.record.tags, stored.record.flags) == (
                record.source, record.tags, record.flags)
            assert dict(stored.group_tags) == {
                "__client_ip__": "10.0.0.7", "__receive_time__": str(NOW), "__hostname__": "appliance",
                "__machine_group__": "web db", "__pack_id__": "P-1",
            }
            assert stored.received_ns == NOW * 10**9
        err = found["disk failed"]
        assert (err.host, err.app, err.severity, err.facility) == ("web-1", "todo-list", 3, 16)

    def test_payload_from_a_worker_is_the_same_table(self) -> None:
        """If a worker process sends a group as Arrow IPC bytes, then they hold the table made here (the
        group's constant columns and the field keys dictionary-coded)."""
        import pyarrow as pa

        g = group([ali(n) for n in range(20)], "P-2")
        here = arrow_table([g])
        sent = pa.ipc.open_stream(arrow_payload(g)).read_all()
        assert sent.cast(here.schema).equals(here)
        assert pa.types.is_dictionary(sent.schema.field("pack_id").type)  # the constant columns, and the keys
        assert pa.types.is_dictionary(sent.schema.field("field_keys").type.value_type)

    def test_lone_surrogates_and_times_out_of_range(self, store: EmbeddedStore) -> None:
        """If a record holds a lone surrogate (a replayed dead letter) or a time DateTime cannot hold, then
        the batch is stored anyway: the surrogate as U+FFFD, the time pinned to the edge."""
        odd = Record(NOW, 5, ("_content_",), ["bad \ud800 text"], "10.0.0.7", {})
        early = Record(-5, 0, ("_content_",), ["before 1970"], "10.0.0.7", {})
        store.insert_groups([group([odd, early], "P-3")], token="P-3")
        assert sorted(messages(search(store, "", limit=0))) == ["bad \ufffd text", "before 1970"]
        assert {s.record.time for s in search(store, "", limit=0)} == {NOW, 0}


class TestInsert:
    def test_a_resent_batch_is_a_no_op(self, store: EmbeddedStore) -> None:
        """If the same batch is inserted twice with its token (a resend after a crash), then it is stored once."""
        g = group([ali(n) for n in range(10)], "P-4")
        assert store.insert_payloads([arrow_payload(g)], token="P-4") == 10
        store.insert_payloads([arrow_payload(g)], token="P-4")
        assert store.count() == 10
        store.insert_payloads([arrow_payload(g)], token="P-4-other")
        assert store.count() == 20

    def test_sink_inserts_a_batch_as_one_part(self, tmp_path: Path) -> None:
        """If the local sink gets a batch of groups, then they land in one part (one insert)."""
        sink = LocalSink(LocalSinkConfig(path=tmp_path / "store"), tmp_path)
        try:
            groups = [group([ali(n)], f"P-5-{n}", client_ip=f"10.0.0.{n}") for n in range(30)]
            assert sink.send_batch(groups).kind == "ok"
            assert sink.send_batch(groups).kind == "ok"  # a resend
            assert sink.store.count() == 30
            assert int(sink.store.query("SELECT count() FROM system.parts WHERE table = 'records' AND active")) == 1
        finally:
            sink.close()


class TestSearch:
    @pytest.fixture
    def filled(self, store: EmbeddedStore) -> EmbeddedStore:
        records = [
            ali(1, host="web-1", pri="user.err", msg="Connection refused by upstream", t=NOW - 5 * 3600),
            ali(2, host="web-2", pri="user.info", msg="Create a new task", t=NOW - 2 * 3600),
            ali(3, host="db-1", pri="local0.warning", app="billing", msg="disk almost full", t=NOW - 1800),
        ]
        store.insert_groups([group(records, "P-6")], token="P-6")
        return store

    def test_filter_limit_and_order(self, filled: EmbeddedStore) -> None:
        """If a filter, a limit and an order are given, then they select and order the records."""
        assert messages(search(filled, "")) == ["disk almost full", "Create a new task", "Connection refused by upstream"]
        assert messages(search(filled, "app-name=todo-list and _severity_<=info", limit=1)) == ["Create a new task"]
        assert messages(search(filled, "", limit=2, newest_first=False)) == [
            "Connection refused by upstream", "Create a new task"]
        assert messages(search(filled, "refused")) == ["Connection refused by upstream"]
        assert messages(search(filled, "refuse")) == []  # whole words, as routes match them
        assert messages(search(filled, "host=web-*")) == ["Create a new task", "Connection refused by upstream"]

    def test_time_bounds(self, filled: EmbeddedStore) -> None:
        """If since and until are given, then only records timed in [since, until) come."""
        since, until = (NOW - 3 * 3600) * 10**9, (NOW - 1800) * 10**9
        assert messages(search(filled, "", since_ns=since, until_ns=until)) == ["Create a new task"]

    def test_a_bad_filter_fails_at_the_call(self, filled: EmbeddedStore) -> None:
        """If the filter does not parse, then FilterError comes at the call, not at the first record."""
        with pytest.raises(FilterError):
            search(filled, "app-name=")

    def test_pages_beyond_one_query(self, store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
        """If more records match than one page holds, then every one comes, once, in order, across pages."""
        monkeypatch.setattr("receiver.deliver.sinks.local.store._PAGE_ROWS", 7)
        records = [ali(n, t=NOW - n) for n in range(50)]
        store.insert_groups([group(records, "P-7")], token="P-7")
        found = [s.record.get("procid") for s in search(store, "message", limit=0)]
        assert found == [str(n) for n in range(50)]
        assert [s.record.get("procid") for s in search(store, "number 4*", limit=0)] == ["4", *(str(n) for n in range(40, 50))]

    def test_a_page_reads_only_its_own_rows(self, store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the newest page of a common word is asked, then the engine stops reading there.

        The table is sorted in search order, so a page is a read in order that
        ends at its limit, not a sort of every match.
        """
        records = [ali(n, t=NOW - 100_000 + n // 10, msg=f"refused {n}") for n in range(100_000)]
        store.insert_groups([group(records[i : i + 10_000], f"P-{i}") for i in range(0, 100_000, 10_000)], token="P")
        asked: list[str] = []
        rows = store.rows
        monkeypatch.setattr(store, "rows", lambda sql, params=None: (asked.append(sql), rows(sql, params))[1])
        assert [s.message for s in search(store, "refused", limit=3)] == ["refused 99999", "refused 99998", "refused 99997"]
        statistics = json.loads(store.query(asked[0], "JSON"))["statistics"]
        assert 0 < statistics["rows_read"] < 50_000

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_the_word_index_never_hides_a_match(self, store: EmbeddedStore, data: st.DataObject) -> None:
        """If a word search runs, then it finds exactly what the filter's predicate takes, whatever surrounds
        the word: non-ASCII neighbours, the Kelvin sign (lower-cased to k), dotted capital I, combining marks."""
        words = st.from_regex(r"[a-zA-Z0-9]{1,5}", fullmatch=True).map(
            lambda w: w.replace("K", "\u212a") if "K" in w and len(w) % 2 else w)
        between = st.sampled_from([" ", "-", "_", ".", "", "\u2014", "\u00a0", "\u00e9", "\u0301", "\u4e2d", "\u0130",
                                   "\u212a", "\u00df"])
        texts = data.draw(st.lists(st.lists(st.tuples(words, between), min_size=1, max_size=5).map(
            lambda pairs: "".join(w + b for w, b in pairs)), min_size=1, max_size=6))
        term = data.draw(st.sampled_from(texts).flatmap(lambda t: st.sampled_from(t.replace("\u2014", " ").split())))
        term = data.draw(st.sampled_from([term, term.lower(), term.upper(), term[1:], term[:-1]]))
        host = f"h-{len(texts)}-{abs(hash((tuple(texts), term)))}"
        records = [ali(n, host=host, msg=t) for n, t in enumerate(texts)]
        store.insert_groups([group(records, f"P-{host}")], token=f"P-{host}")
        quoted = term.replace("\\", "\\\\").replace('"', '\\"')
        wanted = parse_filter(f'"{quoted}"')
        expected = sorted(r.get("msg") or "" for r in records if wanted.matches(r))
        assert sorted(messages(search(store, f'host="{host}" and "{quoted}"', limit=0))) == expected

    def test_the_message_is_stored_once(self, store: EmbeddedStore) -> None:
        """If a record is stored, then its message is one of its fields, not a second copy beside them."""
        store.insert_groups([group([ali(1, msg="only once")], "P-1")], token="P-1")
        assert store.query("SELECT name, default_kind FROM system.columns WHERE database = 'receiver' "
                           "AND table = 'records' AND name = 'message'").split("\t")[1].strip() == "ALIAS"
        assert store.query("SELECT message FROM receiver.records").strip() == "only once"


class TestRetention:
    def test_records_older_than_max_age_are_not_kept(self, tmp_path: Path) -> None:
        """If records were received longer ago than max_age_hours, then the store drops them (TTL)."""
        store = open_store(tmp_path / "store", max_age_hours=1.0)
        try:
            store.insert_groups([group([ali(1)], "P-8", received=NOW - 3 * 3600)], token="P-8")
            store.insert_groups([group([ali(2)], "P-9")], token="P-9")
            store.query("OPTIMIZE TABLE receiver.records FINAL")
            assert messages(search(store, "", limit=0)) == ["message number 2"]
        finally:
            store.close()

    def test_a_new_age_is_applied_at_open(self, tmp_path: Path) -> None:
        """If max_age_hours changes (a reload), then the table's TTL follows."""
        open_store(tmp_path / "store", max_age_hours=24.0).close()
        store = open_store(tmp_path / "store", max_age_hours=2.0)
        try:
            assert "toIntervalSecond(7200)" in store.query(
                "SELECT engine_full FROM system.tables WHERE name = 'records'")
        finally:
            store.close()

    def test_an_hour_is_recompressed_once_an_hour_old(self, tmp_path: Path) -> None:
        """If an hour of records is more than an hour old, then the engine rewrites its parts with ZSTD(9) in the
        background; the newest hour stays as written (LZ4), and both read back."""
        store = open_store(tmp_path / "store")
        try:
            store.insert_groups([group([ali(1, msg="two hours ago")], "P-1", received=NOW - 2 * 3600)], token="P-1")
            store.insert_groups([group([ali(2, msg="just now")], "P-2", received=int(time.time()))], token="P-2")
            codecs = ""
            for _ in range(300):  # the engine's background merges: seconds, bounded here at 30 s
                codecs = store.query("SELECT partition_id, default_compression_codec FROM system.parts "
                                     "WHERE table = 'records' AND active ORDER BY partition_id")
                if codecs.count("ZSTD(9)") == 1:
                    break
                time.sleep(0.1)
            assert [line.split("\t")[1] for line in codecs.splitlines()] == ["ZSTD(9)", "LZ4"]
            assert sorted(messages(search(store, ""))) == ["just now", "two hours ago"]
        finally:
            store.close()

    def test_size_drops_the_oldest_hours_never_the_newest(self, tmp_path: Path) -> None:
        """If the store is over max_bytes, then the oldest hours go first, and the newest hour stays."""
        store = open_store(tmp_path / "store", max_bytes=1)
        try:
            for hours_ago in (3, 2, 1):
                received = NOW - hours_ago * 3600
                store.insert_groups([group([ali(hours_ago, msg=f"{hours_ago}h ago")], f"P-{hours_ago}h",
                                           received=received)], token=f"P-{hours_ago}h")
            dropped = store.enforce_size()
            assert len(dropped) == 2
            assert messages(search(store, "", limit=0)) == ["1h ago"]
            stats = store.stats()
            assert stats["records"] == 1 and stats["bytes_on_disk"] > 0
        finally:
            store.close()


class TestUpgrade:
    def test_a_store_of_the_earlier_layout_is_moved_into_this_one(self, tmp_path: Path) -> None:
        """If the directory holds the table an earlier build made (message stored twice, sorted by host),
        then opening it moves every record, hour by hour, into this build's table, and search finds them."""
        from receiver.deliver.sinks.local import store as embedded_store

        old_columns = ", ".join(
            f"{name} {'String' if name == 'message' else kind.split(' ')[0].replace('LowCardinality(String)', 'String')}"
            for name, kind in embedded_store.COLUMNS
        )
        session = embedded_store.open_store(tmp_path / "store", memory_limit_bytes=256 << 20, readonly=False)
        try:
            session.query("CREATE DATABASE receiver")
            session.query(f"CREATE TABLE receiver.records ({old_columns}) ENGINE = MergeTree "
                          "PARTITION BY toYYYYMMDD(receive_time) * 100 + toHour(receive_time) ORDER BY (time, host, app)")
            for hour, text in ((2, "two hours ago"), (1, "an hour ago")):
                received = NOW - hour * 3600
                session.query(
                    "INSERT INTO receiver.records (time, host, message, field_keys, field_values, receive_time, pack_id) "
                    f"VALUES ({received}, 'web-1', '{text}', ['msg'], ['{text}'], {received}, 'P-{hour}')")
        finally:
            session.close()
        store = open_store(tmp_path / "store")
        try:
            assert messages(search(store, "")) == ["an hour ago", "two hours ago"]
            assert messages(search(store, "hour")) == ["an hour ago"]
            assert store.query("SHOW TABLES FROM receiver").split() == ["records"]
            assert "ALIAS" in store.query("SELECT default_kind FROM system.columns WHERE table = 'records' "
                                          "AND name = 'message'")
        finally:
            store.close()


    def test_a_store_of_this_layout_is_opened_as_it_is(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If a store this build made is opened again, then it is not upgraded: its table stays the same
        table (no copy of every hour at each start), with the merge and part settings this build gives it."""
        store = open_store(tmp_path / "store")
        try:
            store.insert_groups([group([ali(1, msg="kept")], "P-1")], token="P-1")
            created = store.query("SELECT uuid, metadata_modification_time FROM system.tables WHERE name = 'records'")
            # As an earlier build made it: merges at 5 of up to 100 parts, parts wide from 10 MB, field
            # values ZSTD(1) at insert, no recompression.
            store.query("ALTER TABLE receiver.records MODIFY SETTING merge_selector_base = 5, "
                        "min_bytes_for_wide_part = 10485760")
            store.query("ALTER TABLE receiver.records RESET SETTING max_parts_to_merge_at_once")
            store.query("ALTER TABLE receiver.records MODIFY COLUMN field_values Array(String) CODEC(ZSTD(1))")
            store.query("ALTER TABLE receiver.records MODIFY TTL receive_time + toIntervalSecond(604800)")
        finally:
            store.close()
        with caplog.at_level(logging.WARNING, logger="receiver.deliver"):
            store = open_store(tmp_path / "store")
        try:
            assert "upgrading" not in caplog.text
            table = store.query("SELECT uuid, engine_full FROM system.tables WHERE name = 'records'")
            assert table.split()[0] == created.split()[0]
            assert "merge_selector_base = 20" in table and "RECOMPRESS CODEC(ZSTD(9))" in table
            assert f"min_bytes_for_wide_part = {128 << 20}" in table and "max_parts_to_merge_at_once = 10" in table
            assert store.query("SELECT compression_codec FROM system.columns WHERE table = 'records' "
                               "AND name = 'field_values'").strip() == ""
            assert messages(search(store, "")) == ["kept"]
        finally:
            store.close()
        statements: list[str] = []
        query = EmbeddedStore.query

        def noting(self: EmbeddedStore, sql: str, *args: Any, **kwargs: Any) -> str:
            statements.append(sql)
            return query(self, sql, *args, **kwargs)

        monkeypatch.setattr(EmbeddedStore, "query", noting)
        open_store(tmp_path / "store").close()  # as this build left it: nothing to change
        assert statements and not [sql for sql in statements if sql.startswith("ALTER")]

    def test_an_upgrade_cut_short_goes_on_at_the_next_open(self, tmp_path: Path) -> None:
        """If an upgrade stopped while copying an hour, then the next open copies that hour again,
        once, and the rest after it: no record lost, none twice."""
        from receiver.deliver.sinks.local import store as embedded_store

        store = open_store(tmp_path / "store")
        try:  # the new table, holding a part of the first hour's copy, as a crash would leave it
            store.insert_groups([group([ali(1, msg="first", t=NOW - 7200)], "P-1", received=NOW - 7200)], token="x")
        finally:
            store.close()
        old_columns = ", ".join(
            f"{name} {'String' if name == 'message' else kind.split(' ')[0]}" for name, kind in embedded_store.COLUMNS
        )
        session = embedded_store.open_store(tmp_path / "store", memory_limit_bytes=256 << 20, readonly=False)
        try:  # the old table, renamed aside, still holding both hours
            session.query(f"CREATE TABLE receiver.records_upgrading ({old_columns}) ENGINE = MergeTree "
                          "PARTITION BY toYYYYMMDD(receive_time) * 100 + toHour(receive_time) ORDER BY (time, host, app)")
            for hour, texts in ((2, ("first", "second")), (1, ("third",))):
                received = NOW - hour * 3600
                for text in texts:
                    session.query(
                        "INSERT INTO receiver.records_upgrading (time, message, field_keys, field_values, receive_time) "
                        f"VALUES ({received}, '{text}', ['msg'], ['{text}'], {received})")
        finally:
            session.close()
        store = open_store(tmp_path / "store")
        try:
            assert sorted(messages(search(store, "", limit=0))) == ["first", "second", "third"]
            assert store.query("SHOW TABLES FROM receiver").split() == ["records"]
        finally:
            store.close()


class TestSql:
    def test_read_only_aggregations(self, store: EmbeddedStore) -> None:
        """If an operator aggregates, then the rows come with their column names, bounded by the limit."""
        store.insert_groups([group([ali(n, host=f"web-{n % 3}") for n in range(30)], "P-10")], token="P-10")
        result = run_sql(store, "SELECT host, count() AS n FROM receiver.records GROUP BY host ORDER BY host", None)
        assert result == {"columns": ["host", "n"], "rows": [["web-0", "10"], ["web-1", "10"], ["web-2", "10"]],
                          "truncated": False} or result["rows"] == [["web-0", 10], ["web-1", 10], ["web-2", 10]]
        limited = run_sql(store, "SELECT * FROM receiver.records", 5)
        assert len(limited["rows"]) == 5 and limited["truncated"]

    @pytest.mark.parametrize(
        ("query", "why"),
        [
            ("INSERT INTO receiver.records SELECT * FROM receiver.records", "read-only"),
            ("DROP TABLE receiver.records", "read-only"),
            ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table functions"),
            ("SELECT * FROM (SELECT * FROM url('http://127.0.0.1:9/', CSV, 'a String'))", "table functions"),
            ("SELECT file('/etc/passwd')", "reads the host's files"),
            ("SELECT 1; DROP TABLE receiver.records", "one query at a time"),
            ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
            ("", "give a query"),
        ],
    )
    def test_what_is_refused(self, store: EmbeddedStore, query: str, why: str) -> None:
        """If a query would write, read files, reach hosts or change settings, then it is refused, saying why."""
        with pytest.raises(SqlRefusedError, match=why):
            run_sql(store, query, None)
        assert int(store.query("SELECT count() FROM system.tables WHERE name = 'records'")) == 1

    def test_a_semicolon_inside_a_string_is_allowed(self, store: EmbeddedStore) -> None:
        """If a ';' is inside a string literal, then it is not a second statement."""
        assert run_sql(store, "SELECT 'a;b' AS x", None)["rows"] == [["a;b"]]


class TestOtherProcesses:
    def test_queries_over_the_socket_while_inserting(self, store: EmbeddedStore, tmp_path: Path) -> None:
        """If a client searches on the store socket while the owner inserts, then both go on and each
        search sees whole batches (a multiple of the batch size)."""
        server = StoreServer(store, tmp_path / "store.sock")
        client = StoreClient(tmp_path / "store.sock")
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for b in range(20):
                    records = [ali(n, app="writer", msg=f"batch {b} row {n}") for n in range(100)]
                    store.insert_groups([group(records, f"P-w{b}")], token=f"P-w{b}")
            except BaseException as e:  # reported below
                errors.append(e)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            counts = []
            for _ in range(5):
                lines = list(client.search(filter="app-name=writer", limit=0))
                counts.append(len(lines))
                assert all(set(line) >= {"time", "fields", "group_tags", "columns"} for line in lines)
        finally:
            writer.join(60)
            server.close()
        assert not errors, errors
        assert all(c % 100 == 0 for c in counts), counts
        assert store.count() == 2000

    def test_a_held_store_cannot_be_opened_by_another_process(self, store: EmbeddedStore) -> None:
        """If a process holds the store, then another one opening it gets StoreLockedError, saying what to do."""
        import subprocess
        import sys

        code = (
            "from pathlib import Path\n"
            "from receiver.deliver.sinks.local.store import EmbeddedStore, StoreLockedError\n"
            "try:\n"
            f"    EmbeddedStore(Path({str(store.directory)!r}), max_age_hours=1, max_bytes=1,"
            " memory_limit_bytes=1<<28, readonly=True)\n"
            "except StoreLockedError as e:\n"
            "    print('locked:', e)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                cwd=Path(__file__).parents[2])
        assert "locked: the store in" in result.stdout and "query socket" in result.stdout, result.stderr

    def test_errors_reach_the_client(self, store: EmbeddedStore, tmp_path: Path) -> None:
        """If a request is refused (a bad filter, refused SQL), then the client gets the reason as StoreError."""
        server = StoreServer(store, tmp_path / "store.sock")
        client = StoreClient(tmp_path / "store.sock")
        try:
            with pytest.raises(StoreError, match="expected a value"):
                list(client.search(filter="app-name=", limit=1))
            with pytest.raises(StoreError, match="read-only"):
                client.sql("DROP TABLE receiver.records", None)
        finally:
            server.close()

    def test_stored_line_has_the_text_columns(self, store: EmbeddedStore) -> None:
        """If a record is sent to a client, then its line has what the text form prints."""
        store.insert_groups([group([ali(1, pri="user.err")], "P-11")], token="P-11")
        (stored,) = search(store, "", limit=1)
        assert stored_line(stored)["columns"] == {"host": "web-1", "app": "todo-list", "severity": 3,
                                                  "message": "message number 1"}


def legacy_sqlite(path: Path, rows: int) -> Path:
    """An older release's SQLite local store, as it wrote it (the columns the import reads)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER, time_ns INTEGER, host TEXT, "
        "app TEXT, severity INTEGER, facility INTEGER, message TEXT, source TEXT, tag TEXT, fields TEXT, "
        "flags TEXT, error TEXT, pack_id TEXT, received_ns INTEGER);"
        "CREATE TABLE packs (pack_id TEXT PRIMARY KEY, group_tags TEXT, received_ns INTEGER, first_id INTEGER,"
        " last_id INTEGER);"
    )
    for n in range(rows):
        pack = f"OLD-{n // 100}"
        if n % 100 == 0:
            tags = json.dumps([["__client_ip__", "10.0.0.8"], ["__receive_time__", str(NOW)], ["__pack_id__", pack]])
            conn.execute("INSERT INTO packs VALUES (?, ?, ?, ?, ?)", (pack, tags, NOW * 10**9, n + 1, n + 100))
        fields = json.dumps({"hostname": "old-1", "app-name": "legacy", "msg": f"old row {n}"})
        conn.execute(
            "INSERT INTO records (time, time_ns, host, app, severity, facility, message, source, tag, fields, "
            "flags, error, pack_id, received_ns) VALUES (?, 0, 'old-1', 'legacy', 6, 1, ?, '10.0.0.8', 'sys_tag', "
            "?, '[]', NULL, ?, ?)",
            (NOW - n, f"old row {n}", fields, pack, NOW * 10**9),
        )
    conn.commit()
    conn.close()
    return path


class TestSqliteImport:
    def test_imported_once_and_renamed(self, store: EmbeddedStore, tmp_path: Path) -> None:
        """If an older release's local.db is found, then its records are imported with their fields and
        group tags, the file is renamed *.imported, and importing again adds nothing."""
        source = legacy_sqlite(tmp_path / "local.db", 250)
        importer = SqliteImport(source, store).start()
        assert importer.done.wait(120)
        assert store.count() == 250 and importer.imported == 250
        assert not source.exists() and (tmp_path / "local.db.imported").exists()
        (newest,) = search(store, "app-name=legacy", limit=1)
        assert newest.record.fields == [("hostname", "old-1"), ("app-name", "legacy"), ("msg", "old row 0")]
        assert dict(newest.group_tags)["__client_ip__"] == "10.0.0.8"
        assert newest.record.tags == {"__streamlog_tag__": "sys_tag"}

    def test_an_interrupted_import_resumes(self, store: EmbeddedStore, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
        """If the import is stopped midway, then the next one goes on from where it was: every row once."""
        monkeypatch.setattr("receiver.deliver.sinks.local.sqlite_import._CHUNK_ROWS", 40)
        source = legacy_sqlite(tmp_path / "local.db", 200)
        first = SqliteImport(source, store)
        real_insert = store.insert
        calls = []

        def stop_after_two(*args: Any, **kwargs: Any) -> int:
            calls.append(1)
            if len(calls) == 2:
                first._stop.set()
            return real_insert(*args, **kwargs)

        monkeypatch.setattr(store, "insert", stop_after_two)
        first.start()
        assert first.done.wait(60)
        assert store.count() == 80 and source.exists()
        monkeypatch.setattr(store, "insert", real_insert)
        second = SqliteImport(source, store).start()
        assert second.done.wait(60)
        assert store.count() == 200
        assert sorted(int(m.split()[-1]) for m in messages(search(store, "", limit=0))) == list(range(200))


class TestLocalSinkOutcomes:
    """What the local sink answers the delivery loop when its store fails."""

    def _failing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> LocalSink:
        sink = LocalSink(LocalSinkConfig(path=tmp_path / "store"), tmp_path)

        def fail(*args: object, **kwargs: object) -> int:
            raise error

        monkeypatch.setattr(sink.store, "insert", fail)
        return sink

    @pytest.mark.parametrize("error", [
        StoreError("store query failed: Code: 241. DB::Exception: Memory limit exceeded"),
        StoreError("store query failed: Code: 252. DB::Exception: Too many parts"),
        StoreError("store query failed: Code: 243. DB::Exception: Cannot reserve space"),
        OSError(28, "No space left on device"),
    ])
    def test_what_can_heal_is_retried(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        """If the store fails for memory, too many parts or disk, then the outcome is retry: the spool keeps the batch."""
        sink = self._failing(tmp_path, monkeypatch, error)
        try:
            assert sink.send_batch([group([ali(1)], "P-12")]).kind == "retry"
        finally:
            sink.close()

    @pytest.mark.parametrize("error", [
        StoreError("store query failed: Code: 53. DB::Exception: Type mismatch"), TypeError("a bug"), KeyError("x"),
    ])
    def test_a_bug_is_not_retried_forever(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        """If the store fails in a way that repeats on every attempt (a bug, rows it refuses), then the outcome
        is permanent: the groups become dead letters instead of an endless retry that fills the spool."""
        sink = self._failing(tmp_path, monkeypatch, error)
        try:
            outcome = sink.send_batch([group([ali(1)], "P-13")])
            assert outcome.kind == "permanent" and type(error).__name__ in outcome.reason
        finally:
            sink.close()
