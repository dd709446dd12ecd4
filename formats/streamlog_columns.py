"""Many streamlog lines at once, straight into Arrow columns.

:meth:`StreamlogParser.parse` reads a line in about 2 us of Python, and a
record then costs as much again to turn into a table's row. Lines that come
from one sender in one batch nearly always share one layout, so the same
work is done here a column at a time by Arrow's compute kernels (C++): the
lines split once, each field a column, no record made. 0.5 us a line, where
the parser and the row building take 5.

It reads only what it can read exactly as :meth:`StreamlogParser.parse`
would: lines that are all valid UTF-8, of one known version, with all their
columns, a timestamp of ASCII digits in range, and no NUL or CR left at the
end. For anything else it answers None and the caller parses line by line,
so a record never depends on which of the two read it (a property test
holds them to that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from formats._timestamps import MAX_EPOCH_SECONDS
from formats.row_indexes import fields_of_rows, list_offsets, rows_of_fields
from formats.streamlog import LOOPBACK_SOURCES, StreamlogParser

__all__ = ["StreamlogColumns", "parse_streamlog_columns"]

_LOOPBACK = pa.array(sorted(LOOPBACK_SOURCES), pa.string())


@dataclasses.dataclass(frozen=True, slots=True)
class StreamlogColumns:
    """Lines of one layout from one sender, a column per part, row for row with the lines.

    What the parser that read them (:meth:`StreamlogParser.parse`, or
    :meth:`~formats.rfc3164.Rfc3164Parser.parse` for formats/rfc3164_columns.py)
    makes of line ``i`` is the record with time ``time[i]`` (``time_ns`` 0),
    fields ``keys`` with ``values[i]``, source ``source[i]``, streamlog tag
    ``tag[i]`` (none where it is null), and no flags.
    """

    keys: tuple[str, ...]
    time: pa.Int64Array
    source: pa.StringArray
    tag: pa.StringArray
    values: pa.ListArray
    """One list of ``len(keys)`` strings per line."""
    frame_bytes: pa.Int32Array
    """Each line's length in bytes, as it was received."""

    def __len__(self) -> int:
        return len(self.time)

    @property
    def time_ns(self) -> pa.Int64Array | None:
        """None: these lines' times are whole seconds (``time_ns`` 0), where
        :class:`formats.rfc5424_columns.Rfc5424Columns` has a fraction a row."""
        return None


def parse_streamlog_columns(
    parser: StreamlogParser, frames: Sequence[bytes] | pa.BinaryArray, peer: str
) -> StreamlogColumns | None:
    """``frames`` (bytes, or an Arrow array of them) as :meth:`StreamlogParser.parse` reads them, in
    columns; None where it cannot say so for every line (the caller then parses them one by one).
    Never raises."""
    if not len(frames):
        return None
    first = frames[0]
    version = (first if isinstance(first, bytes) else first.as_py()).partition(b" ")[0]
    try:
        layout = parser.layout(version.decode())
    except UnicodeDecodeError:
        return None
    if layout is None:
        return None
    keys, splits, pv_index = layout
    binary = frames if isinstance(frames, pa.BinaryArray) else pa.array(frames, pa.binary())
    try:
        text = binary.cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8: the parser replaces the bytes and flags the record
        return None
    if pc.any(pc.or_(pc.ends_with(text, "\0"), pc.ends_with(text, "\r"))).as_py():  # the parser strips these first
        return None
    parts = pc.split_pattern(text, " ", max_splits=splits)
    lengths = pc.min_max(pc.list_value_length(parts)).as_py()
    if lengths["min"] != splits + 1 or lengths["max"] != splits + 1:
        return None  # a line short of columns (or ending right after its last field)
    if not pc.all(pc.equal(pc.list_element(parts, 0), version.decode())).as_py():
        return None
    stamps = pc.list_element(parts, 2)
    if not pc.all(pc.ascii_is_decimal(stamps)).as_py():  # also refuses "" (int() refuses it too)
        return None
    try:
        time = pc.cast(stamps, pa.int64())
    except (pa.ArrowInvalid, OverflowError):  # more digits than 64 bits hold: out of range anyway
        return None
    bounds = pc.min_max(time).as_py()
    if bounds["min"] < 0 or bounds["max"] > MAX_EPOCH_SECONDS:
        return None
    ip = pc.list_element(parts, 3)
    source = pc.if_else(pc.is_in(ip, _LOOPBACK), pa.scalar(peer, pa.string()), ip) if peer else ip
    frame_bytes = pc.binary_length(binary)
    del binary, text  # (the parts hold their own copy of the text: the lines' bytes go before the values are made)
    msg = None  # None: each line's msg is its last part, as it is
    if pv_index >= 0 and parser.strips_rfc3164_space:
        # The space rsyslog leaves before an RFC 3164 msg (protocol-version 0).
        version_0 = pc.equal(pc.list_element(parts, 4 + pv_index), "0")
        # Which msgs start with a space, asked of the parts in place: a msg column would copy most of the text.
        spaced = pc.list_element(pa.ListArray.from_arrays(parts.offsets, pc.starts_with(parts.values, " ")), splits)
        stripped = pc.and_(version_0, spaced)
        if pc.any(stripped).as_py():
            last = pc.list_element(parts, splits)
            msg = pc.if_else(stripped, pc.utf8_slice_codeunits(last, 1), last)
    return StreamlogColumns(
        keys=keys,
        time=time,
        source=source,
        tag=pc.list_element(parts, 1),
        values=_field_values(parts.flatten(), msg, len(frames), splits),
        frame_bytes=frame_bytes,
    )


_PICKS: dict[int, tuple[int, pa.Int64Array, pa.Int64Array, pa.Int64Array, pa.Int32Array]] = {}
"""By split count: how many rows the arrays below serve, and the arrays :func:`_field_values` takes."""


def _field_values(parts: pa.StringArray, msg: pa.StringArray | None, rows: int, splits: int) -> pa.ListArray:
    """Each line's fields (its parts but the first four, with ``msg`` as the last, or the last part as
    it is when ``msg`` is None), as one list a line.

    One ``take`` from the parts (preceded by ``msg`` when there is one,
    ``splits + 1`` parts a line): the indexes are the same for every batch of
    lines of a layout but for the shift by ``rows``, so they are made once and
    sliced (Arrow's list_slice costs five times as much). Without ``msg`` the
    parts are not copied into one array with it first: that copy was the
    largest allocation of the parse.
    """
    width = splits - 3  # the middle fields and msg
    capacity, direct, positions, shifted, offsets = _PICKS.get(splits, (0, None, None, None, None))
    if capacity < rows:
        # Made by Arrow's kernels: Python loops over every pick cost a new worker some tenths of a second.
        capacity = max(rows, 2 * capacity, 1024)
        row = rows_of_fields(width, capacity)
        field = fields_of_rows(width, capacity)
        direct = pc.add(pc.multiply(row, splits + 1), pc.add(field, 4))  # part 4 + field of the row's splits + 1
        is_msg = pc.equal(field, width - 1)
        positions = pc.if_else(is_msg, row, direct)  # msg comes first, one a row, where it is given
        shifted = pc.cast(pc.invert(is_msg), pa.int64())
        offsets = list_offsets(width, capacity)
        _PICKS[splits] = capacity, direct, positions, shifted, offsets
    assert direct is not None and positions is not None and shifted is not None and offsets is not None
    if msg is None:
        values = pc.take(parts, direct.slice(0, width * rows))
    else:
        picks = pc.add(positions.slice(0, width * rows), pc.multiply(shifted.slice(0, width * rows), rows))
        values = pc.take(pa.concat_arrays([msg, parts]), picks)
    return pa.ListArray.from_arrays(offsets.slice(0, rows + 1), values)
