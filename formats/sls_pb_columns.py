"""The ``Logs`` of an SLS ``LogGroup`` made from columns: the bytes :func:`encode_log_group` writes.

A ``Log`` is its time and its contents, each content a head (tag and
length, the key, tag and length of the value) and the value. Lines read into
columns (:mod:`formats.streamlog_columns`) share their keys, so every head
is one of a few thousand: a table per key indexed by the value's length,
looked up for a whole column at once (``take``). Each ``Log`` is then one
element-wise join of its pieces, and a group's ``Logs`` are the bytes of
its rows one after the other, with no Python step per record.

The bytes equal :func:`formats.sls_pb.encode_log_group`'s for the same
records (a property test holds them to it); anything this cannot write so
(a value or a ``Log`` of 16 KiB or more, whose heads are not tabled) is
answered None, and the caller encodes the records.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from formats.sls_pb import SMALL_LENGTHS, content_head, log_head, time_part

__all__ = ["encode_logs", "joined"]

_LITTLE_ENDIAN = struct.pack("=I", 1) == struct.pack("<I", 1)
"""Whether this machine's integers are little-endian (formats/ stays pure: no sys)."""

_HEADS: dict[str, pa.BinaryArray] = {}
"""By key: the content head of every value length up to the longest seen yet (a power of two, at most
SMALL_LENGTHS): tabling all 16,384 of a layout's keys took a new worker a third of a second."""
_TIME_NS_TAG = b"\x25"  # Log.Time_ns: field 4, fixed32
_LOG_HEADS = pa.array([log_head(size) for size in range(SMALL_LENGTHS)], pa.binary())


def _heads(key: str, longest: int) -> pa.BinaryArray:
    """The content heads of ``key`` for value lengths 0 .. ``longest`` (below SMALL_LENGTHS) at least."""
    heads = _HEADS.get(key)
    if heads is None or len(heads) <= longest:
        if heads is None and len(_HEADS) >= 256:  # keys come from layouts, which are few; this only bounds odd ones
            _HEADS.clear()
        size = min(max(256, 1 << longest.bit_length()), SMALL_LENGTHS)
        heads = _HEADS[key] = pa.array([content_head(key, length) for length in range(size)], pa.binary())
    return heads


def encode_logs(
    time: pa.Int64Array, keys: Sequence[str], values: pa.ListArray, time_ns: pa.Int64Array | None = None
) -> pa.BinaryArray | None:
    """Each row's ``Log`` (its tag and length included), for records with ``time`` (0..2**32-1), fields
    ``keys`` with ``values``, no flags and ``time_ns`` (None: 0 for every row); None when a value or a
    ``Log`` is too long for the tables, or a ``time_ns`` is outside 0..999,999,999 (encode those
    records one by one: encode_log_group refuses such a time_ns)."""
    if not len(time):
        return pa.array([], pa.binary())
    nanoseconds = None
    if time_ns is not None:
        low, high = (bound.as_py() for bound in pc.min_max(time_ns).values())
        if low < 0 or high >= 1_000_000_000:
            return None
        if high:
            nanoseconds = _time_ns_fields(time_ns)
    distinct = pc.unique(time)
    times = pc.take(
        pa.array([time_part(t) for t in distinct.to_pylist()], pa.binary()), pc.index_in(time, value_set=distinct)
    )
    pieces = [times]
    for index, key in enumerate(keys):
        value = pc.list_element(values, index).cast(pa.binary())
        lengths = pc.binary_length(value)
        longest = pc.max(lengths).as_py()
        if longest >= SMALL_LENGTHS:
            return None
        pieces += [pc.take(_heads(key, longest), lengths), value]
    if nanoseconds is not None:
        pieces.append(nanoseconds)  # last, as encode_log_group writes it (after the flags, which rows lack)
    # Each Log's size from its pieces' lengths, so that its head goes in the one join that copies them.
    sizes = pc.binary_length(times)
    for piece in pieces[1:]:
        sizes = pc.add(sizes, pc.binary_length(piece))
    if pc.max(sizes).as_py() >= SMALL_LENGTHS:
        return None
    return pc.binary_join_element_wise(pc.take(_LOG_HEADS, sizes), *pieces, b"")


def _time_ns_fields(time_ns: pa.Int64Array) -> pa.BinaryArray:
    """Each row's ``Time_ns`` field, for ``time_ns`` within 0..999,999,999 (b"" for 0, which
    encode_log_group leaves out)."""
    as_uint32 = pc.cast(time_ns, pa.uint32())
    if _LITTLE_ENDIAN:  # fixed32 is little-endian: the uint32 buffer is its bytes already
        fixed = pa.Array.from_buffers(
            pa.binary(4), len(as_uint32), [None, as_uint32.buffers()[1]], offset=as_uint32.offset
        ).cast(pa.binary())
    else:
        fixed = pa.array([ns.to_bytes(4, "little") for ns in time_ns.to_pylist()], pa.binary())
    field = pc.binary_join_element_wise(_TIME_NS_TAG, fixed, b"")
    return pc.if_else(pc.equal(time_ns, 0), pa.scalar(b"", pa.binary()), field)


def joined(logs: pa.BinaryArray) -> bytes:
    """The bytes of ``logs`` one after the other (a slice of the array's data buffer, copied once):
    with :func:`formats.sls_pb.log_group_tail`, a group's ``LogGroup``."""
    if not len(logs):
        return b""
    offsets = logs.buffers()[1]
    assert offsets is not None
    ends = memoryview(offsets).cast("i")  # int32 offsets: a BinaryArray, not a LargeBinaryArray
    data = logs.buffers()[2]
    assert data is not None
    start = ends[logs.offset]
    return bytes(data.slice(start, ends[logs.offset + len(logs)] - start).to_pybytes())
