"""Many RFC 5424 frames of one sender at once, straight into Arrow columns.

:meth:`Rfc5424Parser.parse` reads a frame in some 6 us of Python. Frames
from one sender in one batch nearly always share their shapes: the same
timestamp layout (only the second and the fraction change), the same
STRUCTURED-DATA skeleton (only the values change). So the frames are split a
column at a time by Arrow's kernels, and what varies little is read once in
Python, by the parser's own pieces: each distinct ``YYYY-MM-DDTHH:MM:SS``
plus offset by the parser's :class:`Rfc3339Reader`, the SD skeleton of the
first frame with SD by :meth:`Rfc5424Parser.sd_skeleton`.

Each row is checked to be of those shapes (a usual ``<PRI>1`` head, seven
fields, a fraction of ASCII digits, SD up to the first ``] `` that is the
shape's text around values without escapes or control characters). A frame
that is not is parsed by :meth:`Rfc5424Parser.parse` itself and its record
put in its row, so every row is what the parser makes of its frame (a
property test holds them to that). Columns have no flags: if any such record
has flags or an error (invalid UTF-8 anywhere, bad PRI, timestamp or SD), the
answer is None and the caller parses the frames one by one.

On bench/formats_bench.py's RFC 5424 lines (SD values, fractions and
sequence numbers changing every line), in batches of 4,096, this takes about
2.2 us a line where the parser takes 7.5 (shared 2-core machine, one core),
and no record is made.

Rows come in parts, one a layout (``_KEYS[has SD, has MSGID, has PROCID]``),
each with its row positions: a relay's lines mix PROCID and none in one
batch, and one keys tuple a part is what column encoders take.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from formats.rfc5424 import _KEYS, _USUAL_HEADS, Rfc5424Parser
from formats.row_indexes import counting, fields_of_rows, list_offsets, rows_of_fields

__all__ = ["Rfc5424Columns", "parse_rfc5424_columns"]

_HEADS = pa.array(list(_USUAL_HEADS), pa.string())  # "<PRI>1" at index PRI
_LAYOUTS = tuple(_KEYS[sd, msgid, procid] for sd in (False, True) for msgid in (False, True) for procid in (False, True))
_LAYOUT_OF_KEYS = {keys: code for code, keys in enumerate(_LAYOUTS)}  # code: 4 * SD + 2 * MSGID + PROCID
# The value list's sources, after the frames' own pieces: priority, facility and severity strings by PRI, "".
_PRI_TABLES = pa.array([strings[i] for i in range(3) for strings in _USUAL_HEADS.values()] + [""], pa.string())
_EMPTY_AT = 3 * 192


@dataclasses.dataclass(frozen=True, slots=True)
class Rfc5424Columns:
    """Frames of one layout from one sender, a column per part, row for row.

    What :meth:`Rfc5424Parser.parse` makes of frame ``rows[i]`` is the record
    with time ``time[i]`` and ``time_ns[i]``, fields ``keys`` with
    ``values[i]``, source ``source[i]`` (the peer), no tags and no flags.
    """

    keys: tuple[str, ...]
    rows: pa.Int64Array
    """Each row's position among the frames, ascending."""
    time: pa.Int64Array
    time_ns: pa.Int64Array
    source: pa.StringArray
    values: pa.ListArray
    """One list of ``len(keys)`` strings per row."""
    frame_bytes: pa.Int32Array
    """Each frame's length in bytes, as it was received."""

    def __len__(self) -> int:
        return len(self.time)

    @property
    def tag(self) -> pa.StringArray:
        """The streamlog tag of each row, as grouping reads it from other columns: null (none here)."""
        return pa.nulls(len(self.time), pa.string())


def parse_rfc5424_columns(
    parser: Rfc5424Parser, frames: Sequence[bytes] | pa.BinaryArray, peer: str, receive_time_ns: int | Sequence[int]
) -> list[Rfc5424Columns] | None:
    """``frames`` (bytes, or an Arrow array of them) as :meth:`Rfc5424Parser.parse` reads them, in
    columns: a part a layout, in the order of their first rows; None when some frame's record has
    flags or an error (the caller then parses them one by one). ``receive_time_ns`` is when the frames
    were received, one for all or one a frame. Never raises."""
    n = len(frames)
    if not n:
        return None
    binary = frames if isinstance(frames, pa.BinaryArray) else pa.array(frames, pa.binary())
    try:
        text = binary.cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8: the parser replaces the bytes and flags the record
        return None
    frame_bytes = pc.binary_length(binary)
    del binary  # (``text`` shares its buffers)
    rows = counting(n)
    # `ok`: the row is read here. The parser strips a trailing NUL or CR first: such frames take its way.
    ok = pc.invert(pc.or_(pc.ends_with(text, "\0"), pc.ends_with(text, "\r")))

    # 1. The header: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then SD and MSG.
    parts = pc.split_pattern(text, " ", max_splits=6)
    del text  # the parts are a copy of it
    ok = pc.and_(ok, pc.equal(pc.list_value_length(parts), 7))
    field = _elements(parts, 7)
    pri = pc.index_in(field(0), value_set=_HEADS)
    ok = pc.and_(ok, pc.is_valid(pri))
    host, app, procid, msgid = field(2), field(3), field(4), field(5)
    if parser.strict:  # the parser's header limits
        for value, limit in ((host, 255), (app, 48), (procid, 128), (msgid, 32)):
            ok = pc.and_(ok, pc.match_substring_regex(value, f"^[!-~]{{1,{limit}}}$"))

    # 2. The time, and the record's _unixtimestamp_ (nanoseconds as text).
    nil_time, seconds, unix_seconds, ns_text, ok = _times(parser, field(1), ok)
    time_ns = pc.cast(ns_text, pa.int64())
    unix = pc.binary_join_element_wise(unix_seconds, ns_text, "")
    if pc.any(nil_time).as_py():  # the receive time
        if isinstance(receive_time_ns, int):
            whole, part = divmod(receive_time_ns, 1_000_000_000)
            received: tuple[object, object, object] = (whole, part, str(receive_time_ns))
        else:
            split = [divmod(t, 1_000_000_000) for t in receive_time_ns]
            received = (
                pa.array([w for w, _ in split], pa.int64()), pa.array([p for _, p in split], pa.int64()),
                pa.array([str(t) for t in receive_time_ns], pa.string()),
            )
        seconds = pc.if_else(nil_time, received[0], seconds)
        time_ns = pc.if_else(nil_time, received[1], time_ns)
        unix = pc.if_else(nil_time, received[2], unix)

    # 3. SD and MSG.
    rest = field(6)
    del parts, field  # (the header's fields and the rest are copies of their pieces)
    has_sd, sd_json, msg, ok = _message(parser, rest, ok)
    del rest

    # 4. The values, as picks from one array: APP-NAME, HOSTNAME, PROCID, MSGID, MSG, _unixtimestamp_,
    # SD JSON, the PRI strings, "" and the peer.
    pri = pc.fill_null(pri, 0)
    has_msgid = pc.not_equal(msgid, "-")
    has_procid = pc.not_equal(procid, "-")
    base_app, base_host, base_procid, base_msgid, base_msg = 0, n, 2 * n, 3 * n, 4 * n
    base_unix = base_msg + n
    base_json = base_unix + n
    base_pri = base_json + (n if sd_json is not None else 0)
    peer_at = base_pri + _EMPTY_AT + 1
    none = pa.scalar(None, pa.int64())
    picks = [
        pc.if_else(pc.equal(app, "-"), base_pri + _EMPTY_AT, pc.add(rows, base_app)),
        pc.add(pri, base_pri),
        pc.add(pri, base_pri + 192),
        pc.add(pri, base_pri + 384),
        pc.add(rows, base_unix),
        pc.if_else(pc.equal(host, "-"), peer_at, pc.add(rows, base_host)),
        pa.repeat(pa.scalar(peer_at, pa.int64()), n),
        pc.add(rows, base_msg),
        *([pc.if_else(has_sd, pc.add(rows, base_json), none)] if sd_json is not None else []),
        pc.if_else(has_msgid, pc.add(rows, base_msgid), none),
        pc.if_else(has_procid, pc.add(rows, base_procid), none),
    ]
    source = pa.concat_arrays([
        app, host, procid, msgid, msg, unix, *([sd_json] if sd_json is not None else []), _PRI_TABLES,
        pa.array([peer], pa.string()),
    ])
    # What ``source`` copied goes before the values are made of it (MSG and the SD's JSON: most of the text).
    del msg, unix, sd_json, host, app, procid, msgid
    # Each row's picks, made strings only once rows are in their parts (strings are copied once).
    chosen = _picks(pc.cast(pick, pa.int64()) for pick in picks)
    del picks
    layout = pc.add(
        pc.add(pc.multiply(pc.cast(has_sd, pa.int8()), 4), pc.multiply(pc.cast(has_msgid, pa.int8()), 2)),
        pc.cast(has_procid, pa.int8()),
    )

    # 5. The other rows, as the parser reads them.
    slow = pc.invert(ok)
    if pc.any(slow).as_py():
        records = []
        for row in pc.indices_nonzero(slow).to_pylist():
            frame = frames[row]
            record = parser.parse(
                frame if isinstance(frame, bytes) else frame.as_py(), peer,
                receive_time_ns if isinstance(receive_time_ns, int) else receive_time_ns[row],
            )
            code = _LAYOUT_OF_KEYS.get(record.keys)
            if record.flags or record.error is not None or code is None or record.tags or record.source != peer:
                return None
            records.append((record, code))
        seconds = pc.replace_with_mask(seconds, slow, pa.array([r.time for r, _ in records], pa.int64()))
        time_ns = pc.replace_with_mask(time_ns, slow, pa.array([r.time_ns for r, _ in records], pa.int64()))
        layout = pc.replace_with_mask(layout, slow, pa.array([c for _, c in records], layout.type))
        # Their values go after the others in `source`, their picks after the others' picks.
        their = [value for record, _ in records for value in record.values]
        ends = itertools.accumulate((len(record.values) for record, _ in records), initial=0)
        their_picks = pa.ListArray.from_arrays(
            pa.array(ends, pa.int32()), pa.array(range(len(source), len(source) + len(their)), pa.int64())
        )
        source = pa.concat_arrays([source, pa.array(their, pa.string())])
        at = pc.replace_with_mask(rows, slow, pa.array(range(n, n + len(records)), pa.int64()))
        chosen = pc.take(pa.concat_arrays([chosen, their_picks]), at)

    # 6. A part a layout.
    found = pc.unique(layout).to_pylist()
    if len(found) == 1:
        peers = pa.repeat(pa.scalar(peer, pa.string()), n)
        return [Rfc5424Columns(_LAYOUTS[found[0]], rows, seconds, time_ns, peers, _strings(source, chosen), frame_bytes)]
    out = []
    for code in found:
        at = pc.cast(pc.indices_nonzero(pc.equal(layout, code)), pa.int64())
        out.append(Rfc5424Columns(
            _LAYOUTS[code], at, seconds.take(at), time_ns.take(at), pa.repeat(pa.scalar(peer, pa.string()), len(at)),
            _strings(source, chosen.take(at)), frame_bytes.take(at),
        ))
    return out


def _message(
    parser: Rfc5424Parser, rest: pa.StringArray, ok: pa.BooleanArray
) -> tuple[pa.BooleanArray, pa.StringArray | None, pa.StringArray, pa.BooleanArray]:
    """(has SD, SD JSON or None when no row has SD, MSG, ok) of each row's text after MSGID."""
    sd_rows = pc.starts_with(rest, "[")
    nil_sd = pc.or_(pc.equal(rest, "-"), pc.starts_with(rest, "- "))
    if parser.strict:
        ok = pc.and_(ok, pc.or_(sd_rows, nil_sd))
    msg = rest  # lenient: without an SD field, MSG starts right after MSGID
    if pc.any(nil_sd).as_py():  # MSG after "- " (as bytes: after two ASCII characters)
        raw = rest.view(pa.binary())
        msg = _where(nil_sd, lambda: pc.binary_slice(raw, 2, _LARGE), lambda: raw).view(pa.string())
    sd_json = None
    if pc.any(sd_rows).as_py():
        sd_json, sd_msg, sd_ok = _structured_data(parser, rest, sd_rows)
        ok = pc.and_(ok, pc.or_(pc.invert(sd_rows), sd_ok))
        msg = _where(sd_rows, lambda: sd_msg, lambda: msg)
        del sd_msg
    bom = pc.starts_with(msg, "\ufeff")
    if pc.any(bom).as_py():  # the parser drops a BOM
        msg = _where(bom, lambda: pc.utf8_slice_codeunits(msg, 1), lambda: msg)
    return sd_rows, sd_json, msg, ok


def _where(rows: pa.BooleanArray, chosen: Callable[[], pa.Array], others: Callable[[], pa.Array]) -> pa.Array:
    """``chosen()`` in ``rows``, ``others()`` elsewhere: one of the two as it is when ``rows`` is every row
    or none (the usual: the same shape all through a sender's batch), without if_else's copy of them."""
    if not rows.null_count:
        taken = pc.sum(rows).as_py() or 0
        if taken == len(rows):
            return chosen()
        if taken == 0:
            return others()
    return pc.if_else(rows, chosen(), others())


def _elements(lists: pa.ListArray, width: int) -> Callable[[int], pa.StringArray]:
    """A function of ``j``: each list's element ``j`` (of a list shorter than ``width``: some other
    string, for rows that are not read anyway). Picks from the flat values: list_element costs more."""
    values = lists.values
    offsets = lists.offsets
    lengths = pc.min_max(pc.list_value_length(lists)).as_py()
    if lengths["min"] == lengths["max"] == width and offsets[0].as_py() == 0:  # the usual: every list full
        return lambda j: values.take(_stride(len(lists), width, j))
    firsts = pc.cast(offsets.slice(0, len(offsets) - 1), pa.int64())
    last = len(values) - 1
    return lambda j: values.take(pc.min_element_wise(pc.add(firsts, j), last))


def _stride(n: int, width: int, j: int) -> pa.Int64Array:
    """j, j + width, j + 2 * width, ... (``n`` of them)."""
    return pc.add(pc.multiply(counting(n), width), j)


_LARGE = 1 << 40  # a slice's stop beyond any string


def _times(
    parser: Rfc5424Parser, stamps: pa.StringArray, ok: pa.BooleanArray
) -> tuple[pa.BooleanArray, pa.Int64Array, pa.StringArray, pa.StringArray, pa.BooleanArray]:
    """(NIL timestamp, seconds, seconds as text, nanoseconds as 9 digits, ok) of each row's timestamp.

    A timestamp is its second (``YYYY-MM-DDTHH:MM:SS``), an optional
    fraction, and an offset as long as most rows' (``Z`` or ``+hh:mm``).
    Second and offset, few in a batch, are read together by the parser's
    reader; a fraction of ASCII digits is nanoseconds whatever they are (the
    reader reads one so). A row whose second and offset do not read (another
    offset's length, not a time) is not ok.
    """
    nil = pc.equal(stamps, "-")
    utc = pc.sum(pc.or_(pc.ends_with(stamps, "Z"), pc.ends_with(stamps, "z"))).as_py() or 0
    zone = 1 if 2 * utc >= len(stamps) - (pc.sum(nil).as_py() or 0) else 6  # the offset most have
    ascii = pc.string_is_ascii(stamps)
    if not pc.all(ascii).as_py():  # bytes are characters in the others: they are sliced as bytes
        stamps = pc.if_else(ascii, stamps, "?")
    raw = stamps.view(pa.binary())
    fraction = pc.binary_slice(raw, 20, -zone).view(pa.string())
    whole = pc.equal(pc.binary_length(raw), 19 + zone)
    fractional = pc.and_(
        pc.and_(pc.equal(pc.binary_slice(raw, 19, 20), b"."), pc.ascii_is_decimal(fraction)),
        pc.less_equal(pc.binary_length(fraction), 6 if parser.strict else 9),
    )
    key = pc.binary_join_element_wise(pc.binary_slice(raw, 0, 19), pc.binary_slice(raw, -zone, _LARGE), b"")
    encoded = pc.dictionary_encode(key)
    read = parser.times.read
    found = []
    for text in encoded.dictionary.to_pylist():
        when = read(text.decode())
        # The reader gives (seconds, 0) for a whole second; 0 seconds would print without the padding.
        found.append(when[0] if when is not None and when[1] == 0 and when[0] > 0 else None)
    seconds = pc.take(pa.array(found, pa.int64()), encoded.indices)
    good = pc.and_(pc.or_(whole, fractional), pc.is_valid(seconds))
    ok = pc.and_(ok, pc.or_(nil, good))
    seconds = pc.fill_null(seconds, 0)
    ns_text = pc.if_else(pc.and_(fractional, good), pc.utf8_rpad(fraction, 9, "0"), "000000000")
    unix_seconds = pc.take(pa.array([str(s) if s is not None else "" for s in found], pa.string()), encoded.indices)
    return nil, seconds, unix_seconds, ns_text, ok


_SHAPES = 3
"""SD shapes tried in a batch at most (a relay's programs each have theirs)."""


def _structured_data(
    parser: Rfc5424Parser, rest: pa.StringArray, sd_rows: pa.BooleanArray
) -> tuple[pa.StringArray, pa.StringArray, pa.BooleanArray]:
    """(SD JSON, MSG, ok) of each SD row (``rest`` starting with "[") whose SD has one of the batch's
    first few shapes.

    The SD ends at the first "] " (or the frame's end), as the parser reads
    it. A shape, the text around the values (split at '"'), is read once,
    from the first rows that have it; a row is of that shape if its pieces
    are that text and its values hold no escape or control character. Its
    JSON is then the shape's skeleton around the values, as the parser makes
    it.
    """
    n = len(rest)
    halves = pc.split_pattern(rest, "] ", max_splits=1)  # SD without its last "]", MSG
    half = _elements(halves, 2)
    with_msg = pc.equal(pc.list_value_length(halves), 2)
    # (Where every SD row has a MSG, the usual, if_else would only copy them.)
    msg = half(1) if pc.all(with_msg).as_py() else pc.if_else(with_msg, half(1), "")
    sd = half(0)
    del halves, half  # (sd and msg are copies of their pieces)
    json = None
    ok = pa.repeat(pa.scalar(False), n)
    todo = sd_rows
    for _ in range(_SHAPES):
        left = pc.sum(todo).as_py() or 0
        # Another shape costs about as much as parsing a sixteenth of the frames one by one.
        if not left or (json is not None and left * 16 < n):
            break
        found = _usable_shape(parser, rest.take(pc.indices_nonzero(todo).slice(0, 8)).to_pylist())
        if found is None:
            break
        shape_json, of_shape = _of_shape(sd, with_msg, *found)
        of_shape = pc.and_(of_shape, todo)
        json = shape_json if json is None else pc.if_else(of_shape, shape_json, json)
        ok = pc.or_(ok, of_shape)
        todo = pc.and_(todo, pc.invert(of_shape))
    return json if json is not None else pa.repeat(pa.scalar("", pa.string()), n), msg, ok


def _usable_shape(parser: Rfc5424Parser, texts: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """The shape and skeleton of the first of ``texts`` (SD and MSG) whose SD has a shape read here."""
    for text in texts:
        end = text.find("] ") + 1 or (len(text) if text[-1] == "]" else 0)
        if not end or text[:end].count('"') % 2:
            continue
        shape = tuple(text[:end].split('"')[::2])
        skeleton = parser.sd_skeleton(shape) if _plain_shape(shape) else False
        if isinstance(skeleton, list):
            return shape, skeleton
    return None


def _of_shape(
    sd: pa.StringArray, with_msg: pa.BooleanArray, shape: tuple[str, ...], skeleton: list[str]
) -> tuple[pa.StringArray, pa.BooleanArray]:
    """(JSON, is of the shape) of each row's ``sd`` (without the last "]" when ``with_msg``)."""
    m = len(shape) - 1
    parts = pc.split_pattern(sd, '"', max_splits=2 * m)
    piece = _elements(parts, 2 * m + 1)
    ok = pc.equal(pc.list_value_length(parts), 2 * m + 1)
    for i in range(m):
        ok = pc.and_(ok, pc.equal(piece(2 * i), shape[i]))
    ok = pc.and_(ok, pc.equal(piece(2 * m), pc.if_else(with_msg, shape[m][:-1], shape[m])))
    if not m:
        return pa.repeat(pa.scalar(skeleton[0], pa.string()), len(sd)), ok
    joined: list[object] = [skeleton[0]]
    for i in range(m):
        joined += [piece(2 * i + 1), skeleton[i + 1]]
    json = pc.binary_join_element_wise(*joined, "")
    # The skeleton holds neither; a value with one is escaped by the parser.
    plain = pc.ascii_is_printable(json)
    if not pc.all(plain).as_py():
        plain = pc.invert(pc.match_substring_regex(json, r"[\x00-\x1f]"))
    escaped = _rows_with_backslash(json)
    if escaped is not None:
        plain = pc.and_(plain, pc.invert(escaped))
    return json, pc.and_(ok, plain)


def _rows_with_backslash(strings: pa.StringArray) -> pa.BooleanArray | None:
    """Which of ``strings`` hold a backslash; None for none. Found in their bytes: usually no row or
    a few rows have one, and a search of the bytes costs a fraction of a search row by row."""
    _, offsets, data = strings.buffers()
    if data is None or not len(strings):
        return None
    ends = memoryview(offsets).cast("i")[strings.offset : strings.offset + len(strings) + 1]
    text = data.to_pybytes()
    at = text.find(b"\\", ends[0], ends[-1])
    rows: list[int] = []
    while at >= 0:
        if len(rows) == 64:  # many: the kernel is cheaper
            return pc.match_substring(strings, "\\")
        row = bisect.bisect_right(ends, at) - 1
        rows.append(row)
        at = text.find(b"\\", ends[row + 1], ends[-1])
    return pc.is_in(counting(len(strings)), value_set=pa.array(rows, pa.int64())) if rows else None


def _plain_shape(shape: tuple[str, ...]) -> bool:
    """Whether SD of ``shape`` ends where the shape ends, and with plain values is read by the
    parser's skeleton: no "] " before a last "]", no escape or control character."""
    return shape[-1].endswith("]") and not any(
        "] " in text or "\\" in text or any(c < " " for c in text) for text in shape
    )


def _picks(columns: Iterable[pa.Int64Array]) -> pa.ListArray:
    """Row ``r``'s list: each column's ``r``-th pick, null picks left out."""
    picks = list(columns)
    width = len(picks)
    n = len(picks[0])
    flat = pc.take(pa.concat_arrays(picks), _interleave(n, width))  # row by row
    if flat.null_count:
        kept = pc.cumulative_sum(pc.cast(pc.is_valid(flat), pa.int32()))
        ends = kept.take(pc.add(pc.multiply(counting(n), width), width - 1))
        offsets = pa.concat_arrays([pa.array([0], pa.int32()), ends])
        flat = pc.drop_null(flat)
    else:
        offsets = list_offsets(width, n)
    return pa.ListArray.from_arrays(offsets, flat)


def _strings(source: pa.StringArray, picks: pa.ListArray) -> pa.ListArray:
    """``picks`` (lists of positions in ``source``) as lists of those strings."""
    offsets = picks.offsets
    if offsets[0].as_py():
        offsets = pc.subtract(offsets, offsets[0])
    return pa.ListArray.from_arrays(offsets, source.take(pc.list_flatten(picks)))


def _interleave(n: int, width: int) -> pa.Int64Array:
    """Positions that turn ``width`` columns of ``n`` laid one after the other into ``n`` rows of ``width``:
    pick ``j`` of row ``r`` is at ``j * n + r``."""
    return pc.add(rows_of_fields(width, n), pc.multiply(fields_of_rows(width, n), n))
