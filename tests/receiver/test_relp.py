"""RELP sessions driven through in-memory transports and a controlled clock: the limits that keep a
sender which sends and never reads from making the receiver hold its answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from formats.relp import encode_frame, offers, response
from receiver.cli.tls import write_selfsigned
from receiver.config.model import ListenerConfig, TlsConfig
from receiver.ingest.relp import (
    END_GRACE_SECONDS,
    MAX_REFUSED_FRAMES,
    MAX_UNANSWERED,
    RelpFactory,
    RelpReceiver,
)
from receiver.ingest.tls import TlsServerContext, tls_server_factory
from receiver.spool.gate import BackpressureGate
from receiver.spool.segment import Entry
from receiver.telemetry.events import Telemetry
from tests.helpers import chunks

RELP = ListenerConfig(name="relp-test", transport="relp", keepalive_seconds=0)
PEER = IPv4Address("TCP", "10.0.0.7", 40000)
OPEN = encode_frame(1, "open", offers({"relp_version": "0", "commands": "syslog"}))
SERVERCLOSE = b"0 serverclose 0\n"


class FakeWriter:
    """Records what would be committed; commit callbacks run when the test commits.

    Callbacks wait in the open segment until ``seal``, then for ``commit_sealed``
    (``commit`` does both), as the spool writer's do around a commit in progress.
    """

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.waiting: list[Callable[[], None]] = []
        self.sealed: list[Callable[[], None]] = []

    def append(self, entry: Entry, nbytes: int) -> None:
        self.entries.append(entry)

    def after_commit(self, callback: Callable[[], None], *, soon: bool = False) -> None:
        self.waiting.append(callback)

    def seal(self) -> None:
        self.sealed += self.waiting
        self.waiting = []

    def commit_sealed(self) -> None:
        callbacks, self.sealed = self.sealed, []
        for callback in callbacks:
            callback()

    def commit(self) -> None:
        self.seal()
        self.commit_sealed()

    @property
    def frames(self) -> list[bytes]:
        return [f for e in self.entries for f in e.frames]


class Listener:
    def __init__(self, tls: TlsServerContext | None = None) -> None:
        self.clock = Clock()
        self.writer = FakeWriter()
        self.gate = BackpressureGate()
        self.telemetry = Telemetry(clock=self.clock.seconds)
        self.factory = RelpFactory(
            RELP, writer=self.writer, gate=self.gate, telemetry=self.telemetry,  # type: ignore[arg-type]
            clock=self.clock, streamlog_versions=("0.1",), tls=tls, wall_clock_ns=lambda: 42,
        )

    def connect(self) -> tuple[RelpReceiver, StringTransport]:
        session = self.factory.buildProtocol(PEER)
        assert isinstance(session, RelpReceiver)
        transport = StringTransport(peerAddress=PEER)
        session.makeConnection(transport)
        return session, transport

    def opened(self) -> tuple[RelpReceiver, StringTransport]:
        session, transport = self.connect()
        session.dataReceived(OPEN)
        assert transport.value().startswith(b"1 rsp ")
        transport.clear()
        return session, transport

    def paused(self, reason: str) -> int:
        return self.telemetry.value("receiver_relp_reading_paused_total", listener="relp-test", reason=reason)

    def refused(self, reason: str) -> int:
        return self.telemetry.value("receiver_relp_frames_refused_total", listener="relp-test", reason=reason)


def syslog_frames(first: int, n: int) -> bytes:
    return b"".join(encode_frame(txnr, "syslog", b"<13>m") for txnr in range(first, first + n))


def oks(first: int, n: int) -> bytes:
    return b"".join(response(txnr, 200, "OK") for txnr in range(first, first + n))


class TestAnswersTheSenderDoesNotRead:
    def test_reading_pauses_while_the_transport_holds_unsent_answers(self) -> None:
        """If the transport's unsent answers pass its buffer (it pauses the session's producer), then
        reading pauses, counted as replies_unread, and resumes when the transport has sent them."""
        listener = Listener()
        _, transport = listener.opened()
        assert transport.producer is not None and transport.streaming
        transport.producer.pauseProducing()  # what Twisted does past its write buffer
        assert transport.producerState == "paused"
        transport.producer.pauseProducing()  # again, while paused: one pause, counted once
        assert listener.paused("replies_unread") == 1
        transport.producer.resumeProducing()  # the buffer drained
        assert transport.producerState == "producing"

    def test_unread_answers_and_backpressure_do_not_resume_each_other(self) -> None:
        """If unread answers and the gate's backpressure both pause a session, then reading resumes
        only when both are over, whichever ends first."""
        listener = Listener()
        _, transport = listener.opened()
        assert transport.producer is not None
        transport.producer.pauseProducing()
        listener.gate.hold("disk")
        transport.producer.resumeProducing()
        assert transport.producerState == "paused"
        listener.gate.release("disk")
        assert transport.producerState == "producing"
        listener.gate.hold("disk")
        transport.producer.pauseProducing()
        listener.gate.release("disk")
        assert transport.producerState == "paused"
        transport.producer.resumeProducing()
        assert transport.producerState == "producing"

    def test_ending_unregisters_the_producer_so_the_connection_closes(self) -> None:
        """If a session ends, then its producer is unregistered before the close (Twisted closes a
        connection only once its producer is gone) and the close is asked for after serverclose."""
        listener = Listener()
        session, transport = listener.opened()
        session.dataReceived(syslog_frames(2, 1) + encode_frame(3, "close"))
        listener.writer.commit()
        assert transport.value() == oks(2, 1) + b"3 rsp 0\n" + SERVERCLOSE
        assert transport.producer is None
        assert transport.disconnecting

    def test_an_ended_session_that_does_not_read_is_aborted(self) -> None:
        """If the receiver ends a session and the connection is still open END_GRACE_SECONDS later
        (the sender does not read its last answers), then it is aborted; one that closes is not."""
        listener = Listener()
        session, transport = listener.opened()
        session.dataReceived(encode_frame(2, "close"))
        listener.writer.commit()
        assert transport.disconnecting and not transport.disconnected
        listener.clock.advance(END_GRACE_SECONDS - 0.1)
        assert not transport.disconnected
        listener.clock.advance(0.2)
        assert transport.disconnected  # StringTransport's mark of abortConnection

        closing, closing_transport = listener.opened()
        closing.dataReceived(encode_frame(2, "close"))
        listener.writer.commit()
        closing.connectionLost()
        assert listener.clock.getDelayedCalls() == []
        assert not closing_transport.disconnected


class TestWindow:
    @pytest.mark.parametrize("size", [7, 4096, None])
    def test_a_sender_past_the_window_is_paused_until_answers_go_out(self, size: int | None) -> None:
        """If a sender has more than MAX_UNANSWERED transactions unanswered (read, waiting for their
        commit), then reading pauses, counted as window_full, and resumes once the answers go out."""
        listener = Listener()
        session, transport = listener.opened()
        stream = syslog_frames(2, MAX_UNANSWERED + 1)
        for piece in [stream] if size is None else chunks(stream, size):
            session.dataReceived(piece)
        assert transport.producerState == "paused"
        assert listener.paused("window_full") == 1
        listener.writer.commit()
        assert transport.value() == oks(2, MAX_UNANSWERED + 1)
        assert transport.producerState == "producing"

    def test_a_sender_within_the_window_is_not_paused(self) -> None:
        """If a sender has exactly MAX_UNANSWERED transactions unanswered, then it reads on."""
        listener = Listener()
        session, transport = listener.opened()
        session.dataReceived(syslog_frames(2, MAX_UNANSWERED))
        assert transport.producerState == "producing"
        assert listener.telemetry.value("receiver_relp_reading_paused_total") == 0

    def test_answers_queued_behind_a_commit_count_toward_the_window(self) -> None:
        """If refusals wait behind acknowledgements, then they count as unanswered too: the window
        holds answers not yet written as well as those waiting for their commit."""
        listener = Listener()
        session, transport = listener.opened()
        session.dataReceived(syslog_frames(2, MAX_UNANSWERED))
        session.dataReceived(encode_frame(MAX_UNANSWERED + 2, "starttls"))
        assert transport.producerState == "paused"
        listener.writer.commit()
        assert transport.producerState == "producing"

    def test_answers_keep_the_order_of_the_transactions(self) -> None:
        """If a refusal waits behind acknowledgements whose commit ends before its own, then a later
        refusal still waits behind it: answers go out in the order of the transactions."""
        listener = Listener()
        session, transport = listener.opened()
        session.dataReceived(syslog_frames(2, 1))
        listener.writer.seal()  # the commit of message 2 is under way
        session.dataReceived(encode_frame(3, "starttls"))  # waits for the next commit
        listener.writer.commit_sealed()
        session.dataReceived(encode_frame(4, "starttls"))
        listener.writer.commit()
        refused = b"500 unknown command 'starttls'; this server takes syslog"
        assert transport.value() == (
            oks(2, 1) + encode_frame(3, "rsp", refused) + encode_frame(4, "rsp", refused)
        )


class TestRefusedFrames:
    @pytest.mark.parametrize(
        ("opened", "frame", "reason"),
        [
            (False, b"%d syslog 5 <13>m\n", "before_open"),
            (True, b"%d starttls 0\n", "unknown_command"),
            (True, b"%d open 15 commands=syslog\n", "second_open"),
        ],
    )
    def test_a_few_refusals_are_answered_then_the_session_ends(self, opened: bool, frame: bytes, reason: str) -> None:
        """If a session sends more than MAX_REFUSED_FRAMES frames that get 500, then the first ones are
        answered, the next ends the session with serverclose, and every refusal is counted by reason."""
        listener = Listener()
        session, transport = listener.opened() if opened else listener.connect()
        frames = b"".join(frame % txnr for txnr in range(2, MAX_REFUSED_FRAMES + 4))
        session.dataReceived(frames)
        listener.writer.commit()
        answers = transport.value()
        assert answers.count(b" rsp ") == MAX_REFUSED_FRAMES
        assert b" 500 " in answers and answers.endswith(SERVERCLOSE)
        assert transport.disconnecting
        assert listener.refused(reason) == MAX_REFUSED_FRAMES + 1
        assert listener.telemetry.value("receiver_relp_sessions_broken_total", listener="relp-test") == 1

    def test_an_open_without_syslog_is_counted(self) -> None:
        """If an open does not offer syslog, then the refusal is counted with its reason code."""
        listener = Listener()
        session, transport = listener.connect()
        session.dataReceived(encode_frame(1, "open", b"commands=other"))
        assert listener.refused("open_without_syslog") == 1
        assert transport.value().startswith(b"1 rsp ")


class TestOverTls:
    def test_the_tcp_transports_pause_holds_reading_and_the_close_completes(self, tmp_path: Path) -> None:
        """If a session runs over TLS, then its producer is registered with the TCP transport beneath
        the TLS wrapper: pausing it holds reading, resuming it reads on, and the receiver's close
        completes (close_notify both ways) rather than waiting for the producer."""
        pair = write_selfsigned(tmp_path, name="localhost")
        context = TlsServerContext(TlsConfig(certificate_file=pair.certificate_file, key_file=pair.key_file))
        listener = Listener(tls=context)
        server = tls_server_factory(context, listener.factory, listener.clock).buildProtocol(PEER)
        assert isinstance(server, TLSMemoryBIOProtocol)
        server_tcp = StringTransport(peerAddress=PEER)
        server.makeConnection(server_tcp)
        received = bytearray()

        class Client(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.extend(data)

        client_factory = TLSMemoryBIOFactory(CertificateOptions(), True, Factory.forProtocol(Client),
                                             clock=listener.clock)
        client = client_factory.buildProtocol(None)
        client_tcp = StringTransport()
        client.makeConnection(client_tcp)

        def pump() -> None:
            """Move bytes both ways until quiet; a side that paused reading is not delivered to."""
            for _ in range(50):
                listener.clock.advance(0)  # the TLS wrapper's write aggregation
                moved = False
                for source, target, target_tcp in ((client_tcp, server, server_tcp), (server_tcp, client, client_tcp)):
                    data = source.value()
                    if data and target_tcp.producerState == "producing":
                        source.clear()
                        target.dataReceived(data)
                        moved = True
                if not moved:
                    return

        pump()
        assert server_tcp.producer is not None
        client.write(OPEN)
        pump()
        assert bytes(received).startswith(b"1 rsp ")

        server_tcp.producer.pauseProducing()  # the TCP transport's buffer passed its size
        assert server_tcp.producerState == "paused"
        assert listener.paused("replies_unread") == 1
        client.write(syslog_frames(2, 1))
        pump()
        assert listener.writer.frames == []
        server_tcp.producer.resumeProducing()
        assert server_tcp.producerState == "producing"
        pump()
        assert listener.writer.frames == [b"<13>m"]

        client.write(encode_frame(3, "close"))
        pump()
        listener.writer.commit()
        pump()
        assert bytes(received).endswith(oks(2, 1) + b"3 rsp 0\n" + SERVERCLOSE)
        assert client_tcp.disconnecting and server_tcp.disconnecting
