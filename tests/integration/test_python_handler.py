"""Python's own ``logging.handlers.SysLogHandler`` against a real receiver: what is stored.

The handler (in countless applications) sends ``<PRI>`` + the formatted
message + a NUL, over UDP one message per datagram and over TCP with no LF at
all. Each test starts its own receiver (``receiver run``), logs through the
real handler from this process, and reads back what was stored: the local
store through ``receiverctl search``, or the spool.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import time

import pytest

from tests.integration.conftest import MakeReceiver
from tests.support.flood import socket_queues
from tests.support.programs import LOOPBACK, Receiver, free_port, send_tcp, wait_until
from tests.support.receiverctl import receiverctl, sinks_caught_up
from tests.support.senders import run_token, sentinel_line, sentinel_mark, wait_for_sentinel

pytestmark = pytest.mark.integration

FACILITY = logging.handlers.SysLogHandler.LOG_LOCAL3  # 19
SEVERITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def search(rx: Receiver, *args: str) -> list[dict[str, object]]:
    """``receiverctl search --json ARGS`` on ``rx``'s local store: the records found."""
    result = receiverctl("search", "-c", str(rx.config_path), "--json", *args)
    return [json.loads(line) for line in result.stdout.splitlines()]


def python_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A logger of its own sending only to ``handler``, formatted as applications usually do: ``name[pid]: msg``."""
    handler.setFormatter(logging.Formatter("%(name)s[%(process)d]: %(message)s"))
    log = logging.getLogger(name)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


def cases(run: str) -> list[tuple[int, str, str]]:
    """(level, what the application logs, what ``_content_`` must hold)."""
    return [
        (logging.INFO, f"{run} 0 user logged in", f"{run} 0 user logged in"),
        (logging.ERROR, f"{run} 1 disk full on /var", f"{run} 1 disk full on /var"),
        (logging.WARNING, f"{run} 2 a message that ends with LF\n", f"{run} 2 a message that ends with LF"),
        (logging.DEBUG, f"{run} 3 d\u00e9j\u00e0 vu \u65e5\u672c", f"{run} 3 d\u00e9j\u00e0 vu \u65e5\u672c"),
        (logging.CRITICAL, f"{run} 4 a Windows-style line\r\n", f"{run} 4 a Windows-style line"),
        (logging.INFO, f"{run} 5 last", f"{run} 5 last"),
    ]


@pytest.mark.parametrize("socktype", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
def test_python_syslog_handler_messages_are_stored_as_logged(
    make_receiver: MakeReceiver, socktype: socket.SocketKind
) -> None:
    """If an application logs through Python's SysLogHandler over TCP or UDP, then the local store holds
    each message once, as logged (no NUL, no LF or CRLF it ended with), with its program, pid and
    priority and no flags; over TCP while the connection is still open, not only when it closes."""
    run = run_token()
    want = cases(run)
    rx = make_receiver(deliver={})
    t0 = time.time_ns()
    handler = logging.handlers.SysLogHandler(address=(LOOPBACK, rx.port), facility=FACILITY, socktype=socktype)
    try:
        log = python_logger(f"pyapp-{run}", handler)
        for level, text, _ in want:
            log.log(level, text)
        # The sentinel goes last on the same path: one connection (TCP), or one socket's datagrams (UDP, which
        # promises no order, but over loopback to one socket they queue in the order sent). The spool keeps
        # that order, and a sink's cursor passes a batch only once all of it is stored: so once the sentinel is
        # in the store and the cursor at the spool's end, anything extra (a duplicate, an empty record) is too.
        sentinel = sentinel_mark(run).decode()
        log.info(sentinel)
        # The handler's TCP connection stays open while we wait: every message must be complete without its close.
        wait_until(
            lambda: any(r["fields"]["_content_"] == sentinel for r in search(rx, run))  # type: ignore[index]
            and sinks_caught_up(rx.config_path),
            timeout=60, interval=0.5,
            message=lambda: f"the sentinel in the local store; found {search(rx, run)}\n{rx.log_tail()}",
        )
    finally:
        handler.close()
    records = [r for r in search(rx, run, "--limit", "100", "--oldest-first") if r["fields"]["_content_"] != sentinel]  # type: ignore[index]
    assert len(records) == len(want), records
    by_index = {int(str(r["fields"]["_content_"]).split()[1]): r for r in records}  # type: ignore[index]
    for i, (level, _, content) in enumerate(want):
        record = by_index[i]
        pri = FACILITY * 8 + SEVERITY[level]
        assert record["fields"] == {
            "_program_": f"pyapp-{run}",
            "_priority_": str(pri),
            "_facility_": str(FACILITY),
            "_severity_": str(SEVERITY[level]),
            "_unixtimestamp_": str(int(record["time"]) * 10**9 + int(record["time_ns"])),  # type: ignore[call-overload]
            "_hostname_": LOOPBACK,
            "_client_ip_": LOOPBACK,
            "_content_": content,
            "_process_id_": str(os.getpid()),
        }, i
        assert record["flags"] == [], i
        assert t0 // 10**9 <= int(record["time"]) <= time.time_ns() // 10**9, i  # type: ignore[call-overload]


def test_nul_ends_frame_off_keeps_the_connection_one_frame(make_receiver: MakeReceiver) -> None:
    """If a TCP listener sets nul_ends_frame = false, then the handler's messages of one connection are one
    frame, NULs inside, stored when the connection closes and flagged incomplete (the setting reaches the listener)."""
    run = run_token()
    port = free_port("tcp")
    rx = make_receiver(
        listeners=[{"name": "tcp", "transport": "tcp", "address": LOOPBACK, "port": port, "nul_ends_frame": False}]
    )
    handler = logging.handlers.SysLogHandler(address=(LOOPBACK, port), facility=FACILITY, socktype=socket.SOCK_STREAM)
    try:
        log = python_logger(f"pyapp-{run}", handler)
        log.info("%s one", run)
        log.info("%s two", run)
        # Nothing may be stored while the connection is open. Its receive queue empties once the receiver has
        # read (and framed) all of it; a sentinel on a second connection is read after that, so it is stored
        # after any frame of the first: once it is in the spool, such a frame would be too.
        wait_until(lambda: (queues := socket_queues(port)) and all(q == 0 for q, _ in queues), timeout=10,
                   message="the receiver read the handler's bytes")
        send_tcp(port, sentinel_line(run) + b"\n")
        wait_for_sentinel(rx, run)
        assert [f for f in rx.frames() if sentinel_mark(run) not in f] == []
    finally:
        handler.close()
    # The close ends the connection's one frame: nothing of it can follow that frame.
    wait_until(lambda: len(rx.frames()) >= 2, timeout=20, message=lambda: f"the frame at the close; log:\n{rx.log_tail()}")
    prefix = f"<{FACILITY * 8 + 6}>pyapp-{run}[{os.getpid()}]: {run}".encode()
    flagged = [(f, flags) for f, flags in rx.flagged_frames() if sentinel_mark(run) not in f]
    assert flagged == [(prefix + b" one\0" + prefix + b" two\0", ("incomplete",))]
