"""TCP ingest: bytes to frames to the spool, one protocol per connection.

The protocol stays thin: ``dataReceived`` feeds the deframer and hands the
frames, with their envelope, to the spool writer. It never parses a message
body. The factory holds what connections share: limits, the gate, counters.

Closing is careful, because a TCP close with unread data makes the kernel
send RST and the sender loses what it had in flight: connections are refused
at accept (before anything was read), idle ones only when silent, and on
shutdown the write side is closed first (FIN), reading goes on while senders
notice and stop, and the socket is drained before the final close.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from formats.framing import StreamDeframer, flags_by_index
from receiver.config import ListenerConfig
from receiver.ingest.addresses import peer_of
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry
from receiver.spool.writer import SpoolWriter
from receiver.telemetry import Telemetry

__all__ = ["StreamFactory", "StreamReceiver"]

_DRAIN_READ_BYTES = 256 * 1024
_NO_FLAGS: dict[int, tuple[str, ...]] = {}  # shared by entries without flagged frames; never mutated
_DRAIN_MAX_BYTES = 64 * 1024 * 1024


class StreamReceiver(Protocol):
    """One TCP connection."""

    factory: StreamFactory

    def __init__(self, factory: StreamFactory, peer: str, port: int) -> None:
        self.factory = factory
        self.peer = peer
        self.port = port
        config = factory.config
        self.deframer = StreamDeframer(
            framing=config.framing,
            max_frame_bytes=config.max_frame_bytes,
            streamlog_versions=factory.streamlog_versions,
        )
        self.last_data = factory.clock.seconds()
        self.closing = False
        self.closed: Deferred[None] = Deferred()
        self._reported = (0, 0, 0, 0)

    def connectionMade(self) -> None:
        transport = cast(ITCPTransport, self.transport)
        self.factory.opened(self)
        self.factory.gate.register(transport)  # type: ignore[arg-type]
        keepalive = self.factory.config.keepalive_seconds
        if keepalive and hasattr(transport, "setTcpKeepAlive"):
            transport.setTcpKeepAlive(True)
            sock = transport.getHandle()  # type: ignore[attr-defined]
            for option, value in ((getattr(socket, "TCP_KEEPIDLE", None), keepalive),
                                  (getattr(socket, "TCP_KEEPINTVL", None), max(1, keepalive // 5)),
                                  (getattr(socket, "TCP_KEEPCNT", None), 5)):
                if option is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, option, value)

    def dataReceived(self, data: bytes) -> None:
        factory = self.factory
        self.last_data = factory.clock.seconds()
        deframer = self.deframer
        flag_events = deframer.flag_events
        frames = deframer.feed(data)
        if frames:
            flags = flags_by_index(frames) if deframer.flag_events != flag_events else _NO_FLAGS
            factory.deliver(self, frames, flags, len(data))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        frames = self.deframer.finish()
        if frames:
            self.factory.deliver(self, frames, flags_by_index(frames), sum(map(len, frames)))
        if self.transport is not None:
            self.factory.gate.unregister(self.transport)  # type: ignore[arg-type]
        self.factory.closed(self)
        self.closed.callback(None)

    def report_deframer(self) -> None:
        """Add what the deframer counted since the last report to the telemetry."""
        d = self.deframer
        now = (d.empty_frames, d.truncated_frames, d.incomplete_frames, d.framing_errors)
        if now != self._reported:
            e, t, i, f = (a - b for a, b in zip(now, self._reported, strict=True))
            self.factory.telemetry.deframed(
                self.factory.config.name, empty=e, truncated=t, incomplete=i, framing_errors=f
            )
            self._reported = now

    # -- closing without losing what the sender sent ----------------------------

    def close_gracefully(self, grace_seconds: float) -> Deferred[None]:
        """FIN first, keep reading until the peer closes or ``grace_seconds`` pass, drain, close."""
        transport = self.transport
        if transport is None or self.closing:
            return self.closed
        self.closing = True
        # Read again even if the gate paused us: what the sender still sends is committed.
        self.factory.gate.unregister(transport)  # type: ignore[arg-type]
        transport.resumeProducing()  # type: ignore[attr-defined]
        transport.loseWriteConnection()  # type: ignore[attr-defined]
        timer = self.factory.clock.callLater(grace_seconds, self._finish_close)

        def stop_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        self.closed.addBoth(stop_timer)
        return self.closed

    def _finish_close(self) -> None:
        """The peer did not close in time: read what the socket holds, then close."""
        transport = self.transport
        if transport is None:
            return
        sock = transport.getHandle()  # type: ignore[attr-defined]
        drained = 0
        try:
            sock.setblocking(False)
            while drained < _DRAIN_MAX_BYTES:
                data = sock.recv(_DRAIN_READ_BYTES)
                if not data:
                    break
                drained += len(data)
                self.dataReceived(data)
        except (BlockingIOError, InterruptedError, OSError):
            pass
        transport.loseConnection()


class StreamFactory(Factory):
    """One TCP listener's shared state: limits, gate, spool, counters."""

    def __init__(
        self,
        config: ListenerConfig,
        *,
        writer: SpoolWriter,
        gate: BackpressureGate,
        telemetry: Telemetry,
        clock: IReactorTime,
        streamlog_versions: tuple[str, ...],
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.writer = writer
        self.gate = gate
        self.telemetry = telemetry
        self.clock = clock
        self.streamlog_versions = streamlog_versions
        self.wall_clock_ns = wall_clock_ns
        self.connections: set[StreamReceiver] = set()
        self.per_source: Counter[str] = Counter()
        self._sweep: IDelayedCall | None = None

    def startFactory(self) -> None:
        if self.config.idle_timeout_seconds > 0:
            self._schedule_sweep()

    def stopFactory(self) -> None:
        if self._sweep is not None and self._sweep.active():
            self._sweep.cancel()

    def buildProtocol(self, addr: IAddress) -> StreamReceiver | None:  # type: ignore[override]
        peer, port = peer_of(addr)
        config = self.config
        if len(self.connections) >= config.max_connections:
            self.telemetry.connection_refused(config.name, peer, f"max_connections ({config.max_connections}) reached")
            return None
        if self.per_source[peer] >= config.max_connections_per_source:
            self.telemetry.connection_refused(
                config.name, peer, f"max_connections_per_source ({config.max_connections_per_source}) reached"
            )
            return None
        return StreamReceiver(self, peer, port)

    def opened(self, connection: StreamReceiver) -> None:
        self.connections.add(connection)
        self.per_source[connection.peer] += 1
        self.telemetry.connection_opened(self.config.name)
        self.telemetry.senders.connected(connection.peer)

    def closed(self, connection: StreamReceiver) -> None:
        self.connections.discard(connection)
        self.per_source[connection.peer] -= 1
        if self.per_source[connection.peer] <= 0:
            del self.per_source[connection.peer]
        connection.report_deframer()
        self.telemetry.connection_closed(self.config.name)
        self.telemetry.senders.disconnected(connection.peer)

    def deliver(
        self, connection: StreamReceiver, frames: list[bytes], flags: dict[int, tuple[str, ...]], nbytes: int
    ) -> None:
        self.writer.append(
            Entry(self.wall_clock_ns(), connection.peer, connection.port, self.config.name, "tcp", frames, flags),
            nbytes,
        )
        self.telemetry.received(self.config.name, len(frames), nbytes)
        self.telemetry.senders.received(connection.peer, len(frames), nbytes)

    def close_all(self, grace_seconds: float) -> Deferred[Any]:
        """Close every connection gracefully; fires when all are closed."""
        return DeferredList([c.close_gracefully(grace_seconds) for c in list(self.connections)])

    def _schedule_sweep(self) -> None:
        interval = min(30.0, max(0.5, self.config.idle_timeout_seconds / 4))
        self._sweep = self.clock.callLater(interval, self._sweep_idle)

    def _sweep_idle(self) -> None:
        now = self.clock.seconds()
        limit = self.config.idle_timeout_seconds
        for connection in list(self.connections):
            connection.report_deframer()
            # A paused connection may hold unread data: never close it for silence.
            if not connection.closing and not self.gate.closed and now - connection.last_data >= limit:
                self.telemetry.connection_idle_closed(self.config.name, connection.peer, limit)
                connection.close_gracefully(grace_seconds=10.0)
        self._schedule_sweep()
