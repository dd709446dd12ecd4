"""The SLS sink: PutLogs requests of LogGroup protobuf, compressed and signed (sls.md), over a pool of
kept-alive connections (receiver/deliver/sinks/connections.py)."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from formats.sls_pb import encode_log_group, log_group_tail
from receiver.config.model import SlsSinkConfig
from receiver.deliver.batches import Group, merged_group
from receiver.deliver.outcomes import SendOutcome
from receiver.deliver.sinks.connections import UpstreamError, connection_pool, no_answer, timeout_of
from receiver.deliver.sinks.sls.auth import credentials_from_env, credentials_from_file
from receiver.deliver.sinks.sls.errors import classify
from receiver.deliver.sinks.sls.request import (
    Compression,
    SlsEndpoint,
    SlsRequestError,
    build_put_logs,
    check_put_logs_options,
    pack_log_group,
    unpack_log_group,
)

if TYPE_CHECKING:  # (Arrow is loaded only by the processes that build from columns)
    from formats.streamlog_columns import StreamlogColumns
    from receiver.deliver.column_groups import BatchColumns, Part, RecordRows

__all__ = ["FLAGS_FIELD", "SlsSink", "sls_log_group", "sls_logs", "sls_payload", "sls_payload_of_rows"]

log = logging.getLogger("receiver.deliver")

FLAGS_FIELD = "_flags_"
"""The field that carries a record's flags (truncated, parse-error...) upstream, when it has any."""


def sls_logs(chunks: Sequence[StreamlogColumns | RecordRows]) -> BatchColumns | None:
    """Every row's ``Log`` (formats/sls_pb_columns.py), for SLS groups to take their rows from; None when
    some row needs its record (a value of 16 KiB or more)."""
    # Arrow: loaded only where batches are built from columns.
    import pyarrow as pa

    from formats.sls_pb_columns import encode_logs
    from receiver.deliver.column_groups import BatchColumns, RecordRows

    def logs_of(chunk: Part) -> dict[str, pa.Array] | None:
        if isinstance(chunk, RecordRows):
            try:  # each record's Log, as sls_log_group writes it (its flags as a content)
                return {"logs": pa.array([encode_log_group([r], flags_field=FLAGS_FIELD) for r in chunk.records],
                                         pa.binary())}
            except ValueError:  # a time SLS cannot hold: the record road keeps that group as records
                return None
        logs = encode_logs(chunk.time, chunk.keys, chunk.values, chunk.time_ns)
        return None if logs is None else {"logs": logs}

    return BatchColumns.of(chunks, logs_of)


def sls_payload_of_rows(config: SlsSinkConfig, group: Group, logs: BatchColumns) -> bytes:
    """:func:`sls_payload` of a group built from columns, given :func:`sls_logs` of its batch."""
    from formats.sls_pb_columns import joined

    log_group = joined(logs.rows_of(group)["logs"]) + log_group_tail(
        topic=config.topic, source=group.source, tags=group.tags
    )
    return pack_log_group(log_group, _compression(config))


def sls_payload(config: SlsSinkConfig, group: Group) -> bytes:
    """What a worker process makes of ``group`` for the sending thread: its LogGroup, compressed as
    sent (:func:`receiver.deliver.sinks.sls.request.pack_log_group`; signing happens at each send)."""
    return pack_log_group(sls_log_group(config, group), _compression(config))


def sls_log_group(config: SlsSinkConfig, group: Group) -> bytes:
    """The LogGroup of ``group``'s records."""
    return encode_log_group(
        group.records, topic=config.topic, source=group.source, tags=group.tags, flags_field=FLAGS_FIELD
    )


def _compression(config: SlsSinkConfig) -> Compression | None:
    return None if config.compress == "none" else config.compress


class SlsSink:
    """Alibaba Cloud Log Service PutLogs: LogGroup protobuf, lz4, signed, per sls.md."""

    segments_per_batch = 16
    """Twice the default: a relay's batch makes a LogGroup (a request) per host it relays, and each
    request costs the sending thread some hundreds of microseconds of CPU, so larger batches mean
    half the requests (a relay's million lines: delivery CPU 7.4-8.7 -> 6.1-6.2 s, 115-140k ->
    195-200k msgs/s; the delivery side's peak PSS 40 MB more)."""

    def __init__(self, config: SlsSinkConfig) -> None:

        self.name = config.name
        self.config = config
        self.max_records = config.max_records
        self.max_bytes = config.max_bytes
        self._endpoint = SlsEndpoint.parse(config.endpoint)
        self._compress = _compression(config)
        # Settings this host cannot serve (zstd without a module, v4 without a region) fail at
        # start, not as an exception on every batch.
        check_put_logs_options(compress=self._compress, signature=config.signature, region=config.region)
        keys_file = config.credentials_file
        self._load_credentials = (
            (lambda: credentials_from_file(keys_file)) if keys_file is not None else credentials_from_env
        )
        self._credentials = self._load_credentials()
        self._http = connection_pool(self._endpoint.scheme, self._endpoint.host, concurrency=config.concurrency)
        self._timeout = timeout_of(config.timeout_seconds)
        self._clock_offset = 0.0  # server time minus ours, learned from RequestTimeExpired answers

    def merge(self, groups: Sequence[Group]) -> Group | None:
        """One stream's consecutive groups as one LogGroup (:func:`receiver.deliver.batches.merged_group`).

        A LogGroup is its logs followed by its tail (formats/sls_pb.py), so encoded groups merge by
        joining their LogGroups less their tails, and the merge's tail: decompressed, not decoded.
        A LogGroup that does not end as its group's tail says is not merged.
        """
        topic, compress = self.config.topic, self._compress

        def join(tags: list[tuple[str, str]]) -> bytes | None:
            logs: list[bytes | memoryview] = []
            for group in groups:
                assert group.payload is not None
                log_group = unpack_log_group(group.payload, compress)
                tail = log_group_tail(topic=topic, source=group.source, tags=group.tags)
                if not log_group.endswith(tail):
                    return None
                logs.append(memoryview(log_group)[: len(log_group) - len(tail)])
            logs.append(log_group_tail(topic=topic, source=groups[0].source, tags=tags))
            return pack_log_group(b"".join(logs), compress)

        return merged_group(groups, join)

    def send(self, group: Group) -> SendOutcome:

        config = self.config
        try:
            body = group.payload if group.payload is not None else sls_log_group(config, group)
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
                packed=group.payload is not None,
            )
        except SlsRequestError as e:  # a route's logstore that cannot be in a URL: fix the configuration
            return SendOutcome("not-deliverable", str(e))
        try:
            response = self._http.request(
                "POST", request.url, body=request.body, headers=request.headers, timeout=self._timeout,
                redirect=False,  # the signature and STS token must not travel to another host
                retries=False,  # the worker retries, from the spool
            )
        except UpstreamError as e:
            return SendOutcome("retry", no_answer(e))
        outcome = classify(response.status, dict(response.headers), response.data)
        reason = f"{response.status} {outcome.code}: {outcome.message}".strip()
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
        self._http.clear()
