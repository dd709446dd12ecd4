"""What receiverctl prints of senders' records: one line each, or NDJSON, escaped for the terminal.

Commands that print records (parse, spool frames, tail, search) share these,
so a record looks the same whichever command shows it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

from formats.ndjson import encode_ndjson
from formats.record import Record
from formats.text import escape_unprintable, escape_unprintable_json

__all__ = ["record_line", "terminal_ndjson"]


def record_line(seconds: int, nanos: int, host: str, app: str, severity: int, message: str) -> str:
    """time host app severity message, one line whatever the message holds."""
    from formats.columns import SEVERITY_NAMES

    try:
        stamp = _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        stamp = str(seconds)
    if nanos:
        stamp += f".{nanos // 1_000_000:03d}"
    name = SEVERITY_NAMES[severity] if 0 <= severity < len(SEVERITY_NAMES) else "-"
    # Every field a sender wrote is escaped: a record is one line, and nothing in it
    # drives the operator's terminal (C0/C1 controls) or reorders what it shows (bidi).
    shown = escape_unprintable
    return f"{stamp}Z {shown(host) or '-'} {shown(app) or '-'} {name} {shown(message)}\n"


def terminal_ndjson(records: Sequence[Record]) -> bytes:
    """``records`` as NDJSON whose strings escape what a terminal would obey (C1 controls, bidi)."""
    lines = encode_ndjson(records).decode().split("\n")
    return "\n".join(escape_unprintable_json(line) for line in lines).encode()
