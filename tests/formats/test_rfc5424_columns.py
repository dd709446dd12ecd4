"""RFC 5424 frames read a column at a time: every row is the record the line-by-line parser makes of
its frame, or there is no answer, and usual senders' batches are read without the parser's help."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.formats_bench import BASE_TIME, rfc5424_lines
from formats.record import Record
from formats.rfc5424 import Rfc5424Parser
from formats.rfc5424_columns import Rfc5424Columns, parse_rfc5424_columns

PEER = "10.9.8.7"
RECEIVED = 1_800_000_000_123_456_789
PROFILE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]


class CountingParser(Rfc5424Parser):
    """A parser that counts the frames it is asked to parse one by one."""

    __slots__ = ("calls",)

    def __init__(self, **settings: object) -> None:
        super().__init__(**settings)  # type: ignore[arg-type]
        self.calls = 0

    def parse(self, frame: bytes, peer: str, receive_time_ns: int) -> Record:
        self.calls += 1
        return super().parse(frame, peer, receive_time_ns)


def rows_of(parts: list[Rfc5424Columns], count: int) -> list[Record]:
    """The records the parts stand for, in frame order (Rfc5424Columns' own definition of a row)."""
    found: dict[int, Record] = {}
    for part in parts:
        assert len(set(part.rows.to_pylist())) == len(part) and part.rows.to_pylist() == sorted(part.rows.to_pylist())
        assert part.tag.null_count == len(part)
        for row, time, ns, values, source in zip(
            part.rows.to_pylist(), part.time.to_pylist(), part.time_ns.to_pylist(), part.values.to_pylist(),
            part.source.to_pylist(), strict=True,
        ):
            assert len(values) == len(part.keys)
            assert row not in found
            found[row] = Record(time, ns, part.keys, values, source, {})
    assert sorted(found) == list(range(count))
    return [found[row] for row in range(count)]


def check(frames: list[bytes], strict: bool, zone: dt.tzinfo, received: int | list[int]) -> list[Rfc5424Columns] | None:
    """Reads ``frames`` both ways and holds the columns to the records; returns the columns."""
    parts = parse_rfc5424_columns(Rfc5424Parser(strict=strict, default_tz=zone), frames, PEER, received)
    if frames:  # the same frames as an Arrow array (as the delivery workers hand them over): the same parts
        arrayed = parse_rfc5424_columns(
            Rfc5424Parser(strict=strict, default_tz=zone), pa.array(frames, pa.binary()), PEER, received
        )
        assert (arrayed is None) == (parts is None)
        if parts is not None and arrayed is not None:
            assert [(p.keys, p.rows, p.time, p.time_ns, p.values) for p in arrayed] == [
                (p.keys, p.rows, p.time, p.time_ns, p.values) for p in parts
            ]
    reference = Rfc5424Parser(strict=strict, default_tz=zone)
    times = received if isinstance(received, list) else [received] * len(frames)
    records = [reference.parse(frame, PEER, at) for frame, at in zip(frames, times, strict=True)]
    readable = all(not record.flags and record.error is None for record in records)
    # Answered exactly when every record can be a row (a row has no flags).
    assert (parts is not None) == readable
    if parts is not None:
        assert rows_of(parts, len(frames)) == records
        bytes_by_row = {row: size for part in parts for row, size in zip(part.rows.to_pylist(), part.frame_bytes.to_pylist(), strict=True)}
        assert [bytes_by_row[row] for row in range(len(frames))] == [len(frame) for frame in frames]
        assert len({part.keys for part in parts}) == len(parts)
    return parts


# Pieces of frames: the usual ones, and the odd ones that make the parser take another turn: heads it
# reads the long way or not at all, timestamps of every kind (NIL, whole, fractions too long, other
# offsets, not a time), NIL and odd header fields, SD with escapes, "] " or repeated names in values,
# BOMs, CR and NUL.
USUAL = {
    "head": ["<13>1", "<0>1", "<191>1", "<165>1"],
    "second": ["2026-12-07T01:02:03", "2026-12-07T01:02:04", "2106-02-06T06:28:15", "1970-01-02T00:00:00"],
    "fraction": ["", ".1", ".123456", ".000001", ".123456789"],
    "offset": ["Z", "+00:00", "-05:30"],
    "word": ["-", "web-1", "app", "1234", "ID47"],
    "value": ["a", "1", " ", "]", "é", "}", "{", ":", "'"],
    "message": ["", "hello", "request served", 'a " quote', "] after", "\\ back", "\ufeffwith BOM"],
    "ending": [b""],
    "name": ["req@32473", "meta", "id", "user", "seq", "origin", "timeQuality", "tzKnown"],
}
ODD = {
    "head": ["<192>1", "<013>1", "<13>2", "<13>", "13>1", "<x>1"],
    "second": [
        "2026-12-07t01:02:04", "1970-01-01T00:00:00", "2106-02-07T06:28:15", "2026-02-30T00:00:00", "2106-02-07T06:28:16",
        "2026-12-07 01:02:03", "2026-12-07T01:02", "٢٠٢٦-12-07T01:02:03",
    ],
    "fraction": [".1234567", ".1234567891", ".", ".12a", ".١٢"],
    "offset": ["z", "+25:00", "+0000", "", "+05", "+٠٠:٠٠", "+00:60"],
    "word": ["", "é", "x" * 50, "a\tb", "x" * 130],
    "value": ["] ", '\\"', "\\\\", "\\]", "\\x", "\x01", "\u2028"],
    "message": [" leading", "\ufeff"],
    "name": ["x=y", "a\\b", "é", ""],
    "ending": [b"\r", b"\0", b"\xff", b"\r\0"],
}


def piece(draw: st.DrawFn, kind: str) -> object:
    # Odd SD values are common: values are what changes line by line. (Sampled, not compared with
    # an integer: Hypothesis leans to the ends of integer ranges.)
    pool = ODD if draw(st.sampled_from(range(6 if kind == "value" else 25))) == 1 else USUAL
    return draw(st.sampled_from(pool[kind]))


@st.composite
def stamps(draw: st.DrawFn) -> str:
    if draw(st.sampled_from(range(12))) == 1:
        return draw(st.sampled_from(["-", "", "yesterday"]))
    return f"{piece(draw, 'second')}{piece(draw, 'fraction')}{piece(draw, 'offset')}"


@st.composite
def sd_shapes(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    """SD-IDs, each with its PARAM-NAMEs (repeated names too)."""
    def name() -> str:
        return str(piece(draw, "name"))

    return [(name(), [name() for _ in range(draw(st.integers(0, 3)))]) for _ in range(draw(st.integers(1, 3)))]


@st.composite
def sd_text(draw: st.DrawFn, shape: list[tuple[str, list[str]]]) -> str:
    space = draw(st.sampled_from([" ", " ", " ", "  "]))
    close = draw(st.sampled_from(["]", "]", "]", " ]"]))
    out = []
    for sd_id, names in shape:
        params = "".join(
            f'{space}{name}="{"".join(str(piece(draw, "value")) for _ in range(draw(st.integers(0, 4))))}"'
            for name in names
        )
        out.append(f"[{sd_id}{params}{close}")
    return "".join(out)


@st.composite
def frames_of(draw: st.DrawFn, shape: list[tuple[str, list[str]]] | None) -> bytes:
    fields = [str(piece(draw, "head")), draw(stamps()), *(str(piece(draw, "word")) for _ in range(4))]
    choice = draw(st.integers(0, 9))
    if choice < 6 and shape is not None:
        sd = draw(sd_text(shape))
    elif choice < 8:
        sd = "-"
    elif choice < 9:
        sd = draw(sd_text(draw(sd_shapes())))
    else:
        sd = draw(st.sampled_from(["-x", "[", "[a", '[a b="c]', "[a] [b]", "x", '[a b="c] d"]']))
    text = " ".join([*fields, sd])
    if draw(st.integers(0, 3)):
        text += " " + str(piece(draw, "message"))
    if draw(st.sampled_from(range(20))) == 1:
        text = " ".join(text.split(" ")[: draw(st.integers(1, 6))])  # a short header
    ending = piece(draw, "ending")
    assert isinstance(ending, bytes)
    return text.encode() + ending


@st.composite
def batches(draw: st.DrawFn) -> list[bytes]:
    """Frames of one sender: mostly one SD shape (the columns' own way), with others among them."""
    shape = draw(st.one_of(sd_shapes(), sd_shapes(), st.none()))
    return draw(st.lists(frames_of(shape), min_size=1, max_size=8))


@PROFILE
@given(
    frames=st.one_of(batches(), st.lists(st.binary(max_size=80), min_size=1, max_size=4)),
    strict=st.booleans(),
    zone=st.sampled_from(ZONES),
    one_time=st.booleans(),
)
@example(frames=[b'<13>1 2026-12-07T01:02:03.5+00:00 h a 1 - [x a="1"] m'], strict=False, zone=dt.UTC, one_time=True)
@example(frames=[b'<13>1 - h a 1 - [x a="1" a="2"][y] m', b"<13>1 - h a 1 - - m"], strict=True, zone=dt.UTC, one_time=False)
def test_the_columns_are_the_records_or_nothing(frames: list[bytes], strict: bool, zone: dt.tzinfo, one_time: bool) -> None:
    """If frames are read in columns, then every row is the record the parser makes of its frame, and
    there is an answer exactly when no record has flags or an error; no input makes it raise."""
    received = RECEIVED if one_time else [RECEIVED + i * 1_000_000_007 for i in range(len(frames))]
    check(frames, strict, zone, received)


@PROFILE
@given(
    values=st.lists(st.lists(st.text('a] "\\\x01\u2028é{}:', max_size=5), min_size=2, max_size=2), min_size=1, max_size=6),
    strict=st.booleans(),
)
@example(values=[["a\\x", "1"]], strict=False)
@example(values=[["\x01", "1"]], strict=False)
@example(values=[["a] b", "1"]], strict=True)
def test_any_sd_values_read_as_the_parser_reads_them(values: list[list[str]], strict: bool) -> None:
    """If frames share an SD shape and their values hold anything (escapes, control characters, "] ",
    quotes), then every row is still its frame's record."""
    frames = [b'<13>1 2026-12-07T01:02:03.5Z h a 1 ID1 [req@32473 id="1" user="u"][meta] first']
    frames += [
        f'<13>1 2026-12-07T01:02:03.{i}Z h a 1 ID1 [req@32473 id="{one}" user="{two}"][meta] m {i}'.encode()
        for i, (one, two) in enumerate(values)
    ]
    check(frames, strict, dt.UTC, RECEIVED)


@PROFILE
@given(
    seconds=st.integers(0, 2**32 + 5),
    fractions=st.lists(st.text("0123456789", min_size=0, max_size=9), min_size=1, max_size=6),
    offset=st.sampled_from(["Z", "+00:00", "-05:30", "+14:00", "-12:00", "+23:59"]),
    strict=st.booleans(),
)
def test_any_time_reads_as_the_parser_reads_it(seconds: int, fractions: list[str], offset: str, strict: bool) -> None:
    """If timestamps are any second of a record's range (and around it) with any fraction, then the
    columns give the parser's time and nanoseconds."""
    stamp = dt.datetime.fromtimestamp(min(seconds, 2**33), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frames = [f"<13>1 {stamp}{'.' if f else ''}{f}{offset} h a - - - m".encode() for f in fractions]
    check(frames, strict, dt.UTC, RECEIVED)


def test_the_usual_lines_are_read_in_columns_not_by_the_parser() -> None:
    """If a batch is the benchmark's RFC 5424 lines (SD values, fractions and sequence numbers changing
    every line), then it is one part, and no frame of it is parsed one by one."""
    frames = rfc5424_lines(3000)
    parser = CountingParser()
    parts = parse_rfc5424_columns(parser, frames, PEER, BASE_TIME * 10**9)
    assert parts is not None and len(parts) == 1
    assert parser.calls == 0
    reference = Rfc5424Parser()
    assert rows_of(parts, len(frames)) == [reference.parse(frame, PEER, BASE_TIME * 10**9) for frame in frames]


def test_a_relay_s_mixed_layouts_are_parts_read_in_columns() -> None:
    """If one sender's frames mix NIL and present PROCID, MSGID and SD, and NIL timestamps, then each
    layout is a part with its rows, and none is parsed one by one."""
    frames = [
        b'<30>1 2026-12-07T01:02:03.000001Z web-1 sshd 4242 - - Accepted publickey',
        b'<6>1 2026-12-07T01:02:03.000002Z web-1 kernel - - - eth0: link up',
        b'<30>1 2026-12-07T01:02:04Z web-1 cron 77 ID9 [x@1 a="1"] job done',
        b'<30>1 - web-1 cron 78 ID9 [x@1 a="2"]',
        b'<30>1 2026-12-07T01:02:04.5Z - - - - -',
    ]
    parser = CountingParser()
    parts = parse_rfc5424_columns(parser, frames, PEER, RECEIVED)
    assert parts is not None
    assert [part.rows.to_pylist() for part in parts] == [[0], [1, 4], [2, 3]]
    assert parser.calls == 0
    reference = Rfc5424Parser()
    assert rows_of(parts, len(frames)) == [reference.parse(frame, PEER, RECEIVED) for frame in frames]


def test_odd_frames_among_usual_ones_are_parsed_one_by_one_in_their_rows() -> None:
    """If a few frames need the parser (an escape in SD, another SD shape, a short header, a repeated
    PARAM-NAME), then only those are parsed one by one and each row is still its frame's record."""
    usual = rfc5424_lines(6)
    odd = [
        b'<13>1 2026-12-07T01:02:03Z h a 1 ID1 [req@32473 id="a\\"b" user="u"][meta seq="1"] m',
        b'<13>1 2026-12-07T01:02:03Z h a 1 ID1 [origin ip="10.0.0.1"] m',
        b"<13>1 2026-12-07T01:02:03Z h",
        b'<13>1 2026-12-07T01:02:03Z h a 1 ID1 [x a="1" a="2"] m',
    ]
    frames = usual[:3] + odd + usual[3:]
    parser = CountingParser()
    parts = parse_rfc5424_columns(parser, frames, PEER, RECEIVED)
    assert parts is not None
    assert parser.calls == len(odd)
    reference = Rfc5424Parser()
    assert rows_of(parts, len(frames)) == [reference.parse(frame, PEER, RECEIVED) for frame in frames]


def test_several_sd_shapes_are_read_in_columns_whatever_comes_first() -> None:
    """If the first frame's SD has an escape and two programs' SD shapes alternate, then each shape is
    read in columns (only the escaped frame is parsed one by one)."""
    frames = [b'<13>1 2026-12-07T01:02:03Z h a 1 ID1 [req@32473 id="a\\"b" user="u"][meta seq="0"] m']
    for i in range(1, 100):
        frames.append(
            b'<13>1 2026-12-07T01:02:03.%dZ h a 1 ID1 [req@32473 id="%d" user="u"][meta seq="%d"] m' % (i, i, i)
            if i % 2 else b'<14>1 2026-12-07T01:02:04Z h b 2 - [timeQuality tzKnown="1" isSynced="%d"] x' % (i % 3)
        )
    parser = CountingParser()
    parts = parse_rfc5424_columns(parser, frames, PEER, RECEIVED)
    assert parts is not None
    assert parser.calls == 1
    reference = Rfc5424Parser()
    assert rows_of(parts, len(frames)) == [reference.parse(frame, PEER, RECEIVED) for frame in frames]


def test_a_frame_the_parser_flags_leaves_the_batch_to_it() -> None:
    """If one frame's record has a flag (here a PRI over 191), then there is no answer."""
    frames = [*rfc5424_lines(3), b"<200>1 - h a - - - m"]
    assert parse_rfc5424_columns(Rfc5424Parser(), frames, PEER, RECEIVED) is None
    assert parse_rfc5424_columns(Rfc5424Parser(), [], PEER, RECEIVED) is None


def test_batches_of_many_sizes_stay_right() -> None:
    """If batches of growing and shrinking size follow one another (cached positions are grown and
    sliced), then each is still read exactly."""
    parser = Rfc5424Parser()
    reference = Rfc5424Parser()
    for n in (1, 3, 5000, 70, 9000, 2):
        frames = rfc5424_lines(n)
        parts = parse_rfc5424_columns(parser, frames, PEER, RECEIVED)
        assert parts is not None
        assert rows_of(parts, n) == [reference.parse(frame, PEER, RECEIVED) for frame in frames]
