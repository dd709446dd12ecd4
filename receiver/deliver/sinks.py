"""The sinks: each turns a group into one upstream request and says how it went.

Every sink answers with a :class:`~receiver.deliver.worker.SendOutcome`;
none raises for upstream trouble. Secrets stay inside the sink objects and
never reach an outcome's reason (reasons are logged).
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from formats.sls_pb import encode_log_group, log_group_tail
from receiver.config import (
    ClickHouseSinkConfig,
    Config,
    HttpSinkConfig,
    LocalSinkConfig,
    SinkConfig,
    SlsSinkConfig,
)
from receiver.deliver.batches import ColumnEncoder, Group
from receiver.deliver.worker import SendOutcome, Sink

if TYPE_CHECKING:  # (Arrow is loaded only by the processes that build from columns)
    from formats.streamlog_columns import StreamlogColumns
    from receiver.deliver.column_groups import BatchColumns, RecordRows

__all__ = ["LocalSink", "SlsSink", "build_sink", "column_encoder", "default_destination", "payload_encoder", "sls_payload"]

log = logging.getLogger("receiver.deliver")


FLAGS_FIELD = "_flags_"
"""The field that carries a record's flags (truncated, parse-error...) upstream, when it has any."""


def build_sink(sink: SinkConfig, config: Config) -> Sink:
    """The sink object for one ``[[sinks]]`` entry."""
    if isinstance(sink, LocalSinkConfig):
        from receiver.deliver.store_server import store_socket

        return LocalSink(sink, config.state_directory, query_socket=store_socket(config.control_socket))
    if isinstance(sink, SlsSinkConfig):
        return SlsSink(sink)
    if isinstance(sink, ClickHouseSinkConfig):
        from receiver.deliver.clickhouse import ClickHouseSink

        return ClickHouseSink(sink)
    from receiver.deliver.http_sink import HttpSink

    return HttpSink(sink)


def payload_encoder(sink: SinkConfig) -> Callable[[Group], bytes] | None:
    """What worker processes make of a group for the sink: its request body, or the local store's rows."""
    if isinstance(sink, LocalSinkConfig):
        return local_payload
    if isinstance(sink, SlsSinkConfig):
        return functools.partial(sls_payload, sink)
    if isinstance(sink, ClickHouseSinkConfig):
        from receiver.deliver.clickhouse import clickhouse_payload

        return functools.partial(clickhouse_payload, sink)
    if isinstance(sink, HttpSinkConfig):
        from receiver.deliver.http_sink import http_payload

        return functools.partial(http_payload, sink)
    return None


def column_encoder(sink: SinkConfig) -> ColumnEncoder | None:
    """How worker processes make the sink's payloads straight from columns, where the sink can."""
    if isinstance(sink, LocalSinkConfig):
        from receiver.deliver.embedded_store import arrow_payload_of_rows, stored_rows

        return ColumnEncoder(stored_rows, arrow_payload_of_rows)
    if isinstance(sink, SlsSinkConfig):
        return ColumnEncoder(sls_logs, functools.partial(sls_payload_of_rows, sink))
    return None


def sls_logs(chunks: Sequence[StreamlogColumns | RecordRows]) -> BatchColumns | None:
    """Every row's ``Log`` (formats/sls_pb_columns.py), for SLS groups to take their rows from; None when
    some row needs its record (a value of 16 KiB or more)."""
    import pyarrow as pa

    from formats.sls_pb_columns import encode_logs
    from receiver.deliver.column_groups import BatchColumns, RecordRows

    made = []
    for chunk in chunks:
        if isinstance(chunk, RecordRows):
            try:  # each record's Log, as sls_payload writes it (its flags as a content)
                logs = pa.array([encode_log_group([r], flags_field=FLAGS_FIELD) for r in chunk.records], pa.binary())
            except ValueError:  # a time SLS cannot hold: the record road keeps that group as records
                return None
        else:
            logs = encode_logs(chunk.time, chunk.keys, chunk.values)
        if logs is None:
            return None
        made.append({"logs": logs})
    return BatchColumns.of(made, [len(chunk) for chunk in chunks])


def sls_payload_of_rows(config: SlsSinkConfig, group: Group, logs: BatchColumns) -> bytes:
    """:func:`sls_payload` of a group built from columns, given :func:`sls_logs` of its batch."""
    from formats.sls_pb_columns import joined

    return joined(logs.rows_of(group)["logs"]) + log_group_tail(
        topic=config.topic, source=group.source, tags=group.tags
    )


def local_payload(group: Group) -> bytes:
    """The local store's rows of ``group``: an Arrow IPC stream, which the store inserts without a copy."""
    from receiver.deliver.embedded_store import arrow_payload

    return arrow_payload(group)


def sls_payload(config: SlsSinkConfig, group: Group) -> bytes:
    """The LogGroup of ``group``, before compression (compressing and signing happen at each send)."""
    return encode_log_group(
        group.records, topic=config.topic, source=group.source, tags=group.tags, flags_field=FLAGS_FIELD
    )


def default_destination(sink: SinkConfig) -> str:
    """Where a sink puts records no route sends elsewhere: its logstore or table ("" when it has none)."""
    if isinstance(sink, SlsSinkConfig):
        return sink.logstore
    if isinstance(sink, ClickHouseSinkConfig):
        return sink.table
    return ""


class LocalSink:
    """The embedded store (an in-process ClickHouse): what ``receiverctl search`` and ``sql`` read.

    It owns the store's directory in the delivery process, and serves the
    store's queries on ``store.sock`` beside the control socket for
    receiverctl. A batch's groups are inserted as one part (``send_batch``).
    """

    max_records = 65536
    max_bytes = 32 * 1024 * 1024

    def __init__(self, config: LocalSinkConfig, state_directory: Path, *, query_socket: Path | None = None) -> None:
        from receiver.deliver.embedded_store import EmbeddedStore
        from receiver.deliver.sqlite_import import SqliteImport, legacy_store
        from receiver.deliver.store_server import StoreServer

        self.name = config.name
        self.path = local_store_directory(config, state_directory)
        self._store = EmbeddedStore(
            self.path, max_age_hours=config.max_age_hours, max_bytes=config.max_bytes,
            memory_limit_bytes=config.memory_limit_bytes,
        )
        self._server: StoreServer | None = None
        self._import: SqliteImport | None = None
        try:
            if query_socket is not None:
                self._server = StoreServer(self._store, query_socket)
            legacy = legacy_store(config.path, state_directory)
            if legacy is not None:
                self._import = SqliteImport(legacy, self._store).start()
        except Exception:
            self.close()
            raise

    @property
    def store(self) -> Any:
        """The :class:`~receiver.deliver.embedded_store.EmbeddedStore` this sink writes."""
        return self._store

    def send(self, group: Group) -> SendOutcome:
        return self.send_batch([group])

    def send_batch(self, groups: Sequence[Group]) -> SendOutcome:
        """Insert ``groups`` as one part; the pack ids make a resent batch a no-op."""
        if not groups:
            return SendOutcome("ok")
        token = groups[0].pack_id if len(groups) == 1 else f"{groups[0].pack_id}..{groups[-1].pack_id}:{len(groups)}"
        try:
            if all(g.payload is not None for g in groups):
                self._store.insert_payloads([g.payload for g in groups if g.payload is not None], token=token)
            else:
                self._store.insert_groups(groups, token=token)
        except Exception as e:
            return _store_outcome(self, e)
        return SendOutcome("ok")

    def close(self) -> None:
        if self._import is not None:
            self._import.stop()
        if self._server is not None:
            self._server.close()
        self._store.close()


def local_store_directory(config: LocalSinkConfig, state_directory: Path) -> Path:
    """Where a local sink keeps its store: ``path``, else ``store`` in the state directory.

    A ``path`` that is a file is an older release's SQLite store: the store
    goes beside it (``<name>.store``), and the file is imported into it.
    """
    if config.path is None:
        return state_directory / "store"
    return config.path.with_name(config.path.name + ".store") if config.path.is_file() else config.path


def _store_outcome(sink: LocalSink, error: Exception) -> SendOutcome:
    """A failed insert's outcome: what can heal is retried, anything else is a dead letter."""
    from receiver.deliver.clickhouse import QUOTA_CODES, exception_code

    code = exception_code({}, str(error).encode())
    if isinstance(error, OSError | MemoryError) or code in QUOTA_CODES:
        # A full or failing disk, memory, too many parts: retried, the spool keeps the batch.
        return SendOutcome("retry", f"local store {sink.path}: {error}")
    # Anything else (a bug, a row the store refuses) fails the same way every time: retrying
    # would fill the spool and hold back every sender, so the groups are kept as dead letters.
    log.exception("%s: the local store refused a batch", sink.name)
    return SendOutcome("permanent", f"local store {sink.path}: {type(error).__name__}: {error}")


class SlsSink:
    """Alibaba Cloud Log Service PutLogs: LogGroup protobuf, lz4, signed, per sls.md."""

    def __init__(self, config: SlsSinkConfig) -> None:
        from receiver.deliver.sls.auth import credentials_from_env, credentials_from_file
        from receiver.deliver.sls.request import SlsEndpoint, check_put_logs_options

        self.name = config.name
        self.config = config
        self.max_records = config.max_records
        self.max_bytes = config.max_bytes
        self._endpoint = SlsEndpoint.parse(config.endpoint)
        self._compress = None if config.compress == "none" else config.compress
        # Settings this host cannot serve (zstd without a module, v4 without a region) fail at
        # start, not as an exception on every batch.
        check_put_logs_options(compress=self._compress, signature=config.signature, region=config.region)
        keys_file = config.credentials_file
        self._load_credentials = (
            (lambda: credentials_from_file(keys_file)) if keys_file is not None else credentials_from_env
        )
        self._credentials = self._load_credentials()
        self._session = requests.Session()
        self._clock_offset = 0.0  # server time minus ours, learned from RequestTimeExpired answers

    def send(self, group: Group) -> SendOutcome:
        from receiver.deliver.sls.errors import classify
        from receiver.deliver.sls.request import SlsRequestError, build_put_logs

        config = self.config
        try:
            body = group.payload if group.payload is not None else sls_payload(config, group)
        except ValueError as e:  # a record SLS cannot hold (time outside uint32): this batch, for good
            return SendOutcome("permanent", f"cannot encode the LogGroup: {e}")
        try:
            request = build_put_logs(
                self._endpoint, config.project, group.destination, body, self._credentials,
                now=_dt.datetime.now(_dt.UTC),
                compress=self._compress,
                signature=config.signature, region=config.region,
                hash_key=group.client_ip if config.route_by_hash_key else None,
                clock_offset_seconds=self._clock_offset,
            )
        except SlsRequestError as e:  # a route's logstore that cannot be in a URL: fix the configuration
            return SendOutcome("not-deliverable", str(e))
        try:
            response = self._session.post(
                request.url, data=request.body, headers=request.headers, timeout=config.timeout_seconds,
                allow_redirects=False,  # the signature and STS token must not travel to another host
            )
        except requests.RequestException as e:
            return SendOutcome("retry", f"{type(e).__name__}: {_first_line(e)}")
        outcome = classify(response.status_code, dict(response.headers), response.content)
        reason = f"{response.status_code} {outcome.code}: {outcome.message}".strip()
        if outcome.request_id:
            reason += f" (request id {outcome.request_id})"
        if outcome.kind == "clock-skew" and outcome.server_time is not None:
            self._clock_offset = (outcome.server_time - _dt.datetime.now(_dt.UTC)).total_seconds()
            log.warning("%s: our clock is %.0f s off SLS's; correcting requests by that much", self.name, -self._clock_offset)
        elif outcome.kind == "auth":
            try:
                self._credentials = self._load_credentials()  # rotated keys, renewed STS token
            except Exception as e:  # reported (never holds a secret); the old credentials stay
                reason += f"; reloading credentials failed: {e}"
        return SendOutcome(outcome.kind, reason, outcome.retry_after_seconds)

    def close(self) -> None:
        self._session.close()


def _first_line(error: Any) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
