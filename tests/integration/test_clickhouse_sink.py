"""The ClickHouse sink against a real clickhouse-server (a private instance, see tests/support/clickhouse.py).

Every test writes to its own table of one server started for the module,
reads back with SELECT and compares every column. The server is whatever
``tests/install-programs.sh`` installed (18.16 on Debian 12); its version is
printed and recorded as a junit property. Without clickhouse-server these
tests fail (ProgramMissingError says to run tests/install-programs.sh); they
never skip.

The sink sends Native blocks; :class:`TestRows` also sends the same groups
as JSONEachRow (what the sink sent before) and compares what the server
stored from each. Figures (rows/s) are printed: run with ``-s`` or ``-rP`` to see them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from formats.parse import make_parser
from formats.record import Record
from receiver.config.identity import group_tags
from receiver.config.model import ClickHouseSinkConfig, default_config
from receiver.deliver.batches import Group
from receiver.deliver.building import BatchBuilder, Segments, SinkPlan
from receiver.deliver.registry import column_encoder, payload_encoder
from receiver.deliver.sinks.clickhouse import (
    COLUMNS,
    CREATE_TABLE,
    PASSWORD_ENV,
    SCHEMA_RECHECK_SECONDS,
    ClickHouseConfigError,
    ClickHouseSink,
    classify,
    clickhouse_payload,
    create_table_sql,
)
from receiver.spool.segment import Entry, encode_segment
from tests.receiver.test_clickhouse_rows import expected_rows, groups
from tests.support.clickhouse import ClickHouseQueryError, ClickHouseServer, ClickHouseUser
from tests.support.programs import LOOPBACK, free_port
from tests.support.receiverctl import BARE_ENV, receiverctl

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "sinks" / "clickhouse.md"
PEER = "10.1.2.3"
RECEIVE_NS = 1_700_000_100_500_000_000
ADMIN_PASSWORD = "admin-Pw-1"
WRITER_PASSWORD = "wr1ter \u00e9\u00e8 secret"  # non-ASCII and inner spaces: headers carry UTF-8 bytes
parse = make_parser(format="auto")

STREAMLOG = b"0.1 sys_tag 1700000000 127.0.0.1 web-1 user.notice 1 todo-list 705 - hello streamlog"
RFC5424 = (
    b'<165>1 2023-11-14T22:13:20.123456Z host5424 app5424 4242 ID47 '
    b'[exampleSDID@32473 iut="3" eventSource="App"] message 5424'
)
RFC3164 = b"<13>Nov 14 22:13:20 host3164 app3164[99]: message 3164"

# What the columns must hold for the three samples, written out here (not computed by the code under test).
EXPECTED_COLUMNS = {
    STREAMLOG: {"host": "web-1", "app": "todo-list", "severity": 5, "facility": 1, "message": "hello streamlog", "tag": "sys_tag"},
    RFC5424: {"host": "host5424", "app": "app5424", "severity": 5, "facility": 20, "message": "message 5424", "tag": ""},
    RFC3164: {"host": "host3164", "app": "app3164", "severity": 5, "facility": 1, "message": "message 3164", "tag": ""},
}

ALL_COLUMNS = (
    "toUInt32(time) AS time, time_ns, host, app, severity, facility, message, source, client_ip, tag, "
    "field_keys, field_values, flags, user_defined_id, machine_group, toUInt32(receive_time) AS receive_time, "
    "hostname, pack_id, pack_row"
)

_table_numbers = itertools.count(1)
_pack_numbers = itertools.count(1)


# -- fixtures and helpers ------------------------------------------------------


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """One private clickhouse-server for the module: users ``default`` (admin), ``writer`` and ``tiny``.

    Every user has a password, so a request whose credentials the server
    ignored would be refused, not quietly run as ``default``. ``tiny`` may use
    2 MB of memory per query (to provoke MEMORY_LIMIT_EXCEEDED).
    """
    server = ClickHouseServer(
        tmp_path_factory.mktemp("clickhouse"),
        users={
            "default": ClickHouseUser(ADMIN_PASSWORD),
            "writer": ClickHouseUser(WRITER_PASSWORD),
            "tiny": ClickHouseUser("tiny-pw", {"max_memory_usage": 2_000_000}),
        },
    )
    try:
        server.start()
        print(f"clickhouse-server {server.version()} (pid {server.pid}) on {server.url}")
        yield server
    finally:
        server.close()
        print(server.log_tail(30))


@pytest.fixture
def table() -> str:
    """A table name no other test uses."""
    return f"t{next(_table_numbers)}_{os.getpid()}"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    """The writer's password in a file only its owner may read."""
    path = tmp_path / "clickhouse-password"
    path.write_text(WRITER_PASSWORD + "\n")
    path.chmod(0o600)
    return path


MakeSink = Callable[..., ClickHouseSink]


@pytest.fixture
def make_sink(clickhouse: ClickHouseServer, table: str, password_file: Path) -> Iterator[MakeSink]:
    """``make_sink(**config overrides)``: a sink as ``writer`` on the test's table; closed at teardown."""
    made: list[ClickHouseSink] = []

    def make(**overrides: Any) -> ClickHouseSink:
        options: dict[str, Any] = {
            "name": "ch", "url": clickhouse.url, "table": table, "user": "writer", "password_file": password_file,
            **overrides,
        }
        sink = ClickHouseSink(ClickHouseSinkConfig(**options))
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def records_of(*frames: bytes, peer: str = PEER) -> list[Record]:
    return [parse(frame, peer, RECEIVE_NS) for frame in frames]


def make_group(records: list[Record], destination: str, *, pack_id: str | None = None) -> Group:
    """A group as build_groups makes them: design.md's tags, a pack id."""
    pack_id = pack_id or f"0123456789ABCDEF-{next(_pack_numbers):X}-0"
    tags = group_tags(
        client_ip=PEER,
        receive_time_s=RECEIVE_NS // 1_000_000_000,
        hostname="appliance-1",
        identities=("idA", "idB"),
        machine_groups=("web", "prod"),
        pack_id=pack_id,
    )
    return Group(destination, records[0].source if records else PEER, PEER, records, tags, pack_id)


def stored(server: ClickHouseServer, table: str, where: str = "1") -> list[dict[str, Any]]:
    return server.rows(f"SELECT {ALL_COLUMNS} FROM default.{table} WHERE {where} ORDER BY pack_id, pack_row")


def expected_row(record: Record, group: Group, index: int) -> dict[str, Any]:
    """The row a record must become, from the record and the group (the common columns are checked separately)."""
    return {
        "time": record.time,
        "time_ns": record.time_ns,
        "source": record.source,
        "client_ip": PEER,
        "field_keys": list(record.keys),
        "field_values": list(record.values),
        "flags": list(record.flags),
        "user_defined_id": "idA idB",
        "machine_group": "web prod",
        "receive_time": RECEIVE_NS // 1_000_000_000,
        "hostname": "appliance-1",
        "pack_id": group.pack_id,
        "pack_row": index,
    }


def send_ok(sink: ClickHouseSink, group: Group) -> None:
    outcome = sink.send(group)
    assert outcome.kind == "ok", outcome


def jsoneachrow(group: Group) -> bytes:
    """The group's rows as JSONEachRow, the sink's format before Native: the reference it is compared with."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in expected_rows(group)).encode()


class FakeClock:
    """A monotonic clock that moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- what is stored ------------------------------------------------------------


class TestRows:
    def test_three_formats_every_column(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If a group holds streamlog, RFC 5424 and RFC 3164 records, then each row holds every column as specified."""
        frames = (STREAMLOG, RFC5424, RFC3164)
        records = records_of(*frames)
        group = make_group(records, table)
        send_ok(make_sink(), group)
        rows = stored(clickhouse, table)
        assert len(rows) == 3
        for index, (frame, record, row) in enumerate(zip(frames, records, rows, strict=True)):
            assert row == {**expected_row(record, group, index), **EXPECTED_COLUMNS[frame]}
        # Spelled out once, so a change in the parsers cannot hide behind expected_row:
        assert rows[0]["time"] == 1_700_000_000 and rows[0]["source"] == PEER
        assert rows[1]["time_ns"] == 123_456_000
        assert dict(zip(rows[1]["field_keys"], rows[1]["field_values"], strict=True))["_message_id_"] == "ID47"
        assert rows[0]["field_keys"] == ["hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid", "msg"]

    def test_unparseable_frame_keeps_flags(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If a frame did not parse, then its row has the parse-error flag and the whole frame as message."""
        records = records_of(b"\xff\xfe garbage")
        group = make_group(records, table)
        send_ok(make_sink(), group)
        (row,) = stored(clickhouse, table)
        assert row["flags"] == ["invalid-utf8", "parse-error"]
        assert row["message"] == "\ufffd\ufffd garbage"
        assert (row["severity"], row["facility"], row["app"]) == (-1, -1, "")
        assert row == {**expected_row(records[0], group, 0), **{k: row[k] for k in ("host", "app", "severity", "facility", "message", "tag")}}

    def test_unicode_newlines_and_escapes(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If messages hold non-ASCII, newlines, tabs, control characters, quotes and backslashes, they come back exactly."""
        messages = [
            "h\u00e9llo w\u00f6rld \u2713 \U0001f600 \u4e2d\u6587",
            'line1\nline2\ttab \x01 ctrl "quoted" \\back\\slash',
            "\u2028 separators \u2029 and NUL-free \x7f",
            "",
        ]
        frames = [f"<14>1 2023-11-14T22:13:20Z host app - - - {m}".encode() for m in messages]
        records = records_of(*frames)
        send_ok(make_sink(), make_group(records, table))
        rows = stored(clickhouse, table)
        assert [row["message"] for row in rows] == messages
        assert [row["field_values"] for row in rows] == [list(r.values) for r in records]

    def test_ten_thousand_rows(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If a group holds 10,000 records (the default max_records), then one insert stores all of them in order."""
        records = records_of(*(b"0.1 sys_tag %d 127.0.0.1 web-%d user.info 1 app - - n=%d" % (1_700_000_000 + i, i % 7, i) for i in range(10_000)))
        group = make_group(records, table)
        send_ok(make_sink(), group)
        summary = clickhouse.rows(
            f"SELECT count() AS n, uniqExact(pack_row) AS rows, min(pack_row) AS lo, max(pack_row) AS hi, "
            f"sum(toUInt32(time) - 1700000000 = pack_row) AS in_order, uniqExact(host) AS hosts "
            f"FROM default.{table}"
        )
        assert summary == [{"n": "10000", "rows": "10000", "lo": 0, "hi": 9999, "in_order": "10000", "hosts": "7"}]
        assert clickhouse.scalar(f"SELECT message FROM default.{table} WHERE pack_row = 4321") == "n=4321"

    def test_group_encoded_by_a_worker_process(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a group arrives as a payload (records left in a worker process), then the payload is what is stored."""
        records = records_of(STREAMLOG, RFC5424, RFC3164)
        full = make_group(records, table)
        sink = make_sink()
        payload = clickhouse_payload(sink.config, full)
        assert payload == clickhouse_payload(sink.config, full)  # same bytes for the same group
        bare = Group(full.destination, full.source, full.client_ip, [], full.tags, full.pack_id, payload=payload, record_count=3)
        send_ok(sink, bare)
        rows = stored(clickhouse, table)
        assert [r["message"] for r in rows] == ["hello streamlog", "message 5424", "message 3164"]
        assert rows == [
            {**expected_row(record, full, index), **EXPECTED_COLUMNS[frame]}
            for index, (frame, record) in enumerate(zip((STREAMLOG, RFC5424, RFC3164), records, strict=True))
        ]

    def test_edges_stored_as_before(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """Times outside DateTime are pinned, a bad time_ns is 0, a lone surrogate is "?", empty fields stay, as with JSON."""
        records = [
            Record(-5, -1, ("msg",), ["a\udc80b \x00 nul"], "s", {}),
            Record(2**32 + 10, 10**9, ("msg", ""), ["", ""], "", {}, ("truncated:9",)),
            Record(2**32 - 1, 999_999_999, (), [], "\ud800", {}),
        ]
        group = make_group(records, table)
        send_ok(make_sink(), group)
        rows = stored(clickhouse, table)
        assert [(r["time"], r["time_ns"]) for r in rows] == [(0, 0), (2**32 - 1, 0), (2**32 - 1, 999_999_999)]
        assert [r["message"] for r in rows] == ["a?b \x00 nul", "", ""]
        assert [r["source"] for r in rows] == ["s", "", "?"]
        assert [r["field_keys"] for r in rows] == [["msg"], ["msg", ""], []]
        assert [r["flags"] for r in rows] == [[], ["truncated:9"], []]
        clickhouse.query(create_table_sql("default", f"{table}_json"))
        clickhouse.query(f"INSERT INTO default.{table}_json FORMAT JSONEachRow", data=jsoneachrow(group))
        assert stored(clickhouse, f"{table}_json") == rows

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(group=groups(max_records=6))
    def test_any_group_stored_as_jsoneachrow_stored_it(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, group: Group
    ) -> None:
        """Any records (any code points, empty fields, many fields, any layouts and times) are stored as the
        same records sent as JSONEachRow are: every column of every row equal after a SELECT."""
        number = next(_table_numbers)
        native, reference = f"{table}_n{number}", f"{table}_j{number}"
        group.destination = native
        send_ok(make_sink(), group)
        clickhouse.query(create_table_sql("default", reference))
        clickhouse.query(f"INSERT INTO default.{reference} FORMAT JSONEachRow", data=jsoneachrow(group))
        by_row = f"SELECT {ALL_COLUMNS} FROM default.{{}} ORDER BY pack_row FORMAT JSONEachRow"
        # Split at LF only: str.splitlines (as ClickHouseServer.rows uses) also splits at U+0085 and U+001C-1E.
        rows = [json.loads(line) for line in clickhouse.query(by_row.format(native)).split("\n") if line]
        assert len(rows) == len(group.records)
        assert rows == [json.loads(line) for line in clickhouse.query(by_row.format(reference)).split("\n") if line]

    def test_resent_group_is_duplicated_and_found_by_pack_id(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a group is sent twice (a crash inside a send), then MergeTree keeps both, and pack_id/pack_row find them."""
        group = make_group(records_of(STREAMLOG, RFC5424, RFC3164), table)
        sink = make_sink()
        send_ok(sink, group)
        send_ok(sink, make_group(records_of(STREAMLOG, RFC5424, RFC3164), table, pack_id=group.pack_id))
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "6"
        deduplicated = clickhouse.rows(f"SELECT {ALL_COLUMNS} FROM default.{table} ORDER BY pack_row LIMIT 1 BY pack_id, pack_row")
        assert deduplicated == stored(clickhouse, table)[::2]
        # The documented way to remove them for good (18.16 crashes on OPTIMIZE ... DEDUPLICATE here):
        # two equal records of one group are distinct rows and stay.
        send_ok(sink, make_group(records_of(STREAMLOG, STREAMLOG), table))
        clickhouse.query(f"CREATE TABLE default.{table}_dedup AS default.{table}")
        clickhouse.query(
            f"INSERT INTO default.{table}_dedup SELECT * FROM default.{table} "
            "WHERE toYYYYMMDD(time) = 20231114 LIMIT 1 BY pack_id, pack_row"
        )
        clickhouse.query(f"ALTER TABLE default.{table} REPLACE PARTITION 20231114 FROM default.{table}_dedup")
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "5"


# -- batches: one INSERT for many groups ----------------------------------------------


def active_parts(server: ClickHouseServer, table: str) -> int:
    return int(server.scalar(f"SELECT count() FROM system.parts WHERE database = 'default' AND table = '{table}' AND active"))


class TestBatches:
    def test_a_batch_is_one_insert_and_one_part_with_every_groups_rows(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a batch's groups (blocks one after the other, one of them in several LZ4 frames) go in one
        insert, then the server stores every group's rows with its own pack_id and pack_row, as one part."""
        sink = make_sink()
        clickhouse.query(create_table_sql("default", table))
        clickhouse.query(f"SYSTEM STOP MERGES default.{table}")
        big = records_of(*(b"0.1 sys_tag %d 127.0.0.1 web-1 user.info 1 app - - big %06d " % (1_700_000_000 + i, i) + b"%x" % (i * 7919) * 30 for i in range(6000)))
        batch = [
            make_group(records_of(STREAMLOG, RFC5424, RFC3164), table),
            make_group(big, table),
            make_group(records_of(RFC3164, STREAMLOG), table),
        ]
        try:
            outcome = sink.send_batch(batch)
            assert outcome.kind == "ok", outcome
            assert active_parts(clickhouse, table) == 1
        finally:
            clickhouse.query(f"SYSTEM START MERGES default.{table}")
        rows = stored(clickhouse, table)
        expected = sorted(
            (expected_row(record, group, index) for group in batch for index, record in enumerate(group.records)),
            key=lambda row: (row["pack_id"], row["pack_row"]),
        )
        assert [{k: row[k] for k in expected[0]} for row in rows] == expected
        assert len(rows) == 6005

    def test_several_frames_in_one_block(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If a group's block is larger than one LZ4 frame (1 MiB) and other groups follow it, then the
        frames and blocks are read in order: every row is stored."""
        sink = make_sink()
        records = records_of(*(b"0.1 sys_tag 1700000000 127.0.0.1 web-1 user.info 1 app - - " + b"%07d" % i + b"x" * 400 for i in range(4000)))
        big = make_group(records, table)
        payload = clickhouse_payload(sink.config, big)
        frames, at = 0, 0
        while at < len(payload):  # checksum (16), method, compressed size (with the 9 header bytes), size
            frames += 1
            at += 16 + int.from_bytes(payload[at + 17 : at + 21], "little")
        assert frames >= 2 and at == len(payload)
        small = make_group(records_of(STREAMLOG), table)
        outcome = sink.send_batch([big, small])
        assert outcome.kind == "ok", outcome
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "4001"
        assert clickhouse.scalar(f"SELECT max(pack_row) FROM default.{table} WHERE pack_id = '{big.pack_id}'") == "3999"

    def test_a_refused_group_refuses_the_whole_insert(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If one group's frame in a batch's body is damaged, then the insert is refused for good (permanent:
        the worker keeps every group of the batch as a dead letter) and none of the batch is stored."""
        sink = make_sink()
        send_ok(sink, make_group(records_of(STREAMLOG), table))
        batch = [make_group(records_of(STREAMLOG, RFC5424), table) for _ in range(3)]
        bare = []
        for n, group in enumerate(batch):
            payload = clickhouse_payload(sink.config, group)
            if n == 1:
                payload = payload[:40] + bytes([payload[40] ^ 0x20]) + payload[41:]
            bare.append(Group(group.destination, group.source, group.client_ip, [], group.tags, group.pack_id, payload=payload, record_count=2))
        outcome = sink.send_batch(bare)
        assert outcome.kind == "permanent" and "code 40" in outcome.reason, outcome
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "1"
        for group in batch:  # replayed one by one (what a dead letter's replay sends): all accepted
            send_ok(sink, group)
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "7"

    def test_a_resent_batch_is_found_by_pack_id(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If a batch is sent again (a crash before the cursor moved), then its rows are stored twice, and
        ``LIMIT 1 BY pack_id, pack_row`` reads each once."""
        sink = make_sink()
        batch = [make_group(records_of(STREAMLOG, RFC5424, RFC3164), table) for _ in range(4)]
        assert sink.send_batch(batch).kind == "ok"
        assert ClickHouseSink(sink.config).send_batch(batch).kind == "ok"  # the restarted process's sink
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "24"
        once = clickhouse.rows(f"SELECT {ALL_COLUMNS} FROM default.{table} ORDER BY pack_id, pack_row LIMIT 1 BY pack_id, pack_row")
        assert once == stored(clickhouse, table)[::2]

    def test_a_batch_built_from_columns_is_stored_as_one_built_from_records(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, tmp_path: Path
    ) -> None:
        """If a batch is built from columns as worker processes build it (three senders' streamlog lines relayed
        by one peer, non-ASCII, and a line only the record road reads), then the server stores from its one
        insert exactly what it stores from the same batch built from records: every column of every row."""
        sink = make_sink()
        config = dataclasses.replace(
            default_config(), state_directory=tmp_path, sinks=(sink.config,),
            deliver=dataclasses.replace(default_config().deliver, default_sink="ch"),
        )
        frames = [
            b"0.1 sys_tag %d 10.0.0.%d web-%d local0.err 1 app-\xc3\xa9 %d - m\xc3\xa9ssage %d \xe4\xb8\xad"
            % (1_700_000_000 + i, i % 3, i % 2, i, i)
            for i in range(30)
        ]
        frames.insert(7, b"0.1 short")
        segments: Segments = [(1, encode_segment([Entry(RECEIVE_NS, "127.0.0.1", 1, "tcp-11111", "tcp", frames)]))]
        plan = SinkPlan("ch", "P", 100, 1 << 20, payload_encoder(sink.config), column_encoder(sink.config))
        builder = BatchBuilder(config)
        by_columns = builder.build(plan, 1, segments, encode=True).groups
        assert builder.column_batches == 1 and len(by_columns) == 4
        by_records = BatchBuilder(config).build(dataclasses.replace(plan, column_encoder=None), 1, segments).groups
        for group in by_records:
            group.destination = f"{table}_records"
        assert sink.send_batch(by_columns).kind == "ok"
        assert sink.send_batch(by_records).kind == "ok"
        rows = stored(clickhouse, table)
        assert len(rows) == 31
        assert rows == stored(clickhouse, f"{table}_records")

    def test_groups_routed_to_two_tables(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If a batch's groups go to two tables, then each table gets its own groups."""
        other = f"{table}_routed"
        batch = [make_group(records_of(STREAMLOG), table), make_group(records_of(RFC5424), other), make_group(records_of(RFC3164), table)]
        assert make_sink().send_batch(batch).kind == "ok"
        assert sorted(r["message"] for r in stored(clickhouse, table)) == ["hello streamlog", "message 3164"]
        assert [r["message"] for r in stored(clickhouse, other)] == ["message 5424"]


# -- tables --------------------------------------------------------------------


class TestTables:
    def test_created_with_the_documented_schema(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the table does not exist, then the first send creates it: MergeTree, daily partitions, these columns."""
        assert clickhouse.scalar(f"EXISTS TABLE default.{table}") == "0"
        send_ok(make_sink(), make_group(records_of(STREAMLOG), table))
        columns = clickhouse.rows(f"SELECT name, type FROM system.columns WHERE database = 'default' AND table = '{table}'")
        assert [(c["name"], c["type"]) for c in columns] == [
            ("time", "DateTime"), ("time_ns", "UInt32"), ("host", "String"), ("app", "String"),
            ("severity", "Int8"), ("facility", "Int8"), ("message", "String"), ("source", "String"),
            ("client_ip", "String"), ("tag", "String"), ("field_keys", "Array(String)"),
            ("field_values", "Array(String)"), ("flags", "Array(String)"), ("user_defined_id", "String"),
            ("machine_group", "String"), ("receive_time", "DateTime"), ("hostname", "String"),
            ("pack_id", "String"), ("pack_row", "UInt32"),
        ]
        create = clickhouse.scalar(f"SHOW CREATE TABLE default.{table}")
        assert "ENGINE = MergeTree" in create
        assert "PARTITION BY toYYYYMMDD(time)" in create
        assert "ORDER BY (host, app, time)" in create
        assert clickhouse.scalar(f"SELECT partition FROM system.parts WHERE table = '{table}' AND active") == "20231114"

    def test_existing_table_is_used(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the table exists (another sink or an operator made it), then creating it again is harmless."""
        clickhouse.query(create_table_sql("default", table))
        send_ok(make_sink(), make_group(records_of(STREAMLOG), table))
        send_ok(make_sink(), make_group(records_of(RFC3164), table))  # a new sink: creates again, IF NOT EXISTS
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "2"

    def test_route_destination_names_another_table(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a route names another table than the sink's, then the group goes there (created on first use)."""
        other = f"{table}_routed"
        sink = make_sink()
        send_ok(sink, make_group(records_of(STREAMLOG), other))
        send_ok(sink, make_group(records_of(RFC5424, RFC3164), table))
        assert [r["message"] for r in stored(clickhouse, other)] == ["hello streamlog"]
        assert [r["message"] for r in stored(clickhouse, table)] == ["message 5424", "message 3164"]

    def test_group_without_destination_uses_the_configured_table(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a group names no destination, then the sink's own table takes it."""
        send_ok(make_sink(), make_group(records_of(STREAMLOG), ""))
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "1"

    @pytest.mark.parametrize("destination", ["bad-name", "x; DROP TABLE y", "db.table", "1abc", "t`x", "\u00e9t\u00e9"])
    def test_bad_route_destination_is_not_deliverable(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, destination: str
    ) -> None:
        """If a route's destination is not a plain identifier, then the group is not-deliverable and nothing is sent."""
        before = clickhouse.scalar("SELECT count() FROM system.tables")
        outcome = make_sink().send(make_group(records_of(STREAMLOG), destination))
        assert outcome.kind == "not-deliverable"
        assert repr(destination) in outcome.reason and "route" in outcome.reason
        assert clickhouse.scalar("SELECT count() FROM system.tables") == before

    @pytest.mark.parametrize("field", ["table", "database"])
    @pytest.mark.parametrize("name", ["syslog-prod", "a.b", "", "9lives", "x y"])
    def test_bad_configured_name_is_refused_at_construction(self, field: str, name: str) -> None:
        """If the configured table or database is not a plain identifier, then the sink refuses to start, saying why."""
        with pytest.raises(ClickHouseConfigError, match=rf"{field} {re.escape(repr(name))} is not a plain identifier"):
            options: dict[str, Any] = {field: name}
            ClickHouseSink(ClickHouseSinkConfig(name="ch", **options))

    def test_missing_table_without_create_table(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the table does not exist and create_table is false, then the group is not-deliverable (and no table appears)."""
        outcome = make_sink(create_table=False).send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "not-deliverable"
        assert "code 60" in outcome.reason and "create_table = true" in outcome.reason
        assert clickhouse.scalar(f"EXISTS TABLE default.{table}") == "0"

    @pytest.mark.parametrize("create_table", [True, False])
    def test_missing_database(self, make_sink: MakeSink, create_table: bool) -> None:
        """If the database does not exist, then the group is not-deliverable (the sink never creates databases)."""
        outcome = make_sink(database="no_such_db", create_table=create_table).send(make_group(records_of(STREAMLOG), ""))
        assert outcome.kind == "not-deliverable"
        assert "code 81" in outcome.reason and "CREATE DATABASE no_such_db" in outcome.reason

    def test_other_database(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the configured database exists, then tables are made and filled there."""
        clickhouse.query("CREATE DATABASE IF NOT EXISTS logs")
        send_ok(make_sink(database="logs"), make_group(records_of(STREAMLOG), table))
        assert clickhouse.scalar(f"SELECT count() FROM logs.{table}") == "1"

    def test_dropped_table_is_created_again(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the table is dropped while the sink runs, then one send is retried and the next creates it again."""
        sink = make_sink()
        send_ok(sink, make_group(records_of(STREAMLOG), table))
        clickhouse.query(f"DROP TABLE default.{table}")
        outcome = sink.send(make_group(records_of(RFC5424), table))
        assert outcome.kind == "retry" and "created again" in outcome.reason
        send_ok(sink, make_group(records_of(RFC5424), table))
        assert [r["message"] for r in stored(clickhouse, table)] == ["message 5424"]

    def test_table_without_our_columns_is_not_deliverable(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If an existing table lacks a column the sink writes, then the group waits (not-deliverable), not dead-lettered."""
        sql = create_table_sql("default", table).replace("    tag String,\n", "")
        clickhouse.query(sql)
        outcome = make_sink().send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "not-deliverable", outcome
        assert "tag" in outcome.reason and "ADD COLUMN" in outcome.reason

    def test_table_of_other_types_is_not_deliverable(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a column of the table has another type than the sink writes, then the group waits (not-deliverable)
        and nothing is written (a binary insert would store garbage); once the table is fixed, it is delivered."""
        clickhouse.query(create_table_sql("default", table).replace("host String", "host UInt32").replace("message String", "message UInt64"))
        sink = make_sink()
        outcome = sink.send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "not-deliverable", outcome
        assert f"column host of default.{table} is UInt32, the sink writes String" in outcome.reason
        assert f"column message of default.{table} is UInt64, the sink writes String" in outcome.reason
        assert "MODIFY COLUMN host String" in outcome.reason and "MODIFY COLUMN message String" in outcome.reason
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "0"
        # host is in ORDER BY, which 18.16 cannot alter: the operator drops the table and the sink makes it anew.
        clickhouse.query(f"DROP TABLE default.{table}")
        outcome = sink.send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "retry" and "created again" in outcome.reason, outcome
        send_ok(sink, make_group(records_of(STREAMLOG), table))
        assert [r["host"] for r in stored(clickhouse, table)] == ["web-1"]

    def test_table_altered_while_sending_is_seen(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str
    ) -> None:
        """If a column's type is altered while the sink writes, then within SCHEMA_RECHECK_SECONDS the sink stops."""
        clock = FakeClock()
        sink = ClickHouseSink(make_sink().config, clock=clock)
        try:
            send_ok(sink, make_group(records_of(STREAMLOG), table))
            clickhouse.query(f"ALTER TABLE default.{table} MODIFY COLUMN severity Int16")
            clock.now += SCHEMA_RECHECK_SECONDS
            outcome = sink.send(make_group(records_of(RFC5424), table))
            assert outcome.kind == "not-deliverable" and "severity" in outcome.reason and "Int16" in outcome.reason, outcome
            assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "1"
        finally:
            sink.close()

    def test_hand_made_table(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If an operator made the table with its own column order, a time zone, extra columns and another
        engine, then the sink fills it (columns are named in the insert)."""
        columns = [f"{name} {kind}" for name, kind in reversed(COLUMNS)]
        columns = [c.replace("DateTime", "DateTime('Europe/Berlin')") for c in columns]
        clickhouse.query(
            f"CREATE TABLE default.{table} ({', '.join(columns)}, note String DEFAULT 'none', "
            "day Date MATERIALIZED toDate(time)) ENGINE = MergeTree() PARTITION BY day ORDER BY (time, pack_row)"
        )
        group = make_group(records_of(STREAMLOG, RFC5424, RFC3164), table)
        send_ok(make_sink(create_table=False), group)
        assert stored(clickhouse, table) == [
            {**expected_row(record, group, index), **EXPECTED_COLUMNS[frame]}
            for index, (frame, record) in enumerate(zip((STREAMLOG, RFC5424, RFC3164), group.records, strict=True))
        ]
        assert clickhouse.rows(f"SELECT DISTINCT note, toString(day) AS day FROM default.{table}") == [{"note": "none", "day": "2023-11-14"}]

    @pytest.mark.parametrize("damage", ["truncated", "bad method byte", "a byte changed", "not LZ4-framed"])
    def test_rows_the_server_refuses_are_permanent(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, damage: str
    ) -> None:
        """If ClickHouse refuses the body itself while the table is ours, then the outcome is permanent (dead letter)."""
        full = make_group(records_of(STREAMLOG), table)
        sink = make_sink()
        payload = clickhouse_payload(sink.config, full)
        damaged = {
            "truncated": payload[:-3],
            "bad method byte": payload[:16] + b"\x99" + payload[17:],
            "a byte changed": payload[:40] + bytes([payload[40] ^ 0x20]) + payload[41:],
            "not LZ4-framed": b'{"time": 1}\n',
        }[damage]
        bare = Group(full.destination, full.source, full.client_ip, [], full.tags, full.pack_id, payload=damaged, record_count=1)
        outcome = sink.send(bare)
        assert outcome.kind == "permanent", outcome
        assert re.search(r"code (33|40|89)\b", outcome.reason), outcome.reason
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "0"


# -- credentials ---------------------------------------------------------------


class TestCredentials:
    def test_user_header_is_honoured(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the sink sends as writer, then the server runs the insert as writer (the headers are read, not ignored)."""
        send_ok(make_sink(), make_group(records_of(STREAMLOG), table))
        clickhouse.query("SYSTEM FLUSH LOGS")
        users = clickhouse.rows(
            f"SELECT DISTINCT user FROM system.query_log WHERE query LIKE 'INSERT INTO `default`.`{table}`%'"
        )
        assert users == [{"user": "writer"}]

    def test_wrong_password_is_auth_and_secret_free(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """If the password is wrong, then the outcome is auth, and no password shows in the reason, log or repr."""
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-Password-42\n")
        wrong.chmod(0o600)
        caplog.set_level(logging.DEBUG)
        sink = make_sink(password_file=wrong)
        outcome = sink.send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "auth", outcome
        assert re.search(r"code (193|516)\b", outcome.reason), outcome.reason
        assert "writer" in outcome.reason and str(wrong) in outcome.reason
        for text in (outcome.reason, caplog.text, repr(sink)):
            assert "not-the-Password-42" not in text and WRITER_PASSWORD not in text

    def test_rotated_password_is_reread_after_auth_error(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, tmp_path: Path
    ) -> None:
        """If the password file changes after an auth error, then the next send uses the new password."""
        path = tmp_path / "rotating"
        path.write_text("old-password\n")
        path.chmod(0o600)
        sink = make_sink(password_file=path)
        assert sink.send(make_group(records_of(STREAMLOG), table)).kind == "auth"
        path.write_text(WRITER_PASSWORD + "\n")
        assert sink.send(make_group(records_of(STREAMLOG), table)).kind == "auth"  # this one re-read it
        send_ok(sink, make_group(records_of(STREAMLOG), table))

    def test_unknown_user_is_auth(self, make_sink: MakeSink, table: str) -> None:
        """If the user does not exist, then the outcome is auth."""
        outcome = make_sink(user="nobody").send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "auth" and re.search(r"code (192|516)\b", outcome.reason), outcome

    def test_password_from_environment(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If there is no password_file, then CLICKHOUSE_PASSWORD is the password; without it, none is sent."""
        monkeypatch.setenv(PASSWORD_ENV, WRITER_PASSWORD)
        send_ok(make_sink(password_file=None), make_group(records_of(STREAMLOG), table))
        monkeypatch.delenv(PASSWORD_ENV)
        assert make_sink(password_file=None).send(make_group(records_of(STREAMLOG), table)).kind == "auth"
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "1"

    def test_readable_password_file_is_refused(self, password_file: Path, clickhouse: ClickHouseServer) -> None:
        """If the password file is readable by others, then the sink refuses to start and says chmod 600."""
        password_file.chmod(0o644)
        with pytest.raises(ClickHouseConfigError, match="chmod 600") as caught:
            ClickHouseSink(ClickHouseSinkConfig(name="ch", url=clickhouse.url, password_file=password_file))
        assert WRITER_PASSWORD not in str(caught.value)

    def test_password_with_newline_inside_env_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the password cannot be an HTTP header value, then the sink refuses to start without quoting it."""
        monkeypatch.setenv(PASSWORD_ENV, "abc\ndef")
        with pytest.raises(ClickHouseConfigError, match="HTTP header") as caught:
            ClickHouseSink(ClickHouseSinkConfig(name="ch"))
        assert "abc" not in str(caught.value)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://writer:s3cret@127.0.0.1:8123", "must not hold credentials"),
            ("ftp://127.0.0.1", "must be http"),
            ("127.0.0.1:8123", "must be http"),
            ("http://127.0.0.1:8123/?database=x", "no query"),
            ("http://127.0.0.1:8123/?user=w&password=s3cret", "no query"),
            ("ftp://u:s3cret@127.0.0.1/?password=s3cret", "must be http"),
        ],
    )
    def test_bad_url_is_refused(self, url: str, message: str) -> None:
        """If the URL is not a plain http(s) URL without credentials, then the sink refuses to start."""
        with pytest.raises(ClickHouseConfigError, match=message) as caught:
            ClickHouseSink(ClickHouseSinkConfig(name="ch", url=url))
        assert "s3cret" not in str(caught.value)


# -- transient trouble -----------------------------------------------------------


class TestTransient:
    def test_stopped_server_is_retry_then_ok(self, tmp_path: Path, password_file: Path) -> None:
        """If the server is stopped, then sends are retry; once it runs again, the same sink delivers."""
        server = ClickHouseServer(tmp_path / "ch-stop", users={"default": ClickHouseUser(ADMIN_PASSWORD), "writer": ClickHouseUser(WRITER_PASSWORD)})
        sink = ClickHouseSink(ClickHouseSinkConfig(name="ch", url=server.url, user="writer", password_file=password_file, timeout_seconds=5))
        try:
            server.start()
            send_ok(sink, make_group(records_of(STREAMLOG), "syslog"))
            assert server.stop() == 0
            outcome = sink.send(make_group(records_of(RFC5424), "syslog"))
            assert outcome.kind == "retry" and "ConnectionError" in outcome.reason, outcome
            assert WRITER_PASSWORD not in outcome.reason
            server.start()
            send_ok(sink, make_group(records_of(RFC5424), "syslog"))
            assert [r["message"] for r in stored(server, "syslog")] == ["hello streamlog", "message 5424"]
        finally:
            sink.close()
            server.close()

    def test_nothing_listening_is_retry(self, make_sink: MakeSink, table: str) -> None:
        """If nothing listens on the port, then the outcome is retry."""
        outcome = make_sink(url=f"http://{LOOPBACK}:{free_port()}").send(make_group(records_of(STREAMLOG), table))
        assert outcome.kind == "retry" and "ConnectionError" in outcome.reason

    def test_silent_server_is_retry_after_timeout(self, make_sink: MakeSink, table: str) -> None:
        """If the server accepts but never answers, then the send gives up after timeout_seconds with retry."""
        listener = socket.create_server((LOOPBACK, 0))
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.1)
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            sink = make_sink(url=f"http://{LOOPBACK}:{listener.getsockname()[1]}", timeout_seconds=0.5)
            started = time.monotonic()
            outcome = sink.send(make_group(records_of(STREAMLOG), table))
            assert outcome.kind == "retry" and "Timeout" in outcome.reason, outcome
            assert time.monotonic() - started < 5
        finally:
            stop.set()
            thread.join(5)
            for conn in accepted:
                conn.close()
            listener.close()

    def test_too_many_parts_is_quota(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the table has too many parts (merges behind), then the outcome is quota with a wait; after merging, ok."""
        clickhouse.query(
            create_table_sql("default", table)
            + " SETTINGS parts_to_throw_insert = 2, parts_to_delay_insert = 2, max_delay_to_insert = 1"
        )
        clickhouse.query(f"SYSTEM STOP MERGES default.{table}")
        sink = make_sink()
        try:
            send_ok(sink, make_group(records_of(STREAMLOG), table))
            send_ok(sink, make_group(records_of(RFC5424), table))
            outcome = sink.send(make_group(records_of(RFC3164), table))
            assert outcome.kind == "quota" and "code 252" in outcome.reason, outcome
            assert outcome.retry_after_seconds is not None and outcome.retry_after_seconds >= 10
        finally:
            clickhouse.query(f"SYSTEM START MERGES default.{table}")
        clickhouse.query(f"OPTIMIZE TABLE default.{table} FINAL")
        send_ok(sink, make_group(records_of(RFC3164), table))
        assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "3"

    def test_memory_limit_is_quota(self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str) -> None:
        """If the insert exceeds the user's memory limit, then the outcome is quota, suggesting a lower max_records."""
        clickhouse.query(create_table_sql("default", table))
        tiny_password = clickhouse.directory / "tiny-password"
        tiny_password.write_text("tiny-pw")
        tiny_password.chmod(0o600)
        records = records_of(*(b"0.1 sys_tag 1700000000 127.0.0.1 web-1 user.info 1 app - - " + b"x" * 500 for _ in range(10_000)))
        outcome = make_sink(user="tiny", password_file=tiny_password).send(make_group(records, table))
        assert outcome.kind == "quota" and "code 241" in outcome.reason, outcome
        assert "max_records" in outcome.reason and outcome.retry_after_seconds is not None


# -- answers of other releases (no server needed: what 18.16 cannot show) ----------


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "headers", "body", "kind", "code"),
        [
            # 18.16's answers, as seen in the tests above
            (401, {}, b"Code: 193, e.displayText() = DB::Exception: Wrong password for user writer, e.what() = DB::Exception\n", "auth", 193),
            (404, {}, b"Code: 60, e.displayText() = DB::Exception: Table default.x doesn't exist., e.what() = DB::Exception\n", "not-deliverable", 60),
            (500, {}, b"Code: 252, e.displayText() = DB::Exception: Too many parts (2)., e.what() = DB::Exception\n", "quota", 252),
            (400, {}, b"Code: 41, e.displayText() = DB::Exception: Cannot parse datetime, e.what() = DB::Exception\n", "permanent", 41),
            (500, {}, b"Code: 117, e.displayText() = DB::Exception: Unknown field found while parsing JSONEachRow format: zz, e.what() = DB::Exception\n", "not-deliverable", 117),
            (500, {}, b"Code: 117, e.displayText() = DB::Exception: Cannot read array from text, e.what() = DB::Exception\n", "permanent", 117),
            # newer releases: the code in a header and "Code: NNN." in the body
            (401, {"X-ClickHouse-Exception-Code": "516"}, b"Code: 516. DB::Exception: writer: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 24.3.1.1)\n", "auth", 516),
            (403, {"X-ClickHouse-Exception-Code": "497"}, b"Code: 497. DB::Exception: writer: Not enough privileges. (ACCESS_DENIED)\n", "auth", 497),
            (404, {"x-clickhouse-exception-code": "81"}, b"Code: 81. DB::Exception: Database nodb does not exist. (UNKNOWN_DATABASE)\n", "not-deliverable", 81),
            (500, {"X-ClickHouse-Exception-Code": "241"}, b"Code: 241. DB::Exception: Memory limit (for query) exceeded. (MEMORY_LIMIT_EXCEEDED)\n", "quota", 241),
            (400, {"X-ClickHouse-Exception-Code": "27"}, b"Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)\n", "permanent", 27),
            (500, {"X-ClickHouse-Exception-Code": "999"}, b"Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)\n", "retry", 999),
            (503, {}, b"Code: 242. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)\n", "retry", 242),
            # a proxy in front, without ClickHouse codes
            (502, {}, b"<html><body>Bad Gateway</body></html>", "retry", None),
            (429, {"Retry-After": "7"}, b"slow down", "quota", None),
            (413, {}, b"<html>Request Entity Too Large</html>", "permanent", None),
            (403, {}, b"Forbidden", "auth", None),
            (400, {}, b"Bad Request", "permanent", None),
            (408, {}, b"", "retry", None),
            (200, {}, b"", "ok", None),
        ],
    )
    def test_answers(self, status: int, headers: dict[str, str], body: bytes, kind: str, code: int | None) -> None:
        """Each answer maps to its kind, with ClickHouse's code from the header or the body."""
        answer = classify(status, headers, body)
        assert (answer.kind, answer.code) == (kind, code)

    def test_retry_after_and_message(self) -> None:
        """Retry-After is honoured (at least the code's own wait), and the message is one clean line."""
        answer = classify(500, {"Retry-After": "120"}, b"Code: 252, e.displayText() = DB::Exception: Too many\nparts, e.what() = DB::Exception\n")
        assert answer.retry_after_seconds == 120
        assert answer.message == "Code: 252, DB::Exception: Too many parts"
        assert classify(500, {"Retry-After": "1"}, b"Code: 252. Too many parts").retry_after_seconds == 10
        assert classify(429, {"Retry-After": "999999"}, b"").retry_after_seconds == 3600


# -- documentation ----------------------------------------------------------------


class TestDocs:
    def test_documented_schema_is_the_one_created(self) -> None:
        """The CREATE TABLE in docs/sinks/clickhouse.md is exactly what the sink runs."""
        assert create_table_sql("default", "syslog") in DOCS.read_text()
        assert CREATE_TABLE.count("{table}") == 1

    def test_example_queries_run(self, clickhouse: ClickHouseServer, make_sink: MakeSink) -> None:
        """Every ```sql block under "Example queries" in the docs runs on this server against a filled table."""
        clickhouse.query("CREATE DATABASE IF NOT EXISTS docs")
        send_ok(make_sink(database="docs", table="syslog"), make_group(records_of(STREAMLOG, RFC5424, RFC3164), "syslog"))
        text = DOCS.read_text().split("## Example queries", 1)[1].split("\n## ", 1)[0]
        queries = re.findall(r"```sql\n(.*?)```", text, re.S)
        assert len(queries) >= 4
        for query in queries:
            try:
                clickhouse.query(query.strip().rstrip(";"), database="docs")
            except ClickHouseQueryError as e:
                pytest.fail(f"documented query fails on ClickHouse {clickhouse.version()}:\n{query}\n{e}")


# -- throughput -------------------------------------------------------------------


def test_throughput_200k_streamlog(
    clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, record_property: Callable[[str, object], None]
) -> None:
    """200,000 streamlog records in groups of 10,000: all stored; rows/s reported for sending with encoding
    at send, for encoding alone, and for sending groups a worker process encoded."""
    started = time.perf_counter()
    records = records_of(
        *(
            b"0.1 sys_tag %d 127.0.0.1 web-%d user.notice 1 todo-list %d - seq=%010d GET /api/items?page=%d 200 12ms"
            % (1_700_000_000 + i // 1000, i % 50, 700 + i % 13, i, i % 97)
            for i in range(200_000)
        )
    )
    parse_seconds = time.perf_counter() - started
    groups = [make_group(records[i : i + 10_000], table) for i in range(0, len(records), 10_000)]
    sink = make_sink()
    send_ok(sink, make_group(records_of(STREAMLOG), table))  # table creation outside the measurement
    started = time.perf_counter()
    for group in groups[:10]:
        send_ok(sink, group)  # encoded here, as when delivery runs without worker processes
    inline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for group in groups[10:]:
        group.payload = clickhouse_payload(sink.config, group)  # what worker processes do, in parallel
        group.record_count, group.records = len(group.records), []
    encode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for group in groups[10:]:
        send_ok(sink, group)
    send_seconds = time.perf_counter() - started
    assert clickhouse.scalar(f"SELECT count() FROM default.{table}") == "200001"
    assert clickhouse.scalar(f"SELECT uniqExact(message) FROM default.{table}") == "200001"
    inline_rate = 100_000 / inline_seconds
    send_rate = 100_000 / send_seconds
    encode_rate = 100_000 / encode_seconds
    print(
        f"\nClickHouse {clickhouse.version()}, 200,000 streamlog rows in 20 groups of 10,000 "
        f"(parsed beforehand in {parse_seconds:.2f} s):\n"
        f"  encoded at send:              {inline_rate:9,.0f} rows/s (10 groups, {inline_seconds:.2f} s)\n"
        f"  encoding alone (Native, LZ4): {encode_rate:9,.0f} rows/s per process ({encode_seconds:.2f} s)\n"
        f"  sending encoded payloads:     {send_rate:9,.0f} rows/s (10 groups, {send_seconds:.2f} s)"
    )
    record_property("clickhouse_rows_per_second_inline", round(inline_rate))
    record_property("clickhouse_rows_per_second_payload", round(send_rate))
    record_property("clickhouse_encode_rows_per_second", round(encode_rate))
    assert inline_rate > 5_000, "far below what this sink should reach on loopback: something regressed"


# -- receiverctl search --sink --------------------------------------------------------------


class TestSearch:
    def test_the_server_answers_what_the_local_store_answers(
        self, clickhouse: ClickHouseServer, make_sink: MakeSink, table: str, password_file: Path, tmp_path: Path
    ) -> None:
        """If the same groups go to a ClickHouse sink and to a local store, then ``receiverctl search --sink``
        prints for every filter exactly what ``receiverctl search`` prints from the store: the same records
        in the same order (5,000 of them: pages of 2,048 follow one another), whole or limited, either way."""
        from receiver.deliver.sinks.local.store import EmbeddedStore
        from tests.support.programs import to_toml

        apps, severities = ("todo-list", "api", "cron"), ("user.notice", "local0.err", "daemon.warning")
        frames = [
            b"0.1 sys_tag %d 10.0.0.%d web-%d %s 1 %s %d - request %d %s"
            % (1_700_000_000 + i // 7, i % 5, i % 4, severities[i % 3].encode(), apps[i % 3].encode(), i, i,
               b"hello world" if i % 10 == 0 else b"timeout")
            for i in range(5000)
        ] + [RFC5424, RFC3164]
        records = records_of(*frames)
        batch = [make_group(records[i : i + 1000], table) for i in range(0, len(records), 1000)]
        sink = make_sink()
        for group in batch:
            send_ok(sink, group)
        store = EmbeddedStore(tmp_path / "store", max_age_hours=1e6, max_bytes=1 << 40, memory_limit_bytes=256 << 20)
        try:
            store.insert_groups(batch, token="all")
        finally:
            store.close()
        config = tmp_path / "receiver.toml"
        config.write_text(to_toml({
            "state_directory": str(tmp_path / "state"),
            "sinks": [{"name": "ch", "type": "clickhouse", "url": clickhouse.url, "table": table, "user": "writer",
                       "password_file": str(password_file)}],
            "deliver": {"default_sink": "ch"},
        }))
        for expr, options in (
            ("", ("--limit", "0")),
            ("hello", ("--limit", "0")),
            ("app-name=todo-list and not severity<=3", ("--limit", "0", "--oldest-first")),
            ('host=web-1 "request 1"', ("--limit", "25")),
            ("message=/timeout$/", ("--limit", "3000", "--json")),
            ("nothing-matches-this", ()),
        ):
            local = receiverctl("search", expr, "--db", str(tmp_path / "store"), *options, env=BARE_ENV, timeout=120)
            remote = receiverctl("search", expr, "-c", str(config), "--sink", "ch", *options, env=BARE_ENV, timeout=120)
            assert remote.returncode == local.returncode, (expr, remote.stderr)
            assert remote.stdout == local.stdout, expr
            assert local.returncode == 1 or len(local.stdout.splitlines()) > 0
        assert len(receiverctl("search", "", "-c", str(config), "--sink", "ch", "--limit", "0", env=BARE_ENV, timeout=120).stdout.splitlines()) == 5002

    def test_what_cannot_be_searched_is_said(self, clickhouse: ClickHouseServer, tmp_path: Path) -> None:
        """If --sink names no sink, a sink of another type, or a server that refuses, then receiverctl says
        which and how to go on, with exit status 2 and no password in what it prints."""
        from tests.support.programs import to_toml

        config = tmp_path / "receiver.toml"
        config.write_text(to_toml({
            "state_directory": str(tmp_path / "state"),
            "sinks": [
                {"name": "ch", "type": "clickhouse", "url": clickhouse.url, "table": "nowhere", "user": "writer"},
                {"name": "local", "type": "local"},
            ],
            "deliver": {"default_sink": "ch"},
        }))
        missing = receiverctl("search", "", "-c", str(config), "--sink", "other", env=BARE_ENV, timeout=120)
        assert missing.returncode == 2 and "no sink named 'other'" in missing.stderr and "ch, local" in missing.stderr
        local = receiverctl("search", "", "-c", str(config), "--sink", "local", env=BARE_ENV, timeout=120)
        assert local.returncode == 2 and "search the local store without --sink" in local.stderr
        refused = receiverctl("search", "", "-c", str(config), "--sink", "ch", env=BARE_ENV, timeout=120)  # no password: the server refuses
        assert refused.returncode == 2 and "ClickHouse at" in refused.stderr, refused.stderr
        assert WRITER_PASSWORD not in refused.stderr
        table_alone = receiverctl("search", "", "-c", str(config), "--table", "t", env=BARE_ENV, timeout=120)
        assert table_alone.returncode == 2 and "give --sink NAME too" in table_alone.stderr
