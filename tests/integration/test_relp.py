"""RELP with the real rsyslog omrelp: acknowledged only once stored, so nothing is lost across kill -9."""

from __future__ import annotations

import collections
import re
import socket
import threading
import time

from tests.integration.conftest import MakeReceiver, MakeRsyslog
from tests.support.programs import LOOPBACK, Receiver, free_port, wait_until
from tests.support.senders import (
    OMRELP_WINDOW,
    omrelp_conf,
    relp_listener,
    run_token,
    sentinel_line,
    wait_for_sentinel,
)

_MARK = re.compile(rb"relp (r[0-9a-f]{8}) (\d{6}) ")


def indices(receiver: Receiver, run: str) -> list[int]:
    return [int(m.group(2)) for f in receiver.frames() if (m := _MARK.search(f)) and m.group(1).decode() == run]


def lines(run: str, n: int) -> list[bytes]:
    return [b"<13>Oct 11 22:14:15 myhost relp[1]: relp %s %06d message" % (run.encode(), i) for i in range(n)]


def test_omrelp_delivers_every_message_once(make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog) -> None:
    """If rsyslog sends N messages with omrelp, then each is stored exactly once and the sender sees them acknowledged."""
    n = 5000
    run = run_token()
    port = free_port()
    rx = make_receiver(listeners=[relp_listener(port)])
    rsyslog = make_rsyslog(omrelp_conf(port))
    assert rsyslog.send([*lines(run, n), sentinel_line(run)]) == n + 1
    wait_for_sentinel(rx, run, timeout=60)  # one omrelp session: all before it is stored by now
    counts = collections.Counter(indices(rx, run))
    assert sorted(counts) == list(range(n))
    assert set(counts.values()) == {1}
    assert "omrelp" not in rsyslog.log or "error" not in rsyslog.log.lower(), rsyslog.log[-3000:]


def test_kill9_loses_nothing_and_duplicates_only_the_unacknowledged(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog
) -> None:
    """If the receiver is killed (-9) in the middle of an omrelp flood and started again, then all N
    messages are stored, and the only duplicates are messages of the window in flight at the kill
    (at most omrelp's windowSize): what was acknowledged had been committed.

    A long group-commit window (100 ms) makes "read but not yet committed" large
    at the kill, so a receiver that acknowledged on reading would lose messages here.
    """
    n = 4000
    run = run_token()
    port = free_port()
    rx = make_receiver(listeners=[relp_listener(port)], spool={"segment_max_delay_ms": 100})
    rsyslog = make_rsyslog(omrelp_conf(port))
    sent: list[int] = []
    injector = threading.Thread(
        target=lambda: sent.append(rsyslog.send(lines(run, n), chunk_lines=100, pause=0.01, timeout=120)), daemon=True
    )
    injector.start()
    wait_until(lambda: len(indices(rx, run)) >= n // 4, timeout=60, message=lambda: rx.log_tail())
    rx.kill()
    stored_at_kill = len(indices(rx, run))
    rx.start()
    injector.join(120)
    assert sent == [n], "rsyslog did not read every injected line"
    wait_until(lambda: len(set(indices(rx, run))) >= n, timeout=90, interval=0.5,
               message=lambda: f"{len(set(indices(rx, run)))} of {n} stored\n{rsyslog.log[-2000:]}\n{rx.log_tail()}")
    # omrelp re-sends what was unacknowledged when its session reopened, before anything newer: once the
    # sentinel, injected now, is stored, so is every late resend.
    rsyslog.send([sentinel_line(run)])
    wait_for_sentinel(rx, run, timeout=60)
    counts = collections.Counter(indices(rx, run))
    duplicates = sum(c - 1 for c in counts.values())
    print(f"stored at kill {stored_at_kill}, total {sum(counts.values())}, duplicates {duplicates}")
    assert sorted(counts) == list(range(n))
    assert duplicates <= OMRELP_WINDOW, f"{duplicates} duplicates, more than the window of {OMRELP_WINDOW} in flight"


def test_stop_answers_what_it_committed_then_serverclose(make_receiver: MakeReceiver) -> None:
    """If the receiver stops (SIGTERM) with a RELP session open, then the client gets an answer for every
    message it sent, then serverclose, then the close; and the messages answered are in the spool."""
    port = free_port()
    rx = make_receiver(listeners=[relp_listener(port)], spool={"segment_max_delay_ms": 200})
    offers = b"relp_version=0\ncommands=syslog"
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.sendall(b"1 open %d %s\n" % (len(offers), offers))
        assert s.recv(4096).startswith(b"1 rsp ")
        s.sendall(b"".join(b"%d syslog 8 stop %03d\n" % (n, n) for n in range(2, 52)))
        time.sleep(0.05)  # read, not yet committed: the commit window is 200 ms
        assert rx.terminate(timeout=30) == 0
        answers = b""
        while chunk := s.recv(65536):
            answers += chunk
    assert answers == b"".join(b"%d rsp 6 200 OK\n" % n for n in range(2, 52)) + b"0 serverclose 0\n"
    assert sorted(rx.frames()) == [b"stop %03d" % n for n in range(2, 52)]


def test_a_malformed_frame_ends_the_session_with_a_reason(make_receiver: MakeReceiver) -> None:
    """If a client sends bytes that are not a RELP frame, then it gets serverclose, the connection
    closes, the reason is logged, and what it sent before was acknowledged and stored."""
    port = free_port()
    rx = make_receiver(listeners=[relp_listener(port)])
    offers = b"relp_version=0\ncommands=syslog"
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.sendall(b"1 open %d %s\n2 syslog 5 first\n" % (len(offers), offers))
        answers = b""
        while b"2 rsp" not in answers:
            answers += s.recv(4096)
        s.sendall(b"3 syslog x broken\n")
        rest = b""
        while chunk := s.recv(4096):
            rest += chunk
    assert answers.startswith(b"1 rsp ") and b"2 rsp 6 200 OK\n" in answers
    assert rest == b"0 serverclose 0\n"
    assert rx.wait_for_frames(1) == [b"first"]
    wait_until(lambda: "ended the RELP session" in rx.log, timeout=10)
