"""UDP ingest: each datagram is deframed into records and handed to the spool.

UDP cannot be paused, so whatever cannot be taken is dropped and counted:
datagrams arriving while the spool refuses (backpressure), and those the
kernel dropped because the socket's receive buffer was full (read from
/proc/net/udp's ``drops`` column for this very socket).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from formats.framing import DatagramDeframer
from receiver.config import ListenerConfig
from receiver.ingest.addresses import peer_of
from receiver.spool.segment import Entry
from receiver.spool.writer import SpoolWriter
from receiver.telemetry import Telemetry

__all__ = ["DatagramReceiver", "kernel_drops", "set_receive_buffer"]

MAX_DATAGRAM_BYTES = 65535
_DROPS_INTERVAL_SECONDS = 5.0
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer; returns what the kernel granted."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)  # above rmem_max: needs CAP_NET_ADMIN
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    # Linux reports twice the usable size (it counts its bookkeeping).
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket, or None where that is not known."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
        except OSError:
            continue
    return None


class DatagramReceiver(DatagramProtocol):
    """One UDP listener."""

    noisy = False

    def __init__(
        self,
        config: ListenerConfig,
        *,
        writer: SpoolWriter,
        telemetry: Telemetry,
        clock: IReactorTime,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.writer = writer
        self.telemetry = telemetry
        self.clock = clock
        self.wall_clock_ns = wall_clock_ns
        self.deframer = DatagramDeframer(max_frame_bytes=config.max_frame_bytes)
        self._drops_seen: int | None = None
        self._drops_timer: IDelayedCall | None = None
        self._reported = (0, 0)

    def startProtocol(self) -> None:
        sock = self._socket()
        if sock is not None:
            granted = set_receive_buffer(sock, self.config.receive_buffer_bytes)
            self.telemetry.udp_buffer(self.config.name, self.config.receive_buffer_bytes, granted)
            self._drops_seen = kernel_drops(sock)
        self._drops_timer = self.clock.callLater(_DROPS_INTERVAL_SECONDS, self._check_drops)

    def stopProtocol(self) -> None:
        if self._drops_timer is not None and self._drops_timer.active():
            self._drops_timer.cancel()
        self._check_drops(reschedule=False)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if not self.writer.accepting:
            self.telemetry.udp_dropped(self.config.name, "the spool is not accepting (backpressure)")
            return
        frames = self.deframer.feed(datagram)
        if frames:
            peer, port = peer_of(addr)
            self.writer.append(
                Entry(self.wall_clock_ns(), peer, port, self.config.name, "udp", frames), len(datagram)
            )
            self.telemetry.received(self.config.name, len(frames), len(datagram))

    def drain(self) -> int:
        """Read every datagram the socket holds now (shutdown); returns how many."""
        sock = self._socket()
        count = 0
        if sock is None:
            return 0
        sock.setblocking(False)
        while count < 1_000_000:
            try:
                datagram, addr = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError, OSError):
                break
            self.datagramReceived(datagram, addr)
            count += 1
        return count

    def _socket(self) -> socket.socket | None:
        transport = self.transport
        return transport.getHandle() if transport is not None else None  # type: ignore[attr-defined]

    def _check_drops(self, reschedule: bool = True) -> None:
        sock = self._socket()
        if sock is not None and self._drops_seen is not None:
            now = kernel_drops(sock)
            if now is not None and now > self._drops_seen:
                self.telemetry.udp_dropped(
                    self.config.name, "the kernel's receive buffer was full (raise receive_buffer_bytes)",
                    now - self._drops_seen,
                )
                self._drops_seen = now
        d = self.deframer
        counts = (d.empty_frames, d.truncated_frames)
        if counts != self._reported:
            self.telemetry.deframed(
                self.config.name, empty=counts[0] - self._reported[0], truncated=counts[1] - self._reported[1],
                incomplete=0, framing_errors=0,
            )
            self._reported = counts
        if reschedule:
            self._drops_timer = self.clock.callLater(_DROPS_INTERVAL_SECONDS, self._check_drops)
