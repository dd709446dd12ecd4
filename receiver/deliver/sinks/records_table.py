"""The records table that both ClickHouse engines hold: its columns, and the values a group gives each row.

The ClickHouse sink (receiver/deliver/sinks/clickhouse.py, Native blocks to a
server) and the local store (receiver/deliver/sinks/local/store.py, Arrow into
chDB) write the same columns from the same groups; what they share is here,
so that a record reads the same from either. Each lays the table out in its
own way (types, order, indexes) and encodes the rows in its own format.

Both also make the columns of lines read as columns (:func:`streamlog_columns`,
in worker processes): Arrow is imported there only, since the delivery
process that loads this module for the ClickHouse sink never needs it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from formats.columns import column_plan
from receiver.deliver.batches import Group

if TYPE_CHECKING:
    import pyarrow as pa

    from formats.rfc5424_columns import Rfc5424Columns
    from formats.streamlog_columns import StreamlogColumns

__all__ = [
    "COLUMNS",
    "MAX_DATETIME",
    "GroupColumns",
    "clamp_datetime",
    "group_columns",
    "repeated",
    "streamlog_columns",
]

COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "DateTime"),
    ("time_ns", "UInt32"),
    ("host", "String"),
    ("app", "String"),
    ("severity", "Int8"),
    ("facility", "Int8"),
    ("message", "String"),
    ("source", "String"),
    ("client_ip", "String"),
    ("tag", "String"),
    ("field_keys", "Array(String)"),
    ("field_values", "Array(String)"),
    ("flags", "Array(String)"),
    ("user_defined_id", "String"),
    ("machine_group", "String"),
    ("receive_time", "DateTime"),
    ("hostname", "String"),
    ("pack_id", "String"),
    ("pack_row", "UInt32"),
)
"""The table's columns in order, as (name, ClickHouse type): what the ClickHouse sink's table
declares, what every insert names and what its Native blocks carry (existing tables have exactly
these); the local store keeps the same names with types of its own."""

MAX_DATETIME = 2**32 - 1
"""The last second a DateTime holds (2106-02-07)."""


def clamp_datetime(seconds: int) -> int:
    """DateTime holds 1970..2106: a time outside is pinned to the edge instead of failing the batch."""
    return 0 if seconds < 0 else min(seconds, MAX_DATETIME)


@dataclasses.dataclass(frozen=True, slots=True)
class GroupColumns:
    """The columns whose value is the same for every record of a group: its tags, and its pack."""

    client_ip: str
    user_defined_id: str
    machine_group: str
    receive_time: int
    hostname: str
    pack_id: str


def group_columns(group: Group) -> GroupColumns:
    """What ``group``'s tags give each of its rows (a receive time that is not a number is 0)."""
    tags = dict(group.tags)
    received = tags.get("__receive_time__", "")
    return GroupColumns(
        client_ip=tags.get("__client_ip__", group.client_ip),
        user_defined_id=tags.get("__user_defined_id__", ""),
        machine_group=tags.get("__machine_group__", ""),
        receive_time=clamp_datetime(int(received)) if received.isascii() and received.isdigit() else 0,
        hostname=tags.get("__hostname__", ""),
        pack_id=tags.get("__pack_id__", group.pack_id),
    )


# -- columns of lines read as columns (Arrow) --------------------------------------


def streamlog_columns(
    columns: StreamlogColumns | Rfc5424Columns, *, message: bool = False
) -> dict[str, pa.Array] | None:
    """The table's columns of ``columns``' rows but the group's (and ``message`` only if asked: the local
    store computes it), as :func:`formats.columns.columns_of` gives them a record at a time; None when
    the layout needs columns_of record by record. Rows without ``time_ns`` (streamlog, RFC 3164) have 0."""
    import pyarrow as pa
    import pyarrow.compute as pc

    plan = column_plan(columns.keys)
    if plan is None:
        return None
    n = len(columns)
    values = columns.values
    source = columns.source
    if plan.host_at is None:
        host = source
    else:
        host = pc.list_element(values, plan.host_at)
        host = pc.if_else(pc.equal(host, ""), source, host)  # as columns_of: an empty host is the source
    app = pc.list_element(values, plan.app_at) if plan.app_at is not None else repeated("", pa.string(), n)
    if len(plan.level_at) > 1:
        found = _levels_of_fields(values, plan.level_at, plan.levels)
        if found is None:
            return None
        levels, at = found
        severity = pc.take(pa.array([level[0] for level in levels], pa.int8()), at)
        facility = pc.take(pa.array([level[1] for level in levels], pa.int8()), at)
    elif plan.level_at:
        texts = pc.list_element(values, plan.level_at[0])
        distinct = pc.unique(texts)
        levels = [plan.levels[text] for text in distinct.to_pylist()]
        at = pc.index_in(texts, value_set=distinct)
        severity = pc.take(pa.array([level[0] for level in levels], pa.int8()), at)
        facility = pc.take(pa.array([level[1] for level in levels], pa.int8()), at)
    else:
        only = plan.levels[()]
        severity, facility = repeated(only[0], pa.int8(), n), repeated(only[1], pa.int8(), n)
    time_ns = columns.time_ns
    if time_ns is None:
        nanoseconds = repeated(0, pa.uint32(), n)
    else:  # as the record road stores them: one outside 0..999,999,999 is 0
        low, high = pc.min_max(time_ns).values()
        if n and (low.as_py() < 0 or high.as_py() >= 1_000_000_000):
            time_ns = pc.if_else(pc.and_(pc.greater_equal(time_ns, 0), pc.less(time_ns, 1_000_000_000)), time_ns, 0)
        nanoseconds = pc.cast(time_ns, pa.uint32())
    made = {
        "time": pc.cast(columns.time, pa.uint32()),  # the parsers keep times within 0..2**32-1, DateTime's range
        "time_ns": nanoseconds,
        "host": host,
        "app": app,
        "severity": severity,
        "facility": facility,
        "source": source,
        "tag": pc.fill_null(columns.tag, "") if columns.tag.null_count else columns.tag,  # no tag: "", as from records
        "field_keys": repeated(columns.keys, pa.list_(pa.string()), n),
        "field_values": values,
        "flags": repeated((), pa.list_(pa.string()), n),
    }
    if message:
        made["message"] = (
            pc.list_element(values, plan.message_at) if plan.message_at is not None else repeated("", pa.string(), n)
        )
    return made


def _levels_of_fields(
    values: pa.ListArray, level_at: tuple[int, ...], by_texts: Mapping[tuple[str, ...], tuple[int, int]]
) -> tuple[list[tuple[int, int]], pa.Int32Array] | None:
    """Levels read from several fields (syslog's ``_facility_`` and ``_severity_``): (severity, facility)
    of each distinct combination of their texts, and each row's combination; None where a text is null
    or the combinations are too many to number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = [pc.dictionary_encode(pc.list_element(values, at)) for at in level_at]
    if any(field.null_count for field in fields) or math.prod(len(f.dictionary) for f in fields) >= 1 << 62:
        return None
    # A combination's number: its texts' places in each field's dictionary, as digits of mixed radix.
    number = pc.cast(fields[0].indices, pa.int64())
    for field in fields[1:]:
        number = pc.add(pc.multiply(number, len(field.dictionary)), pc.cast(field.indices, pa.int64()))
    distinct = pc.unique(number)
    dictionaries = [field.dictionary.to_pylist() for field in fields]
    levels = []
    for combination in distinct.to_pylist():
        texts = []
        for dictionary in reversed(dictionaries):
            combination, place = divmod(combination, len(dictionary))
            texts.append(dictionary[place])
        levels.append(by_texts[tuple(reversed(texts))])
    return levels, pc.index_in(number, value_set=distinct)


_REPEATS: dict[tuple[Any, Any], Any] = {}
"""Arrays of one value repeated, by value and type: few (a layout's keys, no flags, 0), each
made once at a capacity and sliced, because ``pa.repeat`` of a list costs 0.2 us a row."""


def repeated(value: Any, kind: pa.DataType, n: int) -> pa.Array:
    """``value`` ``n`` times, as an array of ``kind`` (a slice of one kept for the next call)."""
    import pyarrow as pa

    made = _REPEATS.get((value, kind))
    if made is None or len(made) < n:
        if len(_REPEATS) >= 64:
            _REPEATS.clear()
        made = _REPEATS[(value, kind)] = pa.repeat(pa.scalar(value, kind), max(n, 2 * len(made or ()), 1024))
    return made.slice(0, n)
