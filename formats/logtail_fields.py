"""The field names Logtail's syslog input writes, and the raw record.

SLS users query and build dashboards on these names, so RFC 5424, RFC 3164
and unparsed frames all use them. Unknown numeric values are "-1", as in
Logtail; a parse failure never reads as PRI 0 ("kernel emergency").

Nothing a sender wrote vanishes: where a field's text cannot be read and the
record carries a stand-in (the receive time, -1), the text as sent is kept in
a ``_raw_..._`` field, after the others, only on such records. Streamlog
records use these names too.
"""

from __future__ import annotations

from collections.abc import Iterable

from formats.record import Record

__all__ = [
    "CLIENT_IP",
    "CONTENT",
    "FACILITY",
    "HOSTNAME",
    "MESSAGE_ID",
    "PRIORITY",
    "PROCESS_ID",
    "PROGRAM",
    "RAW_PRI",
    "RAW_TIMESTAMP",
    "SEVERITY",
    "STRUCTURED_DATA",
    "SYSLOG_KEYS",
    "UNIXTIMESTAMP",
    "raw_key_table",
    "raw_record",
]

PROGRAM = "_program_"
PRIORITY = "_priority_"
FACILITY = "_facility_"
SEVERITY = "_severity_"
UNIXTIMESTAMP = "_unixtimestamp_"
"""The record time in nanoseconds since the epoch, as a decimal string."""
HOSTNAME = "_hostname_"
"""The HOSTNAME the message names, else the peer address."""
CLIENT_IP = "_client_ip_"
"""The peer address (IPv6 kept whole, unlike Logtail)."""
CONTENT = "_content_"
STRUCTURED_DATA = "_structured_data_"
"""RFC 5424 STRUCTURED-DATA as JSON: ``{"sd-id": {"param": "value"}}``."""
MESSAGE_ID = "_message_id_"
PROCESS_ID = "_process_id_"
RAW_TIMESTAMP = "_raw_timestamp_"
"""The timestamp as sent, when it could not be read (flag ``bad-timestamp``; the record has the receive time)."""
RAW_PRI = "_raw_pri_"
"""The PRI number as sent, when over 191 (flag ``bad-pri``; priority, facility and severity are -1)."""


SYSLOG_KEYS = (PROGRAM, PRIORITY, FACILITY, SEVERITY, UNIXTIMESTAMP, HOSTNAME, CLIENT_IP, CONTENT)
"""The fields every syslog record has, in Logtail's order; optional ones follow."""


def raw_key_table(
    layouts: Iterable[tuple[str, ...]],
) -> dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]]:
    """(keys, raw keys) -> keys then raw keys, for every layout and set of raw fields.

    Built once per parser, so records of one shape share one keys tuple (the
    SLS encoder reuses a layout while the keys are the same object).
    """
    return {
        (keys, extra): keys + extra
        for keys in layouts
        for extra in ((RAW_PRI,), (RAW_TIMESTAMP,), (RAW_PRI, RAW_TIMESTAMP))
    }


def raw_record(
    text: str,
    peer: str,
    receive_time_ns: int,
    flags: tuple[str, ...],
    error: str | None,
) -> Record:
    """A frame kept whole as ``_content_``, timed at its receipt."""
    return Record(
        receive_time_ns // 1_000_000_000,
        receive_time_ns % 1_000_000_000,
        SYSLOG_KEYS,
        ["", "-1", "-1", "-1", str(receive_time_ns), peer, peer, text],
        peer,
        {},
        flags,
        error,
    )
