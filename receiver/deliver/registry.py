"""The kinds of sink, each with what delivery needs of it: one table instead of a type test per need.

A kind's module is imported only when a sink of that kind is built or
encoded for: a delivery process that sends only over HTTP never loads the
embedded store's engine or Arrow.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from receiver.config.model import (
    ClickHouseSinkConfig,
    Config,
    HttpSinkConfig,
    LocalSinkConfig,
    SinkConfig,
    SlsSinkConfig,
)
from receiver.deliver.batches import ColumnEncoder, Group

if TYPE_CHECKING:
    from receiver.deliver.outcomes import Sink

__all__ = ["SinkKind", "build_sink", "column_encoder", "default_destination", "kind_of", "payload_encoder"]


@dataclasses.dataclass(frozen=True, slots=True)
class SinkKind:
    """What delivery needs of one kind of sink."""

    build: Callable[[SinkConfig, Config], Sink]
    """The sink object for one ``[[sinks]]`` entry."""
    payload: Callable[[SinkConfig], Callable[[Group], bytes] | None]
    """What worker processes make of a group for the sink (its request body, the store's rows), if anything."""
    columns: Callable[[SinkConfig], ColumnEncoder | None]
    """How worker processes make those payloads straight from columns, where the sink can."""
    destination: Callable[[SinkConfig], str]
    """Where records no route sends elsewhere go: a logstore or table ("" when the sink has none)."""


def _no_destination(sink: SinkConfig) -> str:
    return ""


# -- local: the embedded store ---------------------------------------------------


def _build_local(sink: SinkConfig, config: Config) -> Sink:
    from receiver.deliver.sinks.local.server import store_socket
    from receiver.deliver.sinks.local.sink import LocalSink

    assert isinstance(sink, LocalSinkConfig)
    return LocalSink(sink, config.state_directory, query_socket=store_socket(config.control_socket))


def _local_payload(sink: SinkConfig) -> Callable[[Group], bytes]:
    # The store's rows as an Arrow IPC stream, which it inserts without a copy.
    from receiver.deliver.sinks.local.store import arrow_payload

    return arrow_payload


def _local_columns(sink: SinkConfig) -> ColumnEncoder:
    from receiver.deliver.sinks.local.store import arrow_payload_of_rows, stored_rows

    return ColumnEncoder(stored_rows, arrow_payload_of_rows)


# -- SLS ---------------------------------------------------------------------------


def _build_sls(sink: SinkConfig, config: Config) -> Sink:
    from receiver.deliver.sinks.sls.sink import SlsSink

    assert isinstance(sink, SlsSinkConfig)
    return SlsSink(sink)


def _sls_payload(sink: SinkConfig) -> Callable[[Group], bytes]:
    from receiver.deliver.sinks.sls.sink import sls_payload

    assert isinstance(sink, SlsSinkConfig)
    return functools.partial(sls_payload, sink)


def _sls_columns(sink: SinkConfig) -> ColumnEncoder:
    from receiver.deliver.sinks.sls.sink import sls_logs, sls_payload_of_rows

    assert isinstance(sink, SlsSinkConfig)
    return ColumnEncoder(sls_logs, functools.partial(sls_payload_of_rows, sink))


def _sls_destination(sink: SinkConfig) -> str:
    assert isinstance(sink, SlsSinkConfig)
    return sink.logstore


# -- a ClickHouse server -------------------------------------------------------------


def _build_clickhouse(sink: SinkConfig, config: Config) -> Sink:
    from receiver.deliver.sinks.clickhouse import ClickHouseSink

    assert isinstance(sink, ClickHouseSinkConfig)
    return ClickHouseSink(sink)


def _clickhouse_payload(sink: SinkConfig) -> Callable[[Group], bytes]:
    from receiver.deliver.sinks.clickhouse import clickhouse_payload

    assert isinstance(sink, ClickHouseSinkConfig)
    return functools.partial(clickhouse_payload, sink)


def _clickhouse_columns(sink: SinkConfig) -> ColumnEncoder:
    from receiver.deliver.sinks.clickhouse import clickhouse_payload_of_rows, native_columns

    assert isinstance(sink, ClickHouseSinkConfig)
    return ColumnEncoder(native_columns, functools.partial(clickhouse_payload_of_rows, sink))


def _clickhouse_destination(sink: SinkConfig) -> str:
    assert isinstance(sink, ClickHouseSinkConfig)
    return sink.table


# -- any HTTP collector ----------------------------------------------------------------


def _build_http(sink: SinkConfig, config: Config) -> Sink:
    from receiver.deliver.sinks.http import HttpSink

    assert isinstance(sink, HttpSinkConfig)
    return HttpSink(sink)


def _http_payload(sink: SinkConfig) -> Callable[[Group], bytes]:
    from receiver.deliver.sinks.http import http_payload

    assert isinstance(sink, HttpSinkConfig)
    return functools.partial(http_payload, sink)


def _http_columns(sink: SinkConfig) -> ColumnEncoder:
    from receiver.deliver.sinks.http import http_lines, http_payload_of_rows

    assert isinstance(sink, HttpSinkConfig)
    return ColumnEncoder(http_lines, functools.partial(http_payload_of_rows, sink))


_KINDS: dict[type, SinkKind] = {
    LocalSinkConfig: SinkKind(_build_local, _local_payload, _local_columns, _no_destination),
    SlsSinkConfig: SinkKind(_build_sls, _sls_payload, _sls_columns, _sls_destination),
    ClickHouseSinkConfig: SinkKind(_build_clickhouse, _clickhouse_payload, _clickhouse_columns, _clickhouse_destination),
    HttpSinkConfig: SinkKind(_build_http, _http_payload, _http_columns, _no_destination),
}


def kind_of(sink: SinkConfig) -> SinkKind:
    """The kind of ``sink`` (every sink configuration type has one)."""
    return _KINDS[type(sink)]


def build_sink(sink: SinkConfig, config: Config) -> Sink:
    """The sink object for one ``[[sinks]]`` entry."""
    return kind_of(sink).build(sink, config)


def payload_encoder(sink: SinkConfig) -> Callable[[Group], bytes] | None:
    """What worker processes make of a group for the sink: its request body, or the local store's rows."""
    return kind_of(sink).payload(sink)


def column_encoder(sink: SinkConfig) -> ColumnEncoder | None:
    """How worker processes make the sink's payloads straight from columns, where the sink can."""
    return kind_of(sink).columns(sink)


def default_destination(sink: SinkConfig) -> str:
    """Where a sink puts records no route sends elsewhere: its logstore or table ("" when it has none)."""
    return kind_of(sink).destination(sink)
