"""NDJSON lines made from columns: the bytes :func:`formats.ndjson.encode_ndjson` writes, a row at a time in C.

A line is the compact JSON of a record's :meth:`~formats.record.Record.to_dict`.
Lines read into columns (:mod:`formats.streamlog_columns`) share their keys and
their shape, so a line is fixed text (its keys, written once) around its values,
each value escaped as JSON escapes it: ``\\`` and ``"`` get a backslash; the
other characters JSON must escape (controls below U+0020) are rare in a log
line, and a chunk holding one is answered None, for the caller to encode its
records. Everything else (non-ASCII text, U+2028, DEL) stays as it is, as
``json.dumps(..., ensure_ascii=False)`` leaves it.

The bytes equal :func:`encode_ndjson`'s for the same records (a property test
holds them to it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from formats.row_indexes import fields_of_rows, list_offsets
from formats.streamlog import STREAMLOG_TAG

__all__ = ["encode_lines"]

_CONTROL = "[\\x00-\\x1f]"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _escaped(strings: pa.Array) -> pa.Array | None:
    """``strings`` as the inside of JSON strings; None when one holds a character below U+0020."""
    if pc.any(pc.match_substring_regex(strings, _CONTROL)).as_py():
        return None
    return pc.replace_substring(pc.replace_substring(strings, "\\", "\\\\"), '"', '\\"')


def encode_lines(
    time: pa.Int64Array, keys: Sequence[str], values: pa.ListArray, source: pa.StringArray, tag: pa.StringArray,
    time_ns: pa.Int64Array | None = None,
) -> pa.StringArray | None:
    """Each row's NDJSON line (its LF included), for records with ``time``, fields ``keys`` with
    ``values``, ``source``, the streamlog tag ``tag`` (none where null: syslog lines), ``time_ns`` (None:
    0 for every row), no flags and no error; None when some row's line must be written from its record
    (a control character, a key given twice)."""
    if len(set(keys)) != len(keys):
        return None  # to_dict keeps a repeated key once, where its first is, with its last value
    if not len(time):
        return pa.array([], pa.string())
    flat = _escaped(values.flatten())
    sources = _escaped(source)
    tags = _escaped(tag)
    if flat is None or sources is None or tags is None:
        return None
    width = len(keys)
    rows = len(time)
    # Each field's text before its value: `"fields":{"k1":"`, then `","k2":"` ...
    openings = [("," if i else "") + _quoted(key)[:-1] + '":"' for i, key in enumerate(keys)]
    opening = pc.take(pa.array(openings, pa.string()), fields_of_rows(width, rows))
    fields = pc.binary_join_element_wise(opening, flat, pa.scalar('"', pa.string()), "")
    per_row = pa.ListArray.from_arrays(list_offsets(width, rows), fields)
    tagged = pc.binary_join_element_wise('","tags":{' + _quoted(STREAMLOG_TAG) + ':"', tags, '"}', "")
    if tag.null_count:  # a record without a tag has no tags (a null would make the whole line null)
        tagged = pc.fill_null(tagged, '","tags":{}')
    # to_dict writes time_ns as the int it is, whatever its range
    nanoseconds: str | pa.Array = "0" if time_ns is None else pc.cast(time_ns, pa.string())
    return pc.binary_join_element_wise(
        '{"time":', pc.cast(time, pa.string()), ',"time_ns":', nanoseconds, ',"fields":{', pc.binary_join(per_row, ""),
        '},"source":"', sources, tagged, ',"flags":[]}\n',
        "",
    )
