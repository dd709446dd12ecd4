"""The ClickHouse sink: each batch is one ``INSERT ... FORMAT Native`` over HTTP.

One request per batch and table (:meth:`ClickHouseSink.send_batch`), to
ClickHouse's HTTP interface: the query
``INSERT INTO `db`.`table` (time, time_ns, ...) FORMAT Native`` as the
``query`` URL parameter, and as the body each group's
:func:`clickhouse_payload` one after the other (made in a worker process
when delivery uses them, from the batch's columns where it can, else at
send): the group's rows as one block of ClickHouse's Native format
(:func:`native_block`) in ClickHouse's own LZ4 block framing
(``decompress=1``). The server squashes the blocks of one insert into one
part, so a batch costs it one part, not one per sender. The credentials go
in the ``X-ClickHouse-User`` / ``X-ClickHouse-Key`` headers, so they never
appear in a URL that a proxy, a server log or an exception message could
print. All of this works the same on clickhouse-server 18.16 (Debian 12's
package, checked by tests/integration/test_clickhouse_sink.py) and on
current releases.

Requests go over the sink's pool of kept-alive connections
(receiver/deliver/sinks/connections.py: urllib3, through the environment's
proxy if one applies, with the proxy's credentials if its URL has them), at
most ``concurrency`` of them. A redirect is never followed (the credentials
would go with it). The pool retries nothing: only a request whose
connection broke before any answer came is sent again, at once and once
(:meth:`ClickHouseSink._post` says why); everything else is the worker's
to retry, from the spool.

Why Native and not JSONEachRow: 18.16 spent most of an insert parsing JSON,
and Native is columnar, so the encoder turns whole columns into bytes with
joins and ``struct`` instead of formatting each row; docs/sinks/clickhouse.md
has the measurements.

The table holds one row per record (:data:`COLUMNS`, from which
:data:`CREATE_TABLE` is made; docs/sinks/clickhouse.md explains it). It uses
only types both 18.16 and current releases accept: no DateTime64, Map or
LowCardinality (18.16 wants an experimental setting for LowCardinality and
knows neither of the others). ``time`` is DateTime (seconds) with the
nanoseconds beside it in ``time_ns``, as SLS keeps them. A binary format
carries no conversion: 18.16 stores garbage when a column's type differs
from the bytes sent, so the sink reads the table's columns (``DESCRIBE``)
before writing to it and waits, *not-deliverable*, while they differ.

Every answer becomes a :class:`~receiver.deliver.outcomes.SendOutcome` by
:func:`classify`, from ClickHouse's exception code: the
``X-ClickHouse-Exception-Code`` header of newer servers, else the
``Code: NNN`` that every release puts at the start of the error body (18.16
sends no such header). Data is given up on (``permanent``, dead-lettered and
replayable) only when the rows themselves were refused; a wrong password, a
missing database or table, a full server, a schema that is not ours
all keep the batch in the spool until someone fixes the cause. The worker
settles a batch as one: a refusal for good dead-letters every group of it
that no earlier table's insert stored, each replayed on its own
(docs/sinks/clickhouse.md, *One insert per batch*).

Plain MergeTree does not de-duplicate: a batch resent after a crash inside a
send is stored twice. Its rows carry ``pack_id`` and ``pack_row`` (the row's
index in its group), which are the same on every resend, so duplicates can
be found and dropped at query time (``LIMIT 1 BY pack_id, pack_row``); the
docs say what ClickHouse offers beyond that.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import math
import os
import re
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import accumulate, chain
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import lz4.block
import urllib3
from clickhouse_cityhash.cityhash import CityHash128

from formats.columns import columns_of_records
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG
from receiver.config.model import ClickHouseSinkConfig
from receiver.config.secrets import read_private_file, redact_url
from receiver.deliver.batches import Group
from receiver.deliver.outcomes import OutcomeKind, SendOutcome
from receiver.deliver.sinks.connections import UpstreamError, connection_pool, no_answer, timeout_of
from receiver.deliver.sinks.records_table import (
    COLUMNS,
    MAX_DATETIME,
    clamp_datetime,
    group_columns,
    repeated,
    streamlog_columns,
)
from receiver.filters.expression import ClickHouseDialect

if TYPE_CHECKING:  # (the store's module brings Arrow and chDB: only `receiverctl search --sink` needs it)
    from receiver.deliver.column_groups import BatchColumns
    from receiver.deliver.sinks.local.store import SearchTable

__all__ = [
    "AUTH_CODES",
    "COLUMNS",
    "CREATE_TABLE",
    "NOT_DELIVERABLE_CODES",
    "PASSWORD_ENV",
    "PERMANENT_CODES",
    "QUOTA_CODES",
    "SCHEMA_RECHECK_SECONDS",
    "Classified",
    "ClickHouseConfigError",
    "ClickHouseQueryError",
    "ClickHouseSink",
    "classify",
    "clickhouse_payload",
    "clickhouse_payload_of_rows",
    "create_table_sql",
    "exception_code",
    "is_identifier",
    "native_block",
    "native_columns",
]

log = logging.getLogger("receiver.deliver")

PASSWORD_ENV = "CLICKHOUSE_PASSWORD"
"""Where the password comes from when ``password_file`` is not set."""

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table}\n(\n"
    + ",\n".join(f"    {name} {kind}" for name, kind in COLUMNS)
    + "\n)\nENGINE = MergeTree()\nPARTITION BY toYYYYMMDD(time)\nORDER BY (host, app, time)"
)
"""The table the sink creates (``{table}`` is the quoted ``db.table``).

Daily partitions because 18.16 has no TTL: retention is ``ALTER TABLE ...
DROP PARTITION 20240131``, one cheap statement per day. ORDER BY follows
the queries operators run: one host's or one program's lines over a time range.
"""

# ClickHouse exception codes (src/Common/ErrorCodes.cpp), by what they mean for a group.
AUTH_CODES = frozenset({
    164,  # READONLY: the user's profile may not write
    192,  # UNKNOWN_USER (before 20.x)
    193,  # WRONG_PASSWORD (before 20.x)
    194,  # REQUIRED_PASSWORD
    195,  # IP_ADDRESS_NOT_ALLOWED
    497,  # ACCESS_DENIED: no INSERT / CREATE grant (RBAC, 20.x on)
    516,  # AUTHENTICATION_FAILED (20.x on: unknown user and wrong password alike)
})
NOT_DELIVERABLE_CODES = frozenset({
    8,  # THERE_IS_NO_COLUMN
    16,  # NO_SUCH_COLUMN_IN_TABLE: the table is not the schema we write
    47,  # UNKNOWN_IDENTIFIER
    60,  # UNKNOWN_TABLE
    81,  # UNKNOWN_DATABASE
    115,  # UNKNOWN_SETTING
})
QUOTA_CODES: Mapping[int, float] = {
    # code: seconds to wait at least (ClickHouse sends no Retry-After of its own)
    173: 5.0,  # CANNOT_ALLOCATE_MEMORY
    201: 60.0,  # QUOTA_EXPIRED / QUOTA_EXCEEDED: the user's quota interval must pass
    202: 1.0,  # TOO_MANY_SIMULTANEOUS_QUERIES
    241: 5.0,  # MEMORY_LIMIT_EXCEEDED
    243: 30.0,  # NOT_ENOUGH_SPACE
    252: 10.0,  # TOO_MANY_PARTS: merges must catch up; ClickHouse's own advice is to insert less often
}
PERMANENT_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    33,  # CANNOT_READ_ALL_DATA
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    89,  # UNKNOWN_COMPRESSION_METHOD: the body's LZ4 framing arrived damaged
    117,  # INCORRECT_DATA (but "Unknown field": the table lacks a column, see classify)
    131,  # TOO_LARGE_STRING_SIZE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    40,  # CHECKSUM_DOESNT_MATCH: a compressed block damaged (kept as records, re-encoded at replay)
    354,  # CANNOT_DECOMPRESS (the gzip body arrived damaged)
})

MAX_RETRY_AFTER_SECONDS = 3600.0
"""A longer Retry-After (from a proxy in front) is cut to this."""
_MAX_MESSAGE_CHARS = 300
_MAX_PASSWORD_FILE_BYTES = 4096
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
_CODE_IN_BODY = re.compile(rb"Code:\s*(\d{1,6})")
SCHEMA_RECHECK_SECONDS = 10.0
"""How long a table's columns, once found to be ours, are trusted before ``DESCRIBE`` runs again."""
_INSERT_COLUMNS = ", ".join(name for name, _ in COLUMNS)
_INSERT_PARAMS = {"decompress": "1"}  # the body is LZ4 in ClickHouse's own block framing, checksummed
_LZ4_METHOD = 0x82  # ClickHouse's byte for LZ4 in its compressed-block header
_LOW_64 = (1 << 64) - 1
_LZ4_BLOCK_BYTES = 1 << 20  # ClickHouse's own max_compress_block_size: bounds the server's buffer
_TABLE_TIME_ZONE = re.compile(r"DateTime\('[^'\\]*'\)")


class ClickHouseConfigError(ValueError):
    """The sink's configuration cannot work (a bad name, URL or password file); the message says the fix."""


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a plain ClickHouse identifier (letters, digits, ``_``; not starting with a digit).

    ClickHouse accepts other names in backquotes, but then every query an
    operator types must quote them, and a ``.`` would read as ``db.table``:
    refusing them costs nothing and prevents both.
    """
    return _IDENTIFIER.fullmatch(name) is not None


def _quoted(database: str, table: str) -> str:
    return f"`{database}`.`{table}`"


def create_table_sql(database: str, table: str) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement for ``database.table`` (both must be identifiers)."""
    for what, name in (("database", database), ("table", table)):
        if not is_identifier(name):
            raise ClickHouseConfigError(f"ClickHouse {what} name {name!r} is not a plain identifier")
    return CREATE_TABLE.format(table=_quoted(database, table))


# -- rows ----------------------------------------------------------------------
#
# A Native block is, after its column and row counts, each column in turn: its name, its type,
# then every row's value. Numbers are little-endian, a String is its UTF-8 length (a LEB128
# varint) and bytes, an Array is first every row's end offset (UInt64, counted in elements)
# then all the elements as one column. Being columnar, a whole column is made by one join or
# one ``struct.pack`` instead of a Python step per row and value, which is what made this
# encoder (most of the sink's CPU) fast; the group's own columns are one value repeated.


def native_block(group: Group) -> bytes:
    """The group's rows as one block of ClickHouse's Native format: the columns of :data:`COLUMNS`, in order.

    Values are those JSONEachRow carried before: times outside DateTime's
    1970..2106 are pinned to its edges, a ``time_ns`` outside 0..999,999,999
    is 0, a lone surrogate (no parser makes one; a replayed dead letter
    might) becomes ``?``, and ``pack_row`` is the record's index in the group.
    The same group gives the same bytes.
    """
    records = group.records
    count = len(records)
    hosts, apps, severities, facilities, messages = columns_of_records(records)
    keys = [record.keys for record in records]
    values = [record.values for record in records]
    flags = [record.flags for record in records]
    data = {
        "time": _numbers("I", _datetimes([record.time for record in records])),
        "time_ns": _numbers("I", _nanoseconds([record.time_ns for record in records])),
        "host": _strings(hosts),
        "app": _strings(apps),
        "severity": _numbers("b", severities),
        "facility": _numbers("b", facilities),
        "message": _strings(messages),
        "source": _strings([record.source for record in records]),
        "tag": _strings([record.tags.get(STREAMLOG_TAG, "") for record in records]),
        "field_keys": _offsets(keys) + b"".join(map(_ENCODED_KEYS.__getitem__, keys)),
        "field_values": _offsets(values) + _strings(list(chain.from_iterable(values))),
        "flags": _offsets(flags) + b"".join(map(_ENCODED_FLAGS.__getitem__, flags)),
        **_group_data(group, count),
    }
    return _block(count, data)


def _block(count: int, data: Mapping[str, bytes]) -> bytes:
    """A Native block of ``count`` rows, given each column's bytes by name."""
    parts = [_varint(len(COLUMNS)), _varint(count)]
    for (name, _), header in zip(COLUMNS, _COLUMN_HEADERS, strict=True):
        parts += (header, data[name])
    return b"".join(parts)


def _group_data(group: Group, count: int) -> dict[str, bytes]:
    """The columns whose value is the group's own, for ``count`` rows: its tags, its pack and row numbers."""
    same = group_columns(group)
    return {
        "client_ip": _string(same.client_ip) * count,
        "user_defined_id": _string(same.user_defined_id) * count,
        "machine_group": _string(same.machine_group) * count,
        "receive_time": struct.pack("<I", same.receive_time) * count,
        "hostname": _string(same.hostname) * count,
        "pack_id": _string(same.pack_id) * count,
        "pack_row": _numbers("I", range(count)),
    }


def _datetimes(seconds: list[int]) -> list[int]:
    if seconds and (min(seconds) < 0 or max(seconds) > MAX_DATETIME):
        return [clamp_datetime(s) for s in seconds]
    return seconds


def _nanoseconds(nanoseconds: list[int]) -> list[int]:
    if nanoseconds and (min(nanoseconds) < 0 or max(nanoseconds) >= 1_000_000_000):
        return [ns if 0 <= ns < 1_000_000_000 else 0 for ns in nanoseconds]
    return nanoseconds


def _numbers(code: str, numbers: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(numbers)}{code}", *numbers)


def _offsets(lists: Sequence[Sequence[object]]) -> bytes:
    """An Array column's offsets: where each row's elements end, counted from the column's start."""
    return struct.pack(f"<{len(lists)}Q", *accumulate(map(len, lists)))


def _varint(n: int) -> bytes:
    """``n`` as ClickHouse writes lengths and counts: LEB128, seven bits a byte, low bits first."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _LengthPrefixes(dict[int, str]):
    """Each length's varint as latin-1 text, so that an ASCII column is joined as text and encoded once."""

    def __missing__(self, length: int) -> str:
        return _varint(length).decode("latin-1")  # longer than the table: rare, not kept


class _LengthBytes(dict[int, bytes]):
    """Each length's varint as bytes."""

    def __missing__(self, length: int) -> bytes:
        return _varint(length)


_STRINGS_CHUNK = 1024
_PREFIX_TEXT = _LengthPrefixes((n, _varint(n).decode("latin-1")) for n in range(1 << 14))
_PREFIX_BYTES = _LengthBytes((n, _varint(n)) for n in range(1 << 14))


def _string(text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    return _varint(len(data)) + data


def _strings(texts: list[str]) -> bytes:
    """A String column: each value's UTF-8 length and bytes, one after the other."""
    if len(texts) > _STRINGS_CHUNK:  # one non-ASCII value then slows its chunk only, not the column
        return b"".join(_strings(texts[i : i + _STRINGS_CHUNK]) for i in range(0, len(texts), _STRINGS_CHUNK))
    parts: list[Any] = [None] * (2 * len(texts))
    if "".join(texts).isascii():
        # Characters are bytes: lengths and text interleave as one str, encoded once.
        parts[0::2] = map(_PREFIX_TEXT.__getitem__, map(len, texts))
        parts[1::2] = texts
        return "".join(parts).encode("latin-1")
    try:
        encoded = list(map(str.encode, texts))
    except UnicodeEncodeError:  # a lone surrogate: "?" instead of the whole group, as before
        encoded = [text.encode("utf-8", "replace") for text in texts]
    parts[0::2] = map(_PREFIX_BYTES.__getitem__, map(len, encoded))
    parts[1::2] = encoded
    return b"".join(parts)


class _EncodedLists(dict[tuple[str, ...], bytes]):
    """Tuples of strings (the key lists of layouts, flag sets) as their String elements, made once each."""

    def __missing__(self, strings: tuple[str, ...]) -> bytes:
        if len(self) >= _CACHE_LIMIT:  # layouts are few; this only bounds a pathological sender
            self.clear()
        encoded = self[strings] = _strings(list(strings))
        return encoded


_CACHE_LIMIT = 4096
_ENCODED_KEYS = _EncodedLists()
_ENCODED_FLAGS = _EncodedLists()
_COLUMN_HEADERS = tuple(_string(name) + _string(kind) for name, kind in COLUMNS)


def _lz4_framed(data: bytes) -> bytes:
    """``data`` in ClickHouse's compressed-block framing, LZ4, for ``decompress=1``.

    Each block is a 16-byte checksum, the method byte, the block's size with
    its 9 header bytes and the size of what it holds (both UInt32), then the
    LZ4 block itself. The checksum is CityHash128 (ClickHouse's own version
    of it) of the header and the LZ4 block, high 64 bits first, each half
    little-endian: the server refuses a block damaged on the way.
    """
    blocks: list[bytes] = []
    for start in range(0, len(data), _LZ4_BLOCK_BYTES):
        chunk = data[start : start + _LZ4_BLOCK_BYTES]
        compressed = lz4.block.compress(chunk, store_size=False)
        framed = struct.pack("<BII", _LZ4_METHOD, len(compressed) + 9, len(chunk)) + compressed
        checksum = CityHash128(framed)
        blocks += (struct.pack("<QQ", checksum >> 64, checksum & _LOW_64), framed)
    return b"".join(blocks)


def clickhouse_payload(config: ClickHouseSinkConfig, group: Group) -> bytes:
    """The body of ``group``'s INSERT: its Native block, LZ4-framed; what worker processes make (``Group.payload``).

    ``config`` is not needed today (every ClickHouse sink encodes alike); it
    keeps the signature every sink's encoder has. The same group gives the
    same bytes.
    """
    del config
    return _lz4_framed(native_block(group))


# -- rows from columns ------------------------------------------------------------
#
# A batch read as columns (receiver/deliver/column_groups.py) gives the same blocks from Arrow
# arrays, made for the whole batch at once by Arrow's kernels (C++): a String column as each row's
# varint length and bytes (one element-wise join with the lengths' varints, taken from a table),
# an Array column as each row's element count and its elements' bytes joined, numbers as they are.
# A group's column is then the run of its rows' bytes, and an Array's offsets the running sum of
# its rows' counts (a layout's rows all have the same count: then no sum at all). Only worker
# processes that build from columns come here, and Arrow is imported here only.

_COLUMN_STRINGS = ("host", "app", "message", "source", "tag")
_COLUMN_LISTS = ("field_keys", "field_values", "flags")
_COLUMN_NUMBERS = {"time": 4, "time_ns": 4, "severity": 1, "facility": 1}  # bytes a value
_MAX_COLUMN_STRING_BYTES = 1 << 20
"""Longer values are left to :func:`native_block` (the varints of the lengths are tabled up to here)."""
_PREFIX_TABLES: list[Any] = []


def native_columns(chunks: Sequence[Any]) -> BatchColumns | None:
    """The batch's rows as Native column pieces (a :class:`~receiver.deliver.batches.ColumnEncoder`'s
    ``prepare``), each row's as :func:`native_block` writes it; None when some chunk must be encoded
    from its records (a layout :func:`~receiver.deliver.sinks.records_table.streamlog_columns` leaves
    to them, a value of a MiB or more)."""
    from receiver.deliver.column_groups import BatchColumns

    return BatchColumns.of(chunks, _native_part)


def _native_part(part: Any) -> dict[str, Any] | None:
    import pyarrow as pa

    from receiver.deliver.column_groups import RecordRows

    if isinstance(part, RecordRows):
        return _native_records(part.records)
    columns = streamlog_columns(part, message=True)
    if columns is None:
        return None
    made = {name: columns[name] for name in _COLUMN_NUMBERS}
    for name in _COLUMN_STRINGS:
        encoded = _native_strings(columns[name])
        if encoded is None:
            return None
        made[name] = encoded
    n = len(part)
    made["field_keys"] = repeated(_ENCODED_KEYS[part.keys], pa.binary(), n)
    made["field_keys#"] = repeated(len(part.keys), pa.int32(), n)
    values = _native_lists(part.values)
    if values is None:
        return None
    made["field_values"], made["field_values#"] = values
    made["flags"], made["flags#"] = repeated(b"", pa.binary(), n), repeated(0, pa.int32(), n)
    return made


def _native_records(records: Sequence[Record]) -> dict[str, Any]:
    """Records parsed one by one (frames a chunk could not read as columns), as :func:`native_block` writes them."""
    import pyarrow as pa

    hosts, apps, severities, facilities, messages = columns_of_records(records)
    texts = {
        "host": hosts, "app": apps, "message": messages, "source": [record.source for record in records],
        "tag": [record.tags.get(STREAMLOG_TAG, "") for record in records],
    }
    made: dict[str, Any] = {name: pa.array(list(map(_string, column)), pa.binary()) for name, column in texts.items()}
    made["time"] = pa.array(_datetimes([record.time for record in records]), pa.uint32())
    made["time_ns"] = pa.array(_nanoseconds([record.time_ns for record in records]), pa.uint32())
    made["severity"], made["facility"] = pa.array(severities, pa.int8()), pa.array(facilities, pa.int8())
    for name, lists, encoded in (
        ("field_keys", [record.keys for record in records], lambda keys: _ENCODED_KEYS[keys]),
        ("field_values", [record.values for record in records], lambda values: _strings(list(values))),
        ("flags", [record.flags for record in records], lambda flags: _ENCODED_FLAGS[flags]),
    ):
        made[name] = pa.array(list(map(encoded, lists)), pa.binary())
        made[f"{name}#"] = pa.array(list(map(len, lists)), pa.int32())
    return made


def _native_strings(texts: Any) -> Any:
    """Each value of a string array as its varint length and UTF-8 bytes; None for a value too long to table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = texts.cast(pa.binary())
    lengths = pc.binary_length(data)
    longest = pc.max(lengths).as_py() or 0
    if longest >= _MAX_COLUMN_STRING_BYTES:
        return None
    if not _PREFIX_TABLES or len(_PREFIX_TABLES[0]) <= longest:
        size = max(1 << 14, 1 << longest.bit_length())
        _PREFIX_TABLES[:] = [pa.array([_PREFIX_BYTES[n] for n in range(size)], pa.binary())]
    return pc.binary_join_element_wise(pc.take(_PREFIX_TABLES[0], lengths), data, b"")


def _native_lists(lists: Any) -> tuple[Any, Any] | None:
    """Each row of a list-of-strings array as its elements' bytes joined, and its element count."""
    import pyarrow as pa
    import pyarrow.compute as pc

    elements = _native_strings(lists.flatten())
    if elements is None:
        return None
    counts = pc.list_value_length(lists)
    ends = pc.cumulative_sum(counts)
    starts = pa.concat_arrays([pa.array([0], pa.int32()), ends.cast(pa.int32())])
    return pc.binary_join(pa.ListArray.from_arrays(starts, elements), b""), counts


def clickhouse_payload_of_rows(config: ClickHouseSinkConfig, group: Group, prepared: BatchColumns) -> bytes:
    """:func:`clickhouse_payload` of a group built from columns, given :func:`native_columns` of its batch:
    the same bytes."""
    del config
    laid = _laid_out(prepared)
    (chunk, rows), *others = group.rows
    if others or not isinstance(rows, range) or rows.step != 1:  # as BatchColumns.rows_of
        raise ValueError(f"group {group.pack_id}: its rows are not one run (lay the batch out in group order)")
    start = prepared.starts[chunk] + rows.start
    stop = start + len(rows)
    count = group.record_count
    data = {name: laid.numbers[name].rows(start, stop) for name in _COLUMN_NUMBERS}
    for name in _COLUMN_STRINGS:
        data[name] = laid.strings[name].rows(start, stop)
    for name in _COLUMN_LISTS:
        data[name] = laid.offsets[name].rows(start, stop) + laid.strings[name].rows(start, stop)
    data.update(_group_data(group, count))
    if stop == laid.row_count and _LAID.get("batch") is laid:
        _LAID.pop("batch", None)  # the batch's last group: its columns need not outlive it
    return _lz4_framed(_block(count, data))


# A batch's groups are encoded one after the other from the same columns: what every group needs
# of them (their buffers, the running counts of the Array columns) is made once, on its first
# group, so a group costs a few slices of bytes instead of two dozen Arrow calls.


class _Bytes:
    """A binary array's values: each run of rows' bytes, sliced from the array's data buffer."""

    __slots__ = ("data", "ends", "first")

    def __init__(self, array: Any) -> None:
        _, offsets, data = array.buffers()
        self.data = memoryview(data) if data is not None else memoryview(b"")
        self.ends = memoryview(offsets).cast("i")  # (a BinaryArray's offsets are int32)
        self.first = array.offset

    def rows(self, start: int, stop: int) -> bytes:
        ends, first = self.ends, self.first
        return bytes(self.data[ends[first + start] : ends[first + stop]])


class _Numbers:
    """A fixed-width array's values as they lie in memory (little-endian, as Native wants them)."""

    __slots__ = ("data", "first", "width")

    def __init__(self, array: Any, width: int) -> None:
        self.data = memoryview(array.buffers()[1])
        self.first, self.width = array.offset, width

    def rows(self, start: int, stop: int) -> bytes:
        first, width = self.first, self.width
        return bytes(self.data[(first + start) * width : (first + stop) * width])


class _Offsets:
    """An Array column's end offsets for a run of rows, counted from the run's first element (UInt64)."""

    __slots__ = ("constant", "running")

    def __init__(self, counts: Any) -> None:
        import pyarrow.compute as pc

        bounds = pc.min_max(counts).as_py()
        self.constant: int | None = bounds["min"] if bounds["min"] == bounds["max"] else None
        self.running = [] if self.constant is not None else list(accumulate(counts.to_pylist(), initial=0))

    def rows(self, start: int, stop: int) -> bytes:
        if self.constant is not None:  # every row of a layout has its keys' count of values (and no flags)
            step = self.constant
            return _numbers("Q", range(step, step * (stop - start) + 1, step)) if step else bytes(8 * (stop - start))
        base = self.running[start]
        return _numbers("Q", [end - base for end in self.running[start + 1 : stop + 1]])


@dataclasses.dataclass(frozen=True, slots=True)
class _Laid:
    columns: BatchColumns
    row_count: int
    numbers: dict[str, _Numbers]
    strings: dict[str, _Bytes]
    offsets: dict[str, _Offsets]


_LAID: dict[str, _Laid] = {}
"""The batch being encoded, laid out for its groups (one batch at a time in a worker process; where
threads build, each call reads the entry once, and another batch's only makes it lay its own out)."""


def _laid_out(prepared: BatchColumns) -> _Laid:
    current = _LAID.get("batch")
    if current is not None and current.columns is prepared:
        return current
    columns = prepared.columns
    laid = _Laid(
        prepared,
        len(columns["time"]),
        {name: _Numbers(columns[name], width) for name, width in _COLUMN_NUMBERS.items()},
        {name: _Bytes(columns[name]) for name in (*_COLUMN_STRINGS, *_COLUMN_LISTS)},
        {name: _Offsets(columns[f"{name}#"]) for name in _COLUMN_LISTS},
    )
    _LAID["batch"] = laid
    return laid


# -- answers -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Classified:
    """One ClickHouse answer: its kind, exception code (None if it had none), a loggable message."""

    kind: OutcomeKind
    code: int | None = None
    message: str = ""
    retry_after_seconds: float | None = None


def exception_code(headers: Mapping[str, str], body: bytes) -> int | None:
    """ClickHouse's exception code: the ``X-ClickHouse-Exception-Code`` header, else ``Code: NNN`` in the body."""
    for key, value in headers.items():
        if str(key).lower() == "x-clickhouse-exception-code" and str(value).strip().isdigit():
            return int(str(value).strip())
    match = _CODE_IN_BODY.search(body[:4096])
    return int(match.group(1)) if match else None


def classify(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    """What one HTTP answer means for the group; never raises.

    The exception code decides when there is one, the HTTP status otherwise
    (a proxy in front answers without a code). 18.16 answers 401 for
    authentication, 404 for a missing table or database, 400 or 500 for
    refused data; newer releases use 401/403/404/400/500 much the same way.
    """
    try:
        return _classify(status, headers, body)
    except Exception as e:  # a bug here must not lose data: retrying is safe
        return Classified("retry", None, f"unreadable answer (HTTP {status}): {type(e).__name__}")


def _classify(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    if 200 <= status < 300:
        return Classified("ok")
    code = exception_code(headers, body)
    message = _message(body)
    retry_after = _retry_after(headers)
    if code is not None:
        if code in AUTH_CODES:
            return Classified("auth", code, message, retry_after)
        if code in NOT_DELIVERABLE_CODES or (code == 117 and "Unknown field" in message):
            return Classified("not-deliverable", code, message, retry_after)
        if code in QUOTA_CODES:
            return Classified("quota", code, message, max(QUOTA_CODES[code], retry_after or 0.0))
        if code in PERMANENT_CODES:
            return Classified("permanent", code, message)
    if status == 429:
        return Classified("quota", code, message, retry_after)
    if status in (401, 403):
        return Classified("auth", code, message, retry_after)
    if 300 <= status < 400:
        # Never followed: the credentials would go with the request to wherever it points.
        location = next((str(v) for k, v in headers.items() if str(k).lower() == "location"), "")
        where = redact_url(location) if location else "elsewhere"
        return Classified(
            "not-deliverable", code,
            f"redirected to {where}; redirects are not followed (the credentials would follow them): "
            "set url to the server's own address",
        )
    if status == 404:  # a proxy's "no such path": configuration, not data
        return Classified("not-deliverable", code, message, retry_after)
    if status == 413:  # the same bytes would be refused again: kept as a dead letter, as HTTP does
        return Classified("permanent", code, message or "request body too large")
    if 400 <= status < 500 and status != 408:
        return Classified("permanent", code, message)
    # 5xx with an unknown code, 408: nothing says the rows are at fault.
    return Classified("retry", code, message, retry_after)


def _message(body: bytes) -> str:
    """The error text on one line, without 18.16's ``e.displayText() =`` / ``e.what()`` wrapping."""
    text = body[: _MAX_MESSAGE_CHARS * 4].decode("utf-8", "replace")
    text = text.replace("e.displayText() = ", "")
    text = re.sub(r",?\s*e\.what\(\) = \S+\s*$", "", text.strip())
    text = "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
    return text[:_MAX_MESSAGE_CHARS]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    seconds: float | None = None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is not None:
            seconds = when.timestamp() - time.time()
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


# -- credentials ---------------------------------------------------------------


def _read_password_file(path: Path) -> str:
    """The password: the file's first line, from a file only its owner may read."""
    data = read_private_file(
        path, what="ClickHouse password file", max_bytes=_MAX_PASSWORD_FILE_BYTES, error=ClickHouseConfigError
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ClickHouseConfigError(f"ClickHouse password file {path} is not UTF-8 text") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


def _check_url(url: str) -> str:
    # The URL is shown redacted in every message: its query or user information may hold a password.
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClickHouseConfigError(f"ClickHouse url {shown} must be http:// or https:// with a host, like http://127.0.0.1:8123")
    if parts.username is not None or parts.password is not None:
        raise ClickHouseConfigError(
            "ClickHouse url must not hold credentials (user:password@): set user, and the password in "
            f"password_file or {PASSWORD_ENV}"
        )
    if parts.query or parts.fragment:
        raise ClickHouseConfigError(
            f"ClickHouse url {shown} must have no query or fragment: the sink sets the query, and a password "
            f"belongs in password_file or {PASSWORD_ENV}"
        )
    return url if parts.path else url + "/"


# -- the sink ------------------------------------------------------------------


class ClickHouseSink:
    """Inserts each batch's groups into their destination tables (``group.destination``) of ``config.database``."""

    def __init__(self, config: ClickHouseSinkConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        for what, name in (("database", config.database), ("table", config.table)):
            if not is_identifier(name):
                raise ClickHouseConfigError(
                    f"sink {config.name!r}: ClickHouse {what} {name!r} is not a plain identifier: "
                    'use letters, digits and "_", not starting with a digit'
                )
        self.name = config.name
        self.config = config
        self.max_records = config.max_records
        self.max_bytes = config.max_bytes
        self._url = _check_url(config.url)
        self._password = self._load_password()
        where = urlsplit(self._url)  # _check_url saw to it that there is a host
        self._http = connection_pool(where.scheme, where.hostname or "", concurrency=config.concurrency)
        self._timeout = timeout_of(config.timeout_seconds)
        self._created: set[str] = set()
        """Tables this sink has created (or found) since it started."""
        self._clock = clock
        self._checked: dict[str, float] = {}
        """Tables whose columns were found to be :data:`COLUMNS`, and when (``clock`` seconds)."""
        self._accepted: tuple[tuple[str, str, int] | None, set[str]] = (None, set())
        """The batch being sent (first and last pack id, groups) and the tables that accepted its groups."""

    def __repr__(self) -> str:  # the password stays out
        c = self.config
        return f"ClickHouseSink(name={self.name!r}, url={c.url!r}, table={c.database}.{c.table}, user={c.user!r})"

    def _load_password(self) -> bytes | None:
        """The password as header bytes (UTF-8: ClickHouse compares bytes), or None for none."""
        path = self.config.password_file
        if path is not None:
            password, where = _read_password_file(path), f"password file {path}"
        else:
            env = os.environ.get(PASSWORD_ENV)
            if env is None:
                return None
            password, where = env, f"${PASSWORD_ENV}"
        if password != password.strip() or any(c in password for c in "\r\n\0"):
            # HTTP header values cannot carry these; http.client would quote the value in its error.
            raise ClickHouseConfigError(
                f"the ClickHouse password in {where} has leading or trailing whitespace or a control "
                "character, which an HTTP header cannot carry: change the password"
            )
        return password.encode("utf-8")

    def _headers(self) -> dict[str, str]:
        """Credentials as headers, a non-ASCII user or password as UTF-8 bytes on the wire.

        http.client sends a header's text as Latin-1, one byte a character: so each value is its
        UTF-8 bytes read as Latin-1, which goes out as exactly those bytes.
        """
        headers = {"X-ClickHouse-User": self.config.user.encode("utf-8").decode("latin-1")}
        if self._password is not None:
            headers["X-ClickHouse-Key"] = self._password.decode("latin-1")
        return headers

    def send(self, group: Group) -> SendOutcome:
        return self.send_batch([group])

    def send_batch(self, groups: Sequence[Group]) -> SendOutcome:
        """Insert ``groups`` (a batch, in order) with one ``INSERT`` per destination table: one for all
        of them, unless routes send them to several tables.

        The body is the groups' payloads one after the other: each group its
        own Native block (its ``pack_id``, ``pack_row`` from 0) in its own LZ4
        frames, which the server reads as one stream of blocks. The server
        squashes the blocks of one insert into one part (below
        ``min_insert_block_size_rows``, a million rows: a batch is far
        smaller), so an insert is stored whole or not at all, and a batch
        makes one part instead of one per sender. The worker settles the
        batch as one: a permanent refusal dead-letters every group of it,
        each replayed on its own. Over several tables, a table whose insert
        was accepted is not sent again when the batch is retried, and its
        groups are named in a permanent refusal's ``stored``, so that only
        the refused table's groups become dead letters.
        """
        if not groups:
            return SendOutcome("ok")
        by_table: dict[str, list[Group]] = {}
        for group in groups:
            table = group.destination or self.config.table
            if not is_identifier(table):
                return SendOutcome(
                    "not-deliverable",
                    f"route destination {table!r} is not a plain ClickHouse table name "
                    '(letters, digits and "_"): fix the route\'s destination',
                )
            by_table.setdefault(table, []).append(group)
        batch = (groups[0].pack_id, groups[-1].pack_id, len(groups))
        if self._accepted[0] != batch:
            self._accepted = (batch, set())
        done = self._accepted[1]
        for table, members in by_table.items():
            if table in done:
                continue  # accepted when this batch was sent before: sending it again would duplicate it
            outcome = self._insert(table, members)
            if outcome.kind == "permanent" and done:
                return dataclasses.replace(
                    outcome, stored=frozenset(group.pack_id for table in done for group in by_table[table])
                )
            if outcome.kind != "ok":
                return outcome
            done.add(table)
        self._accepted = (None, set())
        return SendOutcome("ok")

    def _insert(self, table: str, groups: Sequence[Group]) -> SendOutcome:
        """One ``INSERT`` of ``groups`` into ``table``: after creating the table and checking its columns if due."""
        if self.config.create_table and table not in self._created:
            outcome = self._create(table)
            if outcome is not None:
                return outcome
        checked = self._checked.get(table)
        if checked is None or self._clock() - checked >= SCHEMA_RECHECK_SECONDS:
            outcome = self._check_columns(table)
            if outcome is not None:
                return outcome
        query = f"INSERT INTO {_quoted(self.config.database, table)} ({_INSERT_COLUMNS}) FORMAT Native"
        body = b"".join(
            group.payload if group.payload is not None else clickhouse_payload(self.config, group) for group in groups
        )
        outcome, code, _ = self._post({"query": query, **_INSERT_PARAMS}, body, self._headers())
        if outcome.kind == "ok":
            return outcome
        self._checked.pop(table, None)  # whatever went wrong, the next insert looks at the table first
        if code == 60 and table in self._created:
            # Dropped since we created it: create it again on the next attempt.
            self._created.discard(table)
            return SendOutcome("retry", outcome.reason + "; it will be created again")
        if outcome.kind == "permanent":
            # Rows are given up only if the table is still ours: one altered since it was checked
            # refuses (or misreads) our bytes, and then the groups wait for the fix instead.
            return self._check_columns(table) or outcome
        return outcome

    def _create(self, table: str) -> SendOutcome | None:
        """Create ``table`` if it does not exist; None when done, else why not."""
        sql = create_table_sql(self.config.database, table)
        outcome, _, _ = self._post({}, sql.encode(), self._headers())
        if outcome.kind != "ok":
            hint = "; or create it yourself (docs/sinks/clickhouse.md) and set create_table = false"
            return dataclasses.replace(outcome, reason=f"creating table {self.config.database}.{table}: {outcome.reason}{hint}")
        self._created.add(table)
        log.info("%s: table %s.%s is ready (CREATE TABLE IF NOT EXISTS)", self.name, self.config.database, table)
        return None

    def _check_columns(self, table: str) -> SendOutcome | None:
        """None when ``table`` has the columns of :data:`COLUMNS` with their types, else why not.

        Native carries no conversion: 18.16 stores garbage when a column's type
        differs from the bytes sent, so a table that is not ours is found
        here, by ``DESCRIBE``, and its groups wait for an ``ALTER`` (or a route
        to another table) instead of being written.
        """
        where = f"{self.config.database}.{table}"
        sql = f"DESCRIBE TABLE {_quoted(self.config.database, table)} FORMAT JSONEachRow"
        outcome, code, content = self._post({}, sql.encode(), self._headers())
        if code == 60 and table in self._created:
            # Dropped since we created it: create it again on the next attempt.
            self._created.discard(table)
            return SendOutcome("retry", f"reading the columns of {where}: {outcome.reason}; it will be created again")
        if outcome.kind != "ok":
            return dataclasses.replace(outcome, reason=f"reading the columns of {where}: {outcome.reason}")
        found: dict[str, str] = {}
        try:
            for line in content.split(b"\n"):
                if line.strip():
                    column = json.loads(line)
                    found.setdefault(str(column["name"]), str(column["type"]))
        except (ValueError, KeyError, TypeError):
            return SendOutcome("retry", f"reading the columns of {where}: unreadable answer to DESCRIBE TABLE")
        missing = [(name, kind) for name, kind in COLUMNS if name not in found]
        if missing:
            return SendOutcome(
                "not-deliverable",
                f"table {where} has no column {', '.join(name for name, _ in missing)}, which the sink writes: "
                + "; ".join(f"ALTER TABLE {where} ADD COLUMN {name} {kind}" for name, kind in missing)
                + " (docs/sinks/clickhouse.md)",
            )
        different = [(name, kind) for name, kind in COLUMNS if not _same_type(found[name], kind)]
        if different:
            return SendOutcome(
                "not-deliverable",
                "; ".join(f"column {name} of {where} is {found[name]}, the sink writes {kind}" for name, kind in different)
                + " (a binary insert converts nothing): "
                + "; ".join(f"ALTER TABLE {where} MODIFY COLUMN {name} {kind}" for name, kind in different)
                + ", or route to a table of the documented schema (docs/sinks/clickhouse.md)",
            )
        self._checked[table] = self._clock()
        return None

    def _post(
        self, params: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> tuple[SendOutcome, int | None, bytes]:
        """One request: its outcome, ClickHouse's exception code if it sent one, and the answer's body."""
        url = f"{self._url}?{urlencode(params)}" if params else self._url
        try:
            try:
                response = self._request(url, body, headers)
            except urllib3.exceptions.ProtocolError:
                # urllib3's "Connection aborted.": the connection was reset or closed while the
                # request went out or before an answer's first line came. Mostly a pooled
                # connection the server had just closed (ClickHouse's keep_alive_timeout is a few
                # seconds; urllib3 looks at an idle connection before using it, but the server
                # may close it in between). Resending at once duplicates nothing a later retry
                # would not, and spares a backoff and a warning. Only this is resent, once, as
                # under requests (whose ConnectionError wrapped this same ProtocolError). Not
                # NewConnectionError (refused, no such host: nothing is there, the worker backs
                # off), not a timeout (the server may still be at work on the rows), not a
                # failure while the answer is read (below, apart: the server has begun to
                # answer, so whatever it did with the rows is done).
                response = self._request(url, body, headers)
            try:
                content = response.data
            finally:
                response.release_conn()
        except UpstreamError as e:  # no (whole) answer: the messages name host and port, never a header
            return SendOutcome("retry", no_answer(e, _MAX_MESSAGE_CHARS)), None, b""
        except Exception as e:  # never raise from send; the text might quote a header: type only
            return SendOutcome("retry", f"request failed: {type(e).__name__}"), None, b""
        # dict(): a header sent twice is one value, "a, b", as requests made it
        answer = classify(response.status, dict(response.headers), content)
        if answer.kind == "ok":
            return SendOutcome("ok"), None, content
        code = f", ClickHouse code {answer.code}" if answer.code is not None else ""
        reason = f"HTTP {response.status}{code}: {answer.message}" + _hint(answer, self.config)
        if answer.kind == "auth" and self.config.password_file is not None:
            try:
                self._password = self._load_password()  # a rotated password is picked up
            except ClickHouseConfigError as e:
                reason += f"; re-reading the password failed: {e}"
        return SendOutcome(answer.kind, reason, answer.retry_after_seconds), answer.code, content

    def _request(self, url: str, body: bytes, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """POST ``body`` to ``url``: the answer's status and headers, its body left to read."""
        return self._http.request(
            "POST", url, body=body, headers=headers, timeout=self._timeout,
            redirect=False,  # the credentials must not go wherever a redirect points
            retries=False,  # the worker retries, from the spool (and _post resends once)
            preload_content=False,  # _post reads the body, so a failure there is told apart
        )

    def close(self) -> None:
        self._http.clear()

    # -- reading ------------------------------------------------------------------

    def select(self, sql: str) -> bytes:
        """The answer to ``sql``, run read-only (``readonly=2``); :class:`ClickHouseQueryError` if none."""
        outcome, _, content = self._post(
            {"readonly": "2", "max_execution_time": str(_SELECT_MAX_SECONDS)}, sql.encode(), self._headers()
        )
        if outcome.kind != "ok":
            raise ClickHouseQueryError(f"ClickHouse at {redact_url(self.config.url)}: {outcome.reason}")
        return content

    def search_table(self, table: str | None = None) -> SearchTable:
        """``table`` (default: the sink's own) as :func:`receiver.deliver.sinks.local.store.search`
        searches it: the filter's SQL runs on the server, a page of rows at a time."""
        from receiver.deliver.sinks.local.store import SearchTable

        name = table or self.config.table
        if not is_identifier(name):
            raise ClickHouseConfigError(f"ClickHouse table {name!r} is not a plain identifier")
        try:
            dialect = ClickHouseDialect.from_version(self.select("SELECT version()").decode())
        except ValueError as e:
            raise ClickHouseQueryError(f"ClickHouse at {redact_url(self.config.url)}: {e}") from e

        def rows(sql: str) -> Iterator[dict[str, Any]]:
            for line in self.select(f"{sql} FORMAT JSONEachRow").split(b"\n"):
                if line.strip():
                    row = json.loads(line)
                    # Epoch seconds, whatever the server's time zone (see _SEARCH_SELECT).
                    row["time"], row["receive_time"] = row.pop("time_s"), row.pop("receive_time_s")
                    yield row

        return SearchTable(_quoted(self.config.database, name), _SEARCH_SELECT, rows, dialect, word_index=False)


class ClickHouseQueryError(Exception):
    """A query the server did not answer; the message says why (credentials stay out)."""


_SELECT_MAX_SECONDS = 60
_SEARCH_SELECT = ", ".join(
    f"toUInt32({name}) AS {name}_s" if kind == "DateTime" else name for name, kind in COLUMNS
)
"""The columns a search reads: DateTime as epoch seconds (JSON would write them in the server's zone)."""


def _hint(answer: Classified, config: ClickHouseSinkConfig) -> str:
    """What the operator can do about an answer, for the reason that gets logged."""
    if answer.kind == "auth":
        source = f"password_file {config.password_file}" if config.password_file else f"${PASSWORD_ENV}"
        return f" (check user {config.user!r} and the password in {source}, and its INSERT/CREATE grants)"
    if answer.code == 81:
        return f" (create it: CREATE DATABASE {config.database})"
    if answer.code == 60 and not config.create_table:
        return " (create the table (docs/sinks/clickhouse.md) or set create_table = true)"
    if answer.kind == "not-deliverable" and answer.code in (8, 16, 47, 117):
        return " (the table lacks columns this sink writes: ALTER TABLE ... ADD COLUMN, see docs/sinks/clickhouse.md)"
    if answer.kind == "permanent" and answer.code is None and "too large" in answer.message.lower():
        return (f" (lower max_bytes, now {config.max_bytes}, or max_records, or raise the limit of what is "
                "in front of ClickHouse; then replay the dead letter)")
    if answer.code == 241:
        return f" (lower max_records, now {config.max_records}, or raise the user's max_memory_usage)"
    return ""


def _same_type(theirs: str, ours: str) -> bool:
    """Whether a column of type ``theirs`` reads the bytes written for ``ours`` as the same values."""
    return theirs == ours or (ours == "DateTime" and _TABLE_TIME_ZONE.fullmatch(theirs) is not None)

