"""The ClickHouse sink's payloads built from columns are, byte for byte, the payloads built from records.

Batches of spool segments are built twice, as delivery builds them: once
from records (each group's :func:`~receiver.deliver.sinks.clickhouse.native_block`)
and once from columns (:func:`~receiver.deliver.sinks.clickhouse.native_columns`
and :func:`~receiver.deliver.sinks.clickhouse.clickhouse_payload_of_rows`).
The segments come from tests/receiver/test_building.py's generators (mixed
senders, tags, routes, frames only the record road reads) and from one here
whose fields hold any text: non-ASCII, empty fields, values longer than the
varint table's first size.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import lz4.block
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.config.model import (
    ClickHouseSinkConfig,
    Config,
    HttpSinkConfig,
    ListenerConfig,
    LocalSinkConfig,
    RouteConfig,
    default_config,
)
from receiver.deliver.building import BatchBuilder, Segments, SinkPlan
from receiver.deliver.registry import column_encoder, payload_encoder
from receiver.spool.segment import Entry, encode_segment
from tests.receiver.test_building import ROUTES, SLS, T0, spool_segments
from tests.receiver.test_clickhouse_rows import read_block

CLICKHOUSE = ClickHouseSinkConfig(name="ch", url="http://127.0.0.1:1/")
CLICKHOUSE_PLAN = SinkPlan("ch", "P", 100, 1 << 20, payload_encoder(CLICKHOUSE), column_encoder(CLICKHOUSE))
HTTP = HttpSinkConfig(name="http", url="http://127.0.0.1:1/")


def config_of(routes: tuple[RouteConfig, ...]) -> Config:
    """The configuration test_building's batches are built with, the ClickHouse sink taking what no route takes."""
    config = default_config()
    return dataclasses.replace(
        config, state_directory=Path("/nonexistent"), sinks=(LocalSinkConfig(), SLS, HTTP, CLICKHOUSE), routes=routes,
        listeners=(*config.listeners, ListenerConfig(name="syslog-only", transport="tcp", format="rfc5424")),
        deliver=dataclasses.replace(config.deliver, default_sink="ch"),
    )


class Warnings(logging.Handler):
    """The delivery log's warnings while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def assert_same_payloads(config: Config, segments: Segments, max_records: int, max_bytes: int) -> int:
    """Build ``segments`` both ways: the groups and their payloads must be equal, and the column road must
    not have failed (a failure falls back to records, quietly but for a warning). How many batches were
    built from columns (0 when the encoder leaves some layout to the records, as the local store does)."""
    by_records = dataclasses.replace(CLICKHOUSE_PLAN, max_records=max_records, max_bytes=max_bytes, column_encoder=None)
    by_columns = dataclasses.replace(CLICKHOUSE_PLAN, max_records=max_records, max_bytes=max_bytes)
    expected = BatchBuilder(config).build(by_records, 3, segments, encode=True)
    builder = BatchBuilder(config)
    warnings = Warnings()
    log = logging.getLogger("receiver.deliver")
    log.addHandler(warnings)
    try:
        built = builder.build(by_columns, 3, segments, encode=True)
    finally:
        log.removeHandler(warnings)
    assert not [m for m in warnings.messages if "from columns failed" in m], warnings.messages
    assert [(g.pack_id, g.tags, g.destination, g.count) for g in built.groups] == [
        (g.pack_id, g.tags, g.destination, g.count) for g in expected.groups
    ]
    for group, reference in zip(built.groups, expected.groups, strict=True):
        assert group.payload is not None and group.payload == reference.payload
    return builder.column_batches


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    segments=spool_segments(), routes=ROUTES,
    max_records=st.sampled_from([1, 7, 100]), max_bytes=st.sampled_from([1, 4000, 1 << 20]),
)
def test_payloads_built_from_columns_are_the_payloads_built_from_records(
    segments: Segments, routes: tuple[RouteConfig, ...], max_records: int, max_bytes: int
) -> None:
    """If a batch is built from columns, then each group's INSERT body is the one built from its records, byte
    for byte: the same groups in the same order, the same Native blocks in the same LZ4 frames."""
    assert_same_payloads(config_of(routes), segments, max_records, max_bytes)


FIELD = st.text(st.sampled_from("aZ09-_.:/=\u00e9\u00fc\u4e2d\U0001f600"), max_size=12)
"""A streamlog field: ASCII and not, empty included (then the line has two spaces in a row)."""
MESSAGE = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\n\r\x00"), max_size=60),
    st.integers(16_000, 40_000).map(lambda n: "\u00e9" * (n // 2) + "x" * (n % 7)),  # past the first varint table
)


@st.composite
def any_text_segments(draw: st.DrawFn) -> Segments:
    """One segment of streamlog lines whose fields hold any text, from two senders."""
    entries = []
    for n in range(draw(st.integers(1, 3))):
        frames = []
        for _ in range(draw(st.integers(1, 20))):
            host, app, procid = draw(FIELD), draw(FIELD), draw(FIELD)
            pri = draw(st.sampled_from(["user.notice", "local0.err", "kern.emerg", "bogus", ""]))
            line = f"0.1 {draw(st.sampled_from(['sys_tag', 'audit']))} {1795323666 + n} 10.0.0.{n} {host} {pri} 1 {app} {procid} - {draw(MESSAGE)}"
            frames.append(line.encode())
        entries.append(Entry(T0 + n, draw(st.sampled_from(["10.0.0.7", "::1"])), 1, "tcp-11111", "tcp", frames))
    return [(1, encode_segment(entries))]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(segments=any_text_segments(), max_records=st.sampled_from([3, 100]))
def test_any_text_gives_the_same_bytes(segments: Segments, max_records: int) -> None:
    """If streamlog fields hold any text (non-ASCII, empty, a message past 16 KiB), then the column road's
    payloads are the record road's, byte for byte."""
    assert assert_same_payloads(config_of(()), segments, max_records, 1 << 20) == 1


def test_a_plain_batch_takes_the_column_road() -> None:
    """If a batch is streamlog lines of one layout, then it is built from columns (not left to the records), and
    its block reads back as the rows the lines hold."""
    frames = [b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 1 app 7 - message %d \xc3\xa9" % i for i in range(50)]
    segments: Segments = [(1, encode_segment([Entry(T0, "10.0.0.7", 1, "tcp-11111", "tcp", frames)]))]
    assert assert_same_payloads(config_of(()), segments, 100, 1 << 20) == 1
    built = BatchBuilder(config_of(())).build(CLICKHOUSE_PLAN, 1, segments, encode=True)
    (group,) = built.groups
    payload = group.payload or b""
    block = lz4.block.decompress(payload[25:], uncompressed_size=int.from_bytes(payload[21:25], "little"))
    _, rows = read_block(block)
    assert [row["message"] for row in rows] == [f"message {i} \u00e9" for i in range(50)]
    assert [row["pack_row"] for row in rows] == list(range(50))


def test_runs_of_rows_are_read_from_a_slice_where_it_starts() -> None:
    """If a batch's column is a slice of a larger array (its buffers start before it), then a group's run of
    rows is read from where the slice starts, for numbers and for bytes."""
    import struct

    import pyarrow as pa

    from receiver.deliver.sinks.clickhouse import _Bytes, _Numbers

    assert _Numbers(pa.array(range(10), pa.uint32()).slice(3, 5), 4).rows(1, 3) == struct.pack("<2I", 4, 5)
    assert _Bytes(pa.array([b"a", b"bb", b"ccc", b"dddd"], pa.binary()).slice(1, 3)).rows(1, 3) == b"cccdddd"
