"""UDP ingest: each datagram is deframed into records and handed to the spool.

Datagrams are gathered as they are read and handed over once per reactor
turn (or every ``_BATCH_DATAGRAMS``): one clock reading, one spool entry per
run of datagrams from the same sender, one counter update. Per-datagram work
is then a list append, which is what lets one core keep up with a flood.

UDP cannot be paused, so whatever cannot be taken is dropped and counted:
datagrams arriving while the spool refuses (backpressure), and those the
kernel dropped because the socket's receive buffer was full (read from
/proc/net/udp's ``drops`` column for this very socket).
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from formats.framing import DatagramDeframer, FlaggedFrame
from receiver.config.model import ListenerConfig
from receiver.config.networks import SourceNetworks
from receiver.ingest.addresses import peer_of
from receiver.ingest.admission import SourceRateLimits
from receiver.spool.segment import Entry
from receiver.spool.writer import SpoolWriter
from receiver.telemetry.events import Telemetry
from receiver.telemetry.names import UdpDrop

__all__ = ["DatagramReceiver", "kernel_drops", "set_receive_buffer"]

MAX_DATAGRAM_BYTES = 65535
_BATCH_DATAGRAMS = 1024
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


def _replay(frames_of_datagrams: list[list[bytes]]) -> Callable[[bytes], list[bytes]]:
    """A ``feed`` for datagrams deframed already: each call returns the next one's frames, in order."""
    frames_of = iter(frames_of_datagrams)
    return lambda _datagram: next(frames_of)


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
        self._batch: list[tuple[bytes, tuple[str, int]]] = []
        self._flush_call: IDelayedCall | None = None
        self.allowed = SourceNetworks(config.allowed_networks)
        self.rate_limits = SourceRateLimits(
            config.rate_limit_records_per_second, config.rate_limit_bytes_per_second, config.rate_limit_burst_seconds,
            on_evicted=functools.partial(telemetry.rate_limit_bucket_evicted, config.name),
        )

    def startProtocol(self) -> None:
        sock = self._socket()
        if sock is not None:
            granted = set_receive_buffer(sock, self.config.receive_buffer_bytes)
            self.telemetry.udp_buffer(self.config.name, self.config.receive_buffer_bytes, granted)
            self._drops_seen = kernel_drops(sock)
        self._drops_timer = self.clock.callLater(_DROPS_INTERVAL_SECONDS, self._check_drops)

    def stopProtocol(self) -> None:
        self.flush()
        if self._drops_timer is not None and self._drops_timer.active():
            self._drops_timer.cancel()
        self._check_drops(reschedule=False)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        batch = self._batch
        batch.append((datagram, addr))
        if len(batch) >= _BATCH_DATAGRAMS:
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self.flush)

    def flush(self) -> None:
        """Hand the datagrams read so far to the spool."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        name = self.config.name
        if not self.writer.accepting:
            self.telemetry.udp_dropped(name, UdpDrop.BACKPRESSURE, "the spool is not accepting (backpressure)", len(batch))
            return
        feed: Callable[[bytes], list[bytes]] = self.deframer.feed
        if self.allowed or self.rate_limits:
            batch, frames_of_kept = self._admitted(batch)
            feed = _replay(frames_of_kept)
        now = self.wall_clock_ns()
        run_addr: tuple[str, int] | None = None
        frames: list[bytes] = []
        flags: dict[int, tuple[str, ...]] = {}
        nbytes = total_frames = total_bytes = 0
        for datagram, addr in batch:
            if addr != run_addr:
                if frames:
                    self._append(now, run_addr, frames, flags, nbytes)
                    total_frames += len(frames)
                    total_bytes += nbytes
                run_addr, frames, flags, nbytes = addr, [], {}, 0
            got = feed(datagram)
            for i, frame in enumerate(got):
                if type(frame) is FlaggedFrame:  # cut at max_frame_bytes (rare)
                    flags[len(frames) + i] = frame.flags
            frames += got
            nbytes += len(datagram)
        if frames:
            self._append(now, run_addr, frames, flags, nbytes)
            total_frames += len(frames)
            total_bytes += nbytes
        self.telemetry.received(name, total_frames, total_bytes)

    def _admitted(
        self, batch: list[tuple[bytes, tuple[str, int]]]
    ) -> tuple[list[tuple[bytes, tuple[str, int]]], list[list[bytes]]]:
        """The datagrams of senders in ``allowed_networks`` and within their rate, with their frames; the
        others dropped, counted.

        A datagram is charged the records it holds, not 1 (one may hold a thousand lines), so it is
        deframed here; the frames of those dropped are not counted as received, empty or truncated.
        """
        allowed, limits, deframer = self.allowed, self.rate_limits, self.deframer
        now = self.clock.seconds()
        kept = []
        frames_of_kept = []
        outside = over = 0
        for datagram, addr in batch:
            if allowed and not allowed.contains(addr[0]):
                outside += 1
                continue
            counted = deframer.frames, deframer.empty_frames, deframer.truncated_frames
            frames = deframer.feed(datagram)
            if limits and not limits.admit(peer_of(addr)[0], len(frames), len(datagram), now):
                deframer.frames, deframer.empty_frames, deframer.truncated_frames = counted
                over += 1
                continue
            kept.append((datagram, addr))
            frames_of_kept.append(frames)
        if outside:
            self.telemetry.udp_dropped(self.config.name, UdpDrop.NOT_ALLOWED, "sender not in allowed_networks", outside)
        if over:
            self.telemetry.udp_dropped(self.config.name, UdpDrop.RATE_LIMITED, "sender over its rate limit", over)
        return kept, frames_of_kept

    def _append(
        self, now: int, addr: tuple[str, int] | None, frames: list[bytes], flags: dict[int, tuple[str, ...]], nbytes: int
    ) -> None:
        assert addr is not None
        peer, port = peer_of(addr)
        self.writer.append(Entry(now, peer, port, self.config.name, "udp", frames, flags), nbytes)
        self.telemetry.senders.received(peer, len(frames), nbytes)

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
        self.flush()
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
                    self.config.name, UdpDrop.RECEIVE_BUFFER_OVERFLOW,
                    "the kernel's receive buffer overflowed: datagrams came faster than the receiver "
                    "read them (CPU: see the benchmarks' UDP figures) or in a burst larger than "
                    "receive_buffer_bytes",
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
