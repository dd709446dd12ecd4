"""Who may send: source networks refused at accept, and a flooding sender slowed without slowing the others."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.integration.conftest import MakeReceiver
from tests.support.programs import LOOPBACK, free_port, wait_until
from tests.support.receiverctl import receiverctl

pytestmark = pytest.mark.integration


def connect_from(source: str, port: int) -> socket.socket:
    """A TCP connection to the receiver from ``source`` (another loopback address)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect((LOOPBACK, port))
    return s


def test_a_sender_outside_allowed_networks_is_refused_and_counted(make_receiver: MakeReceiver) -> None:
    """If a listener allows 127.0.0.1 only, then a connection from 127.0.0.2 is closed before anything is
    read, its lines are not stored, and `receiverctl stats` shows the refusal with its reason."""
    port = free_port()
    rx = make_receiver(listeners=[{"name": "tcp", "transport": "tcp", "address": "0.0.0.0", "port": port,
                                   "allowed_networks": ["127.0.0.1/32"]}])
    with connect_from("127.0.0.2", port) as refused:
        try:
            refused.sendall(b"<13>from outside\n")
            assert refused.recv(100) == b""  # closed by the receiver
        except ConnectionResetError:
            pass  # closed before our line was read: the kernel answered it with a reset
    with connect_from("127.0.0.1", port) as allowed:
        allowed.sendall(b"<13>from inside\n")
    assert rx.wait_for_frames(1) == [b"<13>from inside"]
    stats = receiverctl("stats", "-c", str(rx.config_path))
    assert stats.returncode == 0, stats.stderr
    assert "receiver_connections_refused_total{listener=tcp,reason=not_allowed} 1" in stats.stdout


def test_a_flood_from_one_sender_does_not_slow_another(make_receiver: MakeReceiver) -> None:
    """If one sender floods a listener limited to 5,000 records/s per sender while another sends a line
    every 50 ms, then the flood is held to about its limit (slowed, not dropped: all of it arrives in the
    end), and each of the other's lines is stored within 1 s of being sent."""
    limit = 5000
    port = free_port()
    rx = make_receiver(listeners=[{"name": "tcp", "transport": "tcp", "address": "0.0.0.0", "port": port,
                                   "rate_limit_records_per_second": limit, "rate_limit_burst_seconds": 1}])
    flood_lines = 30_000
    flood_sent = threading.Event()

    def flood() -> None:
        with connect_from("127.0.0.2", port) as s:
            s.settimeout(60)
            s.sendall(b"".join(b"<13>flood %06d\n" % i for i in range(flood_lines)))
        flood_sent.set()

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    sent_at: dict[bytes, float] = {}
    seen_at: dict[bytes, float] = {}
    seen_floods = 0
    after = 0
    started = time.monotonic()
    with connect_from("127.0.0.3", port) as calm, rx.reader() as reader:

        def read_new() -> None:
            nonlocal after, seen_floods
            for entry in reader.entries(after):
                after = entry.seq
                now = time.monotonic()
                for frame in entry.frames:
                    if frame.startswith(b"<13>calm"):
                        seen_at.setdefault(frame, now)
                    else:
                        seen_floods += 1

        for i in range(40):
            line = b"<13>calm %03d" % i
            calm.sendall(line + b"\n")
            sent_at[line] = time.monotonic()
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                read_new()
                time.sleep(0.01)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 2.0
        while len(seen_at) < len(sent_at) and time.monotonic() < deadline:
            read_new()
            time.sleep(0.01)
    delays = [seen_at.get(line, float("inf")) - t for line, t in sent_at.items()]
    # Burst plus rate over the window, with room for a second of scheduling on a busy machine.
    assert seen_floods <= limit * (1 + elapsed + 1), f"{seen_floods} flood lines in {elapsed:.1f} s: not limited"
    assert max(delays) < 1.0, f"the calm sender's slowest line took {max(delays):.2f} s"
    flooder.join(60)
    assert flood_sent.is_set()
    wait_until(lambda: rx.frame_count() >= flood_lines + len(sent_at), timeout=30)
    stats = receiverctl("stats", "-c", str(rx.config_path))
    assert "receiver_rate_limited_total{listener=tcp}" in stats.stdout
