"""Building batches in worker processes: the same groups and bodies as in-process, records recoverable."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.sls_pb import decode_log_group
from receiver.config.identity import MachineGroup
from receiver.config.model import (
    Config,
    HttpSinkConfig,
    ListenerConfig,
    LocalSinkConfig,
    RouteConfig,
    SlsSinkConfig,
    default_config,
)
from receiver.config.profiles import ParseProfile
from receiver.deliver.batches import Group
from receiver.deliver.building import (
    BatchBuilder,
    Built,
    Segments,
    SinkPlan,
    build_in_worker,
    start_pool,
    worker_modules,
)
from receiver.deliver.dead_letters import DeadLetters
from receiver.deliver.outcomes import SendOutcome
from receiver.deliver.registry import column_encoder, payload_encoder
from receiver.deliver.sinks.sls.request import unpack_log_group
from receiver.deliver.sinks.sls.sink import sls_payload
from receiver.deliver.worker import SinkWorker
from receiver.spool.segment import Entry, encode_segment, read_summary
from receiver.spool.store import SpoolStore
from tests.helpers import encoding_builders

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


def stored(payload: bytes | None) -> pa.Table:
    """The rows a local store payload holds, dictionary-coded columns decoded (two payloads of the same
    rows may number their dictionaries otherwise)."""
    assert payload is not None
    table = pa.ipc.open_stream(payload).read_all()
    return table.cast(pa.schema([
        pa.field(f.name, pa.list_(pa.string())) if pa.types.is_list(f.type) else
        pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
        for f in table.schema
    ]))


def lines(n: int) -> list[bytes]:
    return [b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 7 - message %d" % i for i in range(n)]


def built_in_a_worker(config: Config, plan: SinkPlan, first_seq: int, segments: Segments, *, workers: int = 1) -> Built:
    """``segments`` built by a worker process of a pool of ``workers``, as the delivery process gets them."""
    pool = start_pool(config, workers)
    try:
        return pool.submit(build_in_worker, plan, first_seq, segments).result(60)
    finally:
        pool.shutdown()


def test_worker_processes_build_what_this_process_builds(tmp_path: Path) -> None:
    """If a batch is built in a worker process, then its groups carry the body this process would
    encode for them (same pack ids, same bytes), and no records."""
    config = config_for(tmp_path)
    plan = SinkPlan("sls", "PREFIX", 100, 1 << 20, payload_encoder(SLS))
    segments: Segments = [(5, segment("10.0.0.7", lines(250))), (6, segment("10.0.0.8", lines(30)))]
    here = BatchBuilder(config).build(plan, 5, segments)
    there = built_in_a_worker(config, plan, 5, segments, workers=2)
    assert [g.pack_id for g in there.groups] == [g.pack_id for g in here.groups]
    assert [g.count for g in there.groups] == [len(g.records) for g in here.groups] == [100, 100, 50, 30]
    assert all(g.records == [] for g in there.groups)
    assert [g.payload for g in there.groups] == [sls_payload(SLS, g) for g in here.groups]
    assert len(decode_log_group(unpack_log_group(there.groups[0].payload or b"", "lz4")).logs) == 100


def test_worker_modules_are_the_encoders_and_the_column_road_once() -> None:
    """If sinks encode in workers, then the forkserver is told to load each encoder's module once, and
    the column road's modules only when some sink encodes from columns."""
    from receiver.config.model import ClickHouseSinkConfig

    clickhouse = ClickHouseSinkConfig(name="ch")
    assert worker_modules([(payload_encoder(clickhouse), None)]) == ["receiver.deliver.sinks.clickhouse"]
    modules = worker_modules([(payload_encoder(clickhouse), column_encoder(clickhouse))])
    assert modules[0] == "receiver.deliver.sinks.clickhouse" and "receiver.deliver.column_groups" in modules
    local, sls = LocalSinkConfig(), SLS
    modules = worker_modules([(payload_encoder(s), column_encoder(s)) for s in (local, sls, local)])
    assert len(modules) == len(set(modules))
    assert {"receiver.deliver.sinks.local.store", "receiver.deliver.sinks.sls.sink",
            "formats.streamlog_columns", "formats.rfc3164_columns", "formats.rfc5424_columns",
            "receiver.deliver.column_groups"} == set(modules)


_WORKER_STARTS_LOADED = """
import sys
from receiver.config.model import LocalSinkConfig, default_config
from receiver.deliver.building import start_pool, warm_pool, worker_modules
from receiver.deliver.registry import column_encoder, payload_encoder

def loaded():
    return [m for m in ("pyarrow", "receiver.deliver.sinks.local.store", "receiver.deliver.column_groups")
            if m in sys.modules]

if __name__ == "__main__":
    local = LocalSinkConfig()
    preload = worker_modules([(payload_encoder(local), column_encoder(local))]) if sys.argv[1] == "preload" else []
    pool = start_pool(default_config(), 1, preload=preload)
    warm_pool(pool, 1)
    print(",".join(pool.submit(loaded).result(60)))
    pool.shutdown()
"""


def test_a_warmed_worker_starts_with_the_encoders_loaded(tmp_path: Path) -> None:
    """If the pool is started with the encoders' modules and warmed, then a worker has Arrow and the
    store's encoder loaded before its first batch (the forkserver imported them once); without them
    it would import them on its first batch."""
    import subprocess
    import sys

    script = tmp_path / "pool_check.py"
    script.write_text(_WORKER_STARTS_LOADED)
    root = str(Path(__file__).resolve().parents[2])

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, str(script), mode], capture_output=True, text=True, timeout=120, cwd=root,
            env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}, check=True,
        )
        return done.stdout.strip()

    assert run("preload") == "pyarrow,receiver.deliver.sinks.local.store,receiver.deliver.column_groups"
    assert run("none") == ""


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

    sink = RejectingSink()
    worker = SinkWorker(
        sink, SpoolStore(tmp_path / "spool", readonly=True), **encoding_builders(builder, plan),
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
    from receiver.deliver.sinks.local.store import arrow_table

    config = dataclasses.replace(config_for(tmp_path), deliver=dataclasses.replace(default_config().deliver))
    segments: Segments = [(1, segment("10.0.0.7", lines(30)))]
    (encoded,) = built_in_a_worker(config, LOCAL_PLAN, 1, segments).groups
    (plain,) = BatchBuilder(config).build(LOCAL_PLAN, 1, segments).groups
    assert encoded.payload is not None and encoded.record_count == 30
    here = arrow_table([plain])
    assert pa.ipc.open_stream(encoded.payload).read_all().cast(here.schema).equals(here)


def test_a_large_batch_from_a_worker_is_the_batch_made_here(tmp_path: Path) -> None:
    """If a worker's batch is large enough for its payloads to cross in shared memory, then the delivery
    process gets the payloads this process makes, and no file of theirs is left."""
    from receiver.deliver import shared_payloads

    config = dataclasses.replace(config_for(tmp_path), deliver=dataclasses.replace(default_config().deliver))
    plan = dataclasses.replace(LOCAL_PLAN, max_records=4096, max_bytes=32 << 20)
    segments: Segments = [(1, segment("10.0.0.7", lines(20_000)))]
    there = built_in_a_worker(config, plan, 1, segments).groups
    here = BatchBuilder(config).build(plan, 1, segments, encode=True).groups
    assert sum(len(g.payload or b"") for g in there) >= shared_payloads.MIN_BYTES
    assert [stored(g.payload) for g in there] == [stored(g.payload) for g in here]
    mine = f"receiver-payloads-{os.getpid()}-"
    assert not [p for p in shared_payloads.DIRECTORY.glob("*") if p.name.startswith(mine)]


def arrow_allocator() -> str:
    """The allocator Arrow takes memory from in this process."""
    return pa.default_memory_pool().backend_name


def test_workers_reuse_memory_unless_told_not_to() -> None:
    """If the pool is started as the delivery process starts it, then its workers' Arrow takes memory
    from the C allocator (which keeps what a batch freed for the next); told not to (an operator chose
    Arrow's allocator), they keep the pool Arrow's environment gives them."""
    chosen = {}
    for reuse in (True, False):
        pool = start_pool(default_config(), 1, reuse_memory=reuse)
        try:
            chosen[reuse] = pool.submit(arrow_allocator).result(60)
        finally:
            pool.shutdown()
    assert chosen[True] == "system"
    assert chosen[False] != "system"


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


# -- batches built from columns ----------------------------------------------------

LOCAL_PLAN = SinkPlan(
    "local", "P", 100, 1 << 20, payload_encoder(LocalSinkConfig()), column_encoder(LocalSinkConfig())
)
SLS_PLAN = SinkPlan("sls", "P", 100, 1 << 20, payload_encoder(SLS), column_encoder(SLS))
HTTP = HttpSinkConfig(name="http", url="http://127.0.0.1:1/")
HTTP_PLAN = SinkPlan("http", "P", 100, 1 << 20, payload_encoder(HTTP), column_encoder(HTTP))


def stream_line(tag: str, source: str, n: int, *, rfc3164: bool = False, size: int = 0) -> bytes:
    protocol, space = ("0", " ") if rfc3164 else ("1", "")
    return (
        f"0.1 {tag} {1795323666 + n} {source} web-{n % 3} user.notice {protocol} app {n} - {space}line {n} "
        + "x" * size
    ).encode()


def syslog_line(n: int, *, pid: bool, host: str = "web-1") -> bytes:
    """An RFC 3164 line of the usual shape, received at T0 (2026-11-22T05:01:06Z)."""
    tag = f"sshd[{1000 + n}]" if pid else "kernel"
    return f"<{8 + n % 16}>Nov 22 05:01:{n % 60:02d} {host} {tag}: line {n}".encode()


def rfc5424_line(n: int, *, sd: bool, fraction: bool, procid: bool, host: str = "web-1") -> bytes:
    """An RFC 5424 line of the usual shape (SD of two elements or none, a fraction or none, a PROCID or none)."""
    stamp = f"2026-11-22T05:01:{n % 60:02d}" + (f".{n % 1000:03d}{n % 7}" if fraction else "") + "+08:00"
    data = f'[req@32473 id="{n}" user="u{n % 5}"][meta seq="{n}"]' if sd else "-"
    return f"<{8 + n % 16}>1 {stamp} {host} app{n % 3} {1000 + n if procid else '-'} ID{n % 4} {data} m {n}".encode()


# RFC 5424 frames read by the parser inside RFC 5424 columns (a NIL time: the receive time's ns; an escape, a
# final CR, no MSG), and some the columns cannot take (a bad time: flagged; a BOM and bad UTF-8).
ODD_RFC5424 = st.sampled_from([
    b"<13>1 - h a - - - nil time", b'<13>1 2026-11-22T05:01:06.5Z h a 1 M [x@1 k="a\\"b"] esc',
    b"<13>1 2026-11-22T05:01:06Z h a - - - m\r", b"<13>1 2026-11-22T05:01:06.123456Z h a - - -",
    b"<13>1 2026-13-22T05:01:06Z h a - - - bad time", b"<13>1 2026-11-22T05:01:06Z h a - - - \xef\xbb\xbfbom",
    b"<13>1 - h a - - - \xff",
])
SOURCES = st.sampled_from(["10.0.0.7", "10.0.0.8", "127.0.0.1"])
TAGS = st.sampled_from(["sys_tag", "audit", "noise", "other"])
SYSLOG_HOSTS = st.sampled_from(["web-1", "web-2", "fw01"])
# Syslog frames RFC 3164 columns leave to the parser: an uncertain year, a device's code, RFC 5424, a final CR.
ODD_SYSLOG = st.sampled_from([
    b"<13>Jan  1 00:00:00 h a: m", b"<189>Nov 22 05:01:06 fw01 %ASA-6-302013: Built",
    b"<13>1 2026-11-22T05:01:06Z h a - - - m", b"<13>Nov 22 05:01:06 h a: m\r", b"<13>Nov 22 05:01:06 h a[]: m",
])


@st.composite
def spool_segments(draw: st.DrawFn) -> Segments:
    """Segments of entries from a few peers and listeners: streamlog lines (runs of one source and tag,
    and mixed ones), RFC 3164 lines (with a pid and without, now and then one RFC 3164 columns leave
    to the parser), RFC 5424 lines (SD, fractions, PROCID and none mixed, now and then an odd one, and
    RFC 3164 runs among them), and in one batch of four an entry only the record path reads."""
    batch: list[tuple[int, list[Entry]]] = []
    n = 0
    for seq in range(1, draw(st.integers(1, 4)) + 1):
        entries: list[Entry] = []
        for _ in range(draw(st.integers(1, 3))):
            frames: list[bytes] = []
            syslog = draw(st.integers(0, 2)) == 0  # an entry of syslog lines
            rfc5424 = syslog and draw(st.booleans())  # of RFC 5424 lines (now and then RFC 3164 ones among them)
            for _ in range(draw(st.integers(1, 6))):
                count = draw(st.integers(1, 40))
                if rfc5424 and draw(st.integers(0, 4)):
                    sd, fraction, procid = (draw(st.sampled_from([True, False, None])) for _ in range(3))
                    host = draw(SYSLOG_HOSTS)
                    frames += [
                        rfc5424_line(
                            n + i, sd=(i % 2 == 0) if sd is None else sd,
                            fraction=(i % 3 != 0) if fraction is None else fraction,
                            procid=(i % 5 != 0) if procid is None else procid, host=host,
                        )
                        for i in range(count)
                    ]
                    if draw(st.integers(0, 3)) == 0:
                        frames.insert(draw(st.integers(0, len(frames))), draw(ODD_RFC5424))
                    n += count
                    continue
                if syslog:
                    pid, host = draw(st.sampled_from([True, False, None])), draw(SYSLOG_HOSTS)
                    frames += [
                        syslog_line(n + i, pid=(i % 3 == 0) if pid is None else pid, host=host) for i in range(count)
                    ]
                    if draw(st.integers(0, 3)) == 0:
                        frames.insert(draw(st.integers(0, len(frames))), draw(ODD_SYSLOG))
                    n += count
                    continue
                tag, source = draw(TAGS), draw(SOURCES)
                rfc3164, size = draw(st.booleans()), draw(st.sampled_from([0, 0, 0, 300, 5000, 20000]))
                frames += [stream_line(tag, source, n + i, rfc3164=rfc3164, size=size) for i in range(count)]
                n += count
            listener = draw(st.sampled_from([
                "tcp-11111", "tcp-11111", "removed",
                ("syslog-only" if rfc5424 else "syslog-3164") if syslog else "tcp-11111",
            ]))
            peer = draw(st.sampled_from(["10.0.0.7", "10.0.0.9", "::1"]))
            received = T0 + seq * 10**9 + len(entries) * 600_000_000  # some entries a second later
            entries.append(Entry(received, peer, 1, listener, "tcp", frames))
        batch.append((seq, entries))
    if draw(st.integers(0, 3)) == 0:
        _, entries = draw(st.sampled_from(batch))
        at = draw(st.integers(0, len(entries) - 1))
        if draw(st.booleans()):
            entries[at] = dataclasses.replace(entries[at], listener="syslog-only")
        else:
            odd = draw(st.sampled_from([b"<13>Jan  1 00:00:00 h a: m", b"0.1 short", b"\xff"]))
            entries[at].frames.insert(draw(st.integers(0, len(entries[at].frames))), odd)
    return [(seq, encode_segment(entries)) for seq, entries in batch]


# Parse settings RFC 3164 columns must read as the parser does (a zone, a dialect, the year rule), and a
# profile for some senders (their listener's syslog frames are then all parsed as records).
PARSE = st.sampled_from([
    {},
    {"timezone": "Asia/Shanghai", "dialect": "none", "uncertain_year_days": 400.0},
    {"timezone": "America/New_York", "dialect": "cisco", "future_tolerance_hours": 1.0},
    {"profiles": (ParseProfile("nets", networks=("10.0.0.0/8",), timezone="Asia/Tokyo"),)},
])


ROUTES = st.sampled_from([
    (),
    (RouteConfig(sink="local", tag="audit", destination="audit"),),
    (RouteConfig(tag="noise", drop=True), RouteConfig(sink="sls", tag="other")),
    (RouteConfig(sink="local", tag="sys_tag"), RouteConfig(sink="sls")),
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    segments=spool_segments(), routes=ROUTES, plan=st.sampled_from([LOCAL_PLAN, SLS_PLAN, HTTP_PLAN]),
    max_records=st.sampled_from([1, 7, 100]), max_bytes=st.sampled_from([1, 4000, 1 << 20]), parse=PARSE,
)
def test_groups_built_from_columns_are_the_groups_built_from_records(
    segments: Segments, routes: tuple[RouteConfig, ...], plan: SinkPlan, max_records: int, max_bytes: int,
    parse: dict[str, Any],
) -> None:
    """If a batch is built from columns, then it is the batch built from records: the same groups in the
    same order, with the same pack ids and tags, the same rows for the local store and the same bytes for
    SLS and HTTP, the same counts of unknown tags and dropped records; and where a line needs the record path, the
    whole batch takes it."""
    config = dataclasses.replace(
        default_config(), state_directory=Path("/nonexistent"), sinks=(LocalSinkConfig(), SLS, HTTP), routes=routes,
        listeners=(
            *default_config().listeners, ListenerConfig(name="syslog-only", transport="tcp", format="rfc5424"),
            ListenerConfig(name="syslog-3164", transport="tcp", format="rfc3164"),
        ),
        # A group's tags name the machine groups its first record's hostname is in.
        machine_groups=(MachineGroup("web-2s", hostnames=("web-2",)), MachineGroup("webs", hostnames=("web-*",))),
        deliver=dataclasses.replace(default_config().deliver, default_sink=plan.sink),  # what no route takes
        parse=dataclasses.replace(default_config().parse, **parse),
    )
    by_records = dataclasses.replace(plan, max_records=max_records, max_bytes=max_bytes, column_encoder=None)
    by_columns = dataclasses.replace(plan, max_records=max_records, max_bytes=max_bytes)
    expected = BatchBuilder(config).build(by_records, 3, segments, encode=True)
    builder = BatchBuilder(config)
    built = builder.build(by_columns, 3, segments, encode=True)
    assert [(g.pack_id, g.tags, g.destination, g.source, g.client_ip, g.count) for g in built.groups] == [
        (g.pack_id, g.tags, g.destination, g.source, g.client_ip, g.count) for g in expected.groups
    ]
    for group, reference in zip(built.groups, expected.groups, strict=True):
        assert group.payload is not None and reference.payload is not None
        if plan is not LOCAL_PLAN:  # request bodies, byte for byte (HTTP's gzipped with no mtime)
            assert group.payload == reference.payload
        else:
            assert stored(group.payload) == stored(reference.payload)
    assert (built.unknown_tags, built.dropped) == (expected.unknown_tags, expected.dropped)


def test_plain_streamlog_batches_are_built_from_columns(tmp_path: Path) -> None:
    """If a batch holds streamlog lines, then it is built from columns, and so is one where another sender's
    frames are syslog (those are parsed as records inside it), with what the record road gives; if a route
    has a filter, then the batch is built from records."""
    config = config_for(tmp_path)
    config = dataclasses.replace(config, deliver=dataclasses.replace(config.deliver, default_sink="local"))
    builder = BatchBuilder(config)
    builder.build(LOCAL_PLAN, 1, [(1, segment("10.0.0.7", lines(30)))], encode=True)
    assert builder.column_batches == 1
    mixed: Segments = [
        (2, segment("10.0.0.7", lines(3))), (3, segment("10.0.0.8", [b"<13>Jan  1 00:00:00 h a: m", *lines(2)])),
    ]
    built = builder.build(LOCAL_PLAN, 2, mixed, encode=True)
    assert builder.column_batches == 2
    by_records = BatchBuilder(config).build(dataclasses.replace(LOCAL_PLAN, column_encoder=None), 2, mixed, encode=True)
    assert [g.count for g in built.groups] == [g.count for g in by_records.groups] == [3, 1, 2]  # by source
    for group, reference in zip(built.groups, by_records.groups, strict=True):
        assert stored(group.payload) == stored(reference.payload)
    filtered = BatchBuilder(dataclasses.replace(config, routes=(RouteConfig(sink="local", filter="app-name=app"),)))
    filtered.build(LOCAL_PLAN, 4, [(4, segment("10.0.0.7", lines(3)))], encode=True)
    assert filtered.column_batches == 0


def refuse_from_columns(group: Group, prepared: object) -> bytes:
    """A column encoding that fails after the batch's columns were prepared (and its frames let go)."""
    raise ValueError("cannot encode from columns")


def test_a_batch_the_column_encoding_refuses_is_built_from_records(tmp_path: Path) -> None:
    """If the sink's encoding from columns fails once the batch's columns are prepared, then the batch is
    built from records, with the groups and payloads the record road gives (its frames read again)."""
    config = config_for(tmp_path)
    config = dataclasses.replace(config, deliver=dataclasses.replace(config.deliver, default_sink="local"))
    assert LOCAL_PLAN.column_encoder is not None
    refusing = dataclasses.replace(
        LOCAL_PLAN, column_encoder=dataclasses.replace(LOCAL_PLAN.column_encoder, encode=refuse_from_columns)
    )
    segments: Segments = [(1, segment("10.0.0.7", lines(5))), (2, segment("10.0.0.8", lines(3)))]
    builder = BatchBuilder(config)
    built = builder.build(refusing, 1, segments, encode=True)
    assert builder.column_batches == 0
    by_records = BatchBuilder(config).build(dataclasses.replace(LOCAL_PLAN, column_encoder=None), 1, segments, encode=True)
    assert [(g.pack_id, g.count) for g in built.groups] == [(g.pack_id, g.count) for g in by_records.groups]
    assert [g.count for g in built.groups] == [5, 3]
    assert [g.payload for g in built.groups] == [g.payload for g in by_records.groups]


def built_both_ways(tmp_path: Path, segments: Segments) -> Iterator[tuple[SinkPlan, list[Group], list[Group]]]:
    """For the local store, SLS and HTTP: ``segments`` built from columns (checked to be so) and from
    records, whose groups are checked to be the same groups with the same payloads (the local store's
    as Arrow tables: the same rows, not bytes)."""
    for plan in (LOCAL_PLAN, SLS_PLAN, HTTP_PLAN):
        config = dataclasses.replace(
            config_for(tmp_path), sinks=(LocalSinkConfig(), SLS, HTTP),
            deliver=dataclasses.replace(default_config().deliver, default_sink=plan.sink),
        )
        builder = BatchBuilder(config)
        built = builder.build(plan, 1, segments, encode=True)
        assert builder.column_batches == 1
        by_records = BatchBuilder(config).build(dataclasses.replace(plan, column_encoder=None), 1, segments, encode=True)
        assert [(g.pack_id, g.tags, g.count) for g in built.groups] == [
            (g.pack_id, g.tags, g.count) for g in by_records.groups
        ]
        for group, reference in zip(built.groups, by_records.groups, strict=True):
            assert group.payload is not None and reference.payload is not None
            if plan is LOCAL_PLAN:
                assert stored(group.payload) == stored(reference.payload)
            else:
                assert group.payload == reference.payload
        yield plan, built.groups, by_records.groups


def test_relayed_rfc3164_batches_are_built_from_columns(tmp_path: Path) -> None:
    """If a relay's batch holds RFC 3164 lines of several senders, with a pid and without, and a line only
    the parser reads, then the local store, SLS and HTTP build it from columns, with what records give."""
    frames = [syslog_line(i, pid=i % 2 == 0, host=f"web-{i % 3}") for i in range(40)]
    frames.insert(7, b"<189>Nov 22 05:01:06 fw01 %ASA-6-302013: Built")
    segments: Segments = [(1, segment("10.0.0.7", frames)), (2, segment("10.0.0.8", frames[:9]))]
    for _, groups, _ in built_both_ways(tmp_path, segments):
        assert [g.count for g in groups] == [41, 9]


def test_relayed_rfc5424_batches_are_built_from_columns(tmp_path: Path) -> None:
    """If a relay's batch holds RFC 5424 lines of several senders (SD, fractions, PROCID and none), an RFC
    3164 line and one only the parser reads, on an auto listener, then the local store, SLS and HTTP build
    it from columns, with what records give, fractions included."""
    frames = [
        rfc5424_line(i, sd=i % 2 == 0, fraction=i % 3 != 0, procid=i % 5 != 0, host=f"web-{i % 3}") for i in range(40)
    ]
    frames[5:5] = [syslog_line(5, pid=True), b"<13>1 2026-11-22T05:01:06Z h a - - - m\r"]
    segments: Segments = [(1, segment("10.0.0.7", frames)), (2, segment("10.0.0.8", frames[:9]))]
    for plan, groups, _ in built_both_ways(tmp_path, segments):
        if plan is LOCAL_PLAN:
            assert all(any(pa.ipc.open_stream(g.payload).read_all().column("time_ns").to_pylist()) for g in groups)
        assert [g.count for g in groups] == [42, 9]
