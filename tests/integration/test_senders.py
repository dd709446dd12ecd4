"""The receiver with the real senders, over loopback: what arrives is what was sent, exactly once.

Each test starts its own receiver (``receiver run``), its own private sender
(rsyslog, syslog-ng, logger, loggen, or a Python socket), sends, and reads the
spool back with ``SpoolReader``. Loss and duplication figures are printed
(run with ``-rP`` or ``-s`` to see them on passing tests) and recorded as
junit properties.
"""

from __future__ import annotations

import collections
import contextlib
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.blast import BlastSender, ali_line, ali_seq
from formats.framing import DEFAULT_MAX_FRAME_BYTES
from tests.integration.conftest import MakeReceiver, MakeRsyslog, MakeSyslogNg
from tests.support.flood import KILL_SPOOL, kill9_loss_bound_bytes, socket_queues, sysctl_max
from tests.support.programs import LOOPBACK, Receiver, loggen, logger, wait_until
from tests.support.senders import (
    FACILITIES,
    SEVERITIES,
    alibaba_rsyslog_conf,
    run_token,
    sentinel_line,
    sentinel_mark,
    wait_for_sentinel,
)

pytestmark = pytest.mark.integration

Report = Callable[[str, object], None]

@pytest.fixture
def report(record_property: Callable[[str, object], None]) -> Report:
    """Print a figure (visible with -rP / -s) and record it as a junit property."""

    def emit(name: str, value: object) -> None:
        print(f"[figure] {name} = {value}")
        record_property(name, value)

    return emit


def counted(keys: list[int], n: int) -> tuple[list[int], dict[int, int], list[int]]:
    """(missing, duplicated {key: copies}, unexpected) of ``keys`` against ``range(n)``."""
    counts = collections.Counter(keys)
    missing = [k for k in range(n) if counts[k] == 0]
    dups = {k: c for k, c in counts.items() if c > 1}
    unexpected = sorted(k for k in counts if not 0 <= k < n)
    return missing, dups, unexpected


# -- rsyslog with Alibaba's configuration --------------------------------------


def ali_case(i: int, run: str) -> tuple[bytes, bytes]:
    """Input line ``i`` for rsyslog and what ALI_LOG_FMT makes of it, minus ``0.1 sys_tag <time> ``.

    Cycles through every facility and severity, RFC 3164 with and without a
    pid, RFC 5424 with msgid and structured data (dropped by the template),
    RFC 5424 with nil fields and a BOM (kept), and control characters and
    UTF-8 (a TAB is escaped as ``#011`` by rsyslog on receipt).
    """
    facility, severity = i % 24, (i // 24) % 8
    pri = facility * 8 + severity
    pri_text = f"{FACILITIES[facility]}.{SEVERITIES[severity]}".encode()
    host = f"host-{i % 7}".encode()
    app = f"app{i % 5}".encode()
    mark = f"{run} {i:05d}".encode()
    kind = i % 5
    if kind == 0:
        line = b"<%d>Oct 11 22:14:15 %s %s[%d]: ali %s plain text" % (pri, host, app, 1000 + i, mark)
        tail = b"%s %s 0 %s %d -  ali %s plain text" % (host, pri_text, app, 1000 + i, mark)
    elif kind == 1:
        line = b"<%d>Oct  1 02:04:05 %s %s: ali %s no pid" % (pri, host, app, mark)
        tail = b"%s %s 0 %s - -  ali %s no pid" % (host, pri_text, app, mark)
    elif kind == 2:
        line = b'<%d>1 2003-10-11T22:14:15.003Z %s %s %d ID%d [ex@32473 iut="3" k="v"] ali %s rfc5424' % (
            pri, host, app, i, i % 100, mark)
        tail = b"%s %s 1 %s %d ID%d ali %s rfc5424" % (host, pri_text, app, i, i % 100, mark)
    elif kind == 3:
        line = b"<%d>1 2003-10-11T22:14:15Z %s - - - - \xef\xbb\xbfali %s nil fields with BOM" % (pri, host, mark)
        tail = b"%s %s 1 - - - \xef\xbb\xbfali %s nil fields with BOM" % (host, pri_text, mark)
    else:
        line = b"<%d>Oct 11 22:14:15 %s %s[%d]: ali %s tab\there h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac" % (
            pri, host, app, i, mark)
        tail = b"%s %s 0 %s %d -  ali %s tab#011here h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac" % (
            host, pri_text, app, i, mark)
    return line, tail


_ALI_MARK = re.compile(rb"ali (r[0-9a-f]{8}) (\d{5}) ")


def test_rsyslog_alibaba_config_delivers_every_line_byte_exact(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, report: Report
) -> None:
    """If rsyslog runs Alibaba's exact forwarding config (ALI_LOG_FMT, disk-assisted LinkedList queue)
    and N messages are injected, then the spool holds N frames, each exactly the line the template
    renders (the time column within the run, the rest predicted byte for byte), none twice."""
    n = 2000
    run = run_token()
    rx = make_receiver()
    rsyslog = make_rsyslog(alibaba_rsyslog_conf(rx.port))
    cases = [ali_case(i, run) for i in range(n)]
    t0 = int(time.time())
    assert rsyslog.send([*(line for line, _ in cases), sentinel_line(run)], chunk_lines=500) == n + 1
    wait_for_sentinel(rx, run, timeout=40)  # one action queue, one connection: all before it is stored by now
    entries = rx.entries()
    frames = [f for e in entries for f in e.frames if sentinel_mark(run) not in f]
    t1 = int(time.time()) + 1

    by_index: dict[int, list[bytes]] = collections.defaultdict(list)
    strangers = []
    for frame in frames:
        m = _ALI_MARK.search(frame)
        if m is None or m.group(1).decode() != run:
            strangers.append(frame)
        else:
            by_index[int(m.group(2))].append(frame)
    missing, dups, _ = counted([i for i, fs in by_index.items() for _ in fs], n)
    report("rsyslog_ali.frames", len(frames))
    report("rsyslog_ali.connections", len({(e.peer, e.port) for e in entries}))
    assert not strangers, f"{len(strangers)} frames that are not ours, first: {strangers[:3]}"
    assert not missing, f"{len(missing)} of {n} missing, first {missing[:10]}"
    assert not dups, f"duplicates: {dict(list(dups.items())[:10])}"

    header = re.compile(rb"0\.1 sys_tag (\d+) 127\.0\.0\.1 ")
    wrong = []
    for i, (_, tail) in enumerate(cases):
        frame = by_index[i][0]
        m = header.match(frame)
        if m is None or not t0 <= int(m.group(1)) <= t1 or frame[m.end():] != tail:
            wrong.append((i, frame, tail))
    assert not wrong, f"{len(wrong)} frames differ from the template's output; first: {wrong[:3]}"
    assert {(e.transport, e.listener, e.peer) for e in entries} == {("tcp", "tcp", LOOPBACK)}
    assert all(not e.frame_flags for e in entries)


# -- syslog-ng -------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["network", "syslog"])
def test_syslog_ng_destination_delivers_every_message_once(
    make_receiver: MakeReceiver, make_syslog_ng: MakeSyslogNg, destination: str, report: Report
) -> None:
    """If syslog-ng forwards N RFC 3164 messages with a ``network()`` (LF-framed RFC 3164) or
    ``syslog()`` (octet-counted RFC 5424) TCP destination, then each arrives exactly once, as
    syslog-ng renders it, in order."""
    n = 1000
    run = run_token()
    rx = make_receiver()
    conf = (
        f'destination d_out {{ {destination}("{LOOPBACK}" port({rx.port}) transport("tcp") persist-name("d_out")); }};\n'
        "log { source(s_inject); destination(d_out); flags(flow-control); };\n"
    )
    syslog_ng = make_syslog_ng(conf)
    lines = [b"<%d>Oct 11 22:14:15 myhost app%d[%d]: ng %s %05d h\xc3\xa9llo" % (8 + i % 16 * 8 + i % 8, i % 3, 100 + i, run.encode(), i)
             for i in range(n)]
    syslog_ng.send([*lines, sentinel_line(run)])
    wait_for_sentinel(rx, run)  # one log path, one connection: all before it is stored by now
    frames = [f for f in rx.frames() if sentinel_mark(run) not in f]
    report(f"syslog_ng_{destination}.frames", len(frames))
    assert len(frames) == n, f"{len(frames)} frames for {n} messages"
    if destination == "network":
        assert frames == lines
    else:
        rfc5424 = re.compile(rb"<(\d+)>1 (\d{4})-10-11T22:14:15[+-]\d\d:\d\d myhost (app\d) (\d+) - - (.*)", re.S)
        for i, (frame, line) in enumerate(zip(frames, lines, strict=True)):
            m = rfc5424.fullmatch(frame)
            assert m is not None, f"frame {i} is not syslog-ng's RFC 5424: {frame!r}"
            pri, app, pid, msg = m.group(1), m.group(3), m.group(4), m.group(5)
            assert line == b"<%s>Oct 11 22:14:15 myhost %s[%s]: %s" % (pri, app, pid, msg), (frame, line)
    assert {e.transport for e in rx.entries()} == {"tcp"}
    assert syslog_ng.running


# -- logger ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "octet_count", "rfc"),
    [("tcp", False, "5424"), ("tcp", True, "5424"), ("tcp", False, "3164"), ("udp", False, "5424")],
    ids=["tcp-lf-5424", "tcp-octet-5424", "tcp-lf-3164", "udp-5424"],
)
def test_logger_delivers_every_message_once(
    receiver: Receiver, transport: str, octet_count: bool, rfc: str, report: Report
) -> None:
    """If util-linux logger sends N messages (TCP with LF or octet counting, or UDP), then each
    arrives exactly once, as logger formats it, with nothing of the framing left."""
    n = 300
    run = run_token()
    messages = [f"logger {run} {i:04d} h\u00e9llo [x] = y" for i in range(n)]
    # The sentinel goes last in the same run: one connection (TCP), or one socket's datagrams (UDP, which
    # promises no order, but over loopback to one socket they queue in the order sent).
    sentinel = sentinel_mark(run).decode()
    logger(receiver.port, [*messages, sentinel], transport=transport, octet_count=octet_count, rfc=rfc, tag="itest")  # type: ignore[arg-type]
    wait_for_sentinel(receiver, run, timeout=20)
    frames = [f for f in receiver.frames() if sentinel_mark(run) not in f]
    report(f"logger_{transport}_{'octet' if octet_count else 'lf'}_{rfc}.frames", len(frames))
    if rfc == "5424":
        shape = re.compile(rb'<13>1 \S+ \S+ itest - - \[timeQuality tzKnown="\d" isSynced="\d"(?: syncAccuracy="\d+")?\] (.*)', re.S)
    else:
        shape = re.compile(rb"<13>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ itest: (.*)", re.S)
    bodies = []
    for frame in frames:
        m = shape.fullmatch(frame)
        assert m is not None, f"not logger's format: {frame!r}"
        bodies.append(m.group(1).decode())
    assert sorted(bodies) == messages  # exactly once each
    if transport == "tcp":
        assert bodies == messages  # one connection: in order
    assert {e.transport for e in receiver.entries()} == {transport}


# -- loggen ----------------------------------------------------------------------


@pytest.mark.parametrize("syslog_proto", [False, True], ids=["rfc3164-lf", "rfc5424-octet"])
def test_loggen_several_connections_deliver_every_message_once(
    receiver: Receiver, syslog_proto: bool, report: Report
) -> None:
    """If loggen sends N messages on each of 4 TCP connections at once, then every (thread, seq)
    arrives exactly once, and each connection's messages in order."""
    n, connections = 500, 4
    result = loggen(receiver.port, count=n, connections=connections, rate=20_000, syslog_proto=syslog_proto)
    total = n * connections
    # The connections are not ordered among themselves and loggen sends nothing after its messages, so each
    # connection's last message (seq n-1) is its sentinel: once every connection's has come, all it sent has.
    last = b"seq: %010d," % (n - 1)

    def every_connection_ended() -> bool:
        by_connection = receiver.frames_by_connection()
        return len(by_connection) >= connections and all(
            any(last in frame for frame, _ in frames) for frames in by_connection.values()
        )

    wait_until(every_connection_ended, timeout=30, message=lambda: f"seq {n - 1} on each of {connections} connections")
    by_connection = receiver.frames_by_connection()
    report(f"loggen_{'5424' if syslog_proto else '3164'}.run", result.output.strip())
    seq = re.compile(rb"seq: (\d{10}), thread: (\d{4}), runid: \d+, stamp: \S+ (?:PADD)+")
    keys = []
    for (peer, port), frames in by_connection.items():
        parsed = []
        for frame, flags in frames:
            assert not flags, (frame, flags)
            assert not frame.endswith(b"\n"), "framing LF left in the frame"
            if syslog_proto:
                assert frame.startswith(b"<38>1 "), frame
            m = seq.search(frame)
            assert m is not None, frame
            parsed.append((int(m.group(2)), int(m.group(1))))
        threads = {t for t, _ in parsed}
        assert len(threads) == 1, f"connection {peer}:{port} carries threads {threads}"
        assert [s for _, s in parsed] == list(range(n)), f"connection {peer}:{port}: not 0..{n - 1} in order"
        keys += [t * n + s for t, s in parsed]
    missing, dups, unexpected = counted(keys, total)
    assert (missing, dups, unexpected) == ([], {}, [])
    assert len(by_connection) == connections


# -- slow and bad clients ------------------------------------------------------------


def test_slow_clients_do_not_delay_others(receiver: Receiver, report: Report) -> None:
    """If 10 clients dribble one byte every 0.2 s, then another client's 1000 lines are committed
    promptly meanwhile (well before any slow frame completes), and afterwards each slow client's
    frame arrives whole."""
    slow_lines = [b"<13>Oct 11 22:14:15 slowhost slow[%d]: drip\n" % k for k in range(10)]
    slow = [socket.create_connection((LOOPBACK, receiver.port), timeout=10) for _ in slow_lines]
    done = threading.Event()
    failure: list[BaseException] = []

    def dribble() -> None:
        try:
            for pos in range(max(map(len, slow_lines))):
                for s, line in zip(slow, slow_lines, strict=True):
                    if pos < len(line):
                        s.sendall(line[pos : pos + 1])
                time.sleep(0.2)
        except OSError as e:
            failure.append(e)
        finally:
            done.set()

    dribbler = threading.Thread(target=dribble, daemon=True)
    try:
        dribbler.start()
        time.sleep(1.0)  # a few bytes into every slow frame
        fast = [b"<13>Oct 11 22:14:15 fasthost fast[1]: line %04d" % i for i in range(1000)]
        started = time.monotonic()
        with socket.create_connection((LOOPBACK, receiver.port), timeout=10) as s:
            s.sendall(b"".join(line + b"\n" for line in fast))
            frames = receiver.wait_for_frames(1000, timeout=10)
        latency = time.monotonic() - started
        report("slow_clients.fast_1000_committed_seconds", round(latency, 3))
        assert not done.is_set(), "the slow clients finished first: the test did not overlap them"
        assert frames == fast
        assert latency < 2.0, f"1000 lines took {latency:.2f} s to commit while slow clients dribbled"
        assert done.wait(30) and not failure, failure
        frames = receiver.wait_for_frames(1010, timeout=10)
        assert frames[:1000] == fast
        assert sorted(frames[1000:]) == sorted(line[:-1] for line in slow_lines)
    finally:
        done.wait(30)
        for s in slow:
            s.close()


def test_bad_clients_do_not_disturb_others(receiver: Receiver, report: Report) -> None:
    """If clients send garbage, NULs, a 10 MB line, or half a frame (LF or octet-counted) and close,
    while a good client sends 1000 lines, then every complete frame of every client arrives exactly
    as sent (a NUL ends a frame, as LF does, in auto framing), the 10 MB line arrives cut at the limit
    and flagged ``truncated:<length>``, each half frame arrives flagged ``incomplete``, and the
    receiver keeps running."""

    def at_nul(lines: list[bytes]) -> list[tuple[bytes, tuple[str, ...]]]:
        return [(piece, ()) for line in lines for piece in line.split(b"\0") if piece]

    rng = random.Random(7)
    alphabet = bytes(b for b in range(256) if b != 0x0A)
    garbage = [b"~" + bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 300))) for _ in range(200)]
    nuls = [b"\x00" * 1000, b"a\x00b", b"\x00", b"<13>Oct 11 22:14:15 nulhost nul: \x00\x00 after NULs"]
    big_len = 10 * 1024 * 1024
    big_head = b"<13>Oct 11 22:14:15 bighost big[1]: "
    big = big_head + b"B" * (big_len - len(big_head))
    after_big = b"<13>Oct 11 22:14:15 bighost big[1]: the line after the big one"
    half_lf = [b"<13>Oct 11 22:14:15 halfhost half[1]: a complete line", b"<13>Oct 11 22:14:15 halfhost half[1]: cut he"]
    half_octet_payload = b"<13>1 2003-10-11T22:14:15Z halfhost half 1 - - only part of the frame"
    good = [b"<13>Oct 11 22:14:15 goodhost good[1]: good line %04d" % i for i in range(1000)]

    streams: dict[str, tuple[bytes, list[tuple[bytes, tuple[str, ...]]]]] = {
        "garbage": (b"".join(g + b"\n" for g in garbage), at_nul(garbage)),
        "nuls": (b"".join(x + b"\n" for x in nuls), at_nul(nuls)),
        "big": (big + b"\n" + after_big + b"\n",
                [(big[:DEFAULT_MAX_FRAME_BYTES], (f"truncated:{big_len}",)), (after_big, ())]),
        "half-lf": (half_lf[0] + b"\n" + half_lf[1], [(half_lf[0], ()), (half_lf[1], ("incomplete",))]),
        "half-octet": (b"%d %s" % (len(half_octet_payload) + 50, half_octet_payload),
                       [(half_octet_payload, ("incomplete",))]),
        "good": (b"".join(g + b"\n" for g in good), [(g, ()) for g in good]),
    }
    sockets = {name: socket.create_connection((LOOPBACK, receiver.port), timeout=30) for name in streams}
    ports = {s.getsockname()[1]: name for name, s in sockets.items()}
    errors: list[BaseException] = []

    def send(name: str) -> None:
        try:
            with sockets[name] as s:
                data = streams[name][0]
                for i in range(0, len(data), 1 << 20):  # interleaved with the others, not one burst
                    s.sendall(data[i : i + (1 << 20)])
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=send, args=(name,), daemon=True) for name in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    expected_total = sum(len(frames) for _, frames in streams.values())

    def by_client() -> dict[str, list[tuple[bytes, tuple[str, ...]]]]:
        by_connection = receiver.frames_by_connection()
        return {ports.get(port, f"unknown {peer}:{port}"): frames for (peer, port), frames in by_connection.items()}

    # The clients' connections are not ordered among themselves: each one's last frame is its sentinel (a
    # half frame is ended by the close, the last thing on its connection). Once every client's last frame
    # has come, everything each sent before it has too.
    wait_until(lambda: all(expected[-1] in by_client().get(name, []) for name, (_, expected) in streams.items()),
               timeout=30, message="every client's last frame")
    got = by_client()
    report("bad_clients.frames", sum(map(len, got.values())))
    for name, (_, expected) in streams.items():
        frames = got.get(name, [])
        assert len(frames) == len(expected), f"{name}: {len(frames)} frames, expected {len(expected)}"
        for i, ((frame, flags), (want, want_flags)) in enumerate(zip(frames, expected, strict=True)):
            assert (frame, flags) == (want, want_flags), f"{name} frame {i}: {frame[:80]!r} {flags} != {want[:80]!r} {want_flags}"
    assert set(got) == set(streams)
    assert receiver.running
    # It still takes new connections.
    with socket.create_connection((LOOPBACK, receiver.port), timeout=10) as s:
        s.sendall(b"<13>Oct 11 22:14:15 h a: still alive\n")
    assert receiver.wait_for_frames(expected_total + 1, timeout=10)[-1] == b"<13>Oct 11 22:14:15 h a: still alive"


# -- SIGTERM in the middle of a flood ----------------------------------------------------


def check_prefix(frames: list[bytes], width: int, run: str) -> list[int]:
    """The seq numbers of ``frames``; asserts each is exactly its ``ali_line`` (byte for byte)."""
    seqs = []
    for frame in frames:
        seq = ali_seq(frame)
        assert seq is not None and frame + b"\n" == ali_line(seq, width=width, run=run), frame[:120]
        seqs.append(seq)
    return seqs


@pytest.mark.parametrize("rate", [None, 50_000], ids=["flat-out", "paced-50k-lines-per-s"])
@pytest.mark.parametrize("polite", [True, False], ids=["sender-watches-for-FIN", "sender-ignores-FIN"])
def test_sigterm_mid_flood_loses_nothing_read(
    make_receiver: MakeReceiver, polite: bool, rate: int | None, report: Report
) -> None:
    """If the receiver gets SIGTERM while one connection floods it with ALI lines, then it exits 0
    and the spool holds exactly the first K lines, in order, byte-exact.

    A sender that watches its socket sees the receiver's FIN, stops, and closes: then K must be
    every line it wrote. A sender that ignores the FIN keeps writing until the receiver's final
    close (after ``drain_seconds`` of reading) resets the connection: plain TCP cannot tell it what
    was read, so the lines written but not stored are measured and bounded by what the sockets can
    hold in flight at the close (its send buffer, fixed here, plus the receiver's receive buffer,
    which the receiver drains before closing, so normally only what arrives during the last read).
    Flat out, the sender is held to the receiver's pace by its fixed 256 KiB send buffer; paced, it
    writes 50k lines/s, which the receiver keeps up with.
    """
    n, width = 200_000, 100
    run = run_token()
    rx = make_receiver(shutdown={"drain_seconds": 2})
    blast = BlastSender(rx.port, n, width=width, polite=polite, rate=rate, sndbuf=256 * 1024, run=run).start()
    wait_until(lambda: rx.frame_count() >= n // 10, timeout=20, message=lambda: rx.log_tail())
    # Flat out, the kernel's receive buffer may swallow the whole flood (tcp_rmem max allowing):
    # then the SIGTERM is mid-flood for the receiver only, which is still the point.
    flood_over = blast.done
    assert rate is None or not flood_over, "the paced flood ended before SIGTERM"
    sent_at_sigterm = blast.lines_sent
    started = time.monotonic()
    rc = rx.terminate(timeout=30)
    stop_seconds = time.monotonic() - started
    blast.join(30)
    frames = rx.frames()
    seqs = check_prefix(frames, width, run)
    stored = len(seqs)
    tag = f"{'polite' if polite else 'rude'}_{'paced' if rate else 'flat_out'}"
    report(f"sigterm_{tag}.sender_done_before_sigterm", flood_over)
    report(f"sigterm_{tag}.sent_at_sigterm", sent_at_sigterm)
    report(f"sigterm_{tag}.sent_total", blast.lines_sent)
    report(f"sigterm_{tag}.stored", stored)
    report(f"sigterm_{tag}.lost", blast.lines_sent - stored)
    report(f"sigterm_{tag}.sender_error", repr(blast.error))
    report(f"sigterm_{tag}.receiver_stop_seconds", round(stop_seconds, 2))
    assert rc == 0, rx.log_tail()
    assert seqs == list(range(stored)), "the spool is not an exact prefix of what was sent (gap, reorder or duplicate)"
    assert stored >= sent_at_sigterm, "lines written before the SIGTERM are missing"
    if polite:
        assert blast.error is None, blast.error
        assert stored == blast.lines_sent, f"sent {blast.lines_sent}, stored {stored}"
    else:
        bound = (blast.sndbuf + sysctl_max("tcp_rmem")) // width + blast.chunk_lines
        assert 0 <= blast.lines_sent - stored <= bound


def test_sigterm_mid_flood_with_rsyslog_disk_queue_loses_nothing(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, report: Report
) -> None:
    """If rsyslog (Alibaba's config, disk-assisted queue) forwards a flood and the receiver gets
    SIGTERM midway and is started again, then every one of the N messages arrives (rsyslog keeps and
    resends what was not delivered); duplicates are allowed, and counted.

    ``$ActionResumeInterval 1`` is the one addition to Alibaba's config: rsyslog retries a
    suspended action after 30 s by default, which would only make the test wait.
    """
    n = 10_000
    run = run_token()
    rx = make_receiver(shutdown={"drain_seconds": 2})
    rsyslog = make_rsyslog(alibaba_rsyslog_conf(rx.port, extra="$ActionResumeInterval 1"))
    lines = [b"<13>Oct 11 22:14:15 myhost flood[1]: ali %s %05d flood" % (run.encode(), i) for i in range(n)]
    sent: list[int] = []
    injector = threading.Thread(
        target=lambda: sent.append(rsyslog.send(lines, chunk_lines=250, pause=0.05, timeout=60)), daemon=True
    )
    injector.start()
    wait_until(lambda: rx.frame_count() >= n // 5, timeout=20, message=lambda: rx.log_tail())
    before = rx.frame_count()
    rc = rx.terminate(timeout=30)
    stored_at_stop = rx.frame_count()
    rx.start()
    restarted = time.monotonic()
    injector.join(60)
    assert sent == [n], "rsyslog did not read every injected line"

    def indices() -> list[int]:
        return [int(m.group(2)) for f in rx.frames() if (m := _ALI_MARK.search(f)) and m.group(1).decode() == run]

    def all_arrived() -> bool:
        return not counted(indices(), n)[0]

    with contextlib.suppress(TimeoutError):  # what is missing is reported below
        wait_until(all_arrived, timeout=45, interval=0.5)
    recovery = time.monotonic() - restarted
    # rsyslog re-sends from its queue in order: once the sentinel, injected now, is stored, so is any re-sent tail.
    rsyslog.send([sentinel_line(run)])
    wait_for_sentinel(rx, run, timeout=45)
    keys = indices()
    missing, dups, unexpected = counted(keys, n)
    report("sigterm_rsyslog.frames_at_sigterm", before)
    report("sigterm_rsyslog.frames_at_exit", stored_at_stop)
    report("sigterm_rsyslog.frames_total", len(keys))
    report("sigterm_rsyslog.missing", len(missing))
    report("sigterm_rsyslog.duplicates", sum(c - 1 for c in dups.values()))
    report("sigterm_rsyslog.seconds_to_complete_after_restart", round(recovery, 1))
    report("sigterm_rsyslog.queue_files", [p.name for p in rsyslog.queue_files()])
    assert rc == 0, rx.log_tail()
    assert not unexpected
    assert not missing, f"{len(missing)} of {n} never arrived, first {missing[:20]}; rsyslog log:\n{rsyslog.log[-3000:]}"


# -- kill -9 in the middle of a flood ------------------------------------------------------


@pytest.mark.parametrize("rate", [None, 50_000], ids=["flat-out", "paced-50k-lines-per-s"])
def test_kill9_mid_flood_loses_at_most_the_commit_window_and_socket_buffers(
    make_receiver: MakeReceiver, rate: int | None, report: Report
) -> None:
    """If the receiver is killed (-9) while one connection floods it with ALI lines and is then
    started again, then the spool holds exactly the first K lines, in order, byte-exact, the spool
    needs no repair, and the lines written but lost are at most what these can hold:

    - read but not yet committed: the open group-commit segment (sealed after
      ``segment_max_delay_ms`` or at ``segment_max_bytes``, growing up to 16x that while a commit
      is in flight) plus segments being committed; the writer stops all reading once this passes
      ``memory_high_watermark_bytes`` (8 MiB here), so it is at most that plus one read (64 KiB);
    - the receiver's kernel receive buffer, at most ``net.ipv4.tcp_rmem`` max;
    - the sender's send buffer (SO_SNDBUF, fixed to 256 KiB, which the kernel doubles).

    bound (lines) = (8 MiB + 64 KiB + tcp_rmem max + SO_SNDBUF) / line width + one chunk (1000
    lines, the sender's unit of counting). The measured loss, and the queues ``ss`` saw just before
    the kill, are printed. Flat out, most of the loss is the receive buffer the kernel filled; paced
    at a rate the receiver keeps up with, it is about one commit window.
    """
    n, width = 200_000, 100
    run = run_token()
    rx = make_receiver(spool=KILL_SPOOL)
    blast = BlastSender(rx.port, n, width=width, sndbuf=256 * 1024, rate=rate, run=run).start()
    wait_until(lambda: rx.frame_count() >= n // 4, timeout=20, message=lambda: rx.log_tail())
    committed_at_kill = rx.frame_count()
    queues = socket_queues(rx.port)  # a snapshot some ms before the kill
    unsent = blast.unsent_bytes()
    sent_at_kill = blast.lines_sent
    assert rx.kill() == -9
    blast.join(30)
    rx.restart()
    stats = rx.spool_stats()
    frames = rx.frames()
    seqs = check_prefix(frames, width, run)
    stored = len(seqs)
    lost = blast.lines_sent - stored
    bound = kill9_loss_bound_bytes(blast.sndbuf) // width + blast.chunk_lines
    tag = "paced" if rate else "flat_out"
    report(f"kill9_{tag}.sent_at_kill", sent_at_kill)
    report(f"kill9_{tag}.sent_total", blast.lines_sent)
    report(f"kill9_{tag}.committed_seen_before_kill", committed_at_kill)
    report(f"kill9_{tag}.stored_after_restart", stored)
    report(f"kill9_{tag}.lost_lines", lost)
    report(f"kill9_{tag}.lost_bytes", lost * width)
    report(f"kill9_{tag}.receiver_recv_q_send_q_before_kill", queues)
    report(f"kill9_{tag}.sender_unacked_bytes_before_kill", unsent)
    # Rough (the snapshot precedes the kill by a few ms): lost minus what sat in the kernel then,
    # minus what was written after it; the rest was read by the receiver and not yet committed.
    in_kernel = sum(q for q, _ in queues) + max(unsent, 0) + (blast.lines_sent - sent_at_kill) * width
    report(f"kill9_{tag}.rough_read_not_committed_bytes", lost * width - in_kernel)
    report(f"kill9_{tag}.bound_lines", bound)
    report(f"kill9_{tag}.sender_error", repr(blast.error))
    assert seqs == list(range(stored)), "the spool is not an exact prefix of what was sent (gap, reorder or duplicate)"
    assert stats.quarantined == 0
    assert stored >= committed_at_kill, "frames committed before the kill are gone"
    assert -blast.chunk_lines <= lost <= bound, f"lost {lost} lines, bound {bound}"


def test_harness_reports_missing_programs_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a program is not installed, then the harness raises and says how to install it (never skips)."""
    from tests.support import programs

    monkeypatch.setattr(programs, "RSYSLOGD", Path("/nonexistent/rsyslogd"))
    for name in ("rsyslogd", "no-such-syslog-program"):
        with pytest.raises(programs.ProgramMissingError, match=r"install-programs\.sh"):
            programs.require_program(name)
    with pytest.raises(programs.ProgramMissingError, match=r"install-programs\.sh"):
        programs.Rsyslog(Path("/nonexistent/dir"), "")
