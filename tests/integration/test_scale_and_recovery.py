"""Many senders at once, and start-up after damage: the real daemon over loopback."""

from __future__ import annotations

import resource
import socket
import sqlite3
import time

import pytest

from tests.integration.conftest import MakeReceiver
from tests.support.processes import rss_kb
from tests.support.programs import free_port, send_tcp, wait_until

pytestmark = pytest.mark.integration

IDLE = 10_000
ACTIVE = 1_000
LINES_PER_ACTIVE = 20


def ali(conn: int, seq: int) -> bytes:
    return f"0.1 sys_tag 1795323666 127.0.0.1 host-{conn} user.notice 0 app 1 - conn {conn} seq {seq}\n".encode()


def raise_open_files(needed: int) -> None:
    """This process holds the client end of every connection: make room, or fail saying why."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError) as e:
        pytest.fail(f"need {needed} open files for this test, have {soft} (hard {hard}): {e}; run as root or raise ulimit -n")


def test_ten_thousand_idle_and_one_thousand_active(make_receiver: MakeReceiver) -> None:
    """If 10,000 connections sit idle while 1,000 others send, then every line arrives and memory stays bounded."""
    raise_open_files(IDLE + ACTIVE + 1024)
    port = free_port("tcp")
    rx = make_receiver(
        port=port,
        udp=False,
        listeners=[{"name": "tcp", "transport": "tcp", "address": "127.0.0.1", "port": port,
                    "max_connections": IDLE + ACTIVE + 100, "max_connections_per_source": IDLE + ACTIVE + 100}],
    )
    assert rx.pid is not None
    idle: list[socket.socket] = []
    active: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(IDLE):
            idle.append(socket.create_connection(("127.0.0.1", rx.port), timeout=10))
        for _ in range(ACTIVE):
            active.append(socket.create_connection(("127.0.0.1", rx.port), timeout=10))
        opened = time.monotonic() - started
        for round_ in range(LINES_PER_ACTIVE):
            for conn, sock in enumerate(active):
                sock.sendall(ali(conn, round_))
        frames = rx.wait_for_frames(ACTIVE * LINES_PER_ACTIVE, timeout=60)
        seen = [f.split(b" conn ")[1] for f in frames]
        # every (connection, seq) exactly once: none missing, none twice
        assert len(seen) == len(set(seen)) == ACTIVE * LINES_PER_ACTIVE
        assert rx.pid is not None
        resident = rss_kb(rx.pid)
        assert resident is not None, "the receiver has gone"
        rss = resident / 1024
        print(f"{IDLE} idle + {ACTIVE} active connections opened in {opened:.1f} s; "
              f"{len(frames)} lines committed; receiver RSS {rss:.0f} MB")
        # 11,000 connections, each a protocol, a deframer and a socket: bounded, not per-byte.
        assert rss < 400, rss
        # A newcomer still gets through promptly.
        send_tcp(rx.port, b"<13>Oct 11 22:14:15 late app: newcomer\n")
        wait_until(lambda: rx.frame_count() == ACTIVE * LINES_PER_ACTIVE + 1, timeout=10)
    finally:
        for sock in idle + active:
            sock.close()


def test_damaged_segment_quarantined_at_restart(make_receiver: MakeReceiver) -> None:
    """If a committed segment is corrupted on disk, then a restart quarantines it, keeps the rest, and receives."""
    rx = make_receiver()
    for i, batch in enumerate((b"first", b"second", b"third")):
        send_tcp(rx.port, b"<13>Oct 11 22:14:15 h app: " + batch + b"\n")
        rx.wait_for_frames(i + 1, timeout=10)
        time.sleep(0.05)  # a segment each
    assert rx.terminate() == 0
    db = sqlite3.connect(rx.spool_directory / "cache.db")
    keys = [k for (k,) in db.execute("SELECT key FROM Cache WHERE typeof(key) = 'integer' ORDER BY key")]
    assert len(keys) == 3, keys
    (blob,) = db.execute("SELECT value FROM Cache WHERE key = ?", (keys[1],)).fetchone()
    damaged = bytearray(blob)
    damaged[len(damaged) // 2] ^= 0xFF
    db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(damaged), keys[1]))
    db.commit()
    db.close()

    rx.restart()
    wait_until(lambda: "is damaged" in rx.current_log, timeout=10)
    assert rx.spool_stats().quarantined == 1
    contents = [f.rsplit(b": ", 1)[1] for f in rx.frames()]
    assert contents == [b"first", b"third"]
    assert (rx.spool_directory / "quarantine" / f"segment-{keys[1]}.bin").read_bytes() == bytes(damaged)
    send_tcp(rx.port, b"<13>Oct 11 22:14:15 h app: after\n")
    rx.wait_for_frames(3, timeout=10)
