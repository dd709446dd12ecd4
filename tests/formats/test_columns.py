"""The common columns of a record, whatever its format, and the field equivalences filters use."""

from __future__ import annotations

import zoneinfo

from hypothesis import given
from hypothesis import strategies as st

from formats.columns import Columns, columns_of, columns_of_records, lookup, severity_number
from formats.parse import make_parser
from formats.record import Record

PARSE = make_parser(format="auto", default_tz=zoneinfo.ZoneInfo("UTC"))
T = 1_795_323_666_000_000_000
ALI = b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 todo-list 705 - Create a new task"
RFC5424 = b'<165>1 2026-11-22T05:01:06Z db-2 pgsql 12 ID7 [a b="c"] slow query'
RFC3164 = b"<34>Nov 22 05:01:06 mail-3 postfix[99]: queue full"


def test_streamlog_columns() -> None:
    """If a streamlog line is read, then host, app, severity and facility come from its rsyslog columns."""
    assert columns_of(PARSE(ALI, "127.0.0.1", T)) == Columns("web-1", "todo-list", 5, 1, "Create a new task")


def test_syslog_columns() -> None:
    """If RFC 5424 and RFC 3164 frames are read, then the columns come from Logtail's field names."""
    assert columns_of(PARSE(RFC5424, "10.0.0.9", T)) == Columns("db-2", "pgsql", 5, 20, "slow query")
    assert columns_of(PARSE(RFC3164, "10.0.0.9", T)) == Columns("mail-3", "postfix", 2, 4, "queue full")


def test_rsyslog_facility_names() -> None:
    """If pri-text names facilities 13 to 15 as rsyslog does (audit, alert, clock), then they read as 13 to 15."""
    for number, name in ((13, "audit"), (14, "alert"), (15, "clock")):
        record = Record(0, 0, ("pri-text",), [f"{name}.info"], "", {})
        assert columns_of(record).facility == number


def test_pri_text_with_number() -> None:
    """If pri-text carries rsyslog's numeric suffix, then the number decides."""
    record = Record(0, 0, ("pri-text", "msg"), ["local0.err<131>", "x"], "", {})
    assert columns_of(record)[2:4] == (3, 16)


def test_lookup_equivalents() -> None:
    """If a filter names a field of the other naming scheme or a column, then lookup finds the equivalent."""
    ali, rfc = PARSE(ALI, "127.0.0.1", T), PARSE(RFC5424, "10.0.0.9", T)
    assert lookup(ali, "_severity_") == "5" and lookup(ali, "_program_") == "todo-list"
    assert lookup(rfc, "app-name") == "pgsql" and lookup(rfc, "msg") == "slow query"
    assert lookup(ali, "host") == "web-1" and lookup(rfc, "severity") == "5"
    assert lookup(ali, "no-such-field") is None


def test_unicode_digits_are_not_numbers() -> None:
    """If a sender writes a severity or PRI in non-ASCII digits, then it reads as unknown, without raising."""
    record = Record(0, 0, ("_severity_", "pri-text"), ["\u00b2", "user.\u00b9<\u00b9>"], "", {})
    assert columns_of(record).severity == -1 and lookup(record, "severity") is None
    assert severity_number("\u00b3") == -1


def test_severity_names() -> None:
    assert [severity_number(t) for t in ("4", "warning", "warn", "ERR", "8", "x")] == [4, 4, 4, 3, -1, -1]


_KEYS = st.sampled_from(["_severity_", "_facility_", "pri-text", "syslogseverity", "msg", "hostname"]) | st.text(max_size=12)


@given(st.lists(st.tuples(_KEYS, st.text(max_size=12)), max_size=8), st.text(max_size=12))
def test_never_raises(pairs: list[tuple[str, str]], name: str) -> None:
    """If a record has any fields at all, then columns_of and lookup answer without raising."""
    record = Record(0, 0, tuple(k for k, _ in pairs), [v for _, v in pairs], "src", {})
    columns = columns_of(record)
    assert -1 <= columns.severity <= 7 and -1 <= columns.facility <= 23
    lookup(record, name)


_KEYS = st.sampled_from([
    "hostname", "pri-text", "app-name", "msg", "_hostname_", "_program_", "_severity_", "_facility_", "_content_",
    "severity", "facility", "source", "programname", "rawmsg", "x", "",
])
_VALUES = st.one_of(
    st.sampled_from(["", "web-1", "user.notice", "local0.err<133>", "3", "warn", "23", "99", "²", "emerg"]),
    st.text(max_size=8),
)


@st.composite
def _records(draw: st.DrawFn) -> list[Record]:
    layouts = draw(st.lists(st.lists(_KEYS, max_size=6).map(tuple), min_size=1, max_size=3))
    out = []
    for _ in range(draw(st.integers(0, 12))):
        keys = draw(st.sampled_from(layouts))
        out.append(Record(0, 0, keys, [draw(_VALUES) for _ in keys], draw(st.sampled_from(["", "10.0.0.7"])), {}))
    return out


@given(_records())
def test_columns_of_records_is_columns_of_each(records: list[Record]) -> None:
    """If the columns of many records are asked at once (per layout, for encoders), then they are columns_of
    of each record, whatever the layouts, shared or mixed, and the values."""
    expected = [columns_of(r) for r in records]
    got = columns_of_records(records)
    assert [Columns(*row) for row in zip(*got, strict=True)] == expected if records else got == ([], [], [], [], [])
