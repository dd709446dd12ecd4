"""TCP and UDP ingest, driven through in-memory transports and a controlled clock."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from receiver.config.model import ListenerConfig
from receiver.ingest.addresses import normalize_ip
from receiver.ingest.tcp import StreamFactory, StreamReceiver
from receiver.ingest.udp import DatagramReceiver
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry
from receiver.telemetry.events import Telemetry
from tests.helpers import chunks

TCP = ListenerConfig(name="tcp-test", transport="tcp", max_connections=3, max_connections_per_source=2,
                     idle_timeout_seconds=60, keepalive_seconds=0)
UDP = ListenerConfig(name="udp-test", transport="udp")
ALI = b"0.1 sys_tag 1795323666 127.0.0.1 web-1 user.notice 0 app 1 - hello"


class FakeWriter:
    """Records what would be committed."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.accepting = True

    def append(self, entry: Entry, nbytes: int) -> None:
        self.entries.append(entry)

    @property
    def frames(self) -> list[bytes]:
        return [f for e in self.entries for f in e.frames]


class HalfClosableTransport(StringTransport):
    """StringTransport that records a write-side close (FIN) like a TCP transport."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Stream:
    def __init__(self, config: ListenerConfig = TCP) -> None:
        self.clock = Clock()
        self.writer = FakeWriter()
        self.gate = BackpressureGate()
        self.telemetry = Telemetry(clock=self.clock.seconds, repeat_interval_seconds=60)
        self.factory = StreamFactory(
            config, writer=self.writer, gate=self.gate, telemetry=self.telemetry,  # type: ignore[arg-type]
            clock=self.clock, streamlog_versions=("0.1",), wall_clock_ns=lambda: 42,
        )
        self.factory.startFactory()

    def connect(self, host: str = "10.0.0.7", port: int = 40000) -> tuple[StreamReceiver, HalfClosableTransport]:
        address = IPv6Address("TCP", host, port) if ":" in host else IPv4Address("TCP", host, port)
        protocol = self.factory.buildProtocol(address)
        assert protocol is not None
        transport = HalfClosableTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport


class TestStreamReceiver:
    @pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
    def test_frames_reach_the_spool_with_their_envelope(self, size: int) -> None:
        """If lines arrive in chunks of any size, then every frame reaches the spool once, with peer and listener."""
        s = Stream()
        protocol, _ = s.connect()
        octet = b"<13>1 2026-10-11T22:14:15+00:00 h a - - - octet framed message here"
        stream = (ALI + b"\n") * 20 + str(len(octet) + 1).encode() + b" " + octet + b"\n"
        for piece in chunks(stream, size):
            protocol.dataReceived(piece)
        assert s.writer.frames == [ALI] * 20 + [octet]
        first = s.writer.entries[0]
        assert (first.peer, first.port, first.listener, first.transport, first.receive_time_ns) == (
            "10.0.0.7", 40000, "tcp-test", "tcp", 42)

    def test_ipv4_mapped_peer_is_plain_ipv4(self) -> None:
        """If an IPv4 sender reaches a dual-stack socket, then its address is stored as plain IPv4."""
        s = Stream()
        protocol, _ = s.connect("::ffff:192.0.2.9")
        protocol.dataReceived(ALI + b"\n")
        assert s.writer.entries[0].peer == "192.0.2.9"
        assert normalize_ip("2001:db8::1") == "2001:db8::1"

    def test_half_frame_at_close_is_kept_flagged(self) -> None:
        """If the sender closes mid-frame, then complete frames are kept and the partial one flagged incomplete."""
        s = Stream()
        protocol, _ = s.connect()
        protocol.dataReceived(ALI + b"\n" + b"0.1 sys_tag 17953")
        protocol.connectionLost()
        assert s.writer.frames == [ALI, b"0.1 sys_tag 17953"]
        assert s.writer.entries[0].frame_flags == {}
        assert s.writer.entries[-1].frame_flags == {0: ("incomplete",)}
        assert s.telemetry.value("receiver_frames_incomplete_total") == 1

    def test_connection_limits_refuse_at_accept(self, caplog: pytest.LogCaptureFixture) -> None:
        """If per-source or total limits are reached, then new connections are refused, counted and logged once."""
        s = Stream()
        s.connect("10.0.0.1")
        s.connect("10.0.0.1")
        with caplog.at_level(logging.WARNING):
            assert s.factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1)) is None
            assert s.factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 2)) is None
        s.connect("10.0.0.2")
        assert s.factory.buildProtocol(IPv4Address("TCP", "10.0.0.3", 1)) is None
        assert s.telemetry.value("receiver_connections_refused_total") == 3
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refusals == [  # one line per reason per interval, not one per connection
            "tcp-test: refused a connection from 10.0.0.1: max_connections_per_source (2) reached",
            "tcp-test: refused a connection from 10.0.0.3: max_connections (3) reached",
        ]

    def test_senders_outside_allowed_networks_are_refused_at_accept(self) -> None:
        """If a listener allows some networks, then others are refused before anything is read, and counted."""
        s = Stream(dataclasses.replace(TCP, allowed_networks=("10.0.0.0/24", "2001:db8::/32")))
        assert s.factory.buildProtocol(IPv4Address("TCP", "10.0.1.1", 1)) is None
        assert s.factory.buildProtocol(IPv6Address("TCP", "::ffff:192.0.2.1", 1)) is None
        s.connect("10.0.0.9")
        s.connect("::ffff:10.0.0.9")
        s.connect("2001:db8::5")
        assert s.telemetry.value("receiver_connections_refused_total", listener="tcp-test",
                                 reason="not_allowed") == 2

    def test_a_sender_over_its_rate_is_paused_not_dropped(self) -> None:
        """If a sender goes over its rate limit, then its reading pauses until the excess is paid,
        everything it sent is kept, and another sender is not paused."""
        s = Stream(dataclasses.replace(TCP, rate_limit_records_per_second=100, rate_limit_burst_seconds=1))
        flood, flood_transport = s.connect("10.0.0.1")
        calm, calm_transport = s.connect("10.0.0.2")
        flood.dataReceived((ALI + b"\n") * 150)  # 50 over a burst of 100: half a second
        calm.dataReceived((ALI + b"\n") * 10)
        assert flood_transport.producerState == "paused"
        assert calm_transport.producerState == "producing"
        assert len(s.writer.frames) == 160
        assert s.telemetry.value("receiver_rate_limited_total", listener="tcp-test") == 1
        s.clock.advance(0.49)
        assert flood_transport.producerState == "paused"
        s.clock.advance(0.02)
        assert flood_transport.producerState == "producing"

    def test_the_rate_pause_and_backpressure_do_not_undo_each_other(self) -> None:
        """If backpressure and a rate pause overlap, then reading resumes only when both are over."""
        s = Stream(dataclasses.replace(TCP, rate_limit_bytes_per_second=1000, rate_limit_burst_seconds=1))
        protocol, transport = s.connect()
        protocol.dataReceived(b"x" * 2000 + b"\n")  # one second over
        s.gate.hold("disk")
        s.clock.advance(1.1)  # the rate pause ends; the gate still holds
        assert transport.producerState == "paused"
        s.gate.release("disk")
        assert transport.producerState == "producing"
        protocol.dataReceived(b"x" * 2000 + b"\n")  # over again
        s.gate.hold("disk")
        s.gate.release("disk")  # the gate lets go; the rate pause still holds
        assert transport.producerState == "paused"

    def test_closed_connections_free_their_slot(self) -> None:
        """If a connection closes, then its source may connect again."""
        s = Stream()
        protocol, _ = s.connect("10.0.0.1")
        s.connect("10.0.0.1")
        protocol.connectionLost()
        assert s.factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 3)) is not None

    def test_idle_connection_is_closed_gracefully(self) -> None:
        """If a connection is silent past idle_timeout_seconds, then the receiver closes its write side first."""
        s = Stream()
        _, transport = s.connect()
        s.clock.advance(61)
        assert transport.write_closed
        assert s.telemetry.value("receiver_connections_idle_closed_total") == 1

    def test_paused_connection_is_never_closed_for_silence(self) -> None:
        """If the gate paused reading, then silence is ours, and the connection stays open."""
        s = Stream()
        _, transport = s.connect()
        s.gate.hold("disk")
        assert transport.producerState == "paused"
        s.clock.advance(600)
        assert not transport.write_closed
        s.gate.release("disk")
        assert transport.producerState == "producing"

    def test_connection_paused_by_its_rate_is_never_closed_for_silence(self) -> None:
        """If reading from one connection is paused (its sender is over its rate limit), then its silence
        is ours too, and the idle sweep leaves it open: closing it would reset what it still has in flight."""
        s = Stream()
        protocol, transport = s.connect()
        protocol.slow_down(600)
        assert transport.producerState == "paused"
        s.clock.advance(300)
        assert not transport.write_closed
        s.clock.advance(300)
        assert transport.producerState == "producing"

    def test_graceful_close_keeps_reading_then_drains(self) -> None:
        """If the receiver stops, then it half-closes, keeps committing what arrives, and closes after the grace."""
        s = Stream()
        protocol, transport = s.connect()
        s.gate.hold("memory")
        done = protocol.close_gracefully(grace_seconds=5)
        assert transport.write_closed
        assert transport.producerState == "producing"
        protocol.dataReceived(ALI + b"\n")
        assert s.writer.frames == [ALI]
        assert not done.called
        protocol.connectionLost()
        assert done.called

    def test_truncation_is_counted(self) -> None:
        """If a frame is over the limit, then it is cut, flagged, and the counter says so."""
        s = Stream(dataclasses.replace(TCP, max_frame_bytes=10))
        protocol, _ = s.connect()
        protocol.dataReceived(b"<13>" + b"x" * 100 + b"\n<13>ok\n")
        protocol.connectionLost()
        assert s.writer.frames == [b"<13>xxxxxx", b"<13>ok"]
        assert s.writer.entries[0].frame_flags == {0: ("truncated:104",)}
        assert s.telemetry.value("receiver_frames_truncated_total") == 1


class TestDatagramReceiver:
    def test_batches_by_sender(self) -> None:
        """If datagrams from two senders interleave, then each run becomes one entry, in order, flags kept."""
        receiver, writer, telemetry = self.make()
        receiver.deframer = type(receiver.deframer)(max_frame_bytes=8)
        for datagram, addr in [(b"<1>a", ("10.0.0.1", 1)), (b"<1>b\n<1>c", ("10.0.0.1", 1)),
                               (b"<1>too long here", ("10.0.0.2", 2)), (b"<1>d", ("10.0.0.1", 1))]:
            receiver.datagramReceived(datagram, addr)
        receiver.clock.advance(0)  # type: ignore[attr-defined]
        assert [(e.peer, e.frames, e.frame_flags) for e in writer.entries] == [
            ("10.0.0.1", [b"<1>a", b"<1>b", b"<1>c"], {}),
            ("10.0.0.2", [b"<1>too l"], {0: ("truncated:16",)}),
            ("10.0.0.1", [b"<1>d"], {}),
        ]
        assert telemetry.value("receiver_frames_received_total") == 5

    def make(self, config: ListenerConfig = UDP) -> tuple[DatagramReceiver, FakeWriter, Telemetry]:
        writer = FakeWriter()
        telemetry = Telemetry(clock=Clock().seconds)
        receiver = DatagramReceiver(config, writer=writer, telemetry=telemetry, clock=Clock(),  # type: ignore[arg-type]
                                    wall_clock_ns=lambda: 7)
        return receiver, writer, telemetry

    def test_senders_outside_allowed_networks_are_dropped_and_counted(self) -> None:
        """If a listener allows some networks, then datagrams from elsewhere are dropped, counted by reason."""
        receiver, writer, telemetry = self.make(dataclasses.replace(UDP, allowed_networks=("10.0.0.0/8",)))
        receiver.datagramReceived(b"<13>in", ("::ffff:10.1.1.1", 5140))
        receiver.datagramReceived(b"<13>out", ("192.168.0.9", 5140))
        receiver.flush()
        assert writer.frames == [b"<13>in"]
        assert telemetry.value("receiver_udp_datagrams_dropped_total", listener="udp-test",
                               reason="not_allowed") == 1

    def test_a_flooding_sender_is_dropped_over_its_rate_and_others_are_not(self) -> None:
        """If one sender goes over its rate limit, then its excess datagrams are dropped and counted,
        and another sender in the same moment loses nothing."""
        config = dataclasses.replace(UDP, rate_limit_records_per_second=100, rate_limit_burst_seconds=1)
        receiver, writer, telemetry = self.make(config)
        for i in range(300):
            receiver.datagramReceived(b"<13>flood %d" % i, ("10.0.0.1", 5140))
            if i % 10 == 0:
                receiver.datagramReceived(b"<13>calm %d" % i, ("10.0.0.2", 5140))
        receiver.flush()
        assert sum(f.startswith(b"<13>flood") for f in writer.frames) == 100
        assert sum(f.startswith(b"<13>calm") for f in writer.frames) == 30
        assert telemetry.value("receiver_udp_datagrams_dropped_total", listener="udp-test",
                               reason="rate_limited") == 200

    def test_a_datagram_is_charged_the_records_it_holds(self) -> None:
        """If a datagram holds more LF-separated records than the sender may send, then it is dropped whole
        and counted, and a later one that fits in what is left passes."""
        config = dataclasses.replace(UDP, rate_limit_records_per_second=10, rate_limit_burst_seconds=1)
        receiver, writer, telemetry = self.make(config)
        receiver.datagramReceived(b"".join(b"<13>line %d\n" % i for i in range(1500)), ("10.0.0.1", 5140))
        receiver.datagramReceived(b"<13>a\n<13>b\n<13>c\n<13>d\n<13>e\n<13>f\n", ("10.0.0.1", 5140))
        receiver.datagramReceived(b"<13>g\n<13>h\n<13>i\n<13>j\n<13>k\n", ("10.0.0.1", 5140))
        receiver.flush()
        assert writer.frames == [b"<13>a", b"<13>b", b"<13>c", b"<13>d", b"<13>e", b"<13>f"]
        assert telemetry.value("receiver_frames_received_total") == 6
        assert telemetry.value("receiver_udp_datagrams_dropped_total", listener="udp-test",
                               reason="rate_limited") == 2

    def test_frames_of_dropped_datagrams_are_not_counted_and_kept_ones_keep_their_flags(self) -> None:
        """If a rate-limited listener drops a datagram with empty and oversize lines, then they are not
        counted as skipped or truncated; a kept datagram's truncated frame is flagged as it is without limits."""
        config = dataclasses.replace(UDP, rate_limit_records_per_second=2, rate_limit_burst_seconds=1,
                                     max_frame_bytes=8)
        receiver, writer, telemetry = self.make(config)
        receiver.datagramReceived(b"<1>a\n<1>too long here", ("10.0.0.1", 1))
        receiver.datagramReceived(b"<1>b\n\n\n<1>too long too\n", ("10.0.0.1", 1))
        receiver.stopProtocol()  # reports the deframer's counts
        assert [(e.frames, e.frame_flags) for e in writer.entries] == [([b"<1>a", b"<1>too l"], {1: ("truncated:16",)})]
        assert telemetry.value("receiver_frames_truncated_total") == 1
        assert telemetry.value("receiver_frames_empty_total") == 0

    def test_rate_limit_buckets_evicted_are_counted(self) -> None:
        """If more sources send than the rate limits keep buckets for, then each eviction is counted."""
        config = dataclasses.replace(UDP, rate_limit_records_per_second=100)
        receiver, _, telemetry = self.make(config)
        receiver.rate_limits.max_sources = 2
        for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
            receiver.datagramReceived(b"<13>x", (host, 5140))
        receiver.flush()
        assert telemetry.value("receiver_rate_limit_buckets_evicted_total", listener="udp-test") == 2

    def test_datagram_records(self) -> None:
        """If a datagram holds LF-separated records, then each is a frame with the sender's address."""
        receiver, writer, _ = self.make()
        receiver.datagramReceived(b"<13>one\n<13>two\n", ("::ffff:10.1.1.1", 5140))
        receiver.flush()
        assert writer.frames == [b"<13>one", b"<13>two"]
        assert (writer.entries[0].peer, writer.entries[0].port, writer.entries[0].transport) == ("10.1.1.1", 5140, "udp")

    def test_dropped_under_backpressure_and_counted(self) -> None:
        """If the spool is not accepting, then datagrams are dropped and counted, never silently."""
        receiver, writer, telemetry = self.make()
        writer.accepting = False
        receiver.datagramReceived(b"<13>lost", ("10.1.1.1", 5140))
        receiver.flush()
        assert writer.frames == []
        assert telemetry.value("receiver_udp_datagrams_dropped_total") == 1
