"""Streamlog lines read a column at a time: what the line-by-line parser reads, or nothing; and their
SLS ``Logs`` made from the columns: the bytes encode_log_group writes for the records."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from formats.record import Record
from formats.sls_pb import encode_log_group
from formats.sls_pb_columns import encode_logs, joined
from formats.streamlog import STREAMLOG_TAG, StreamlogFormat, StreamlogParser, format_table
from formats.streamlog_columns import StreamlogColumns, parse_streamlog_columns

PEER = "10.9.8.7"
RECEIVED = 1_800_000_000_123_456_789
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIDE = StreamlogFormat(version="2.1", fields=("level", "protocol-version", "method"))


def records_of(columns: StreamlogColumns) -> list[Record]:
    """The records the columns stand for (StreamlogColumns' own definition of a row)."""
    return [
        Record(time, 0, columns.keys, values, source, {STREAMLOG_TAG: tag})
        for time, source, tag, values in zip(
            columns.time.to_pylist(), columns.source.to_pylist(), columns.tag.to_pylist(),
            columns.values.to_pylist(), strict=True,
        )
    ]


def line_by_line(parser: StreamlogParser, frames: list[bytes], peer: str) -> list[Record]:
    return [parser.parse(frame, peer, RECEIVED) for frame in frames]


# Parts of lines, with what makes the line-by-line parser take another turn: loopback ips,
# protocol-version 0 and the space after it, bad or out-of-range times, missing columns, other
# versions, bytes that are not UTF-8, a CR or NUL at the end, non-ASCII digits, empty fields.
WORDS = st.sampled_from([
    "web-1", "-", "", "0", "1", "user.notice", "app", "127.0.0.1", "::1", "10.0.0.7", "tag", "٣", "é",
])
STAMPS = st.sampled_from(["1795323666", "0", "4294967295", "4294967296", "-1", "+5", "1_0", "", "x", "007"])
VERSIONS = st.sampled_from(["0.1", "0.1", "0.1", "2.1", "9.9", "<13>1"])


@st.composite
def lines(draw: st.DrawFn, version: str | None = None) -> bytes:
    version = version or draw(VERSIONS)
    middle = draw(st.lists(WORDS, min_size=4, max_size=8))
    msg = draw(st.sampled_from(["", " ", "  two spaces", " hello world", "plain", "a  b"]))
    text = " ".join([version, draw(WORDS), draw(STAMPS), *middle]) + draw(st.sampled_from([" ", ""])) + msg
    ending = draw(st.sampled_from([b"", b"", b"", b"\r", b"\0", b"\xff"]))
    return text.encode() + ending


def parser_for(leading_space: str) -> StreamlogParser:
    return StreamlogParser(format_table([WIDE]), leading_space=leading_space)  # type: ignore[arg-type]


@PROFILE
@given(
    frames=st.one_of(
        st.lists(lines(), min_size=1, max_size=6),
        st.lists(lines("0.1"), min_size=1, max_size=6),
        st.lists(st.binary(max_size=80), min_size=1, max_size=4),
    ),
    peer=st.sampled_from([PEER, "", "::1"]),
    leading_space=st.sampled_from(["strip-rfc3164", "keep"]),
)
@example(
    frames=[b"0.1 sys_tag 1795323666 127.0.0.1 web-1 user.notice 0 app 705 -  Create a new task"],
    peer=PEER, leading_space="strip-rfc3164",
)
def test_the_columns_are_the_records_or_nothing(frames: list[bytes], peer: str, leading_space: str) -> None:
    """If lines are read in columns, then either nothing is answered or every row is the record the
    line-by-line parser makes of its line (without flags); no input makes it raise."""
    parser = parser_for(leading_space)
    columns = parse_streamlog_columns(parser, frames, peer)
    if columns is not None:
        records = line_by_line(parser, frames, peer)
        assert records_of(columns) == records
        assert columns.frame_bytes.to_pylist() == [len(frame) for frame in frames]
        logs = encode_logs(columns.time, columns.keys, columns.values)
        assert logs is not None
        assert joined(logs) == encode_log_group(records)
        assert joined(logs.slice(1)) == encode_log_group(records[1:])


def test_plain_lines_are_read_in_columns() -> None:
    """If a batch is rsyslog's ALI_LOG_FMT lines (RFC 3164 input among them), then it is read in
    columns, the leading space of the RFC 3164 msg stripped as the parser strips it."""
    frames = [
        b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 todo-list 705 -  Create a new task",
        b"0.1 other 1795323667 127.0.0.1 web-2 local0.err 1 api - ID47 GET /items",
    ]
    parser = parser_for("strip-rfc3164")
    columns = parse_streamlog_columns(parser, frames, PEER)
    assert columns is not None
    assert records_of(columns) == line_by_line(parser, frames, PEER)
    assert columns.values[0].as_py()[-1] == "Create a new task"
    assert columns.source.to_pylist() == ["10.0.0.7", PEER]
    assert columns.tag.to_pylist() == ["sys_tag", "other"]


def test_many_lines_reuse_the_picks_and_stay_right() -> None:
    """If batches of growing size follow one another (the picked positions are made once and grown),
    then each is still read exactly."""
    parser = parser_for("strip-rfc3164")
    for n in (1, 3, 1500, 70, 5000):
        frames = [b"0.1 t %d 10.0.0.7 h user.notice 0 a %d - line %d" % (1795323666 + i, i, i) for i in range(n)]
        columns = parse_streamlog_columns(parser, frames, PEER)
        assert columns is not None
        assert records_of(columns) == line_by_line(parser, frames, PEER)


def test_a_value_too_long_for_the_tables_is_left_to_the_records() -> None:
    """If a value is 16 KiB or more, then no Logs are made from the columns (the records are encoded)."""
    parser = parser_for("keep")
    frames = [b"0.1 t 1795323666 10.0.0.7 h user.notice 1 a 1 - " + b"x" * 20000]
    columns = parse_streamlog_columns(parser, frames, PEER)
    assert columns is not None
    assert encode_logs(columns.time, columns.keys, columns.values) is None


def test_the_column_tables_leave_the_record_encoders_room() -> None:
    """If Logs are made from columns (which tables every length of each key), then the record encoder's
    bounded cache of heads is not used up by it: records encoded later still find room there. (In a
    fresh interpreter: other tests of this process may have filled the cache already.)"""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from formats import sls_pb\n"
        "from formats.streamlog import StreamlogParser\n"
        "from formats.streamlog_columns import parse_streamlog_columns\n"
        "from formats.sls_pb_columns import encode_logs\n"
        "columns = parse_streamlog_columns(StreamlogParser(), [b'0.1 t 1795323666 10.0.0.7 h user.notice 1 a 1 - m'], '')\n"
        "assert encode_logs(columns.time, columns.keys, columns.values) is not None\n"
        "print(sls_pb._head_count)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).parents[2], check=True).stdout
    assert int(out) == 0
