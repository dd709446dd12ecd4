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

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from formats.sls_pb import SMALL_LENGTHS, content_head, log_head, time_part

__all__ = ["encode_logs", "joined"]

_HEADS: dict[str, pa.BinaryArray] = {}
"""By key: the content head of every value length below SMALL_LENGTHS."""
_LOG_HEADS = pa.array([log_head(size) for size in range(SMALL_LENGTHS)], pa.binary())


def _heads(key: str) -> pa.BinaryArray:
    heads = _HEADS.get(key)
    if heads is None:
        if len(_HEADS) >= 256:  # keys come from layouts, which are few; this only bounds odd ones
            _HEADS.clear()
        heads = _HEADS[key] = pa.array([content_head(key, size) for size in range(SMALL_LENGTHS)], pa.binary())
    return heads


def encode_logs(time: pa.Int64Array, keys: Sequence[str], values: pa.ListArray) -> pa.BinaryArray | None:
    """Each row's ``Log`` (its tag and length included), for records with ``time`` (0..2**32-1), fields
    ``keys`` with ``values``, no flags and ``time_ns`` 0; None when a value or a ``Log`` is too long
    for the tables (encode those records one by one)."""
    if not len(time):
        return pa.array([], pa.binary())
    distinct = pc.unique(time)
    times = pc.take(
        pa.array([time_part(t) for t in distinct.to_pylist()], pa.binary()), pc.index_in(time, value_set=distinct)
    )
    pieces = [times]
    for index, key in enumerate(keys):
        value = pc.list_element(values, index).cast(pa.binary())
        lengths = pc.binary_length(value)
        if pc.max(lengths).as_py() >= SMALL_LENGTHS:
            return None
        pieces += [pc.take(_heads(key), lengths), value]
    body = pc.binary_join_element_wise(*pieces, b"")
    sizes = pc.binary_length(body)
    if pc.max(sizes).as_py() >= SMALL_LENGTHS:
        return None
    return pc.binary_join_element_wise(pc.take(_LOG_HEADS, sizes), body, b"")


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
