"""SLS Logs made from columns with a time_ns column: encode_log_group's bytes for the same records, or nothing."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.record import Record
from formats.sls_pb import decode_log_group, encode_log_group
from formats.sls_pb_columns import encode_logs, joined

KEYS = ("hostname", "app-name", "msg")
# 0 (no Time_ns written), fractions of every width, the edges, and values encode_log_group refuses.
NANOSECONDS = st.one_of(
    st.just(0), st.integers(1, 999_999_999), st.sampled_from([1, 123_000_000, 999_999_999]),
    st.sampled_from([-1, 1_000_000_000]),
)


@st.composite
def records(draw: st.DrawFn) -> list[Record]:
    return [
        Record(draw(st.integers(0, 2**32 - 1)), draw(NANOSECONDS), KEYS, [draw(st.text(max_size=8)) for _ in KEYS],
               "10.0.0.7", {})
        for _ in range(draw(st.integers(1, 6)))
    ]


def logs_of(rows: list[Record], *, with_time_ns: bool = True) -> pa.BinaryArray | None:
    return encode_logs(
        pa.array([r.time for r in rows], pa.int64()), KEYS, pa.array([r.values for r in rows], pa.list_(pa.string())),
        pa.array([r.time_ns for r in rows], pa.int64()) if with_time_ns else None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_logs_with_time_ns_are_encode_log_groups_or_nothing(rows: list[Record]) -> None:
    """If records' Logs are made from columns with their time_ns, then they are encode_log_group's bytes
    (Time_ns written where it is not 0, last), row for row; nothing is made only where encode_log_group
    refuses a time_ns outside 0..999,999,999."""
    logs = logs_of(rows)
    if any(not 0 <= r.time_ns < 1_000_000_000 for r in rows):
        assert logs is None
        with pytest.raises(ValueError, match="time_ns"):
            encode_log_group(rows)
        return
    assert logs is not None
    assert joined(logs) == encode_log_group(rows)
    assert joined(logs.slice(1)) == encode_log_group(rows[1:])


def test_time_ns_is_read_back_and_absent_where_zero() -> None:
    """If a row's time_ns is 0, then its Log has no Time_ns (as from its record); if not, it is read back."""
    rows = [Record(1795323666, ns, KEYS, ["h", "a", "m"], "10.0.0.7", {}) for ns in (0, 5, 999_999_999, 0)]
    logs = logs_of(rows)
    assert logs is not None
    assert [log.time_ns for log in decode_log_group(joined(logs)).logs] == [None, 5, 999_999_999, None]
    assert [len(log) for log in logs.to_pylist()] == [len(encode_log_group([r])) for r in rows]


def test_no_time_ns_column_and_zeros_write_the_same() -> None:
    """If a chunk has no time_ns column (streamlog, RFC 3164) or only zeros, then the Logs are the same bytes."""
    rows = [Record(1795323666 + i, 0, KEYS, ["h", "a", f"m{i}"], "10.0.0.7", {}) for i in range(3)]
    with_zeros, without = logs_of(rows), logs_of(rows, with_time_ns=False)
    assert with_zeros is not None and without is not None
    assert joined(with_zeros) == joined(without) == encode_log_group(rows)


def test_longer_values_after_short_ones_still_encode_as_records_do() -> None:
    """If a key's values grow from batch to batch (the heads of its lengths are tabled as far as the
    longest seen), then each batch's Logs are still encode_log_group's bytes, up to the longest tabled."""
    for length in (3, 255, 256, 300, 4_000, 10_000, 40):
        rows = [Record(1795323666, 0, KEYS, ["h", "a" * (length // 2), "m" * length], "10.0.0.7", {}) for _ in range(3)]
        logs = logs_of(rows, with_time_ns=False)
        assert logs is not None and joined(logs) == encode_log_group(rows), length
