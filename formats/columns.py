"""One view of a record whatever its format: host, app, severity, facility, message.

Streamlog records carry rsyslog's property names (``hostname``,
``app-name``, ``pri-text``, ``msg``) and syslog records carry Logtail's
(``_hostname_``, ``_program_``, ``_severity_``, ``_content_``). Operators
mix them in one filter (``app-name=todo-list and _severity_<=4``) and every
table-shaped sink wants the same few columns, so the equivalence lives here,
once: :func:`columns_of` for sinks and :func:`lookup` for filters.
"""

from __future__ import annotations

from typing import NamedTuple

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

__all__ = ["COLUMN_NAMES", "Columns", "columns_of", "lookup", "severity_number"]

SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_SEVERITY_ALIASES = {"panic": 0, "error": 3, "warn": 4}
FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
"""rsyslog's names in ``pri-text`` (13 to 15 differ between systems; the others' names are aliases)."""
_SEVERITY_BY_NAME = {name: n for n, name in enumerate(SEVERITY_NAMES)} | _SEVERITY_ALIASES
_FACILITY_BY_NAME = {name: n for n, name in enumerate(FACILITY_NAMES)} | {
    "security": 13, "console": 14, "solaris-cron": 15, "cron2": 15,
}

# Each column's field names, Logtail's first; the first one a record has wins.
_HOST_KEYS = (HOSTNAME, "hostname", "source", "fromhost")
_APP_KEYS = (PROGRAM, "app-name", "programname", "syslogtag")
_MESSAGE_KEYS = (CONTENT, "msg", "rawmsg")
_SEVERITY_KEYS = (SEVERITY, "syslogseverity", "severity")
_FACILITY_KEYS = (FACILITY, "syslogfacility", "facility")
_PROCID_KEYS = (PROCESS_ID, "procid")
_MSGID_KEYS = (MESSAGE_ID, "msgid")

COLUMN_NAMES = ("host", "app", "severity", "facility", "message")
"""The columns every table-shaped sink has, beside time and the full field list."""

_EQUIVALENT: dict[str, tuple[str, ...]] = {}
for _name, _keys in (
    ("host", _HOST_KEYS),
    ("app", _APP_KEYS),
    ("message", _MESSAGE_KEYS),
    ("procid", _PROCID_KEYS),
    ("msgid", _MSGID_KEYS),
):
    for _key in (_name, *_keys):
        _EQUIVALENT.setdefault(_key, _keys)


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
    return _number(facility, _FACILITY_BY_NAME, 23), _number(severity, _SEVERITY_BY_NAME, 7)


def severity_number(text: str) -> int:
    """A severity written as a number or a name (``4``, ``warning``, ``warn``); -1 if neither."""
    return _number(text, _SEVERITY_BY_NAME, 7)


def columns_of(record: Record) -> Columns:
    """The record's common columns."""
    severity = _number(_first(record, _SEVERITY_KEYS), _SEVERITY_BY_NAME, 7)
    facility = _number(_first(record, _FACILITY_KEYS), _FACILITY_BY_NAME, 23)
    if severity < 0 or facility < 0:
        pri_facility, pri_severity = _pri_text(record)
        severity = severity if severity >= 0 else pri_severity
        facility = facility if facility >= 0 else pri_facility
    return Columns(
        _first(record, _HOST_KEYS) or record.source,
        _first(record, _APP_KEYS) or "",
        severity,
        facility,
        _first(record, _MESSAGE_KEYS) or "",
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
    keys = _EQUIVALENT.get(name)
    if keys is not None:
        found = _first(record, keys)
        return record.source if found is None and keys is _HOST_KEYS else found
    if name in ("severity", *_SEVERITY_KEYS):
        number = columns_of(record).severity
    elif name in ("facility", *_FACILITY_KEYS):
        number = columns_of(record).facility
    else:
        return None
    return None if number < 0 else str(number)
