"""The records table that both ClickHouse engines hold: its columns, and the values a group gives each row.

The ClickHouse sink (receiver/deliver/sinks/clickhouse.py, Native blocks to a
server) and the local store (receiver/deliver/sinks/local/store.py, Arrow into
chDB) write the same columns from the same groups; what they share is here,
so that a record reads the same from either. Each lays the table out in its
own way (types, order, indexes) and encodes the rows in its own format.
"""

from __future__ import annotations

import dataclasses

from receiver.deliver.batches import Group

__all__ = ["COLUMNS", "MAX_DATETIME", "GroupColumns", "clamp_datetime", "group_columns"]

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
