"""NDJSON lines made from columns: the bytes encode_ndjson writes for the same records, or nothing."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from formats.ndjson import encode_ndjson
from formats.ndjson_columns import encode_lines
from formats.record import Record
from formats.sls_pb_columns import joined
from formats.streamlog import STREAMLOG_TAG

PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with what JSON escapes (quotes, backslashes, controls), and what it leaves (non-ASCII, U+2028, DEL).
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list('ab "\\/\t\n\x00\x1f\x7fé\u2028\U0001f600{}:,')), max_size=12),
    st.text(max_size=12).filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t)),
)
KEYS = st.lists(st.sampled_from(["hostname", "app-name", "msg", 'quo"te', "back\\slash", "é", "dup"]),
                min_size=1, max_size=5)


# A record's time_ns as to_dict writes it: 0, a fraction, or (from no parser, but written as it is) out of range.
NANOSECONDS = st.one_of(st.just(0), st.integers(1, 999_999_999), st.sampled_from([-1, 1_000_000_000]))


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[str], list[Record]]:
    keys = draw(KEYS)
    with_time_ns = draw(st.booleans())
    records = [
        Record(draw(st.integers(0, 2**32 - 1)), draw(NANOSECONDS) if with_time_ns else 0, tuple(keys), [draw(TEXT) for _ in keys], draw(TEXT),
               {STREAMLOG_TAG: draw(TEXT)})
        for _ in range(draw(st.integers(1, 6)))
    ]
    return keys, records


def _lines(keys: list[str], records: list[Record]) -> pa.StringArray | None:
    """The lines of ``records`` (with no time_ns column where every record's is 0, as streamlog columns)."""
    time_ns = None if all(r.time_ns == 0 for r in records) else pa.array([r.time_ns for r in records], pa.int64())
    return encode_lines(
        pa.array([r.time for r in records], pa.int64()), keys,
        pa.array([r.values for r in records], pa.list_(pa.string())),
        pa.array([r.source for r in records], pa.string()),
        pa.array([r.tags[STREAMLOG_TAG] for r in records], pa.string()), time_ns,
    )


@PROFILE
@given(rows())
@example((["msg"], [Record(1795323666, 0, ("msg",), ['say "hi" \\ bye'], "10.0.0.7", {STREAMLOG_TAG: "sys_tag"})]))
def test_the_lines_are_encode_ndjsons_or_nothing(case: tuple[list[str], list[Record]]) -> None:
    """If records' lines are made from columns, then they are encode_ndjson's bytes, line for line (any
    run of rows joined is the body of those records); nothing is made only for a character JSON must
    escape with a code (below U+0020) or a key given twice."""
    keys, records = case
    lines = _lines(keys, records)
    texts = [*keys, *(v for r in records for v in (*r.values, r.source, r.tags[STREAMLOG_TAG]))]
    if lines is None:
        assert len(set(keys)) < len(keys) or any(c < " " for text in texts for c in text)
        return
    binary = lines.cast(pa.binary())
    assert joined(binary) == encode_ndjson(records)
    assert joined(binary.slice(1)) == encode_ndjson(records[1:])
    assert [line.as_py() for line in binary] == [encode_ndjson([r]) for r in records]


def test_no_rows_make_no_lines() -> None:
    assert _lines(["msg"], []) is not None and len(_lines(["msg"], []) or []) == 0


def test_a_time_ns_column_is_written_as_the_records_is() -> None:
    """If rows have a time_ns column, then each line carries its row's (an RFC 5424 fraction), and a
    column of zeros writes what no column does."""
    records = [Record(1795323666, ns, ("msg",), ["m"], "10.0.0.7", {STREAMLOG_TAG: "t"}) for ns in (0, 123_456_000)]
    args = (pa.array([r.time for r in records], pa.int64()), ["msg"], pa.array([r.values for r in records]),
            pa.array(["10.0.0.7"] * 2), pa.array(["t"] * 2))
    lines = encode_lines(*args, pa.array([0, 123_456_000], pa.int64()))
    assert lines is not None and [line.as_py() for line in lines] == [encode_ndjson([r]).decode() for r in records]
    assert b'"time_ns":123456000,' in encode_ndjson(records[1:])
    assert encode_lines(*args, pa.array([0, 0], pa.int64())) == encode_lines(*args)
