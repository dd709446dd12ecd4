"""The ClickHouse sink's HTTP without a server: what goes on the wire, and what it does when no answer comes.

A small stand-in for ClickHouse's HTTP interface (loopback, HTTP/1.1, kept
alive) records every request as it arrived, bytes included, and answers
``DESCRIBE`` with the sink's own columns and anything else with ``200``, or
as a test says: a redirect, or closing without a word. Bare sockets stand
for a server that never answers or cuts its answer short, and a forwarding
proxy for the one HTTP_PROXY names. Every outcome here is the one the sink
gave when it sent with requests. tests/integration/test_clickhouse_sink.py
drives the sink against a real clickhouse-server.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from formats.record import Record
from receiver.config.model import ClickHouseSinkConfig, RouteConfig, default_config
from receiver.deliver.batches import Group
from receiver.deliver.building import BatchBuilder, Segments, SinkPlan
from receiver.deliver.dead_letters import DeadLetters
from receiver.deliver.registry import column_encoder, payload_encoder
from receiver.deliver.sinks.clickhouse import (
    COLUMNS,
    ClickHouseSink,
    clickhouse_payload,
    create_table_sql,
)
from receiver.deliver.worker import SinkWorker, WorkerStats
from receiver.spool.segment import Entry, encode_segment, read_summary
from receiver.spool.store import SpoolStore
from tests.helpers import encoding_builders

USER = "wr\u00efter"
PASSWORD = "p\u00e4ss w\u00f6rd-42"  # non-ASCII and an inner space: headers carry UTF-8 bytes

INSERT_PATH = (  # the query as requests encoded it (quote_plus), written out
    "/?query=INSERT+INTO+%60default%60.%60logs%60+%28time%2C+time_ns%2C+host%2C+app%2C+severity%2C+"
    "facility%2C+message%2C+source%2C+client_ip%2C+tag%2C+field_keys%2C+field_values%2C+flags%2C+"
    "user_defined_id%2C+machine_group%2C+receive_time%2C+hostname%2C+pack_id%2C+pack_row%29+FORMAT+Native"
    "&decompress=1"
)


@dataclasses.dataclass
class Seen:
    """One request as it arrived: request line, headers (raw bytes of each value), body."""

    method: str
    path: str
    headers: dict[str, bytes]
    body: bytes


class FakeClickHouse:
    """A loopback stand-in for ClickHouse's HTTP interface; ``answer`` decides what each request gets.

    ``answer(seen)`` returns the status, headers and body to send, or None to close the
    connection without a word.
    """

    def __init__(self, answer: Callable[[Seen], tuple[int, dict[str, str], bytes] | None] | None = None) -> None:
        self.seen: list[Seen] = []
        self.answer = answer or describe_or_ok
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                # http.server reads header bytes as Latin-1: encoding back gives the bytes sent.
                headers = {k: v.encode("latin-1") for k, v in self.headers.items()}
                seen = Seen(self.command, self.path, headers, body)
                fake.seen.append(seen)
                answer = fake.answer(seen)
                if answer is None:
                    self.close_connection = True
                    return
                status, extra, out = answer
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def describe_or_ok(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    """ClickHouse's answers to the sink: its own columns to DESCRIBE, an empty 200 to all else."""
    if seen.body.startswith(b"DESCRIBE"):
        return 200, {}, "".join(json.dumps({"name": n, "type": t}) + "\n" for n, t in COLUMNS).encode()
    return 200, {}, b""


@pytest.fixture
def clickhouse() -> Iterator[FakeClickHouse]:
    fake = FakeClickHouse()
    yield fake
    fake.close()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "clickhouse-password"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def make_sink(password_file: Path) -> Iterator[Callable[..., ClickHouseSink]]:
    """``make_sink(url, **config overrides)``: a sink as USER, closed at teardown."""
    made: list[ClickHouseSink] = []

    def make(url: str, **overrides: Any) -> ClickHouseSink:
        options: dict[str, Any] = {"name": "ch", "url": url, "user": USER, "password_file": password_file, **overrides}
        made.append(ClickHouseSink(ClickHouseSinkConfig(**options)))
        return made[-1]

    yield make
    for sink in made:
        sink.close()


def a_group() -> Group:
    record = Record(1_700_000_000, 0, ("_content_",), ["hello"], "10.0.0.9", {})
    return Group("logs", "10.0.0.9", "10.0.0.9", [record], [("__pack_id__", "ABCDEF0123456789-1")], "ABCDEF0123456789-1")


# -- what is sent ----------------------------------------------------------------------


def test_what_goes_on_the_wire(clickhouse: FakeClickHouse, make_sink: Callable[..., ClickHouseSink]) -> None:
    """If a group goes to a table not yet created, then three POSTs go out (CREATE TABLE, DESCRIBE,
    the INSERT as the ``query`` parameter with the rows as the body), each with the credentials in
    X-ClickHouse-User/Key as UTF-8 and its length; a SELECT carries readonly=2. No credential is in a URL."""
    sink = make_sink(clickhouse.url)
    group = a_group()
    assert sink.send(group).kind == "ok"
    assert sink.select("SELECT 1") == b""
    assert [(s.method, s.path) for s in clickhouse.seen] == [
        ("POST", "/"), ("POST", "/"), ("POST", INSERT_PATH), ("POST", "/?readonly=2&max_execution_time=60"),
    ]
    assert [s.body for s in clickhouse.seen] == [
        create_table_sql("default", "logs").encode(),
        b"DESCRIBE TABLE `default`.`logs` FORMAT JSONEachRow",
        clickhouse_payload(sink.config, group),
        b"SELECT 1",
    ]
    for seen in clickhouse.seen:
        assert seen.headers["X-ClickHouse-User"] == USER.encode("utf-8")
        assert seen.headers["X-ClickHouse-Key"] == PASSWORD.encode("utf-8")
        assert seen.headers["Content-Length"] == str(len(seen.body)).encode()
        assert "Transfer-Encoding" not in seen.headers and "Authorization" not in seen.headers
        assert "user=" not in seen.path and "password=" not in seen.path


def group_to(table: str, n: int) -> Group:
    """The ``n``-th group of a batch, for ``table``."""
    pack_id = f"ABCDEF0123456789-{n:X}"
    record = Record(1_700_000_000 + n, 0, ("_content_",), [f"line {n}"], f"10.0.0.{n}", {})
    return Group(table, f"10.0.0.{n}", f"10.0.0.{n}", [record], [("__pack_id__", pack_id)], pack_id)


def inserts(fake: FakeClickHouse) -> list[Seen]:
    return [seen for seen in fake.seen if "query=INSERT" in seen.path]


def test_a_batch_is_one_insert_per_table(clickhouse: FakeClickHouse, make_sink: Callable[..., ClickHouseSink]) -> None:
    """If a batch's groups go to one table, then one INSERT carries them, its body their payloads in order;
    if routes send them to two tables, then one INSERT a table, in the order the tables first come."""
    sink = make_sink(clickhouse.url)
    batch = [group_to("logs", n) for n in range(1, 4)]
    assert sink.send_batch(batch).kind == "ok"
    (insert,) = inserts(clickhouse)
    assert insert.path == INSERT_PATH
    assert insert.body == b"".join(clickhouse_payload(sink.config, group) for group in batch)
    clickhouse.seen.clear()
    mixed = [group_to("audit", 4), group_to("logs", 5), group_to("audit", 6)]
    assert sink.send_batch(mixed).kind == "ok"
    audit, logs = inserts(clickhouse)
    assert "%60audit%60" in audit.path and "%60logs%60" in logs.path
    assert audit.body == clickhouse_payload(sink.config, mixed[0]) + clickhouse_payload(sink.config, mixed[2])
    assert logs.body == clickhouse_payload(sink.config, mixed[1])
    assert sink.send_batch([]).kind == "ok"


def test_a_table_that_took_its_groups_is_not_sent_them_again(make_sink: Callable[..., ClickHouseSink]) -> None:
    """If a batch's insert into one table is accepted and the next table's is refused for now, then a retry
    of the batch sends only the refused table's groups; a new batch sends all of its own."""
    refusing = {"logs"}

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if any(f"%60{table}%60" in seen.path for table in refusing) and "query=INSERT" in seen.path:
            return 500, {}, b"Code: 252, e.displayText() = DB::Exception: Too many parts (300)."
        return describe_or_ok(seen)

    fake = FakeClickHouse(answer)
    try:
        sink = make_sink(fake.url)
        batch = [group_to("audit", 1), group_to("logs", 2)]
        outcome = sink.send_batch(batch)
        assert outcome.kind == "quota" and "code 252" in outcome.reason
        assert [("audit" in s.path, "logs" in s.path) for s in inserts(fake)] == [(True, False), (False, True)]
        fake.seen.clear()
        refusing.clear()
        assert sink.send_batch(batch).kind == "ok"
        assert [s.body for s in inserts(fake)] == [clickhouse_payload(sink.config, batch[1])]
        fake.seen.clear()
        assert sink.send_batch([group_to("audit", 3), group_to("logs", 4)]).kind == "ok"
        assert len(inserts(fake)) == 2
    finally:
        fake.close()


def refusing_for_good(table: str) -> Callable[[Seen], tuple[int, dict[str, str], bytes]]:
    """ClickHouse refusing every insert into ``table`` for good (a damaged block), the table being ours."""

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if f"%60{table}%60" in seen.path and "query=INSERT" in seen.path:
            return 500, {}, b"Code: 40, e.displayText() = DB::Exception: Checksum doesn't match: corrupted data."
        return describe_or_ok(seen)

    return answer


def test_a_refusal_for_good_names_the_groups_an_earlier_table_stored(make_sink: Callable[..., ClickHouseSink]) -> None:
    """If a batch's insert into one table is accepted and the next table's is refused for good, then the refusal
    names the accepted table's groups as stored (they are delivered, not dead letters); with one table, none."""
    fake = FakeClickHouse(refusing_for_good("logs"))
    try:
        sink = make_sink(fake.url)
        batch = [group_to("audit", 1), group_to("logs", 2), group_to("audit", 3)]
        outcome = sink.send_batch(batch)
        assert outcome.kind == "permanent" and "code 40" in outcome.reason
        assert outcome.stored == {batch[0].pack_id, batch[2].pack_id}
        alone = sink.send_batch([group_to("logs", 4)])
        assert alone.kind == "permanent" and alone.stored == frozenset()
    finally:
        fake.close()


def test_a_bad_destination_holds_the_whole_batch(clickhouse: FakeClickHouse, make_sink: Callable[..., ClickHouseSink]) -> None:
    """If one group of a batch names a table that is not a plain identifier, then the batch is not-deliverable
    and nothing of it is sent (the cursor waits for the route to be fixed, as it did group by group)."""
    outcome = make_sink(clickhouse.url).send_batch([group_to("logs", 1), group_to("bad-name", 2)])
    assert outcome.kind == "not-deliverable" and "'bad-name'" in outcome.reason
    assert clickhouse.seen == []


# -- no answer -------------------------------------------------------------------------


def test_no_answer_in_time_is_retry(make_sink: Callable[..., ClickHouseSink]) -> None:
    """If the server accepts the connection but never answers, then the outcome is retry once
    ``timeout_seconds`` have passed, naming the timeout as before (``ReadTimeout``), and the request
    is not sent again at once (the server may still be at work on the rows)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        # Should the timeout not apply, closing the socket resets the connection: a wrong outcome, not a hang.
        watchdog = threading.Timer(10.0, listening.close)
        watchdog.start()
        try:
            sink = make_sink(f"http://127.0.0.1:{listening.getsockname()[1]}", create_table=False, timeout_seconds=0.5)
            started = time.monotonic()
            outcome = sink.send(a_group())
            elapsed = time.monotonic() - started
        finally:
            watchdog.cancel()
        listening.setblocking(False)
        connections = []  # those the kernel accepted for us, never answered
        with contextlib.suppress(BlockingIOError):
            while True:
                connections.append(listening.accept()[0])
        for connection in connections:
            connection.close()
    assert outcome.kind == "retry", outcome
    assert "ReadTimeout: " in outcome.reason and "timed out" in outcome.reason, outcome.reason
    assert elapsed < 5
    assert len(connections) == 1


def test_a_redirect_is_not_followed(make_sink: Callable[..., ClickHouseSink]) -> None:
    """If the server answers with a redirect, then the sink does not follow it (the credentials would go
    along): the outcome is not-deliverable, naming where it pointed, and nothing else is asked."""
    fake = FakeClickHouse(lambda seen: (302, {"Location": fake.url + "/elsewhere"}, b""))
    try:
        outcome = make_sink(fake.url, create_table=False).send(a_group())
    finally:
        fake.close()
    assert outcome.kind == "not-deliverable", outcome
    assert "HTTP 302" in outcome.reason and f"redirected to {fake.url}/elsewhere;" in outcome.reason, outcome.reason
    assert [s.path for s in fake.seen] == ["/"]


def test_a_connection_closed_before_any_answer_is_tried_again_at_once(
    make_sink: Callable[..., ClickHouseSink],
) -> None:
    """If the connection closes with no answer (as a kept-alive one the server has just closed), then the
    same request goes again at once, once: here the second gets its answer, and the group is delivered."""
    dropped: list[Seen] = []

    def drop_the_first(seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        if not dropped:
            dropped.append(seen)
            return None
        return describe_or_ok(seen)

    fake = FakeClickHouse(drop_the_first)
    try:
        outcome = make_sink(fake.url, create_table=False).send(a_group())
    finally:
        fake.close()
    assert outcome.kind == "ok", outcome
    assert len(fake.seen) == 3
    assert fake.seen[0] == fake.seen[1] and fake.seen[0].body.startswith(b"DESCRIBE")
    assert fake.seen[2].path == INSERT_PATH


def test_a_connection_closed_twice_is_retry(make_sink: Callable[..., ClickHouseSink]) -> None:
    """If the request sent again meets a closed connection too, then the outcome is retry, named
    ``ConnectionError`` as before, after two requests: the worker's backoff does the rest."""
    fake = FakeClickHouse(lambda seen: None)
    try:
        outcome = make_sink(fake.url, create_table=False).send(a_group())
    finally:
        fake.close()
    assert outcome.kind == "retry", outcome
    assert "ConnectionError: ('Connection aborted.'" in outcome.reason, outcome.reason
    assert len(fake.seen) == 2


def test_an_answer_cut_short_is_not_sent_again(make_sink: Callable[..., ClickHouseSink]) -> None:
    """If the connection breaks while the answer is read (the server has begun to answer, so it had
    the request), then the outcome is retry, and the request is not sent again at once."""
    seen: list[bytes] = []

    with socket.create_server(("127.0.0.1", 0)) as listening:

        def answer_in_part() -> None:
            connection, _ = listening.accept()
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
                while len(body) < length:  # all of it: unread bytes would make the close a reset
                    body += connection.recv(65536)
                seen.append(request)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            listening.settimeout(1.0)  # a request sent again would be accepted and counted
            try:
                again, _ = listening.accept()
            except TimeoutError:
                return
            with again:
                seen.append(again.recv(65536))

        thread = threading.Thread(target=answer_in_part, daemon=True)
        thread.start()
        outcome = make_sink(f"http://127.0.0.1:{listening.getsockname()[1]}", create_table=False, timeout_seconds=5.0).send(a_group())
        thread.join(10)
    assert outcome.kind == "retry", outcome
    assert "IncompleteRead" in outcome.reason, outcome.reason
    assert len(seen) == 1


# -- proxies ---------------------------------------------------------------------------


class ForwardingProxy:
    """A forward proxy on loopback: records each request's absolute URL and Proxy-Authorization,
    answers 407 unless that is ``required`` (when set), and forwards the rest without it."""

    def __init__(self, required: str | None = None) -> None:
        self.forwarded: list[str] = []
        self.credentials: list[str | None] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # a forward proxy gets the absolute URL
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.credentials.append(self.headers.get("Proxy-Authorization"))
                if required is not None and self.headers.get("Proxy-Authorization") != required:
                    self.send_response(407)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                proxy.forwarded.append(self.path)
                hop = ("proxy-connection", "proxy-authorization", "host")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                with urllib3.PoolManager() as pool:
                    upstream = pool.request("POST", self.path, body=body, headers=headers, retries=False)
                self.send_response(upstream.status)
                self.send_header("Content-Length", str(len(upstream.data)))
                self.end_headers()
                self.wfile.write(upstream.data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def only_http_proxy(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``only_http_proxy(url)``: HTTP_PROXY is ``url``, and no other proxy setting applies."""

    def use(url: str) -> None:
        for name in ("http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", url)

    return use


def test_the_environments_proxy_carries_requests(
    clickhouse: FakeClickHouse, make_sink: Callable[..., ClickHouseSink], only_http_proxy: Callable[[str], None]
) -> None:
    """If HTTP_PROXY names a proxy (and NO_PROXY does not exempt the server), then requests go through it,
    as with any HTTP client an operator configures by environment, credentials still in headers."""
    proxy = ForwardingProxy()
    only_http_proxy(f"http://127.0.0.1:{proxy.port}")
    sink = make_sink(clickhouse.url, create_table=False)
    try:
        outcome = sink.send(a_group())
    finally:
        sink.close()
        proxy.close()
    assert outcome.kind == "ok", outcome.reason
    assert proxy.forwarded == [clickhouse.url + "/", clickhouse.url + INSERT_PATH]
    assert proxy.credentials == [None, None]
    assert [s.path for s in clickhouse.seen] == ["/", INSERT_PATH]
    assert all(s.headers["X-ClickHouse-Key"] == PASSWORD.encode("utf-8") for s in clickhouse.seen)


def test_the_proxys_own_credentials_go_to_it(
    clickhouse: FakeClickHouse, make_sink: Callable[..., ClickHouseSink], only_http_proxy: Callable[[str], None]
) -> None:
    """If HTTP_PROXY holds the proxy's user and password (percent-encoded), then each request carries
    them as Proxy-Authorization (Basic), as requests sent them, and the proxy lets it through."""
    proxy = ForwardingProxy(required="Basic " + base64.b64encode(b"proxy user:p@ss:word").decode())
    only_http_proxy(f"http://proxy%20user:p%40ss%3Aword@127.0.0.1:{proxy.port}")
    sink = make_sink(clickhouse.url, create_table=False)
    try:
        outcome = sink.send(a_group())
    finally:
        sink.close()
        proxy.close()
    assert outcome.kind == "ok", outcome.reason
    assert proxy.forwarded == [clickhouse.url + "/", clickhouse.url + INSERT_PATH]


# -- through the delivery worker --------------------------------------------------------

T0 = 1_795_323_666 * 10**9


def run_worker_once(
    tmp_path: Path, sink: ClickHouseSink, routes: tuple[RouteConfig, ...] = (), stats: list[WorkerStats] | None = None
) -> tuple[SpoolStore, DeadLetters, BatchBuilder, SinkPlan]:
    """Spool one segment of three senders' streamlog lines (relayed by one peer, sources 10.0.0.0 to 10.0.0.2)
    and run ``sink``'s worker until its cursor passes it; batches are built from columns and encoded, as worker
    processes do."""
    config = dataclasses.replace(
        default_config(), state_directory=tmp_path, sinks=(sink.config,), routes=routes,
        deliver=dataclasses.replace(default_config().deliver, default_sink=sink.name),
    )
    plan = SinkPlan(sink.name, "P", 100, 1 << 20, payload_encoder(sink.config), column_encoder(sink.config))
    frames = [b"0.1 sys_tag 1795323666 10.0.0.%d web-1 user.notice 1 app 7 - message %d" % (i % 3, i) for i in range(9)]
    blob = encode_segment([Entry(T0, "127.0.0.1", 1, "tcp-11111", "tcp", frames)])
    store = SpoolStore(tmp_path / "spool")
    store.append(blob, read_summary(blob))
    builder = BatchBuilder(config)

    dead = DeadLetters(tmp_path / "dead")
    worker = SinkWorker(
        sink, SpoolStore(tmp_path / "spool", readonly=True), **encoding_builders(builder, plan),
        dead_letters=dead, backoff=lambda attempt, kind: 0.0, poll_seconds=0.01,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    for _ in range(1000):
        if store.cursor(sink.name) >= 1:
            break
        stop.wait(0.01)
    stop.set()
    thread.join(5)
    if stats is not None:
        stats.append(worker.stats)
    assert store.cursor(sink.name) == 1
    if not routes:  # a route's filter reads records
        assert builder.column_batches == 1
    return store, dead, builder, plan


def test_the_worker_sends_a_batch_as_one_insert(
    clickhouse: FakeClickHouse, make_sink: Callable[..., ClickHouseSink], tmp_path: Path
) -> None:
    """If delivery sends a batch of three senders' groups, then one INSERT carries the three groups' blocks,
    made from columns, each the bytes its records give."""
    sink = make_sink(clickhouse.url, table="logs")
    _, _, builder, plan = run_worker_once(tmp_path, sink)
    (insert,) = inserts(clickhouse)
    segments: Segments = [(1, SpoolStore(tmp_path / "spool", readonly=True).get(1) or b"")]
    by_records = builder.build(dataclasses.replace(plan, column_encoder=None), 1, segments)
    assert [g.count for g in by_records.groups] == [3, 3, 3]
    assert insert.body == b"".join(clickhouse_payload(sink.config, group) for group in by_records.groups)


def test_a_batch_refused_for_good_is_kept_group_by_group(make_sink: Callable[..., ClickHouseSink], tmp_path: Path) -> None:
    """If the server refuses a batch's insert for good (a damaged block) while the table is ours, then every group
    of the batch becomes its own dead letter, with its records, and the cursor moves past the batch."""

    def refuse(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if "query=INSERT" in seen.path:
            return 500, {}, b"Code: 40, e.displayText() = DB::Exception: Checksum doesn't match: corrupted data."
        return describe_or_ok(seen)

    fake = FakeClickHouse(refuse)
    try:
        _, dead, _, _ = run_worker_once(tmp_path, make_sink(fake.url, table="logs"))
        assert len(inserts(fake)) == 1
    finally:
        fake.close()
    letters = dead.letters()
    assert [letter.records for letter in letters] == [3, 3, 3]
    kept = [dead.load(letter.path) for letter in letters]
    assert sorted(str(r.get("msg")) for group in kept for r in group.records) == [f"message {i}" for i in range(9)]


def test_only_the_refused_tables_groups_become_dead_letters(make_sink: Callable[..., ClickHouseSink], tmp_path: Path) -> None:
    """If routes split a batch over two tables and the second refuses for good after the first stored its groups,
    then only the second table's groups become dead letters (a replay of the first's would store them twice),
    and the first's count as delivered."""
    fake = FakeClickHouse(refusing_for_good("audit"))
    try:
        sink = make_sink(fake.url, table="logs")
        # 10.0.0.0 comes first, so its table (logs) is inserted first.
        routes = (RouteConfig(sink=sink.name, filter="source=10.0.0.1", destination="audit"),
                  RouteConfig(sink=sink.name))
        worker_stats: list[WorkerStats] = []
        _, dead, _, _ = run_worker_once(tmp_path, sink, routes, worker_stats)
        assert [("logs" in s.path, "audit" in s.path) for s in inserts(fake)] == [(True, False), (False, True)]
    finally:
        fake.close()
    letters = dead.letters()
    assert [letter.records for letter in letters] == [3]
    (kept,) = [dead.load(letter.path) for letter in letters]
    assert sorted(str(r.get("msg")) for r in kept.records) == ["message 1", "message 4", "message 7"]
    (stats,) = worker_stats
    assert (stats.delivered_records, stats.dead_lettered_records) == (6, 3)
