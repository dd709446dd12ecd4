"""Scenarios of the delivering side: the upstream down, slow, failing, refusing.

Each scenario runs a real receiver (``receiver run``, its delivery process
and that process's workers) with one SLS sink, in front of the SLS test
server of tests/support/sls_server.py, through :class:`_Front`: a small HTTP
relay on a fixed loopback port that can refuse connections (the upstream is
down), pace requests (it is slow) or pass them through. A fleet of paced
TCP senders (:class:`_Fleet`, one per loopback address) sends
:func:`~bench.blast.ali_line` lines, each with its own ``seq=``, before,
during and after the trouble; every line the server accepted is counted by
its number against what was sent, so ``lost`` and ``duplicated`` are counts
of real lines, not of requests.

Meanwhile, every half second: the resident memory (VmRSS) of the daemon
and of the delivery process with its workers, the frames the spool holds,
and the sink's counters from the delivery stats file (concurrency,
retries). Memory is judged from the moment the trouble starts (delivery
warmed up) to the end of the catch-up: its peak may exceed the start by
:data:`_MEMORY_BOUND_KB` at most, whatever the length of the outage.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import http.client
import http.server
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lz4.block

from bench.blast import ali_line, ali_seq
from formats.sls_pb import decode_log_group
from receiver.deliver.stats import read_stats
from reliability.outcome import Outcome, Size, count_keys, scenario
from tests.support.processes import descendants, rss_kb
from tests.support.programs import Receiver
from tests.support.sls_server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, SlsTestServer

__all__: list[str] = []

_SINK = "sls"
_MEMORY_BOUND_KB = 50 * 1024
"""How far above its level when the trouble starts a process's resident memory may peak."""
_MAX_RECORDS = 500
"""Per request: small groups, so that a paced upstream really holds delivery back."""
_TICK_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How long each phase lasts at one size, and how fast the sender sends."""

    trouble_seconds: float
    lead_seconds: float = 2.0
    """Sending (and delivering) before the trouble starts."""
    tail_seconds: float = 2.0
    """Sending after it ends."""
    lines_per_second: float = 2000.0
    """All senders together."""
    senders: int = 4
    catch_up_timeout: float = 90.0

    @property
    def lines(self) -> int:
        return int(self.lines_per_second * (self.lead_seconds + self.trouble_seconds + self.tail_seconds))


def _plans(ci: float, full: float) -> dict[str, _Plan]:
    return {
        "ci": _Plan(trouble_seconds=ci, catch_up_timeout=60.0),
        "full": _Plan(trouble_seconds=full, lead_seconds=5.0, tail_seconds=5.0, catch_up_timeout=240.0),
    }


# -- the relay in front of the test server --------------------------------------------------


class _Front:
    """An HTTP relay on one loopback port in front of the SLS test server.

    :meth:`down` refuses connections on the port (and resets the open ones)
    until :meth:`up` listens on it again; ``pace_seconds`` lets at most one
    request through per that many seconds (the others wait their turn).
    Before going down it lets the requests it forwards finish, so no answer
    the server gave is lost on the way: a resend would then be a bug, not
    the relay's doing. It keeps each forwarded request's start and end, to
    tell how many were in flight at once.
    """

    def __init__(self, upstream: SlsTestServer) -> None:
        self.upstream = upstream
        self.pace_seconds = 0.0
        self.refused_while_down = 0
        """Requests that came on a connection open before the outage, closed unanswered."""
        self._lock = threading.Condition()
        self._down = False
        self._in_flight = 0
        self._connections: set[socket.socket] = set()
        self._spans: list[_Span] = []
        self._pace_lock = threading.Lock()
        self._next_request_at = 0.0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Listen (again, on the same port)."""
        handler = type("_BoundRelayHandler", (_RelayHandler,), {"front": self})
        httpd = _RelayServer(("127.0.0.1", self.port), handler)
        self.port = int(httpd.server_address[1])
        with self._lock:
            self._down = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening and reset every open connection, once the forwarded requests are answered."""
        with self._lock:
            self._down = True
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=60)
            connections = list(self._connections)
        self._stop_listening()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.down()

    def spans(self) -> list[_Span]:
        with self._lock:
            return list(self._spans)

    def _stop_listening(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(5)

    # Called from the handler threads.

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _enter(self) -> bool:
        """Count one request in; False when the relay is going down (the request is not forwarded)."""
        with self._lock:
            if self._down:
                self.refused_while_down += 1
                return False
            self._in_flight += 1
            return True

    def _leave(self, span: _Span) -> None:
        with self._lock:
            self._in_flight -= 1
            self._spans.append(span)
            self._lock.notify_all()

    def _wait_turn(self) -> None:
        """With a pace set, one request per ``pace_seconds``, in turn."""
        with self._pace_lock:
            pace = self.pace_seconds
            if pace <= 0:
                return
            delay = self._next_request_at - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, pace))
            self._next_request_at = time.monotonic() + pace


@dataclasses.dataclass(frozen=True)
class _Span:
    """One request the relay forwarded: when (monotonic), the answer, and for a refusal its group's pack id."""

    start: float
    end: float
    status: int
    pack_id: str


def _pack_id(body: bytes, headers: Any) -> str:
    """The ``__pack_id__`` tag of a PutLogs body ("" if it cannot be read)."""
    try:
        raw = body
        if headers.get("x-log-compresstype") == "lz4":
            raw = lz4.block.decompress(body, uncompressed_size=int(headers.get("x-log-bodyrawsize") or 0))
        return next((v for k, v in decode_log_group(raw).tags if k == "__pack_id__"), "")
    except Exception:  # a body the server refuses anyway: no pack id to report
        return ""


class _RelayServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # listen on the same port again right after going down

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection reset by down() is the point, not an error worth a traceback


_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"})


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sink's requests.Session uses it
    front: _Front

    def setup(self) -> None:
        super().setup()
        self.front._opened(self.connection)

    def finish(self) -> None:
        self.front._closed(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        front = self.front
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not front._enter():
            self.close_connection = True  # unanswered, as a dying upstream does
            return
        started = time.monotonic()
        status = 0
        try:
            front._wait_turn()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream = http.client.HTTPConnection("127.0.0.1", front.upstream.port, timeout=60)
            try:
                upstream.request("POST", self.path, body=body, headers=headers)
                response = upstream.getresponse()
                answer = response.read()
                status = response.status
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            finally:
                upstream.close()
        finally:
            pack_id = _pack_id(body, self.headers) if status != 200 else ""  # only refusals are looked at
            front._leave(_Span(started, time.monotonic(), status, pack_id))


# -- the senders ---------------------------------------------------------------------------


class _Fleet:
    """``senders`` paced TCP connections from 127.0.0.1, 127.0.0.2, ...: a fleet, not one peer.

    The sink keeps one sender's groups in order, one in flight at a time, so
    only several peers let it have several requests in flight (and show
    what a quota answer does to that). Sender ``j`` sends the
    :func:`~bench.blast.ali_line` lines ``seq`` in ``[starts[j], starts[j+1])``,
    ``lines_per_second / senders`` a second, on its own thread.
    """

    def __init__(self, port: int, lines: int, lines_per_second: float, *, senders: int, run: str) -> None:
        self.starts = [j * lines // senders for j in range(senders + 1)]
        self.sent = [0] * senders
        """Lines each sender handed to the kernel."""
        self.errors: list[OSError] = []
        self._rate = lines_per_second / senders
        self._run = run
        self._stop = threading.Event()
        self._sockets = [
            socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(f"127.0.0.{j + 1}", 0))
            for j in range(senders)
        ]
        self._threads = [
            threading.Thread(target=self._send, args=(j,), name=f"fleet-{j}", daemon=True) for j in range(senders)
        ]

    @property
    def lines_sent(self) -> int:
        return sum(self.sent)

    def expected(self) -> Iterator[int]:
        """The ``seq`` of every line sent."""
        for j, count in enumerate(self.sent):
            yield from range(self.starts[j], self.starts[j] + count)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for every sender to finish; whether they all did."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def close(self) -> None:
        self._stop.set()
        self.join(10)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _send(self, j: int) -> None:
        sock, first, end = self._sockets[j], self.starts[j], self.starts[j + 1]
        chunk = max(1, int(self._rate / 20))  # twenty writes a second
        began = time.monotonic()
        try:
            for at in range(first, end, chunk):
                due = began + (at - first) / self._rate - time.monotonic()
                if self._stop.wait(max(0.0, due)):
                    return
                lines = [ali_line(seq, run=self._run) for seq in range(at, min(at + chunk, end))]
                sock.sendall(b"".join(lines))
                self.sent[j] += len(lines)
        except OSError as e:
            self.errors.append(e)
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)  # done: the receiver commits what it read


# -- what the server got ------------------------------------------------------------------


class _Tally:
    """The lines the SLS test server accepted, by ``seq``, read incrementally from its groups."""

    def __init__(self, server: SlsTestServer, starts: list[int]) -> None:
        self._server = server
        self._groups_read = 0
        self._starts = starts
        self.seqs: Counter[int] = Counter()
        self.unkeyed = 0
        self.out_of_order = 0
        """Lines that arrived before a later line of the same sender had."""
        self.prefixes = starts[:-1]
        """Per sender: every line of it below this ``seq`` has arrived."""
        self._last = [start - 1 for start in starts[:-1]]

    def update(self) -> None:
        groups = self._server.groups
        for received in groups[self._groups_read :]:
            for log in received.group.logs:
                seq = ali_seq(dict(log.contents).get("msg", "").encode())
                if seq is None:
                    self.unkeyed += 1
                    continue
                self.seqs[seq] += 1
                j = bisect.bisect_right(self._starts, seq) - 1
                if 0 <= j < len(self._last):
                    if seq < self._last[j] and self.seqs[seq] == 1:
                        self.out_of_order += 1
                    self._last[j] = max(self._last[j], seq)
        self._groups_read = len(groups)
        for j, prefix in enumerate(self.prefixes):
            while prefix in self.seqs:
                prefix += 1
            self.prefixes[j] = prefix

    def has_all(self, sent: list[int]) -> bool:
        """Whether every sender's first ``sent[j]`` lines have arrived."""
        return all(self.prefixes[j] >= self._starts[j] + n for j, n in enumerate(sent))

    @property
    def arrived(self) -> int:
        """Lines arrived in every sender's unbroken run from its first."""
        return sum(prefix - start for prefix, start in zip(self.prefixes, self._starts, strict=False))


# -- the run ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Sample:
    seconds: float
    """Since the trouble started (negative before)."""
    phase: str
    daemon_kb: int
    delivery_kb: int
    """The delivery process and its workers, summed."""
    spool_frames: int
    concurrency: int | None
    retried: int | None
    arrived: int
    """Lines arrived so far (each sender's unbroken run from its first)."""


@dataclasses.dataclass
class _Run:
    """One scenario's receiver, server, relay and sender, and what was seen of them."""

    directory: Path
    server: SlsTestServer
    front: _Front
    receiver: Receiver
    sender: _Fleet
    tally: _Tally
    samples: list[_Sample] = dataclasses.field(default_factory=list)
    trouble_at: float = 0.0
    phase: str = "lead"

    def rss_kb(self) -> tuple[int, int]:
        daemon = self.receiver.pid
        if daemon is None:
            return 0, 0
        return rss_kb(daemon) or 0, sum(rss_kb(pid) or 0 for pid in descendants(daemon))

    def sink_stats(self) -> dict[str, Any]:
        stats = read_stats(self.receiver.state_directory) or {}
        sink = stats.get("sinks", {}).get(_SINK)
        return sink if isinstance(sink, dict) else {}

    def tick(self) -> None:
        """Take one sample (about half a second's worth of work when paced by :meth:`watch`)."""
        self.tally.update()
        daemon_kb, delivery_kb = self.rss_kb()
        try:
            frames = self.receiver.spool_stats().frames
        except (OSError, FileNotFoundError):
            frames = -1
        sink = self.sink_stats()
        concurrency, retried = sink.get("concurrency"), sink.get("retried")
        self.samples.append(_Sample(
            round(time.monotonic() - self.trouble_at, 2) if self.trouble_at else -1.0, self.phase,
            daemon_kb, delivery_kb, frames,
            concurrency if isinstance(concurrency, int) else None,
            retried if isinstance(retried, int) else None,
            self.tally.arrived,
        ))

    def watch(self, seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
        """Sample every tick for ``seconds`` or until ``until()``; whether ``until`` came true."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tick()
            if until():
                return True
            time.sleep(max(0.0, min(_TICK_SECONDS, deadline - time.monotonic())))
        self.tick()
        return until()

    def in_phase(self, *phases: str) -> list[_Sample]:
        return [s for s in self.samples if s.phase in phases]


def _write_keys(path: Path, secret: str) -> None:
    """The credentials file (mode 0600), written aside and renamed: a reader never sees half of it."""
    aside = path.with_name(f".{path.name}.new")
    aside.write_text(f"access_key_id = {DEFAULT_ACCESS_KEY_ID}\naccess_key_secret = {secret}\n")
    os.chmod(aside, 0o600)
    aside.replace(path)


def _sls_sink(endpoint: str, keys: Path) -> dict[str, object]:
    """One SLS sink at ``endpoint`` (project ``p``, logstore ``syslog``) with the keys in ``keys``."""
    return {
        "type": "sls", "name": _SINK, "endpoint": endpoint, "project": "p", "logstore": "syslog",
        "credentials_file": str(keys), "max_records": _MAX_RECORDS,
    }


@contextlib.contextmanager
def _running(plan: _Plan, name: str) -> Iterator[_Run]:
    """A receiver delivering to the SLS test server through a relay, and a paced sender, started."""
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"reliability-{name}-")))
        server = stack.enter_context(SlsTestServer())
        front = _Front(server)
        stack.callback(front.close)
        _write_keys(directory / "sls.keys", DEFAULT_ACCESS_KEY_SECRET)
        sink = _sls_sink(front.endpoint, directory / "sls.keys")
        receiver = Receiver(directory / "receiver", udp=False, deliver={}, settings={"sinks": [sink]})
        stack.callback(receiver.close)
        receiver.start()
        sender = _Fleet(receiver.port, plan.lines, plan.lines_per_second, senders=plan.senders, run=name)
        stack.callback(sender.close)
        run = _Run(directory, server, front, receiver, sender, _Tally(server, sender.starts))
        try:
            yield run
        except BaseException:
            print(receiver.log_tail(80))
            raise


def _outage(
    size: Size,
    name: str,
    plan: _Plan,
    start_trouble: Callable[[_Run], None],
    end_trouble: Callable[[_Run], None],
    check: Callable[[_Run, Outcome], None],
) -> Outcome:
    """The shared course: send, trouble, recover, catch up; then count every line and judge memory.

    ``check`` adds the scenario's own expectations (and notes) to the outcome.
    """
    with _running(plan, name) as run:
        run.sender.start()
        # Delivery works before the trouble (and has warmed up: the memory baseline is taken after).
        run.watch(plan.lead_seconds)
        if not run.watch(20.0, until=lambda: run.tally.arrived > 0):
            raise RuntimeError(f"nothing delivered before the trouble; log:\n{run.receiver.log_tail(60)}")
        run.phase = "trouble"
        run.trouble_at = time.monotonic()
        start_trouble(run)
        run.watch(plan.trouble_seconds)
        end_trouble(run)
        recovered_at = time.monotonic()
        sent_before_recovery = list(run.sender.sent)
        run.phase = "recovery"
        caught_up = run.watch(plan.catch_up_timeout, until=lambda: run.tally.has_all(sent_before_recovery))
        catch_up_seconds = time.monotonic() - recovered_at
        run.sender.join(plan.catch_up_timeout)
        sent = run.sender.lines_sent
        everything = run.watch(plan.catch_up_timeout, until=lambda: run.tally.has_all(run.sender.sent))
        run.watch(1.0)  # a duplicate would show up now
        expected = set(run.sender.expected())
        lost, duplicated, unexpected = count_keys(expected, run.tally.seqs.elements())
        outcome = Outcome(
            sent=sent,
            stored=run.receiver.spool_stats().frames_written,
            delivered=sum(1 for seq in run.tally.seqs if seq in expected),
            lost=lost,
            duplicated=duplicated,
        )
        outcome.expect(not run.sender.errors, f"a sender failed: {run.sender.errors[:1]}")
        outcome.expect(sent == plan.lines, f"the sender sent {sent:,} of {plan.lines:,} lines")
        outcome.expect(lost == 0, f"{lost:,} lines never delivered")
        outcome.expect(duplicated == 0, f"{duplicated:,} lines delivered more than once")
        outcome.expect(unexpected + run.tally.unkeyed == 0, f"{unexpected + run.tally.unkeyed} records nobody sent")
        outcome.expect(caught_up, f"not caught up within {plan.catch_up_timeout:g} s of the recovery")
        outcome.expect(everything, "the lines sent after the recovery were not all delivered")
        outcome.expect(run.tally.out_of_order == 0, f"{run.tally.out_of_order} lines overtook an earlier line of their sender")
        dead = sorted(p.name for p in (run.receiver.state_directory / "dead-letters").rglob("*") if p.is_file())
        outcome.expect(not dead, f"dead letters written: {dead[:5]}")
        outcome.notes["trouble_s"] = plan.trouble_seconds
        outcome.notes["first_after_s"] = _first_delivery_after_recovery(run, plan)
        outcome.notes["catch_up_s"] = round(catch_up_seconds, 1)
        _judge_memory(run, outcome)
        check(run, outcome)
        outcome.notes["requests"] = run.server.request_count
        outcome.notes["refused"] = len(run.server.refusals)
        if not outcome.ok:
            print(run.receiver.log_tail(60))
        return outcome


def _judge_memory(run: _Run, outcome: Outcome) -> None:
    """Peak resident memory of the daemon and of delivery, from the trouble's start to the end."""
    judged = run.in_phase("trouble", "recovery")
    if not judged:
        outcome.failures.append("no memory samples")
        return
    for who, series in (("daemon", [s.daemon_kb for s in judged]), ("delivery", [s.delivery_kb for s in judged])):
        start, peak, end = series[0], max(series), series[-1]
        outcome.notes[f"{who}_rss_mb"] = f"{start / 1024:.0f}->{peak / 1024:.0f}->{end / 1024:.0f}"
        outcome.expect(
            peak - start <= _MEMORY_BOUND_KB,
            f"{who} memory grew from {start / 1024:.0f} to {peak / 1024:.0f} MB (bound +{_MEMORY_BOUND_KB // 1024} MB)",
        )


def _first_delivery_after_recovery(run: _Run, plan: _Plan) -> float | None:
    """Seconds from the recovery to the first sample that saw more lines arrived (the backoff's last wait)."""
    trouble, recovery = run.in_phase("trouble"), run.in_phase("recovery")
    if not trouble:
        return None
    before = trouble[-1].arrived
    moved = next((s for s in recovery if s.arrived > before), None)
    return None if moved is None else round(max(0.0, moved.seconds - plan.trouble_seconds), 1)


def _delivered_during_trouble(run: _Run) -> int:
    """Lines that arrived at the server while the trouble lasted (after its first second)."""
    trouble = [s for s in run.in_phase("trouble") if s.seconds >= 1.0]
    return trouble[-1].arrived - trouble[0].arrived if len(trouble) >= 2 else 0


def _groups_retried(spans: list[_Span], start: float, end: float) -> int:
    """How many different groups were refused between ``start`` and ``end``: each one a retry loop."""
    return len({s.pack_id for s in spans if s.status != 200 and start <= s.start < end and s.pack_id})


# -- the scenarios ------------------------------------------------------------------------

_DOWN = _plans(ci=8.0, full=180.0)


@scenario(
    "upstream_down",
    "SLS unreachable (connection refused) while a sender keeps sending: no line lost or duplicated, "
    "memory within +50 MB, everything delivered once it is back",
)
def upstream_down(size: Size) -> Outcome:
    def check(run: _Run, outcome: Outcome) -> None:
        during = _delivered_during_trouble(run)
        outcome.expect(during == 0, f"{during} lines arrived while the upstream was down (the relay leaked)")
        retried = max((s.retried or 0 for s in run.in_phase("trouble")), default=0)
        outcome.notes["retries"] = retried
        outcome.expect("ConnectionError" in run.receiver.log, "no connection error in the log: was it down?")

    return _outage(size, "upstream_down", _DOWN[size], lambda run: run.front.down(), lambda run: run.front.up(), check)


_SLOW = _plans(ci=8.0, full=120.0)


@scenario(
    "upstream_slow",
    "SLS answers one request a second: the backlog waits in the spool (its frames grow), memory within "
    "+50 MB, nothing lost, delivery catches up once it is fast again",
)
def upstream_slow(size: Size) -> Outcome:
    plan = _SLOW[size]

    def slow(run: _Run) -> None:
        run.front.pace_seconds = 1.0

    def fast(run: _Run) -> None:
        run.front.pace_seconds = 0.0

    def check(run: _Run, outcome: Outcome) -> None:
        trouble = run.in_phase("trouble")
        first, last = trouble[0], trouble[-1]
        grew = last.spool_frames - first.spool_frames
        outcome.notes["spool_frames"] = f"{first.spool_frames:,}->{last.spool_frames:,}"
        outcome.expect(
            grew > plan.lines_per_second * plan.trouble_seconds / 2,
            f"the spool's frames grew by {grew:,} only while delivery was slow",
        )
        during = _delivered_during_trouble(run)
        outcome.notes["delivered_while_slow"] = during
        outcome.expect(during > 0, "nothing delivered while the upstream was slow (it was slow, not down)")
        start = run.trouble_at + 1.5  # the requests already under way when the pace began
        slow_requests = sum(1 for r in run.front.spans() if start <= r.start < run.trouble_at + plan.trouble_seconds)
        outcome.expect(
            slow_requests <= plan.trouble_seconds + 2,
            f"{slow_requests} requests in {plan.trouble_seconds:g} s: the relay did not pace",
        )

    return _outage(size, "upstream_slow", plan, slow, fast, check)


_FAILING = _plans(ci=8.0, full=90.0)


@scenario(
    "upstream_500s",
    "SLS answers every request 500 InternalServerError for a while: retried, not dead-lettered, "
    "no line lost, memory within +50 MB, delivery catches up",
)
def upstream_500s(size: Size) -> Outcome:
    def check(run: _Run, outcome: Outcome) -> None:
        refused = [r for r in run.server.refusals if r.status == 500]
        outcome.notes["answered_500"] = len(refused)
        outcome.expect(len(refused) >= 2, f"only {len(refused)} requests answered 500: was delivery retrying?")

    return _outage(
        size, "upstream_500s", _FAILING[size],
        lambda run: run.server.fail_all(500, "InternalServerError", "reliability scenario"),
        lambda run: run.server.clear_failures(),
        check,
    )


@scenario(
    "upstream_quota",
    "SLS answers 403 WriteQuotaExceed for a while: the sink lowers its concurrency, nothing is "
    "dead-lettered or lost, memory within +50 MB, delivery catches up",
)
def upstream_quota(size: Size) -> Outcome:
    plan = _FAILING[size]

    def check(run: _Run, outcome: Outcome) -> None:
        refused = [r for r in run.server.refusals if r.code == "WriteQuotaExceed"]
        outcome.notes["answered_quota"] = len(refused)
        outcome.expect(len(refused) >= 1, "no request answered WriteQuotaExceed")
        most = run.sink_stats().get("max_concurrency")
        during = [s.concurrency for s in run.in_phase("trouble") if s.concurrency is not None]
        after = [s.concurrency for s in run.in_phase("recovery") if s.concurrency is not None]
        outcome.notes["concurrency"] = f"{most}->{min(during, default='?')}->{after[-1] if after else '?'}"
        outcome.expect(isinstance(most, int) and bool(during) and min(during) < most,
                       "the sink's concurrency did not drop on quota answers")
        # What the upstream saw once the concurrency had dropped: how many groups kept being retried.
        start = run.trouble_at + 2.0
        outcome.notes["groups_retried_at_once"] = _groups_retried(
            run.front.spans(), start, run.trouble_at + plan.trouble_seconds
        )

    return _outage(
        size, "upstream_quota", plan,
        lambda run: run.server.fail_all(403, "WriteQuotaExceed", "reliability scenario: project write quota"),
        lambda run: run.server.clear_failures(),
        check,
    )


@scenario(
    "upstream_401",
    "SLS's AccessKey secret is rotated and requests answered 401 SignatureNotMatch until the new one "
    "is in the credentials file: retried, not dead-lettered, no line lost, delivery catches up",
)
def upstream_401(size: Size) -> Outcome:
    new_secret = "rotated-test-access-key-secret"

    def rotate_at_the_server(run: _Run) -> None:
        run.server.set_credentials(DEFAULT_ACCESS_KEY_ID, new_secret)

    def rotate_in_the_file(run: _Run) -> None:
        _write_keys(run.directory / "sls.keys", new_secret)  # the sink re-reads it on every auth answer

    def check(run: _Run, outcome: Outcome) -> None:
        refused = [r for r in run.server.refusals if r.status == 401]
        outcome.notes["answered_401"] = len(refused)
        outcome.expect(len(refused) >= 2, f"only {len(refused)} requests answered 401")
        outcome.expect({r.code for r in refused} <= {"SignatureNotMatch"},
                       f"401 codes {sorted({r.code for r in refused})}")
        outcome.expect("auth (401 SignatureNotMatch" in run.receiver.log, "the log does not name the 401")

    return _outage(size, "upstream_401", _FAILING[size], rotate_at_the_server, rotate_in_the_file, check)
