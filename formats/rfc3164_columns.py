"""Many RFC 3164 lines at once, into Arrow columns.

:meth:`Rfc3164Parser.parse` reads a line in about 3.2 us, most of it
making the record. Nearly every line a syslog daemon relays has the usual
shape (``<PRI>Mmm dd hh:mm:ss host tag[pid]: ``), which the parser reads
with one match; here the same match runs over a chunk's lines with no
Python step a line (``map``), its groups become columns in one conversion
by Arrow, and parse's conditions after the match are Arrow's work too.

Arrow's own regex (RE2) was measured too, and lost: it cannot say the
parser's pattern (a lookahead, Unicode classes), and even a loose version
of it took 0.9 us a line against 0.8 for Python's match.

A line is read here only where the parser takes its usual path and dates
it with no flag; any other line (invalid UTF-8, a NUL or CR at the end, a
device's code, a PRI over 191, an uncertain year, another shape) is left
for the caller to parse by itself. So a record never depends on which of
the two read it (a property test holds them to that).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc

from formats._timestamps import ClassicTime, month_number
from formats.logtail_fields import PROCESS_ID, SYSLOG_KEYS
from formats.rfc3164 import _USUAL, Rfc3164Parser
from formats.rfc5424 import PRI_STRINGS
from formats.streamlog_columns import StreamlogColumns

__all__ = ["Rfc3164Columns", "parse_rfc3164_columns"]

_KEYS_WITH_PID = (*SYSLOG_KEYS, PROCESS_ID)
_BOM = "\ufeff"
# parse's usual match and the content after it (``text[usual.end():]``) in one: ``(.*)`` always takes the rest,
# so the match is _USUAL's own; a final CR or NUL (which parse drops first) fails it, to be left to parse. Else the
# empty match, so every line matches (one that is not usual with its groups all None): no Python step a line.
_USUAL_TO_END = re.compile(rf"(?:{_USUAL.pattern}((?s:.*))(?<![\r\0])\Z|)")  # ("|)" runs faster than ")?")
_MATCH = cast("Callable[[str], re.Match[str]]", _USUAL_TO_END.match)  # (None never: it matches every string)
_GROUPS: Callable[[re.Match[str]], tuple[str | None, ...]] = re.Match.groups
_LINE = pa.struct([(name, pa.string()) for name in ("pri", "stamp", "host", "program", "pid", "content")])
# Each PRI's text parse takes its usual path with (1 to 3 ASCII digits, leading zeros too, under 192) and its
# number, for one index_in (a PRI in other scripts' digits, which parse reads too, is left to it).
_PRIS = {text: int(text) for width in (1, 2, 3) for text in (f"{p:0{width}d}" for p in range(10**width)) if int(text) < 192}
_PRI_TEXTS = pa.array(list(_PRIS), pa.string())
_PRI_NUMBERS = pa.array(list(_PRIS.values()), pa.int64())
# The PRI's three texts by PRI, for one take each instead of a Python lookup a line.
_PRIORITY, _FACILITY, _SEVERITY = (pa.array([texts[i] for texts in PRI_STRINGS[:192]], pa.string()) for i in range(3))


@dataclasses.dataclass(frozen=True, slots=True)
class Rfc3164Columns:
    """The lines of a chunk read as columns, a part per layout, and those left to parse one by one."""

    parts: tuple[tuple[StreamlogColumns, pa.Int64Array], ...]
    """Each layout's lines (without a pid, with one), and where they are among the frames (ascending)."""
    unread: list[int]
    """Where the frames this did not read are (ascending): the caller parses them."""


def parse_rfc3164_columns(
    parser: Rfc3164Parser, frames: Sequence[bytes], peer: str, receive_times_ns: Sequence[int]
) -> Rfc3164Columns | None:
    """``frames`` (received at ``receive_times_ns``, one a frame) as ``parser.parse`` reads them, in
    columns, where it reads them on its usual path and flags nothing; None when it reads none so.
    Never raises."""
    # The parser's own settings and year rule (its private parts: this reads what its parse reads).
    dialect_none = parser._dialect == "none"
    classic_time = parser._classic_time
    n = len(frames)
    if n == 0:
        return None
    # Each step over the whole chunk at C level (map, Arrow): a Python step a line cost more than the match.
    try:
        lines = _usual_lines(map(bytes.decode, frames))
    except (UnicodeDecodeError, TypeError):  # a line the parser replaces and flags: "" is read as not usual
        lines = _usual_lines(map(_text, frames))
    pri_text, stamp, host, program, pid, content = lines.flatten()
    del lines
    pri_at = pc.index_in(pri_text, value_set=_PRI_TEXTS)  # null: no PRI, or one parse does not read here
    time, stamp_ns = _seconds(classic_time, stamp, receive_times_ns)
    # parse's conditions after the match (null where the line is not usual, so not read).
    read = pc.and_(pc.is_valid(pri_at), pc.is_valid(time))
    read = pc.and_kleene(read, pc.invert(pc.ends_with(host, ":")))
    if not dialect_none:  # (the TAG's first character over '9': the TAG sorts after ":" as no TAG holds one)
        read = pc.and_kleene(read, pc.greater(program, ":"))
    read = pc.fill_null(read, False)
    count = pc.sum(read).as_py() or 0
    if count == 0:
        return None
    positions = _row_numbers(n)
    frame_bytes = pa.array(list(map(len, frames)), pa.int32())
    unread: list[int] = []
    if count < n:
        unread = pc.indices_nonzero(pc.invert(read)).to_pylist()
        positions, frame_bytes, pri_at, time, stamp_ns, program, host, content, pid = (
            column.filter(read)
            for column in (positions, frame_bytes, pri_at, time, stamp_ns, program, host, content, pid)
        )
    pri = _PRI_NUMBERS.take(pri_at)
    n = count
    text_type = pa.string()
    bom = pc.starts_with(content, _BOM)
    if pc.any(bom).as_py():  # the parser drops a BOM at the content's start
        content = pc.if_else(bom, pc.utf8_slice_codeunits(content, 1), content)
    source = pa.repeat(pa.scalar(peer, text_type), n)
    fields = [
        program, _PRIORITY.take(pri), _FACILITY.take(pri), _SEVERITY.take(pri), stamp_ns, host, source, content,
    ]
    has_pid = pc.fill_null(pc.not_equal(pid, ""), False)  # as parse: an empty pid is none
    with_pid = pc.sum(has_pid).as_py() or 0
    parts = []
    for keys, rows in ((SYSLOG_KEYS, pc.invert(has_pid)), (_KEYS_WITH_PID, has_pid)):
        count = with_pid if keys is _KEYS_WITH_PID else n - with_pid
        if count == 0:
            continue
        columns = [time, *fields] if keys is SYSLOG_KEYS else [time, *fields, pid]
        if count < n:
            columns = [column.filter(rows) for column in columns]
        at = positions if count == n else positions.filter(rows)
        sizes = frame_bytes if count == n else frame_bytes.filter(rows)
        parts.append((_columns(keys, columns[0], columns[1:], count, sizes), at))
    return Rfc3164Columns(tuple(parts), unread)


_SLICE = 4096
"""Lines made columns at a time by :func:`_usual_lines`."""


def _usual_lines(texts: Iterator[str]) -> pa.StructArray:
    """One tuple a line (all None where not usual), made columns by Arrow a slice of lines at a time:
    pa.array collects all it converts as Python objects first (given an iterator too), and the whole
    chunk's texts and tuples were twice its text (Python's allocator keeps what it held at most)."""
    matches = map(_GROUPS, map(_MATCH, texts))
    slices = []
    while some := list(itertools.islice(matches, _SLICE)):
        slices.append(pa.array(some, _LINE))
    return slices[0] if len(slices) == 1 else pa.concat_arrays(slices)


def _text(frame: bytes) -> str:
    """``frame`` decoded; "" (read as not usual) where parse would replace and flag it."""
    try:
        return bytes(frame).decode()
    except UnicodeDecodeError:
        return ""


def _seconds(
    classic_time: Callable[[str, int], ClassicTime | None], stamps: pa.StringArray, receive_times_ns: Sequence[int]
) -> tuple[pa.Int64Array, pa.StringArray]:
    """What :func:`_dated` gives each of ``stamps`` (null for None), with its _unixtimestamp_ (time_ns 0), found once a distinct stamp: the year rule's
    answer holds over a window of receive times it names, so one answer serves every receive time of the chunk
    where they all lie in it; a stamp whose window the chunk's times leave is dated line by line."""
    lo, hi = min(receive_times_ns), max(receive_times_ns)
    encoded = stamps.dictionary_encode()
    distinct: list[str] = encoded.dictionary.to_pylist()
    answers: list[int | None] = []
    each = False
    for stamp in distinct:
        when = classic_time(stamp, lo) if month_number(stamp[:3]) else None
        if when is None:  # (not parse's usual path, whatever the receive time)
            answers.append(None)
        elif not when[2] <= lo or not hi < when[3]:
            each = True
            answers.append(None)
        elif when[0] is None or when[1] != 0 or lo > when[4]:
            answers.append(None)
        elif hi <= when[4]:
            answers.append(when[0])
        else:  # the year turns uncertain within the chunk
            each = True
            answers.append(None)
    if each:  # rare: the chunk spans a turn of the year rule
        seconds = pa.array(
            [
                None if stamp is None else _dated(classic_time, stamp, received)
                for stamp, received in zip(stamps.to_pylist(), receive_times_ns, strict=True)
            ],
            pa.int64(),
        )
        return seconds, _unix_ns(seconds)
    seconds = pa.array(answers, pa.int64())
    return seconds.take(encoded.indices), _unix_ns(seconds).take(encoded.indices)


def _unix_ns(seconds: pa.Int64Array) -> pa.StringArray:
    """_unixtimestamp_ as parse writes it for a time of whole seconds: str(seconds * 10**9)."""
    return pc.cast(pc.multiply(seconds, 1_000_000_000), pa.string())


def _dated(classic_time: Callable[[str, int], ClassicTime | None], stamp: str, received: int) -> int | None:
    """The seconds parse gives ``stamp`` received at ``received`` on its usual path; None where it does not
    take that path (not a month) or flags the line (a time it cannot date, an uncertain year)."""
    if not month_number(stamp[:3]):
        return None
    when = classic_time(stamp, received)
    # (A usual stamp is whole seconds: a fraction would be a time_ns these columns do not carry.)
    return when[0] if when is not None and when[1] == 0 and received <= when[4] else None


def _columns(
    keys: tuple[str, ...], time: pa.Array, fields: list[pa.Array], n: int, frame_bytes: pa.Array
) -> StreamlogColumns:
    """One layout's lines as columns: the source is the fields' client IP (the peer), no streamlog tag."""
    return StreamlogColumns(
        keys=keys,
        time=time,
        source=fields[6],
        tag=pa.nulls(n, pa.string()),
        values=_row_lists(fields, n),
        frame_bytes=frame_bytes,
    )


_ROW_NUMBERS: list[pa.Int64Array] = []


def _row_numbers(n: int) -> pa.Int64Array:
    """0 .. n-1: one array, grown as needed and sliced (making it from ``range`` costs 0.1 us a row)."""
    if not _ROW_NUMBERS or len(_ROW_NUMBERS[0]) < n:
        _ROW_NUMBERS[:] = [pa.array(range(max(n, 65536)), pa.int64())]
    return _ROW_NUMBERS[0].slice(0, n)


_PICKS: dict[int, tuple[int, pa.Int64Array, pa.Int64Array, pa.Int32Array]] = {}
"""By width: how many rows the arrays below serve, and the arrays :func:`_row_lists` takes."""


def _row_lists(fields: Sequence[pa.Array], n: int) -> pa.ListArray:
    """``fields`` (a column each, ``n`` rows) as one list a row: one ``take`` from the columns laid end to end,
    whose indexes (field * n + row, row by row) are made once per width and sliced."""
    width = len(fields)
    capacity, rows, by_field, offsets = _PICKS.get(width, (0, None, None, None))
    if capacity < n:
        capacity = max(n, 2 * capacity, 4096)
        rows = pa.array([row for row in range(capacity) for _ in range(width)], pa.int64())
        by_field = pa.array(list(range(width)) * capacity, pa.int64())
        offsets = pa.array(range(0, width * capacity + 1, width), pa.int32())
        _PICKS[width] = capacity, rows, by_field, offsets
    assert rows is not None and by_field is not None and offsets is not None
    size = width * n
    picks = pc.add(rows.slice(0, size), pc.multiply(by_field.slice(0, size), n))
    return pa.ListArray.from_arrays(offsets.slice(0, n + 1), pa.concat_arrays(fields).take(picks))
