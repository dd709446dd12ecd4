"""The ClickHouse sink's rows without a server: Native blocks read back by a small decoder written here.

The decoder follows ClickHouse's Native format as documented (counts and
lengths as LEB128 varints, numbers little-endian, an Array as its rows' end
offsets then its elements), not the encoder's code; every value is compared
with what the record and the group say the row must hold.
tests/integration/test_clickhouse_sink.py reads the same rows back through
a real clickhouse-server.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import lz4.block
from clickhouse_cityhash.cityhash import CityHash128
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.columns import columns_of
from formats.parse import make_parser
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG
from receiver.config.model import ClickHouseSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.sinks.clickhouse import (
    COLUMNS,
    CREATE_TABLE,
    clickhouse_payload,
    native_block,
)

PARSE = make_parser(format="auto")
MAX_DATETIME = 2**32 - 1

# -- a Native reader -------------------------------------------------------------


class NativeReader:
    """Reads one Native block, strictly: every byte accounted for, strings valid UTF-8."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        assert len(chunk) == size, f"block ends {size - len(chunk)} bytes early at {self.at}"
        self.at += size
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def string(self) -> str:
        return self.take(self.varint()).decode("utf-8")

    def column(self, kind: str, rows: int) -> list[Any]:
        numbers = {"DateTime": "I", "UInt32": "I", "Int8": "b", "UInt64": "Q"}
        if kind in numbers:
            code = numbers[kind]
            return list(struct.unpack(f"<{rows}{code}", self.take(rows * struct.calcsize(code))))
        if kind == "String":
            return [self.string() for _ in range(rows)]
        if kind.startswith("Array(") and kind.endswith(")"):
            ends = self.column("UInt64", rows)
            elements = self.column(kind[len("Array(") : -1], ends[-1] if ends else 0)
            return [elements[start:end] for start, end in zip([0, *ends], ends, strict=False)]
        raise AssertionError(f"no reader for type {kind}")


def read_block(data: bytes) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """The block's (name, type) pairs and its rows."""
    reader = NativeReader(data)
    column_count, row_count = reader.varint(), reader.varint()
    names: list[tuple[str, str]] = []
    columns: list[list[Any]] = []
    for _ in range(column_count):
        name, kind = reader.string(), reader.string()
        names.append((name, kind))
        columns.append(reader.column(kind, row_count))
    assert reader.at == len(data), f"{len(data) - reader.at} bytes after the block"
    rows = [dict(zip([name for name, _ in names], values, strict=True)) for values in zip(*columns, strict=True)]
    return names, rows


# -- what a row must hold ----------------------------------------------------------


def utf8(text: str) -> str:
    """What a str becomes in UTF-8 (a lone surrogate is "?"), as JSONEachRow rows had it."""
    return text.encode("utf-8", "replace").decode("utf-8")


def expected_rows(group: Group) -> list[dict[str, Any]]:
    tags = dict(group.tags)
    received = tags.get("__receive_time__", "")
    rows = []
    for index, record in enumerate(group.records):
        host, app, severity, facility, message = columns_of(record)
        rows.append({
            "time": min(max(record.time, 0), MAX_DATETIME),
            "time_ns": record.time_ns if 0 <= record.time_ns < 1_000_000_000 else 0,
            "host": utf8(host),
            "app": utf8(app),
            "severity": severity,
            "facility": facility,
            "message": utf8(message),
            "source": utf8(record.source),
            "client_ip": utf8(tags.get("__client_ip__", group.client_ip)),
            "tag": utf8(record.tags.get(STREAMLOG_TAG, "")),
            "field_keys": [utf8(key) for key in record.keys],
            "field_values": [utf8(value) for value in record.values],
            "flags": [utf8(flag) for flag in record.flags],
            "user_defined_id": utf8(tags.get("__user_defined_id__", "")),
            "machine_group": utf8(tags.get("__machine_group__", "")),
            "receive_time": min(int(received), MAX_DATETIME) if received.isascii() and received.isdigit() else 0,
            "hostname": utf8(tags.get("__hostname__", "")),
            "pack_id": utf8(tags.get("__pack_id__", group.pack_id)),
            "pack_row": index,
        })
    return rows


def group_of(records: list[Record], tags: Sequence[tuple[str, str]] | None = None, pack_id: str = "PACK-1") -> Group:
    if tags is None:
        tags = [
            ("__client_ip__", "10.1.2.3"), ("__receive_time__", "1700000100"), ("__hostname__", "appliance-1"),
            ("__user_defined_id__", "idA idB"), ("__machine_group__", "web prod"), ("__pack_id__", pack_id),
        ]
    return Group("syslog", records[0].source if records else "10.1.2.3", "10.1.2.3", records, list(tags), pack_id)


# -- records of every kind ----------------------------------------------------------

# Keys columns_of reads (both vocabularies), so that layouts put them anywhere, twice, or not at all.
COLUMN_KEYS = (
    "_hostname_", "_program_", "_content_", "_severity_", "_facility_", "hostname", "app-name", "msg", "pri-text",
    "severity", "facility", "source", "fromhost", "programname", "syslogtag", "rawmsg", "syslogseverity",
    "syslogfacility",
)
LEVEL_TEXTS = (
    "0", "3", "7", "8", "23", "24", " 4 ", "err", "Warning", "warn", "panic", "local0", "kern", "user", "²", "-1",
    "user.notice", "local7.debug", "local0.err<133>", "<191>", "<192>", "auth.", ".info", "",
)
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
"""Any code points, lone surrogates and NUL included (a parser makes no surrogate; a dead letter could)."""
values = st.one_of(any_text, st.sampled_from(LEVEL_TEXTS), st.just(""), st.text(max_size=300))
layouts = st.lists(st.one_of(st.sampled_from(COLUMN_KEYS), any_text), max_size=14).map(tuple)


@st.composite
def groups(draw: st.DrawFn, max_records: int = 12) -> Group:
    """A group whose records share one layout (one keys tuple, as parsers do), or a few, or mix many."""
    shared = draw(st.lists(layouts, min_size=1, max_size=draw(st.sampled_from((1, 1, 3)))))
    mixed = draw(st.booleans())
    records = []
    for _ in range(draw(st.integers(1, max_records))):
        keys = draw(st.one_of(st.sampled_from(shared), layouts) if mixed else st.sampled_from(shared))
        records.append(Record(
            draw(st.one_of(st.integers(1_600_000_000, 1_800_000_000), st.integers(-(2**40), 2**40))),
            draw(st.one_of(st.integers(0, 999_999_999), st.integers(-(2**33), 2**33))),
            keys,
            draw(st.lists(values, min_size=len(keys), max_size=len(keys))),
            draw(st.one_of(st.just("10.1.2.3"), any_text)),
            draw(st.one_of(st.just({}), st.builds(lambda tag: {STREAMLOG_TAG: tag}, any_text))),
            tuple(draw(st.lists(st.one_of(st.sampled_from(("parse-error", "invalid-utf8", "truncated:70000")), any_text), max_size=3))),
        ))
    group_tags = draw(st.one_of(
        st.none(),
        st.lists(st.tuples(
            st.sampled_from(("__client_ip__", "__receive_time__", "__hostname__", "__user_defined_id__", "__machine_group__", "__pack_id__")),
            st.one_of(any_text, st.integers(0, 2**33).map(str)),
        ), max_size=6),
    ))
    return group_of(records, group_tags, draw(any_text))


# -- tests ----------------------------------------------------------------------------


class TestSchema:
    def test_create_table_is_made_of_columns(self) -> None:
        """CREATE_TABLE declares exactly COLUMNS, in order, one a line."""
        body = CREATE_TABLE.split("(\n", 1)[1].split("\n)", 1)[0]
        assert [tuple(line.strip().split(" ", 1)) for line in body.splitlines()] == [
            (name, f"{kind},") if i < len(COLUMNS) - 1 else (name, kind) for i, (name, kind) in enumerate(COLUMNS)
        ]

    def test_block_follows_columns(self) -> None:
        """A block's columns are COLUMNS, same names, same types, same order."""
        names, _ = read_block(native_block(group_of([PARSE(b"<13>Nov 14 22:13:20 h a: m", "10.1.2.3", 0)])))
        assert names == list(COLUMNS)


class TestRows:
    def test_known_rows(self) -> None:
        """If a group holds the three formats, then each decoded row holds every column as specified."""
        records = [
            PARSE(b"0.1 sys_tag 1700000000 127.0.0.1 web-1 user.notice 1 todo-list 705 - hello streamlog", "10.1.2.3", 0),
            PARSE(b"<165>1 2023-11-14T22:13:20.123456Z host5424 app5424 4242 ID47 - message 5424", "10.1.2.3", 0),
            PARSE(b"<13>Nov 14 22:13:20 host3164 app3164[99]: message 3164 caf\xc3\xa9", "10.1.2.3", 0),
        ]
        _, rows = read_block(native_block(group_of(records)))
        assert rows == expected_rows(group_of(records))
        # Spelled out once, so that expected_rows cannot hide a mistake:
        assert rows[0] == {
            "time": 1_700_000_000, "time_ns": 0, "host": "web-1", "app": "todo-list", "severity": 5, "facility": 1,
            "message": "hello streamlog", "source": "10.1.2.3", "client_ip": "10.1.2.3", "tag": "sys_tag",
            "field_keys": ["hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid", "msg"],
            "field_values": ["web-1", "user.notice", "1", "todo-list", "705", "-", "hello streamlog"],
            "flags": [], "user_defined_id": "idA idB", "machine_group": "web prod", "receive_time": 1_700_000_100,
            "hostname": "appliance-1", "pack_id": "PACK-1", "pack_row": 0,
        }
        assert (rows[1]["time_ns"], rows[1]["facility"], rows[2]["message"]) == (123_456_000, 20, "message 3164 café")

    def test_layouts_of_one_parser(self) -> None:
        """If a group mixes RFC 5424 and 3164 records (keys that differ after the common ones), then each row is its own."""
        frames = [
            b"<165>1 2023-11-14T22:13:20Z h1 a1 42 ID47 [x@1 k=\"v\"] m1",
            b"<14>1 2023-11-14T22:13:20Z h2 a2 - - - m2",
            b"<13>Nov 14 22:13:20 h3 a3[99]: m3",
            b"<191>Nov 14 22:13:20 h4 a4: m4",
            b"<13>Nov 14 22:13:20 h5 ",
        ]
        records = [PARSE(frame, "10.1.2.3", 0) for frame in frames]
        assert len({record.keys for record in records}) >= 3
        _, rows = read_block(native_block(group_of(records)))
        assert rows == expected_rows(group_of(records))
        assert [(r["host"], r["app"], r["severity"], r["facility"], r["message"]) for r in rows[:4]] == [
            ("h1", "a1", 5, 20, "m1"), ("h2", "a2", 6, 1, "m2"), ("h3", "a3", 5, 1, "m3"), ("h4", "a4", 7, 23, "m4"),
        ]

    def test_edges(self) -> None:
        """Times outside DateTime are pinned, a bad time_ns is 0, a lone surrogate is "?", empty stays empty."""
        records = [
            Record(-5, -1, ("msg",), ["a\udc80b"], "s", {}),
            Record(2**32 + 10, 10**9, ("msg", ""), ["", ""], "", {}, ("truncated:9",)),
            Record(2**32 - 1, 999_999_999, (), [], "\ud800", {STREAMLOG_TAG: ""}),
        ]
        _, rows = read_block(native_block(group_of(records)))
        assert [(r["time"], r["time_ns"]) for r in rows] == [(0, 0), (MAX_DATETIME, 0), (MAX_DATETIME, 999_999_999)]
        assert [r["message"] for r in rows] == ["a?b", "", ""]
        assert [r["source"] for r in rows] == ["s", "", "?"]
        assert rows[1]["field_keys"] == ["msg", ""] and rows[2]["field_keys"] == [] and rows[1]["flags"] == ["truncated:9"]

    def test_empty_group(self) -> None:
        """If a group has no records, then its block has every column and no row."""
        names, rows = read_block(native_block(group_of([])))
        assert names == list(COLUMNS) and rows == []

    def test_long_columns_with_rare_non_ascii(self) -> None:
        """If one value in thousands is not ASCII or is long, then every value still decodes as it was."""
        records = [PARSE(b"<13>Nov 14 22:13:20 h a: m%d" % i, "10.1.2.3", 0) for i in range(3000)]
        records[1500] = PARSE("<13>Nov 14 22:13:20 h a: über 中文 \U0001f600".encode(), "10.1.2.3", 0)
        records[2999] = PARSE(b"<13>Nov 14 22:13:20 h a: " + b"x" * 70_000, "10.1.2.3", 0)
        group = group_of(records)
        _, rows = read_block(native_block(group))
        assert rows == expected_rows(group)
        assert rows[1500]["message"] == "über 中文 \U0001f600" and len(rows[2999]["message"]) == 70_000

    @settings(max_examples=300, deadline=None)
    @given(groups())
    def test_any_group(self, group: Group) -> None:
        """Any records (any code points, any layouts, shared or mixed, any times) decode to their rows."""
        names, rows = read_block(native_block(group))
        assert names == list(COLUMNS)
        assert rows == expected_rows(group)


class TestPayload:
    def test_payload_is_the_block_in_lz4_frames(self) -> None:
        """The payload is ClickHouse's compressed framing: CityHash128 checksum, LZ4 (0x82), sizes, blocks of 1 MiB
        at most."""
        records = [PARSE(b"<13>Nov 14 22:13:20 h a: %d %s" % (i, b"y" * (i % 700)), "10.1.2.3", 0) for i in range(8000)]
        group = group_of(records)
        payload = clickhouse_payload(ClickHouseSinkConfig(name="ch"), group)
        data, at, sizes = b"", 0, []
        while at < len(payload):
            checksum, (method, compressed_size, size) = payload[at : at + 16], struct.unpack("<BII", payload[at + 16 : at + 25])
            digest = CityHash128(payload[at + 16 : at + 16 + compressed_size])
            assert checksum == struct.pack("<QQ", digest >> 64, digest & (2**64 - 1)) and method == 0x82
            data += lz4.block.decompress(payload[at + 25 : at + 16 + compressed_size], uncompressed_size=size)
            at += 16 + compressed_size
            sizes.append(size)
        assert data == native_block(group)
        assert len(sizes) > 1 and max(sizes) == 1 << 20

    def test_same_group_same_bytes(self) -> None:
        """Encoding is deterministic: a resent group is the same bytes."""
        records = [PARSE(b"<13>Nov 14 22:13:20 h a: m", "10.1.2.3", 0)]
        config = ClickHouseSinkConfig(name="ch")
        assert clickhouse_payload(config, group_of(records)) == clickhouse_payload(config, group_of(list(records)))
