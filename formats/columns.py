"""One view of a record whatever its format: host, app, severity, facility, message.

Streamlog records carry rsyslog's property names (``hostname``,
``app-name``, ``pri-text``, ``msg``) and syslog records carry Logtail's
(``_hostname_``, ``_program_``, ``_severity_``, ``_content_``). Operators
mix them in one filter (``app-name=todo-list and _severity_<=4``) and every
table-shaped sink wants the same few columns, so the equivalence lives here,
once: :func:`columns_of` for sinks and :func:`lookup` for filters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from formats.logtail_fields import (
    CONTENT,
    FACILITY,
    HOSTNAME,
    MESSAGE_ID,
    PROCESS_ID,
    PROGRAM,
    SEVERITY,
)
from formats.record import Record

__all__ = [
    "APP_KEYS",
    "COLUMN_NAMES",
    "EQUIVALENT_KEYS",
    "FACILITY_KEYS",
    "HOST_KEYS",
    "MESSAGE_KEYS",
    "SEVERITY_BY_NAME",
    "SEVERITY_KEYS",
    "ColumnPlan",
    "Columns",
    "column_plan",
    "columns_of",
    "columns_of_records",
    "lookup",
    "severity_number",
]

SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_SEVERITY_ALIASES = {"panic": 0, "error": 3, "warn": 4}
FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
"""rsyslog's names in ``pri-text`` (13 to 15 differ between systems; the others' names are aliases)."""
SEVERITY_BY_NAME = {name: n for n, name in enumerate(SEVERITY_NAMES)} | _SEVERITY_ALIASES
_FACILITY_BY_NAME = {name: n for n, name in enumerate(FACILITY_NAMES)} | {
    "security": 13, "console": 14, "solaris-cron": 15, "cron2": 15,
}

# Each column's field names, Logtail's first; the first one a record has wins.
HOST_KEYS = (HOSTNAME, "hostname", "source", "fromhost")
APP_KEYS = (PROGRAM, "app-name", "programname", "syslogtag")
MESSAGE_KEYS = (CONTENT, "msg", "rawmsg")
SEVERITY_KEYS = (SEVERITY, "syslogseverity", "severity")
FACILITY_KEYS = (FACILITY, "syslogfacility", "facility")
_PROCID_KEYS = (PROCESS_ID, "procid")
_MSGID_KEYS = (MESSAGE_ID, "msgid")

COLUMN_NAMES = ("host", "app", "severity", "facility", "message")
"""The columns every table-shaped sink has, beside time and the full field list."""

EQUIVALENT_KEYS: dict[str, tuple[str, ...]] = {}
for _name, _keys in (
    ("host", HOST_KEYS),
    ("app", APP_KEYS),
    ("message", MESSAGE_KEYS),
    ("procid", _PROCID_KEYS),
    ("msgid", _MSGID_KEYS),
):
    for _key in (_name, *_keys):
        EQUIVALENT_KEYS.setdefault(_key, _keys)


class Columns(NamedTuple):
    host: str
    app: str
    severity: int
    """0 (emerg) .. 7 (debug); -1 when the record does not say."""
    facility: int
    """0 .. 23; -1 when the record does not say."""
    message: str


def _first(record: Record, keys: tuple[str, ...]) -> str | None:
    record_keys = record.keys
    for key in keys:
        if key in record_keys:
            return record.values[record_keys.index(key)]
    return None


def _number(text: str | None, names: dict[str, int], limit: int) -> int:
    if text is None:
        return -1
    text = text.strip().lower()
    if text.isascii() and text.isdigit():  # not "²": isdigit() takes it, int() does not
        value = int(text)
        return value if value <= limit else -1
    return names.get(text, -1)


def _pri_text(record: Record) -> tuple[int, int]:
    """(facility, severity) from rsyslog's ``pri-text`` (``user.notice`` or ``local0.err<133>``)."""
    text = record.get("pri-text")
    if not text:
        return -1, -1
    head, _, pri = text.partition("<")
    if pri.endswith(">") and pri[:-1].isascii() and pri[:-1].isdigit() and int(pri[:-1]) < 192:
        value = int(pri[:-1])
        return value >> 3, value & 7
    facility, _, severity = head.partition(".")
    return _number(facility, _FACILITY_BY_NAME, 23), _number(severity, SEVERITY_BY_NAME, 7)


def severity_number(text: str) -> int:
    """A severity written as a number or a name (``4``, ``warning``, ``warn``); -1 if neither."""
    return _number(text, SEVERITY_BY_NAME, 7)


def columns_of(record: Record) -> Columns:
    """The record's common columns."""
    severity = _number(_first(record, SEVERITY_KEYS), SEVERITY_BY_NAME, 7)
    facility = _number(_first(record, FACILITY_KEYS), _FACILITY_BY_NAME, 23)
    if severity < 0 or facility < 0:
        pri_facility, pri_severity = _pri_text(record)
        severity = severity if severity >= 0 else pri_severity
        facility = facility if facility >= 0 else pri_facility
    return Columns(
        _first(record, HOST_KEYS) or record.source,
        _first(record, APP_KEYS) or "",
        severity,
        facility,
        _first(record, MESSAGE_KEYS) or "",
    )


def lookup(record: Record, name: str) -> str | None:
    """The value a filter means by ``name``: the field itself, else its equivalent.

    ``_severity_`` of a streamlog record comes from its ``pri-text``, ``app-name``
    of an RFC 5424 record is its ``_program_``, and the column names
    (``host``, ``app``, ``severity``, ``facility``, ``message``) work on both.
    None when the record has nothing of the kind.
    """
    value = record.get(name)
    if value is not None:
        return value
    keys = EQUIVALENT_KEYS.get(name)
    if keys is not None:
        found = _first(record, keys)
        return record.source if found is None and keys is HOST_KEYS else found
    if name in ("severity", *SEVERITY_KEYS):
        number = columns_of(record).severity
    elif name in ("facility", *FACILITY_KEYS):
        number = columns_of(record).facility
    else:
        return None
    return None if number < 0 else str(number)


_LAYOUT_CACHE_LIMIT = 4096
"""Layouts remembered; they are few, and this only bounds a pathological sender."""


# -- the common columns of many records, per layout -------------------------------
#
# columns_of is the one definition of host, app, severity, facility and
# message, but it searches a record's keys by name, which cost 2.4 to 3.5 us a record, more
# than the rest of the encoder. Records of one layout share their keys, so where it finds
# each column is learnt once per layout, by running it on a probe record whose values are
# markers and which remembers the positions read: host, app and message are then an index
# into each record's values, and severity and facility (parsed from text) are computed by
# columns_of once per distinct text. A layout whose probe answers anything else is left to
# columns_of, record by record, as is a group that mixes layouts of different plans.


class _ReadPositions(list[str]):
    """A probe's values: remembers which positions were read (iterating reads them all)."""

    def __init__(self, values: list[str]) -> None:
        super().__init__(values)
        self.read: set[int] = set()

    def __getitem__(self, index: Any) -> Any:
        value = super().__getitem__(index)
        self.read.update(range(len(self))[index] if isinstance(index, slice) else (index % len(self),))
        return value

    def __iter__(self) -> Iterator[str]:
        self.read.update(range(len(self)))
        return super().__iter__()


class _Levels(dict[Any, tuple[int, int]]):
    """(severity, facility) by the values they are parsed from (the value alone when there is one)."""

    def __init__(self, level_at: tuple[int, ...], level_keys: tuple[str, ...]) -> None:
        super().__init__()
        self.level_at = level_at
        self.level_keys = level_keys

    def __missing__(self, texts: Any) -> tuple[int, int]:
        if len(self) >= _LAYOUT_CACHE_LIMIT:
            self.clear()
        width = max(self.level_at, default=-1) + 1
        keys, values = ["\x00"] * width, [""] * width
        for at, key, text in zip(self.level_at, self.level_keys, texts if len(self.level_at) != 1 else (texts,), strict=True):
            keys[at], values[at] = key, text
        # These values decide severity and facility (the probe read nothing else), whatever the rest.
        _, _, severity, facility, _ = columns_of(Record(0, 0, tuple(keys), values, "", {}))
        levels = self[texts] = (severity, facility)
        return levels


@dataclasses.dataclass(frozen=True, slots=True)
class ColumnPlan:
    """Where columns_of finds the columns of the layouts that share this plan."""

    host_at: int | None
    """The host's position (an empty value there means the record's source); None: the source."""
    app_at: int | None
    """None: the layout has no app ("")."""
    message_at: int | None
    """None: the layout has no message ("")."""
    level_at: tuple[int, ...]
    """The positions severity and facility are parsed from."""
    level_keys: tuple[str, ...]
    """The keys at those positions."""
    levels: _Levels = dataclasses.field(compare=False, hash=False)


_MARK = "\x00\x01{}\x01\x00"
_SOURCE_MARK = _MARK.format("source")
_PLANS: dict[tuple[str, ...], ColumnPlan | None] = {}
"""By layout (a record's keys); None for a layout columns_of must see record by record."""
_SHARED_PLANS: dict[ColumnPlan, ColumnPlan] = {}
"""Layouts that differ only where columns_of does not look share one plan (and its levels)."""


def column_plan(keys: tuple[str, ...]) -> ColumnPlan | None:
    """Where :func:`columns_of` finds each column in records of layout ``keys``; None for a layout it
    must see record by record."""
    try:
        return _PLANS[keys]
    except KeyError:  # (not "in" then [...]: another thread may clear the cache in between)
        pass
    if len(_PLANS) >= _LAYOUT_CACHE_LIMIT:
        _PLANS.clear()
        _SHARED_PLANS.clear()
    markers = [_MARK.format(i) for i in range(len(keys))]
    probe = _ReadPositions(markers)
    found: Columns | None
    try:
        found = columns_of(Record(0, 0, keys, probe, _SOURCE_MARK, {}))
    except Exception:  # markers are no real values: such a layout is left to columns_of
        found = None
    at = {marker: i for i, marker in enumerate(markers)}
    plan: ColumnPlan | None = None
    if found is not None and (found.host in at or found.host == _SOURCE_MARK) and all(
        text in at or text == "" for text in (found.app, found.message)
    ):
        host_at, app_at, message_at = at.get(found.host), at.get(found.app), at.get(found.message)
        level_at = tuple(sorted(probe.read - {host_at, app_at, message_at}))
        level_keys = tuple(keys[i] for i in level_at)
        candidate = ColumnPlan(host_at, app_at, message_at, level_at, level_keys, _Levels(level_at, level_keys))
        plan = _SHARED_PLANS.setdefault(candidate, candidate)
    _PLANS[keys] = plan
    return plan


def columns_of_records(records: Sequence[Record]) -> tuple[list[str], list[str], list[int], list[int], list[str]]:
    """:func:`columns_of` of every record, as five columns: host, app, severity, facility, message.

    What table-shaped encoders (the ClickHouse sink, the local store) call for a group.
    """
    if not records:
        return [], [], [], [], []
    keys = [record.keys for record in records]
    layouts = {keys[0]} if keys.count(keys[0]) == len(keys) else set(keys)
    plans = {column_plan(layout) for layout in layouts}
    plan = plans.pop() if len(plans) == 1 else None
    if plan is None:
        columns: list[Columns] = [columns_of(record) for record in records]
        hosts, apps, severities, facilities, messages = (list(column) for column in zip(*columns, strict=True))
        return hosts, apps, severities, facilities, messages
    values = [record.values for record in records]
    count = len(records)
    if plan.host_at is None:
        hosts = [record.source for record in records]
    else:
        hosts = list(map(itemgetter(plan.host_at), values))
        if "" in hosts:
            hosts = [host or record.source for host, record in zip(hosts, records, strict=True)]
    apps = list(map(itemgetter(plan.app_at), values)) if plan.app_at is not None else [""] * count
    messages = list(map(itemgetter(plan.message_at), values)) if plan.message_at is not None else [""] * count
    if plan.level_at:
        levels = list(map(plan.levels.__getitem__, map(itemgetter(*plan.level_at), values)))
    else:
        levels = [plan.levels[()]] * count
    severities = list(map(itemgetter(0), levels))
    facilities = list(map(itemgetter(1), levels))
    return hosts, apps, severities, facilities, messages
