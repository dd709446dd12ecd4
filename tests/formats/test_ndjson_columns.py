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


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[str], list[Record]]:
    keys = draw(KEYS)
    records = [
        Record(draw(st.integers(0, 2**32 - 1)), 0, tuple(keys), [draw(TEXT) for _ in keys], draw(TEXT),
               {STREAMLOG_TAG: draw(TEXT)})
        for _ in range(draw(st.integers(1, 6)))
    ]
    return keys, records


def _lines(keys: list[str], records: list[Record]) -> pa.StringArray | None:
    return encode_lines(
        pa.array([r.time for r in records], pa.int64()), keys,
        pa.array([r.values for r in records], pa.list_(pa.string())),
        pa.array([r.source for r in records], pa.string()),
        pa.array([r.tags[STREAMLOG_TAG] for r in records], pa.string()),
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
