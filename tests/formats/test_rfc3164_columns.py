"""RFC 3164 lines read a column at a time: what Rfc3164Parser.parse reads of each, or left to it."""

from __future__ import annotations

import datetime as _dt
import zoneinfo

import pyarrow as pa
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from formats._timestamps import UTC
from formats.logtail_fields import PROCESS_ID, SYSLOG_KEYS
from formats.record import Record
from formats.rfc3164 import DIALECTS, Rfc3164Parser
from formats.rfc3164_columns import parse_rfc3164_columns
from formats.streamlog_columns import StreamlogColumns

PEER = "10.9.8.7"
PROFILE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NEW_YEAR = 1_798_761_600  # 2027-01-01T00:00:00Z
NOV_2026 = 1_795_323_666  # 2026-11-22T05:01:06Z


def rows_of(columns: StreamlogColumns) -> list[tuple[int, int, tuple[str, ...], list[str], str, str | None, tuple[str, ...]]]:
    """What the columns say of each row: time, time_ns, keys, values, source, tag, flags (StreamlogColumns' own
    definition of a row)."""
    return [
        (time, 0, columns.keys, values, source, tag, ())
        for time, source, tag, values in zip(
            columns.time.to_pylist(), columns.source.to_pylist(), columns.tag.to_pylist(),
            columns.values.to_pylist(), strict=True,
        )
    ]


def row_of(record: Record) -> tuple[int, int, tuple[str, ...], list[str], str, str | None, tuple[str, ...]]:
    assert record.tags == {} or list(record.tags) == []
    return (record.time, record.time_ns, record.keys, record.values, record.source, None, record.flags)


def check(parser: Rfc3164Parser, reference: Rfc3164Parser, frames: list[bytes], received: list[int]) -> int:
    """That whatever the columns say of a frame is what ``reference.parse`` says; the number of frames read."""
    read = parse_rfc3164_columns(parser, frames, PEER, received)
    if read is None:
        return 0
    seen: list[int] = list(read.unread)
    for columns, positions in read.parts:
        rows = positions.to_pylist()
        assert len(columns) == len(rows) > 0 and rows == sorted(rows)
        assert columns.frame_bytes.to_pylist() == [len(frames[row]) for row in rows]
        assert columns.keys in (SYSLOG_KEYS, (*SYSLOG_KEYS, PROCESS_ID))
        assert len({len(values) for values in columns.values.to_pylist()} | {len(columns.keys)}) == 1
        for row, got in zip(rows, rows_of(columns), strict=True):
            assert got == row_of(reference.parse(frames[row], PEER, received[row])), frames[row]
        seen += rows
    assert sorted(seen) == list(range(len(frames)))  # every frame once: read, or left to the parser
    assert read.unread == sorted(read.unread)
    return len(frames) - len(read.unread)


# Parts of lines: mostly of the usual shape, and now and then one that sends parse off its usual
# path or flags the record: PRIs over 191 or not digits, months that are not, days and times out of
# range, a host ending in ':', device codes and Cisco counters where the TAG would be, empty and odd
# pids, non-ASCII, a BOM, a final CR or NUL.
PARTS = {
    "pri": (["<13>", "<0>", "<191>", "<86>", "<6>"], ["<192>", "<999>", "<13", "", "<١٣>", "<013>"]),
    "month": (["Nov", "Dec", "Jan"], ["Feb", "Foo", "jan", "JAN"]),
    "day": ([" 1", " 01", " 22", " 28", " 30"], [" 29", " 31", " 39", "  0", " 00", "  1"]),
    "before_clock": ([" "], ["", "  "]),
    "clock": (["00:00:00", "05:01:06", "23:59:59"], ["24:00:00", "12:60:00", "23:59:60", "0٣:00:00"]),
    "after_stamp": ([" "], ["  ", ": ", ":"]),
    "host": (["web-1", "a", "10.0.0.1", "host.example.com", "h%x", "::1"], ["fw01:", ":1", "::", "-x", "é", ""]),
    "after_host": ([" "], [" : ", "  ", ""]),
    "tag": (
        ["sshd[123]:", "kernel:", "su:", "CRON[9]:", "_x:", "ünï[9]:", "app[]:"],
        ["%ASA-6-302013:", "1234:", "-:", "app[ 1]", "a\x1c:", "sshd[123]", "0app:", "kernel", "%%01SHELL/5/CMDRECORD(s):"],
    ),
    "after_tag": ([" "], ["", "  "]),
    "content": (
        ["Accepted publickey for root", "", "two  spaces", "é ü", "\ufeffwith a BOM", " lead"],
        ["x\r", "x\x00", "\ufeff", "*Mar  1 18:46:11.123: %SYS-5-CONFIG_I: x", "Mar  1 18:46:11: %LINK-3-UPDOWN: y"],
    ),
}


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A frame mostly of the usual shape, with now and then a part that is not, or bytes of any kind."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=60))
    line = "".join(
        draw(st.sampled_from(odd if draw(st.integers(0, 11)) == 0 else usual)) for usual, odd in PARTS.values()
    ).encode()
    if draw(st.integers(0, 29)) == 0:
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from([b"\xff", b"\r", b"\x00", b"\xc3"])) + line[at:]
    return line


ZONES = st.sampled_from([UTC, zoneinfo.ZoneInfo("Asia/Shanghai"), zoneinfo.ZoneInfo("America/New_York")])


@st.composite
def parsers(draw: st.DrawFn) -> tuple[Rfc3164Parser, Rfc3164Parser]:
    """Two parsers of the same settings: one reads columns, the other is the reference (no cache shared)."""
    options = {
        "default_tz": draw(ZONES),
        "future_tolerance_s": draw(st.sampled_from([0, 3600, 2 * 86_400, 10 * 86_400])),
        "uncertain_year_age_s": draw(st.sampled_from([0, 30 * 86_400, 400 * 86_400, 400 * 86_400])),
        "dialect": draw(st.sampled_from(DIALECTS)),
    }
    return Rfc3164Parser(**options), Rfc3164Parser(**options)  # type: ignore[arg-type]


# Receive times around New Year (the year rule turns there), and in a month the stamps name.
BASES = st.sampled_from([NEW_YEAR - 2, NEW_YEAR, NEW_YEAR + 86_400, NOV_2026, NEW_YEAR - 40 * 86_400])


@st.composite
def receive_times(draw: st.DrawFn, n: int) -> list[int]:
    """Receive times of ``n`` frames: entries of several frames each, each entry a time."""
    base = draw(BASES) * 10**9
    times: list[int] = []
    while len(times) < n:
        at = base + draw(st.integers(-3 * 86_400, 3 * 86_400)) * 10**9 + draw(st.sampled_from([0, 1, 999_999_999]))
        times += [at] * draw(st.integers(1, 8))
    return times[:n]


@PROFILE
@given(parsers(), st.data())
@example(
    (Rfc3164Parser(), Rfc3164Parser()),
    None,
).via("the bench's lines")
def test_whatever_the_columns_read_is_what_parse_reads(pair: tuple[Rfc3164Parser, Rfc3164Parser], data: st.DataObject | None) -> None:
    """If a chunk of any frames is read as columns, then it never raises, and each row it reads is the record
    parse makes of that frame (time, keys, values, source, no tag, no flags), its place and size right;
    every other frame is left to parse, once."""
    parser, reference = pair
    if data is None:
        lines = [
            f"<{8 + i % 8}>Nov 22 05:01:{i % 60:02d} web-{i % 7} app{i % 3}[{1000 + i}]: request {i}".encode()
            for i in range(50)
        ]
        assert check(parser, reference, lines, [NOV_2026 * 10**9] * len(lines)) == len(lines)
        return
    chunk = data.draw(st.lists(frames(), min_size=1, max_size=30))
    read = check(parser, reference, chunk, data.draw(receive_times(len(chunk))))
    event(f"lines read: {'none' if read == 0 else 'all' if read == len(chunk) else 'some'}")


class TestParts:
    def test_a_sender_mixing_pids_gives_a_part_each(self) -> None:
        """If some lines carry a pid and some do not, then each layout is a part, with its rows' places,
        and the lines parse would flag or read another way are left to it."""
        received = NOV_2026 * 10**9
        lines = [
            b"<6>Nov 22 05:01:06 web-1 kernel: eth0 up",
            b"<86>Nov 22 05:01:06 web-1 sshd[4242]: Accepted publickey",
            b"<6>Nov 22 05:01:07 web-1 kernel: eth1 up",
            b"<189>Nov 22 05:01:07 fw01 %ASA-6-302013: Built",  # a device's code: parse's general path
            b"<13>Nov 22 05:01:07 web-1 app[]: empty pid",  # an empty pid is none
            b"<13>Mar  1 00:00:00 web-1 old: uncertain year",  # flagged uncertain-year
        ]
        parser = Rfc3164Parser()
        read = parse_rfc3164_columns(parser, lines, PEER, [received] * len(lines))
        assert read is not None
        (plain, plain_rows), (with_pid, pid_rows) = read.parts
        assert (plain.keys, plain_rows.to_pylist()) == (SYSLOG_KEYS, [0, 2, 4])
        assert (with_pid.keys, pid_rows.to_pylist()) == ((*SYSLOG_KEYS, PROCESS_ID), [1])
        assert read.unread == [3, 5]
        assert plain.tag.null_count == len(plain) and plain.source.to_pylist() == [PEER] * 3
        assert with_pid.values[0].as_py() == [
            "sshd", "86", "10", "6", str(1_795_323_666 * 10**9), "web-1", PEER, "Accepted publickey", "4242",
        ]
        assert check(Rfc3164Parser(), Rfc3164Parser(), lines, [received] * len(lines)) == 4

    def test_nothing_read_is_none(self) -> None:
        """If no line has the usual shape, then there are no columns (the caller parses every line)."""
        lines = [b"<13>1 2026-11-22T05:01:06Z h a - - - m", b"not syslog", b"\xff\xfe"]
        assert parse_rfc3164_columns(Rfc3164Parser(), lines, PEER, [NOV_2026 * 10**9] * 3) is None

    def test_a_stamp_is_dated_by_its_own_entrys_receive_time(self) -> None:
        """If entries of one chunk were received either side of New Year, then each line's year is the one
        parse gives it at its own entry's receive time."""
        line = b"<13>Dec 31 23:59:59 web-1 cron: tick"
        received = [(NEW_YEAR - 5) * 10**9, (NEW_YEAR + 5) * 10**9, (NEW_YEAR + 300 * 86_400) * 10**9]
        parser = Rfc3164Parser(uncertain_year_age_s=400 * 86_400)
        read = parse_rfc3164_columns(parser, [line] * 3, PEER, received)
        assert read is not None
        ((columns, _),) = read.parts
        assert columns.time.to_pylist() == [NEW_YEAR - 1] * 3  # (received before New Year: 2026 too, not 2025)
        assert check(parser, Rfc3164Parser(uncertain_year_age_s=400 * 86_400), [line] * 3, received) == 3

    def test_wall_times_in_the_default_zone(self) -> None:
        """If the parser's zone is not UTC, then the columns' times are its wall times, as parse reads them."""
        zone = zoneinfo.ZoneInfo("Asia/Shanghai")
        line = b"<13>Nov 22 13:01:06 web-1 cron: tick"
        read = parse_rfc3164_columns(Rfc3164Parser(default_tz=zone), [line], PEER, [NOV_2026 * 10**9])
        assert read is not None
        ((columns, _),) = read.parts
        wall = _dt.datetime(2026, 11, 22, 13, 1, 6, tzinfo=zone)
        assert columns.time.to_pylist() == [int(wall.timestamp())] == [NOV_2026]
        assert isinstance(columns.values, pa.ListArray)

    def test_a_chunk_across_the_moment_a_year_turns_uncertain(self) -> None:
        """If one stamp's lines were received either side of the moment its year turns uncertain, then the
        line before is read and the one after is left to parse (which flags it)."""
        line = b"<13>Oct 22 05:01:06 web-1 cron: tick"  # uncertain 30 days on: 2026-11-21T05:01:06Z
        received = [(NOV_2026 - 2 * 86_400) * 10**9, NOV_2026 * 10**9]
        parser = Rfc3164Parser(uncertain_year_age_s=30 * 86_400)
        read = parse_rfc3164_columns(parser, [line] * 2, PEER, received)
        assert read is not None and read.unread == [1]
        assert check(parser, Rfc3164Parser(uncertain_year_age_s=30 * 86_400), [line] * 2, received) == 1

    def test_a_tag_from_a_digit_is_left_to_parse_but_in_dialect_none(self) -> None:
        """If the TAG starts with a digit (a relayed Cisco counter, perhaps), then parse's general path reads
        it, so it is left to parse; in dialect none parse reads it on its usual path, and so is it here."""
        lines = [b"<13>Nov 22 05:01:06 web-1 1234: x", b"<13>Nov 22 05:01:06 web-1 9lives: x", b"<13>Nov 22 05:01:06 web-1 app: x"]
        received = [NOV_2026 * 10**9] * 3
        read = parse_rfc3164_columns(Rfc3164Parser(), lines, PEER, received)
        assert read is not None and read.unread == [0, 1]
        read = parse_rfc3164_columns(Rfc3164Parser(dialect="none"), lines, PEER, received)
        assert read is not None and read.unread == []
        assert check(Rfc3164Parser(dialect="none"), Rfc3164Parser(dialect="none"), lines, received) == 3
