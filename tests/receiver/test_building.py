"""Building batches in worker processes: the same groups and bodies as in-process, records recoverable."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future
from pathlib import Path

from formats.sls_pb import decode_log_group
from receiver.config import Config, LocalSinkConfig, SlsSinkConfig, default_config
from receiver.deliver.batches import Group
from receiver.deliver.building import (
    BatchBuilder,
    Built,
    Segments,
    SinkPlan,
    build_in_worker,
    start_pool,
)
from receiver.deliver.dead_letters import DeadLetters
from receiver.deliver.sinks import payload_encoder, sls_payload
from receiver.deliver.worker import SendOutcome, SinkWorker
from receiver.spool.segment import Entry, encode_segment, read_summary
from receiver.spool.store import SpoolStore

T0 = 1_795_323_666 * 10**9
SLS = SlsSinkConfig(name="sls", endpoint="http://127.0.0.1:1", project="p", logstore="syslog")


def config_for(tmp_path: Path) -> Config:
    config = default_config()
    return dataclasses.replace(
        config, state_directory=tmp_path, sinks=(SLS, LocalSinkConfig()),
        deliver=dataclasses.replace(config.deliver, default_sink="sls"),
    )


def segment(peer: str, lines: list[bytes]) -> bytes:
    return encode_segment([Entry(T0, peer, 1, "tcp-11111", "tcp", lines)])


def lines(n: int) -> list[bytes]:
    return [b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 7 - message %d" % i for i in range(n)]


def test_worker_processes_build_what_this_process_builds(tmp_path: Path) -> None:
    """If a batch is built in a worker process, then its groups carry the body this process would
    encode for them (same pack ids, same bytes), and no records."""
    config = config_for(tmp_path)
    plan = SinkPlan("sls", "PREFIX", 100, 1 << 20, payload_encoder(SLS))
    segments: Segments = [(5, segment("10.0.0.7", lines(250))), (6, segment("10.0.0.8", lines(30)))]
    here = BatchBuilder(config).build(plan, 5, segments)
    pool = start_pool(config, 2)
    try:
        there = pool.submit(build_in_worker, plan, 5, segments).result(60)
    finally:
        pool.shutdown()
    assert [g.pack_id for g in there.groups] == [g.pack_id for g in here.groups]
    assert [g.count for g in there.groups] == [len(g.records) for g in here.groups] == [100, 100, 50, 30]
    assert all(g.records == [] for g in there.groups)
    assert [g.payload for g in there.groups] == [sls_payload(SLS, g) for g in here.groups]
    assert len(decode_log_group(there.groups[0].payload or b"").logs) == 100


def test_damaged_segment_is_reported_not_fatal(tmp_path: Path) -> None:
    """If a segment fails its checksum, then building skips it and says which."""
    blob = bytearray(segment("10.0.0.7", lines(3)))
    blob[-1] ^= 0xFF
    built = BatchBuilder(config_for(tmp_path)).build(SinkPlan("sls", "P", 10, 1 << 20), 9, [(9, bytes(blob))])
    assert built.groups == [] and [seq for seq, _ in built.damaged] == [9]


class RejectingSink:
    name = "sls"
    max_records = 100
    max_bytes = 1 << 20

    def __init__(self) -> None:
        self.sent: list[Group] = []

    def send(self, group: Group) -> SendOutcome:
        self.sent.append(group)
        return SendOutcome("permanent", "PostBodyInvalid")

    def close(self) -> None:
        pass


def test_rejected_encoded_group_is_kept_with_its_records(tmp_path: Path) -> None:
    """If a group built (encoded) elsewhere is rejected for good, then its dead letter holds its records,
    built again in this process."""
    config = config_for(tmp_path)
    plan = SinkPlan("sls", "P", 100, 1 << 20, payload_encoder(SLS))
    store = SpoolStore(tmp_path / "spool")
    blob = segment("10.0.0.7", lines(3))
    store.append(blob, read_summary(blob))
    builder = BatchBuilder(config)

    def build_batch(first: int, segments: Segments) -> Future[Built]:
        future: Future[Built] = Future()
        future.set_result(builder.build(plan, first, segments, encode=True))
        return future

    sink = RejectingSink()
    worker = SinkWorker(
        sink, SpoolStore(tmp_path / "spool", readonly=True), build_batch=build_batch,
        rebuild=lambda first, segments: builder.build(plan, first, segments),
        dead_letters=DeadLetters(tmp_path / "dead"), backoff=lambda attempt, kind: 0.0, poll_seconds=0.01,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    for _ in range(500):
        if store.cursor("sls") >= 1:
            break
        stop.wait(0.01)
    stop.set()
    thread.join(5)
    assert sink.sent[0].payload is not None and sink.sent[0].records == []
    (letter,) = DeadLetters(tmp_path / "dead").letters()
    kept = DeadLetters(tmp_path / "dead").load(letter.path)
    assert [r.get("msg") for r in kept.records] == ["message 0", "message 1", "message 2"]
    assert letter.records == 3


def test_local_store_rows_from_a_worker_equal_rows_made_here(tmp_path: Path) -> None:
    """If a worker process prepares a group's rows for the local store (Arrow), then they are the rows made
    here from the records themselves."""
    import pyarrow as pa

    from receiver.deliver.embedded_store import arrow_table

    config = dataclasses.replace(config_for(tmp_path), deliver=dataclasses.replace(default_config().deliver))
    plan = SinkPlan("local", "P", 100, 1 << 20, payload_encoder(LocalSinkConfig()))
    segments: Segments = [(1, segment("10.0.0.7", lines(30)))]
    pool = start_pool(config, 1)
    try:
        (encoded,) = pool.submit(build_in_worker, plan, 1, segments).result(60).groups
    finally:
        pool.shutdown()
    (plain,) = BatchBuilder(config).build(plan, 1, segments).groups
    assert encoded.payload is not None and encoded.record_count == 30
    assert pa.ipc.open_stream(encoded.payload).read_all().equals(arrow_table([plain]))


def refuse_boom(group: Group) -> bytes:
    """An encoder that cannot encode groups holding "boom" (as SLS cannot hold some times)."""
    if any("boom" in (r.get("msg") or "") for r in group.records):
        raise ValueError("cannot encode boom")
    return b"encoded"


def test_a_group_the_encoder_refuses_comes_back_as_records(tmp_path: Path) -> None:
    """If the sink's encoding fails for a group, then that group comes back with its records, for the
    sink to answer (a dead letter), and the other groups come encoded."""
    plan = SinkPlan("sls", "P", 1, 1 << 20, refuse_boom)
    boom = b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 7 - boom"
    segments: Segments = [(1, segment("10.0.0.7", [lines(1)[0], boom]))]
    built = BatchBuilder(config_for(tmp_path)).build(plan, 1, segments, encode=True)
    assert [g.payload for g in built.groups] == [b"encoded", None]
    assert built.groups[1].records[0].get("msg") == "boom"
