"""TCP ingest: bytes to frames to the spool, one protocol per connection.

The protocol stays thin: ``dataReceived`` feeds the deframer and hands the
frames, with their envelope, to the spool writer. It never parses a message
body. The factory holds what connections share: limits, the gate, counters.

Who may send is decided here too: a sender outside the listener's
``allowed_networks`` or over its connection limits is refused at accept; a
sender over its rate limit has its reading paused until it is back under
(the kernel's window then slows it; nothing is dropped). Reading is paused
for two reasons, backpressure (the gate) and the rate, and resumes only when
neither holds: the connection itself is the producer the gate pauses.

Closing is careful, because a TCP close with unread data makes the kernel
send RST and the sender loses what it had in flight: connections are refused
at accept (before anything was read), idle ones only when silent, and on
shutdown the write side is closed first (FIN), reading goes on while senders
notice and stop, and the socket is drained before the final close.

Over TLS (the factory has a ``tls`` context, and the service wraps the
factory in Twisted's TLS layer) the protocol sees the TLS transport: it
arms a handshake deadline when the connection opens, and when the
handshake completes it asks the context whether the verified peer is
admitted (allowlists), aborting it before any frame is read if not. TLS's
own half-close, ``close_notify``, stands in for the FIN: the wrapper keeps
decrypting what the sender still sends until the sender answers with its
own ``close_notify`` or closes, and the final drain feeds the raw socket's
bytes through the wrapper. Keepalive and the drain use the TCP transport
under the wrapper.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal, cast

from OpenSSL import SSL
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from formats.framing import StreamDeframer, flags_by_index
from receiver.config.model import ListenerConfig
from receiver.config.networks import SourceNetworks
from receiver.ingest.addresses import peer_of
from receiver.ingest.admission import SourceRateLimits
from receiver.ingest.tls import TlsServerContext, arm_handshake_timeout
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry
from receiver.spool.writer import SpoolWriter
from receiver.telemetry.events import Telemetry
from receiver.telemetry.names import ConnectionRefusal

__all__ = ["StreamFactory", "StreamReceiver"]

_log = logging.getLogger(__name__)

_DRAIN_READ_BYTES = 256 * 1024
_NO_FLAGS: dict[int, tuple[str, ...]] = {}  # shared by entries without flagged frames; never mutated
_DRAIN_MAX_BYTES = 64 * 1024 * 1024
_REFUSAL_DETAIL_INTERVAL_SECONDS = 60.0
"""How often an allowlist refusal's certificate is logged (the counter has every refusal)."""


@implementer(IHandshakeListener, IPushProducer)
class StreamReceiver(Protocol):
    """One TCP connection (plain, or TLS when ``factory.tls`` is set)."""

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
            nul_ends_frame=config.nul_ends_frame,
        )
        self.last_data = factory.clock.seconds()
        self.closing = False
        self.closed: Deferred[None] = Deferred()
        self._held: set[str] = set()  # why reading is paused: "backpressure", "rate"
        self._slow: IDelayedCall | None = None  # the end of a rate-limit pause
        self._reported = (0, 0, 0, 0)
        self.handshake: IDelayedCall | None = None
        """The TLS handshake's deadline while it runs (None: plain TCP, or the handshake is over)."""
        self.tls_state: Literal["handshaking", "admitted", "refused"] = "handshaking"
        """Over TLS: before the handshake's end, admitted, or refused (counted where it was decided)."""

    @property
    def tcp_transport(self) -> ITCPTransport:
        """The TCP connection itself: under TLS, the transport beneath the TLS wrapper."""
        transport = self.transport
        if self.factory.tls is not None:
            transport = transport.transport  # type: ignore[union-attr]
        return cast(ITCPTransport, transport)

    def connectionMade(self) -> None:
        factory = self.factory
        factory.opened(self)
        if factory.tls is None:
            factory.gate.register(self)
        else:
            # Registered with the gate once the peer is admitted (handshakeCompleted): a
            # handshake paused by backpressure would only run into its deadline.
            self.handshake = arm_handshake_timeout(
                factory.clock, factory.tls.settings.handshake_timeout_seconds, self._handshake_timed_out
            )
        keepalive = factory.config.keepalive_seconds
        transport = self.tcp_transport
        if keepalive and hasattr(transport, "setTcpKeepAlive"):
            transport.setTcpKeepAlive(True)
            sock = transport.getHandle()  # type: ignore[attr-defined]
            for option, value in ((getattr(socket, "TCP_KEEPIDLE", None), keepalive),
                                  (getattr(socket, "TCP_KEEPINTVL", None), max(1, keepalive // 5)),
                                  (getattr(socket, "TCP_KEEPCNT", None), 5)):
                if option is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, option, value)

    # -- TLS ---------------------------------------------------------------------

    def handshakeCompleted(self) -> None:
        """The TLS handshake verified the peer: admit it (allowlists) or abort before any frame is read."""
        factory = self.factory
        if self.handshake is not None and self.handshake.active():
            self.handshake.cancel()
        self.handshake = None
        assert factory.tls is not None
        refusal = factory.tls.peer_refusal(self.transport)
        if refusal is not None:
            self.tls_state = "refused"
            # The counter's label is fixed (a peer could make fingerprints without end);
            # the log line has the certificate's names and fingerprint, at most once a minute.
            factory.telemetry.connection_refused(
                factory.config.name, self.peer, ConnectionRefusal.TLS_PEER_NOT_ALLOWED, "TLS peer not in the allowlist"
            )
            now = factory.clock.seconds()
            if now - factory.allowlist_refusal_logged_at >= _REFUSAL_DETAIL_INTERVAL_SECONDS:
                factory.allowlist_refusal_logged_at = now
                _log.info("%s: TLS connection from %s refused: %s", factory.config.name, self.peer, refusal)
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.tls_state = "admitted"
        if not self.closing:
            factory.gate.register(self)

    def _handshake_timed_out(self) -> None:
        self.handshake = None
        factory = self.factory
        assert factory.tls is not None
        self.tls_state = "refused"
        factory.telemetry.connection_refused(
            factory.config.name, self.peer, ConnectionRefusal.TLS_HANDSHAKE_TIMEOUT,
            f"TLS handshake not done within {factory.tls.settings.handshake_timeout_seconds:g} s",
        )
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _count_failed_handshake(self, reason: Failure) -> None:
        """A handshake OpenSSL gave up on (no or a bad client certificate, old TLS, not TLS at all)."""
        if self.handshake is not None and self.handshake.active():
            self.handshake.cancel()
        self.handshake = None
        if self.tls_state != "handshaking" or reason.value is None or not reason.check(SSL.Error):
            return  # admitted, counted already, or the peer went away before finishing
        self.factory.telemetry.connection_refused(
            self.factory.config.name, self.peer, ConnectionRefusal.TLS_HANDSHAKE_FAILED,
            f"TLS handshake failed: {_openssl_reason(reason.value)}",
        )

    def dataReceived(self, data: bytes) -> None:
        factory = self.factory
        self.last_data = factory.clock.seconds()
        deframer = self.deframer
        flag_events = deframer.flag_events
        frames = deframer.feed(data)
        if frames:
            flags = flags_by_index(frames) if deframer.flag_events != flag_events else _NO_FLAGS
            factory.deliver(self, frames, flags, len(data))

    # -- reading paused: backpressure (the gate) and the sender's rate limit ------

    def pauseProducing(self) -> None:
        """The gate's: stop reading (the connection itself is the producer it holds, see ``_hold``)."""
        self._hold("backpressure")

    def resumeProducing(self) -> None:
        self._release("backpressure")

    def stopProducing(self) -> None:
        """Part of the producer interface; the transport ends the connection itself."""

    @property
    def reading_held(self) -> bool:
        """Whether reading is paused now, for any reason."""
        return bool(self._held)

    def slow_down(self, seconds: float) -> None:
        """The sender is over its rate limit: read nothing from it for ``seconds``."""
        if self._slow is not None and self._slow.active():
            self._slow.reset(seconds)
            return
        self._hold("rate")
        self._slow = self.factory.clock.callLater(seconds, self._release, "rate")

    def _hold(self, why: str) -> None:
        # Reading is paused while any reason holds: neither reason may resume what the other paused.
        if not self._held and self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        self._held.add(why)

    def _release(self, why: str) -> None:
        if why not in self._held:
            return
        self._held.discard(why)
        if not self._held and self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.factory.tls is not None:
            self._count_failed_handshake(reason)
        frames = self.deframer.finish()
        if frames:
            self.factory.deliver(self, frames, flags_by_index(frames), sum(map(len, frames)))
        self.factory.gate.unregister(self)
        if self._slow is not None and self._slow.active():
            self._slow.cancel()
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
        """FIN first, keep reading until the peer closes or ``grace_seconds`` pass, drain, close.

        Over TLS the FIN is TLS's ``close_notify`` (the wrapper's
        ``loseConnection``): a bare FIN beneath TLS would look like a
        truncation attack to the sender; the wrapper reads on until the
        sender's own ``close_notify`` or close, as TCP does until its FIN.
        """
        transport = self.transport
        if transport is None or self.closing:
            return self.closed
        self.closing = True
        # Read again even if the gate paused us: what the sender still sends is committed.
        self.factory.gate.unregister(self)
        self.tcp_transport.resumeProducing()  # type: ignore[attr-defined]
        if self.factory.tls is None:
            transport.loseWriteConnection()  # type: ignore[attr-defined]
        else:
            transport.loseConnection()
        return self._closed_within(grace_seconds, self._finish_close)

    def _closed_within(self, seconds: float, otherwise: Callable[[], object]) -> Deferred[None]:
        """``self.closed``, with ``otherwise`` called if the connection is still open after ``seconds``."""
        timer = self.factory.clock.callLater(seconds, otherwise)

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
        tcp = self.tcp_transport
        # Under TLS the socket holds records: the wrapper decrypts them and hands us the bytes.
        feed = self.dataReceived if self.factory.tls is None else transport.dataReceived  # type: ignore[attr-defined]
        sock = tcp.getHandle()  # type: ignore[attr-defined]
        drained = 0
        try:
            sock.setblocking(False)
            while drained < _DRAIN_MAX_BYTES:
                data = sock.recv(_DRAIN_READ_BYTES)
                if not data:
                    break
                drained += len(data)
                feed(data)
        except (BlockingIOError, InterruptedError, OSError):
            pass
        # The TCP transport's: the TLS wrapper's loseConnection already ran (close_notify) and does nothing twice.
        tcp.loseConnection()


def _openssl_reason(error: BaseException) -> str:
    """OpenSSL's reason for a failed handshake (``certificate verify failed``): a short, fixed vocabulary."""
    details = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [str(entry[-1]) for entry in details if isinstance(entry, tuple) and entry and entry[-1]]
    return ", ".join(dict.fromkeys(reasons))[:120] or type(error).__name__


class StreamFactory(Factory):
    """One TCP listener's shared state: limits, gate, spool, counters."""

    receiver_class: type[StreamReceiver] = StreamReceiver
    """The protocol of each connection (RELP listeners have their own)."""

    def __init__(
        self,
        config: ListenerConfig,
        *,
        writer: SpoolWriter,
        gate: BackpressureGate,
        telemetry: Telemetry,
        clock: IReactorTime,
        streamlog_versions: tuple[str, ...],
        tls: TlsServerContext | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.tls = tls
        """The listener's TLS context (the service wraps this factory in TLS), or None: plain TCP."""
        self.allowed = SourceNetworks(config.allowed_networks)
        limits = SourceRateLimits(
            config.rate_limit_records_per_second, config.rate_limit_bytes_per_second, config.rate_limit_burst_seconds,
            on_evicted=functools.partial(telemetry.rate_limit_bucket_evicted, config.name),
        )
        # None when off: the per-read test is then a plain identity check.
        self.rate_limits: SourceRateLimits | None = limits if limits else None
        self.writer = writer
        self.gate = gate
        self.telemetry = telemetry
        self.clock = clock
        self.streamlog_versions = streamlog_versions
        self.wall_clock_ns = wall_clock_ns
        self.connections: set[StreamReceiver] = set()
        self.per_source: Counter[str] = Counter()
        self.allowlist_refusal_logged_at = float("-inf")
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
        if self.allowed and not self.allowed.contains(peer):
            self.telemetry.connection_refused(
                config.name, peer, ConnectionRefusal.NOT_ALLOWED, "sender not in allowed_networks"
            )
            return None
        if len(self.connections) >= config.max_connections:
            self.telemetry.connection_refused(
                config.name, peer, ConnectionRefusal.MAX_CONNECTIONS, f"max_connections ({config.max_connections}) reached"
            )
            return None
        if self.per_source[peer] >= config.max_connections_per_source:
            self.telemetry.connection_refused(
                config.name, peer, ConnectionRefusal.MAX_CONNECTIONS_PER_SOURCE,
                f"max_connections_per_source ({config.max_connections_per_source}) reached"
            )
            return None
        return self.receiver_class(self, peer, port)

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
        if self.rate_limits is not None:
            wait = self.rate_limits.charge(connection.peer, len(frames), nbytes, self.clock.seconds())
            if wait > 0:
                self.telemetry.rate_limited(self.config.name, connection.peer, wait)
                connection.slow_down(wait)

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
            paused = self.gate.closed or connection.reading_held
            if not connection.closing and not paused and now - connection.last_data >= limit:
                self.telemetry.connection_idle_closed(self.config.name, connection.peer, limit)
                connection.close_gracefully(grace_seconds=10.0)
        self._schedule_sweep()
