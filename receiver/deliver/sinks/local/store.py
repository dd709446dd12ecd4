"""The default store: an embedded ClickHouse (chDB) holding every record, searchable.

With no upstream configured the appliance keeps everything here, and
``receiverctl search`` and ``receiverctl sql`` read it. It is the ClickHouse
engine in the delivery process, with the columns of the ClickHouse sink
(:data:`receiver.deliver.sinks.records_table.COLUMNS`: one schema and one query
language from this box to a ClickHouse cluster), a MergeTree on local disk:

- ``message`` is computed from the record's fields, where it already is, so
  it is stored once; repeated strings are dictionary-coded; a part is
  written with LZ4 (cheap while records arrive) and rewritten with ZSTD(9)
  once its hour is an hour old (:data:`_RECOMPRESS`);
- ``PARTITION BY`` the hour the appliance received a record, so retention
  by age (a ``TTL`` that drops whole parts) and by size (the oldest hours
  first) cost one file operation per hour of data, never a rewrite;
- ``ORDER BY`` the order searches page in, newest first, so a page reads its
  own rows and stops; a ``tokenbf_v1`` index on the message's words
  (:data:`_TOKEN_TEXT`) lets a word search skip the blocks that cannot hold it;
- a batch is one insert (one part), with ``insert_deduplication_token`` made
  of its pack ids: a batch resent after a crash inside an insert is skipped
  (``non_replicated_deduplication_window``).

One process owns the directory (ClickHouse locks it): the delivery process,
through :class:`EmbeddedStore`. Other processes ask it over its query socket
(receiver/deliver/sinks/local/server.py), or open the directory themselves when
nobody holds it. Memory is bounded by ``memory_limit_bytes`` (the engine's
``max_server_memory_usage``, with caches sized under it).

Batches reach the store as Arrow (:func:`arrow_payload`, made in the worker
processes): the engine reads Arrow columns without a row-by-row conversion.
"""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from formats.columns import MESSAGE_KEYS, columns_of_records
from formats.record import Record
from formats.row_indexes import fields_of_rows, list_offsets
from formats.streamlog import STREAMLOG_TAG
from formats.streamlog_columns import StreamlogColumns
from receiver.config.identity import GROUP_TAGS
from receiver.deliver.batches import Group
from receiver.deliver.column_groups import BatchColumns, Part, RecordRows
from receiver.deliver.outcomes import first_line
from receiver.deliver.sinks import records_table
from receiver.deliver.sinks.records_table import (
    clamp_datetime,
    group_columns,
    repeated,
    streamlog_columns,
)
from receiver.filters.expression import ClickHouseDialect, parse_filter, sql_string

__all__ = [
    "COLUMNS",
    "STORED_COLUMNS",
    "EmbeddedStore",
    "SearchTable",
    "StoreError",
    "StoreLockedError",
    "StoredRecord",
    "arrow_payload",
    "arrow_payload_of_rows",
    "arrow_table",
    "open_store",
    "search",
    "stored_rows",
    "table_from_columns",
]

log = logging.getLogger("receiver.deliver")

DATABASE = "receiver"
TABLE = "records"
QUALIFIED = f"{DATABASE}.{TABLE}"

_MESSAGE = "multiIf({}, '')".format(", ".join(
    f"has(field_keys, '{key}'), field_values[indexOf(field_keys, '{key}')]" for key in MESSAGE_KEYS
))
"""The message as formats.columns.columns_of finds it: the first of its keys the record has."""

_TOKEN_TEXT = (
    "if(lengthUTF8(message) = length(message), lower(message), "
    "lower(replaceRegexpAll(replaceAll(message, '\u212a', 'k'), '[^\\x01-\\x7f]', ' ')))"
)
"""The message as the word index sees it: ASCII lower case, every other character a separator.

A word of ASCII letters and digits that a filter finds on word boundaries
(:meth:`receiver.filters.expression.Filter.required_words`) is always a whole token of
this text, so ``hasToken`` on it is a sound pre-filter: ClickHouse's tokens
are runs of ASCII letters and digits and of bytes above 0x7F, so a non-ASCII
neighbour, which the filter takes as a boundary, must become a separator;
and the Kelvin sign, the one character that Python lower-cases to an ASCII
letter, becomes that letter (``İ`` lower-cases to ``i`` and a combining dot,
a word character, so it never ends an ASCII word).
"""

_STORAGE = {  # the types this store gives the shared columns (the rest keep the sink's)
    "host": "LowCardinality(String)",
    "app": "LowCardinality(String)",
    "message": f"String ALIAS {_MESSAGE}",
    "source": "LowCardinality(String)",
    "client_ip": "LowCardinality(String)",
    "tag": "LowCardinality(String)",
    "field_keys": "Array(LowCardinality(String))",
    "field_values": "Array(String)",  # LZ4, then _RECOMPRESS's codec: no codec of its own
    "flags": "Array(LowCardinality(String))",
    "user_defined_id": "LowCardinality(String)",
    "machine_group": "LowCardinality(String)",
    "hostname": "LowCardinality(String)",
    "pack_id": "LowCardinality(String)",
    "pack_row": "UInt32 CODEC(Delta, ZSTD(1))",
}
COLUMNS: tuple[tuple[str, str], ...] = tuple((name, _STORAGE.get(name, kind)) for name, kind in records_table.COLUMNS)
"""The table's columns: the ClickHouse sink's (:data:`receiver.deliver.sinks.records_table.COLUMNS`), stored more compactly.

``message`` is computed from the record's fields (it is one of them, and
the largest), so it is stored once; repeated strings are dictionary-coded.
"""
STORED_COLUMNS = tuple(name for name, kind in COLUMNS if " ALIAS " not in kind)
"""The columns an insert writes, in :data:`_ARROW_SCHEMA`'s order."""
_ORDER = "time, time_ns, receive_time, pack_id, pack_row"
"""The sorting key: the order searches page in (newest first), so a page reads only its own rows."""
_LAYOUT = "\n".join(
    [f"{name}\t{kind.split(' ')[0]}\t{'ALIAS' if ' ALIAS ' in kind else ''}" for name, kind in COLUMNS] + [_ORDER]
)
"""The table as system.columns and system.tables describe it: a store of another layout is upgraded."""

_ARROW_SCHEMA = pa.schema([
    ("time", pa.uint32()),
    ("time_ns", pa.uint32()),
    ("host", pa.string()),
    ("app", pa.string()),
    ("severity", pa.int8()),
    ("facility", pa.int8()),
    ("source", pa.string()),
    ("client_ip", pa.string()),
    ("tag", pa.string()),
    ("field_keys", pa.list_(pa.string())),
    ("field_values", pa.list_(pa.string())),
    ("flags", pa.list_(pa.string())),
    ("user_defined_id", pa.string()),
    ("machine_group", pa.string()),
    ("receive_time", pa.uint32()),
    ("hostname", pa.string()),
    ("pack_id", pa.string()),
    ("pack_row", pa.uint32()),
])

_UPGRADING = f"{TABLE}_upgrading"
"""Where a table of an earlier layout waits while its records move into the new one."""
_TOKEN_INDEX = "tokenbf_v1(32768, 3, 0)"
_TABLE_SETTINGS = {
    "non_replicated_deduplication_window": 1000,
    "ttl_only_drop_parts": 1,
    "merge_selector_base": 20,
    "min_bytes_for_wide_part": 128 << 20,
    "max_parts_to_merge_at_once": 10,
}
"""The table's MergeTree settings; a store an earlier build made takes them when it is opened.

``merge_selector_base``: how many parts of a size the engine lets gather before it merges them
(its default is 5). A merge rewrites every column and hashes every word of the message into the
word index again, so under a steady flood merging cost more than inserting: 8M relay-shaped rows
inserted 19k at a time took the engine 109 CPU-seconds with merges at 5, 81 at 20 (inserted 75k at
a time: 72 and 59). The price is more parts to read (a few dozen per hour of records at most),
which a search pays in microseconds per part.

``min_bytes_for_wide_part``: a batch's part (tens of MB before compression) is written compact,
all columns in one file, instead of a file or two per column (the engine's default makes every
part over 10 MB wide). Under a flood, wide parts cost the delivery side about a tenth of its CPU,
mostly the kernel's creating some forty files per insert (delivery_bench --sinks local, alternating:
7.7-8.1 -> 7.2-7.3 CPU-s a million lines); the merged parts, past this size, are wide.

``max_parts_to_merge_at_once``: a merge holds a block of rows of every part it reads, so its memory
grows with the parts it takes (one merge of 20 RFC 5424 batches' parts: 180 MB; of 5: 60 MB), and
the engine's default (100) let two merges of 20 hold most of the delivery process's peak. At 10,
under an RFC 5424 flood the delivery tree peaked at 452-479 MB instead of 553-570 (delivery_bench
--sinks local --format rfc5424, alternating, the word index then left to merges; with it built at
insert, as now, 459-497 MB), and merging cost no more: a 20M-row flood (local_store_bench
--flood-records 20000000, alternating) took 5.27-5.86 engine us a row against 5.77-5.94, with two
merges at most at once instead of four, and the engine's tracked memory peaked at 186-197 MB
against 328-336. The price is a few more parts: 27-34 instead of 11-23 after 20M rows.
"""
_RECOMPRESS = "RECOMPRESS CODEC(ZSTD(9))"
_RECOMPRESS_AFTER_SECONDS = 3600
"""Parts are written with the engine's LZ4 and rewritten with :data:`_RECOMPRESS` this long after their
newest receive time, in a background merge (a TTL's): the blast corpus stored in 28.6% of its raw bytes
when fresh and 14.7% once recompressed, against 18.7% with ZSTD(1) at insert. Inserts (and merges under
a flood) skip ZSTD's cost; each hour is merged once more, in the background, an hour later."""
_RETENTION_EVERY_SECONDS = 60.0
_LOCKED = re.compile(r"Cannot lock file|Another server instance")
_SURROGATES = re.compile("[\ud800-\udfff]")


class StoreError(Exception):
    """The store cannot be opened or used; the message names the directory, the problem and the fix."""


class StoreLockedError(StoreError):
    """Another process holds the store's directory (the delivery process, normally)."""


# -- rows ----------------------------------------------------------------------


def _clean(text: str) -> str:
    """A lone surrogate cannot be UTF-8; the parsers never make one, but a replayed dead letter could."""
    return _SURROGATES.sub("\ufffd", text)


def arrow_table(groups: Sequence[Group]) -> pa.Table:
    """The rows of ``groups`` (with their records) as one Arrow table of the stored columns.

    Column by column, from the records' own lists (keys tuples and value
    lists go to Arrow as they are): this runs for every record delivered.
    """
    lists: dict[str, list[Any]] = {name: [] for name in STORED_COLUMNS}
    for group in groups:
        n = len(group.records)
        same = group_columns(group)
        for name in ("client_ip", "user_defined_id", "machine_group", "receive_time", "hostname", "pack_id"):
            lists[name] += [getattr(same, name)] * n
        lists["pack_row"] += range(n)
        for name, column in _record_lists(group.records).items():
            lists[name] += column
    return table_from_columns([lists[name] for name in STORED_COLUMNS])


def _record_lists(records: Sequence[Record]) -> dict[str, list[Any]]:
    """The stored columns but the group's, of ``records``, as lists."""
    host, app, severity, facility, _ = columns_of_records(records)  # message: computed from the fields
    return {
        "time": [clamp_datetime(r.time) for r in records],
        "time_ns": [r.time_ns if 0 <= r.time_ns < 1_000_000_000 else 0 for r in records],
        "host": host,
        "app": app,
        "severity": severity,
        "facility": facility,
        "source": [r.source for r in records],
        "tag": [r.tags.get(STREAMLOG_TAG, "") for r in records],
        "field_keys": [r.keys for r in records],
        "field_values": [r.values for r in records],
        "flags": [r.flags for r in records],
    }


def table_from_columns(columns: list[list[Any]]) -> pa.Table:
    """An Arrow table of the stored columns (:data:`COLUMNS` but ``message``), given as lists in their order."""
    try:
        return _table(columns)
    except (UnicodeEncodeError, pa.ArrowInvalid, OverflowError):
        cleaned = [_clean_column(column) for column in columns]
        for index in (STORED_COLUMNS.index("time"), STORED_COLUMNS.index("receive_time")):  # DateTime holds 1970..2106
            cleaned[index] = [clamp_datetime(v) for v in cleaned[index]]
        return _table(cleaned)


def _table(columns: list[list[Any]]) -> pa.Table:
    arrays = [pa.array(c, type=f.type) for c, f in zip(columns, _ARROW_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_ARROW_SCHEMA)


def _clean_column(column: list[Any]) -> list[Any]:
    """A column with lone surrogates replaced in its strings (and in lists of strings)."""
    first = next(iter(column), None)
    if isinstance(first, str):
        return [_clean(v) for v in column]
    if isinstance(first, list | tuple):
        return [[_clean(v) for v in row] for row in column]
    return column


_CONSTANT = ("client_ip", "user_defined_id", "machine_group", "hostname", "pack_id")
"""The LowCardinality columns whose value is the group's: a payload carries each as a dictionary of
that one value, and ``field_keys``' strings as a dictionary of the layout's keys, made from what the
worker has, without hashing a string. The payload crosses from the worker 22% smaller (the delivery
bench's lines: 406 -> 318 bytes a row) and the worker no longer repeats strings (1.75-1.85 -> 1.59-1.65
us a line), and the engine takes dictionaries into LowCardinality columns without hashing every row's
string. ``dictionary_encode`` of every column (host, app, source and tag too) cost the worker what it
saved the engine (tried 2026-12-07)."""
_CODED = pa.dictionary(pa.int32(), pa.string())
_PAYLOAD_SCHEMA = pa.schema([
    pa.field(field.name, _CODED) if field.name in _CONSTANT
    else pa.field(field.name, pa.list_(_CODED)) if field.name == "field_keys"
    else field
    for field in _ARROW_SCHEMA
])
"""The columns of a payload (:func:`arrow_payload`): :data:`_ARROW_SCHEMA`'s, the constant ones and
``field_keys`` dictionary-coded."""


def arrow_payload(group: Group) -> bytes:
    """A group's rows as an Arrow IPC stream of :data:`_PAYLOAD_SCHEMA`: what worker processes make
    for the store (``Group.payload``)."""
    table = arrow_table([group])
    return _ipc(pa.Table.from_arrays(
        [
            pc.dictionary_encode(column.combine_chunks()) if name in _CONSTANT
            else _coded_keys(column.combine_chunks()) if name == "field_keys"
            else column
            for name, column in zip(table.column_names, table.columns, strict=True)
        ],
        schema=_PAYLOAD_SCHEMA,
    ))


def _coded_keys(field_keys: pa.ListArray) -> pa.ListArray:
    """Lists of strings as lists of a dictionary of them (hashing each: the record road's way)."""
    offsets = field_keys.offsets
    if offsets[0].as_py():  # a slice: its offsets start past the values it owns
        offsets = pc.subtract(offsets, offsets[0])
    return pa.ListArray.from_arrays(offsets, pc.dictionary_encode(field_keys.flatten()))


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def stored_rows(chunks: Sequence[StreamlogColumns | RecordRows]) -> BatchColumns | None:
    """The stored columns but the group's of a batch's chunks: what :func:`arrow_table` makes of their
    records, made a column at a time. None when some chunk's layout needs
    :func:`formats.columns.columns_of` record by record."""
    return BatchColumns.of(chunks, _chunk_stored)


def _chunk_stored(chunk: Part) -> dict[str, pa.Array] | None:
    if isinstance(chunk, RecordRows):
        stored = _records_stored(chunk.records)
        stored["field_keys"] = _coded_keys(stored["field_keys"])
        return stored
    arrays = streamlog_columns(chunk)
    if arrays is not None:  # every row has the layout's keys: the dictionary is the keys, the indices a pattern
        width, n = len(chunk.keys), len(chunk)
        keys = pa.DictionaryArray.from_arrays(
            pc.cast(fields_of_rows(width, n), pa.int32()), pa.array(chunk.keys, pa.string())
        )
        arrays["field_keys"] = pa.ListArray.from_arrays(list_offsets(width, n), keys)
    return arrays


def _records_stored(records: Sequence[Record]) -> dict[str, pa.Array]:
    """What :func:`arrow_table` makes of ``records`` (but their group's columns), as arrays."""
    arrays = {}
    for name, column in _record_lists(records).items():
        kind = _ARROW_SCHEMA.field(name).type
        try:
            arrays[name] = pa.array(column, kind)
        except (UnicodeEncodeError, pa.ArrowInvalid, OverflowError):  # as table_from_columns cleans them
            arrays[name] = pa.array(_clean_column(column), kind)
    return arrays


_ROW_NUMBERS: list[pa.UInt32Array] = []


def _row_numbers(n: int) -> pa.UInt32Array:
    """0 .. n-1 (a group's ``pack_row``): one array, grown as needed and sliced (making it from
    ``range`` costs 0.1 us a row)."""
    if not _ROW_NUMBERS or len(_ROW_NUMBERS[0]) < n:
        _ROW_NUMBERS[:] = [pa.array(range(max(n, 65536)), pa.uint32())]
    return _ROW_NUMBERS[0].slice(0, n)


def arrow_payload_of_rows(group: Group, stored: BatchColumns) -> bytes:
    """:func:`arrow_payload` of a group built from columns, given :func:`stored_rows` of its batch."""
    n = group.record_count
    same = group_columns(group)
    zeros = repeated(0, pa.int32(), n)  # the indices of a dictionary of one value
    rows = stored.rows_of(group)
    columns = []
    for field in _ARROW_SCHEMA:
        name = field.name
        if name == "pack_row":
            columns.append(_row_numbers(n))
        elif name in _CONSTANT:
            columns.append(pa.DictionaryArray.from_arrays(zeros, pa.array([getattr(same, name)], pa.string())))
        elif name == "receive_time":
            columns.append(pa.repeat(pa.scalar(same.receive_time, pa.uint32()), n))
        else:
            columns.append(rows[name])
    return _ipc(pa.Table.from_arrays(columns, schema=_PAYLOAD_SCHEMA))


def _from_payload(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


# -- records as the store gives them back --------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as the store keeps it: the record, its columns, and its group's identity."""

    record: Record
    host: str
    app: str
    severity: int
    facility: int
    message: str
    group_tags: tuple[tuple[str, str], ...]
    pack_id: str
    received_ns: int

    def to_dict(self) -> dict[str, object]:
        """The record's :meth:`~formats.record.Record.to_dict` plus its group tags and receive time."""
        out = self.record.to_dict()
        out["group_tags"] = dict(self.group_tags)
        out["received_ns"] = self.received_ns
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredRecord:
        keys = tuple(row["field_keys"])
        tag = row["tag"]
        record = Record(
            int(row["time"]), int(row["time_ns"]), keys, list(row["field_values"]), row["source"],
            {STREAMLOG_TAG: tag} if tag else {}, tuple(row["flags"]),
        )
        received_s = int(row["receive_time"])
        tag_values = (row["client_ip"], str(received_s), row["hostname"], row["user_defined_id"],
                      row["machine_group"], row["pack_id"])
        group_tags = tuple((k, v) for k, v in zip(GROUP_TAGS, tag_values, strict=True) if v)
        return cls(record, row["host"], row["app"], int(row["severity"]), int(row["facility"]), row["message"],
                   group_tags, row["pack_id"], received_s * 1_000_000_000)


# -- the store -------------------------------------------------------------------


def _connection_string(directory: Path, memory_limit_bytes: int, *, readonly: bool) -> str:
    """The engine's start-up settings: memory bounded, caches sized well under the bound."""
    cache = max(8 << 20, memory_limit_bytes // 16)
    settings = {
        "max_server_memory_usage": memory_limit_bytes,
        "mark_cache_size": cache,
        "index_mark_cache_size": cache // 2,
        "primary_index_cache_size": cache // 2,
        "uncompressed_cache_size": 0,
        "query_condition_cache_size": 1 << 20,
        "background_pool_size": 2,  # merges: the appliance has other work for its cores
    }
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    if readonly:
        query += "&mode=ro"
    return f"{directory}?{query}"


def open_store(directory: Path, *, memory_limit_bytes: int, readonly: bool = False) -> Any:
    """A chDB session on ``directory``; :class:`StoreLockedError` when another process holds it."""
    from chdb import session

    if readonly:
        if not directory.is_dir():
            raise StoreError(f"no store in {directory}")
    else:
        try:
            directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store directory {directory}: {e.strerror or e}") from e
    if _held_by_another_process(directory):
        raise StoreLockedError(
            f"the store in {directory} is held by another process (the receiver's delivery process, "
            "normally): ask it through its query socket, or stop it to open the store here"
        )
    try:
        return session.Session(_connection_string(directory, memory_limit_bytes, readonly=readonly))
    except Exception as e:
        if _LOCKED.search(str(e)):
            raise StoreLockedError(
                f"the store in {directory} is held by another process (the receiver's delivery process, "
                "normally): ask it through its query socket, or stop it to open the store here"
            ) from None
        raise StoreError(f"cannot open the store in {directory}: {first_line(e, 500)}") from e


def _held_by_another_process(directory: Path) -> bool:
    """Whether the engine of another process holds ``directory`` (it flocks ``status`` while it runs).

    Asked first because the engine, refused, prints to stderr and raises an
    error that does not say why.
    """
    try:
        fd = os.open(directory / "status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no store yet, or not ours to read: the engine will say
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)



class EmbeddedStore:
    """The owner of one store directory: inserts, retention, and queries.

    Thread-safe: the local sink's thread inserts while query threads read,
    one statement in the engine at a time (a search is a series of short
    page queries, so an insert waits for one page, not for the search).
    """

    def __init__(
        self, directory: Path, *, max_age_hours: float, max_bytes: int, memory_limit_bytes: int,
        readonly: bool = False,
    ) -> None:
        self.directory = directory
        self.max_age_hours = max_age_hours
        self.max_bytes = max_bytes
        self.memory_limit_bytes = memory_limit_bytes
        self.readonly = readonly
        self._session = open_store(directory, memory_limit_bytes=memory_limit_bytes, readonly=readonly)
        self._lock = threading.Lock()  # one retention pass at a time
        self._engine = threading.Lock()  # one query in the engine at a time (see _run)
        self._retention_due = 0.0
        self._dialect: ClickHouseDialect | None = None
        if not readonly:
            self._create()

    def dialect(self) -> ClickHouseDialect:
        """The SQL dialect of this engine, for :meth:`receiver.filters.expression.Filter.to_clickhouse` (asked once)."""
        if self._dialect is None:
            self._dialect = ClickHouseDialect.from_version(self.query("SELECT version()").strip())
        return self._dialect

    # -- schema ---------------------------------------------------------------

    def _ttl(self) -> str:
        return (
            f"receive_time + toIntervalSecond({int(self.max_age_hours * 3600)}), "
            f"receive_time + toIntervalSecond({_RECOMPRESS_AFTER_SECONDS}) {_RECOMPRESS}"
        )

    def _create(self) -> None:
        self.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        if self._layout(TABLE) not in (None, _LAYOUT) or self._layout(_UPGRADING) is not None:
            self._upgrade()
        self._create_table(QUALIFIED)
        # A reload may change the retention age: the table follows.
        current = self.query(f"SELECT engine_full FROM system.tables WHERE database = '{DATABASE}' AND name = '{TABLE}'")
        if self._ttl().replace(" ", "") not in current.replace(" ", ""):
            self.query(f"ALTER TABLE {QUALIFIED} MODIFY TTL {self._ttl()}")
        stale = [f"{name} = {value}" for name, value in _TABLE_SETTINGS.items() if f"{name} = {value}" not in current]
        if stale:  # a store an earlier build made
            self.query(f"ALTER TABLE {QUALIFIED} MODIFY SETTING {', '.join(stale)}")
        codecs = self.query(
            f"SELECT name FROM system.columns WHERE database = '{DATABASE}' AND table = '{TABLE}' "
            "AND compression_codec != '' AND name = 'field_values'"
        )
        if codecs.strip():  # ZSTD(1) of an earlier build: parts written from now on are recompressed
            self.query(f"ALTER TABLE {QUALIFIED} MODIFY COLUMN field_values REMOVE CODEC")

    def _layout(self, table: str) -> str | None:
        """The columns (name, type, alias or not) and sorting key of ``table``; None if there is none."""
        where = f"database = '{DATABASE}' AND table = '{table}'"
        columns = self.query(f"SELECT name, type, default_kind FROM system.columns WHERE {where} ORDER BY position")
        if not columns.strip():
            return None
        key = self.query(f"SELECT sorting_key FROM system.tables WHERE database = '{DATABASE}' AND name = '{table}'")
        # Only the line ends go: a column without a default ends in a tab, which strip() would take.
        return columns.strip("\n") + "\n" + key.strip()

    def _upgrade(self) -> None:
        """Move the records of a table an earlier build made into this build's table, an hour at a time.

        The old table is renamed aside; each hour is copied, then dropped from
        it. This runs at open, before any insert, so the new table holds only
        copied hours: an upgrade cut short resumes (at the next open) by
        dropping the hour it was copying from the new table and copying it
        again, so no record is lost or copied twice.
        """
        old = f"{DATABASE}.{_UPGRADING}"
        if self._layout(_UPGRADING) is None:
            self.query(f"RENAME TABLE {QUALIFIED} TO {old}")
        self._create_table(QUALIFIED)
        hours = self.query(f"SELECT DISTINCT partition_id FROM system.parts WHERE database = '{DATABASE}' "
                           f"AND table = '{_UPGRADING}' AND active ORDER BY partition_id").split()
        log.warning("local store: %s holds a table of an earlier layout; upgrading it, %d hours of records",
                    self.directory, len(hours))
        for n, hour in enumerate(hours, 1):
            self.query(f"ALTER TABLE {QUALIFIED} DROP PARTITION ID '{hour}'")  # a copy cut short, if any
            # insert_deduplicate = 0: the blocks of a copy cut short would otherwise be skipped as seen.
            self.query(
                f"INSERT INTO {QUALIFIED} ({', '.join(STORED_COLUMNS)}) "
                "SETTINGS insert_deduplicate = 0, max_threads = 1, max_insert_threads = 1 "
                f"SELECT {', '.join(STORED_COLUMNS)} FROM {old} WHERE _partition_id = '{hour}'"
            )
            self.query(f"ALTER TABLE {old} DROP PARTITION ID '{hour}'")
            log.info("local store: upgraded %d of %d hours", n, len(hours))
        self.query(f"DROP TABLE {old}")

    def _create_table(self, qualified: str) -> None:
        columns = ",\n    ".join(f"{name} {kind}" for name, kind in COLUMNS)
        self.query(
            f"""CREATE TABLE IF NOT EXISTS {qualified}
(
    {columns},
    INDEX message_tokens {_TOKEN_TEXT} TYPE {_TOKEN_INDEX} GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(receive_time) * 100 + toHour(receive_time)
ORDER BY ({_ORDER})
TTL {self._ttl()}
SETTINGS {", ".join(f"{name} = {value}" for name, value in _TABLE_SETTINGS.items())}"""
        )

    # -- queries --------------------------------------------------------------

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None) -> Any:
        # One query at a time: chDB takes its connection's mutex while holding the GIL, and gives
        # the GIL back to its own threads (an insert reading Python(batch)) while holding the
        # mutex, so two threads in it at once can deadlock (seen: an insert beside a search).
        with self._engine:
            try:
                return self._session.query(sql, fmt, params=params)
            except Exception as e:
                raise StoreError(f"store query failed: {first_line(e, 500)}") from e

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict[str, Any] | None = None) -> str:
        """``sql``'s result as text; :class:`StoreError` with the engine's message."""
        return str(self._run(sql, fmt, params))

    def table(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """``sql``'s result as an Arrow table."""
        return self._run(sql, "ArrowTable", params)

    # -- writing --------------------------------------------------------------

    def insert(self, tables: Sequence[pa.Table], *, token: str) -> int:
        """Insert ``tables`` as one part; a second insert with the same ``token`` is skipped. Returns rows."""
        # One chunk per column: the engine reads a chunk at a time, and a relay's batch of a hundred
        # groups inserted as a hundred chunks cost it a fifth more CPU than the copy that joins them.
        batch = (tables[0] if len(tables) == 1 else pa.concat_tables(tables)).combine_chunks()
        rows = batch.num_rows
        if not rows:
            return 0
        safe_token = re.sub(r"[^0-9A-Za-z._:-]", "_", token)[:200]
        # Python(batch): the engine reads the local Arrow table named batch, without a copy.
        self.query(
            f"INSERT INTO {QUALIFIED} ({', '.join(STORED_COLUMNS)}) "
            f"SETTINGS insert_deduplication_token = '{safe_token}' SELECT * FROM Python(batch)"
        )
        self._retention_after_insert()
        return rows

    def insert_payloads(self, payloads: Sequence[bytes], *, token: str) -> int:
        """:meth:`insert` of :func:`arrow_payload` bytes (made in worker processes)."""
        return self.insert([_from_payload(p) for p in payloads], token=token)

    def insert_groups(self, groups: Sequence[Group], *, token: str) -> int:
        """:meth:`insert` of groups that carry their records."""
        return self.insert([arrow_table(groups)], token=token)

    # -- retention --------------------------------------------------------------

    def _retention_after_insert(self) -> None:
        now = time.monotonic()
        if now >= self._retention_due:
            self._retention_due = now + _RETENTION_EVERY_SECONDS
            self.enforce_size()

    def partitions(self) -> list[tuple[str, int, int]]:
        """(partition, rows, bytes on disk) of the table's active parts, oldest first."""
        text = self.query(
            f"SELECT partition, sum(rows), sum(bytes_on_disk) FROM system.parts "
            f"WHERE database = '{DATABASE}' AND table = '{TABLE}' AND active GROUP BY partition ORDER BY partition"
        )
        out = []
        for line in text.splitlines():
            partition, rows, size = line.split("\t")
            out.append((partition, int(rows), int(size)))
        return out

    def enforce_size(self) -> list[tuple[str, int]]:
        """Drop the oldest hours while the store is over ``max_bytes`` (never the newest); returns what went."""
        dropped: list[tuple[str, int]] = []
        with self._lock:
            parts = self.partitions()
            used = sum(size for _, _, size in parts)
            for partition, rows, size in parts[:-1]:
                if used <= self.max_bytes:
                    break
                self.query(f"ALTER TABLE {QUALIFIED} DROP PARTITION {int(partition)}")
                used -= size
                dropped.append((partition, rows))
        if dropped:
            log.info(
                "local store %s over max_bytes (%d): removed the oldest %d hours, %d records",
                self.directory, self.max_bytes, len(dropped), sum(rows for _, rows in dropped),
            )
        return dropped

    def stats(self) -> dict[str, Any]:
        """Records held, bytes on disk and uncompressed, the oldest and newest receive times."""
        text = self.query(
            f"SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), min(min_time), max(max_time) "
            f"FROM system.parts WHERE database = '{DATABASE}' AND table = '{TABLE}' AND active",
            "JSONEachRow",
        )
        row = json.loads(text) if text.strip() else {}
        values = list(row.values())
        return {
            "records": int(values[0] or 0) if values else 0,
            "bytes_on_disk": int(values[1] or 0) if values else 0,
            "uncompressed_bytes": int(values[2] or 0) if values else 0,
            "max_bytes": self.max_bytes, "max_age_hours": self.max_age_hours,
        }

    def count(self) -> int:
        return int(self.query(f"SELECT count() FROM {QUALIFIED}").strip() or 0)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of ``sql`` as dicts (Arrow underneath: no text parsing)."""
        yield from self.table(sql, params).to_pylist()

    def close(self) -> None:
        with self._engine:  # never under a query of another thread
            session, self._session = self._session, None
            if session is not None:
                session.close()


# -- search ----------------------------------------------------------------------

_PAGE_ROWS = 2048
_SELECT = ", ".join(name for name, _ in COLUMNS)


@dataclasses.dataclass(frozen=True, slots=True)
class SearchTable:
    """A table of records that :func:`search` searches: the local store's, or a ClickHouse sink's."""

    name: str
    """The table, qualified."""
    select: str
    """The columns of a :class:`StoredRecord` row, as the SELECT list that gives them."""
    rows: Callable[[str], Iterable[dict[str, Any]]]
    """The rows a query answers, as dicts."""
    dialect: ClickHouseDialect
    word_index: bool
    """Whether the table has the word index on :data:`_TOKEN_TEXT` (then words are checked with it first)."""


def search(
    source: EmbeddedStore | SearchTable,
    filter_text: str,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int | None = 100,
    newest_first: bool = True,
) -> Iterator[StoredRecord]:
    """The records that match ``filter_text`` (the grammar of :mod:`receiver.filters.expression`), newest first, in
    the local store or in another table of records (a ClickHouse sink's, on its server).

    ``since_ns`` (inclusive) and ``until_ns`` (exclusive) bound the records'
    own time; ``limit`` None or 0 means all. The filter runs in the engine;
    where its SQL is not exact (receiver/filters/expression.py says which), each
    candidate is checked again with the Python predicate that routes use,
    so a search finds what a route would take. Raises
    :class:`receiver.filters.expression.FilterError` for a bad filter at the call.
    """
    table = (
        SearchTable(QUALIFIED, _SELECT, source.rows, source.dialect(), word_index=True)
        if isinstance(source, EmbeddedStore) else source
    )
    parsed = parse_filter(filter_text)
    condition = parsed.to_clickhouse(table.dialect)
    # The words every match holds, as the word index can check them (see _TOKEN_TEXT).
    words = [f"hasToken({_TOKEN_TEXT}, '{word}')" for word in parsed.required_words()] if table.word_index else []
    return _search(table, " AND ".join([*words, f"({condition.sql})"]), None if condition.exact else parsed.matches,
                   since_ns=since_ns, until_ns=until_ns, limit=limit or None, newest_first=newest_first)


def _search(
    table: SearchTable,
    condition: str,
    matches: Any,
    *,
    since_ns: int | None,
    until_ns: int | None,
    limit: int | None,
    newest_first: bool,
) -> Iterator[StoredRecord]:
    # Values are written into the SQL (every ClickHouse takes literals; 18.16 has no query parameters).
    where = [f"({condition})"]
    if since_ns is not None:
        where.append("(time, time_ns) >= ({}, {})".format(*(max(0, v) for v in divmod(since_ns, 1_000_000_000))))
    if until_ns is not None:
        where.append("(time, time_ns) < ({}, {})".format(*(max(0, v) for v in divmod(until_ns, 1_000_000_000))))
    direction, compare = ("DESC", "<") if newest_first else ("ASC", ">")
    key = _ORDER
    order = ", ".join(f"{k} {direction}" for k in key.split(", "))
    yielded = 0
    after: str | None = None
    while True:
        clauses = [*where, f"({key}) {compare} {after}"] if after is not None else where
        page_rows = _PAGE_ROWS if limit is None or matches is not None else min(_PAGE_ROWS, limit - yielded)
        sql = (f"SELECT {table.select} FROM {table.name} WHERE {' AND '.join(clauses)} ORDER BY {order} "
               f"LIMIT {page_rows}")
        rows = list(table.rows(sql))
        for row in rows:
            stored = StoredRecord.from_row(row)
            if matches is None or matches(stored.record):
                yield stored
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
        if len(rows) < page_rows:
            return
        last = rows[-1]
        after = (f"({_epoch(last['time'])}, {int(last['time_ns'])}, {_epoch(last['receive_time'])}, "
                 f"{sql_string(str(last['pack_id']))}, {int(last['pack_row'])})")


def _epoch(value: Any) -> int:
    """A DateTime column's value (a datetime from Arrow) as epoch seconds."""
    return int(value.timestamp()) if hasattr(value, "timestamp") else int(value)


# -- receiverctl sql -----------------------------------------------------------------

SQL_MAX_ROWS = 10_000
"""The most rows ``receiverctl sql`` returns (more: refine the query, or use --limit)."""
_SQL_MAX_SECONDS = 60
_ROOTS = ("SelectWithUnionQuery", "ShowTables", "DescribeQuery", "ShowCreateTableQuery")
_FORBIDDEN_FUNCTIONS = frozenset({"file"})
"""Functions that read the host's files as the receiver's user (``file`` is also a scalar function)."""


class SqlRefusedError(StoreError):
    """A query ``receiverctl sql`` does not run; the message says why and what it takes."""


def read_only_select(store: EmbeddedStore, sql: str) -> str:
    """``sql`` if it is one read-only query over the store's tables; :class:`SqlRefusedError` if not.

    The engine's own parser decides (``EXPLAIN AST``): one statement, a
    SELECT (or SHOW/DESCRIBE), no table functions (``file``, ``url``,
    ``remote``... would read files or reach hosts as the receiver's user,
    which its group's members are not), no ``file()`` and no SETTINGS.
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise SqlRefusedError("give a query, such as: SELECT host, count() FROM receiver.records GROUP BY host")
    if ";" in _without_literals(text):
        raise SqlRefusedError("one query at a time: no ';' between statements")
    try:
        ast = store.query(f"EXPLAIN AST {text}")
    except StoreError as e:
        raise SqlRefusedError(str(e).removeprefix("store query failed: ")) from None
    lines = [line for line in ast.splitlines() if line.strip()]
    root = lines[0].split()[0] if lines else ""
    if root not in _ROOTS:
        raise SqlRefusedError(f"only SELECT, SHOW and DESCRIBE run here (not {root or 'that'}): the store is read-only")
    for previous, line in itertools.pairwise(lines):
        node = line.split()
        if previous.split()[0] == "TableExpression" and node[0] == "Function":
            raise SqlRefusedError(f"table functions ({node[1]}) are not allowed: query the store's tables")
        if node[0] == "Function" and node[1] in _FORBIDDEN_FUNCTIONS:
            raise SqlRefusedError(f"{node[1]}() is not allowed: it reads the host's files")
        if node[0] == "Set":
            raise SqlRefusedError("SETTINGS are not allowed in receiverctl sql")
    return text


def _without_literals(sql: str) -> str:
    """``sql`` with its quoted strings and identifiers emptied (so a ';' inside one does not count)."""
    return re.sub(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"", "''", sql)


def run_sql(store: EmbeddedStore, sql: str, limit: int | None) -> dict[str, Any]:
    """A read-only query's result: ``{"columns": [names], "rows": [[values]], "truncated": bool}``."""
    text = read_only_select(store, sql)
    rows_max = min(limit or SQL_MAX_ROWS, SQL_MAX_ROWS)
    if text.split(None, 1)[0].upper() in ("SELECT", "WITH", "("):
        settings = f"max_execution_time = {_SQL_MAX_SECONDS}"
        if not store.readonly:  # a store opened read-only refuses to set it again
            settings += ", readonly = 1"
        text = f"SELECT * FROM ({text}) LIMIT {rows_max + 1} SETTINGS {settings}"
    # JSONCompact: the engine's own text for every type (times as "2026-12-06 15:26:23", in UTC).
    result = json.loads(store.query(text, "JSONCompact") or "{}")
    names = [column["name"] for column in result.get("meta", [])]
    rows = result.get("data", [])
    return {"columns": names, "rows": rows[:rows_max], "truncated": len(rows) > rows_max}
