"""RELP ingest: rsyslog's omrelp, acknowledged only once the spool holds the message.

A RELP sender keeps every message until the receiver answers ``200 OK`` on
its transaction number, and after a reconnect sends again whatever was not
answered. So the answer is the promise: it goes out from the spool's commit
callback (:meth:`SpoolWriter.after_commit`), after the group commit that
holds the message, never on reading it. A receiver killed at any moment has
acknowledged only what it stored; the sender resends the rest (duplicates,
never loss, and only of what was not acknowledged).

One read's frames share one commit wait and one write of their answers, so
a window of many transactions costs one callback. Answers keep the order of
the transactions: commits complete in order, and ``close`` is answered from
a commit callback too, after the acknowledgements before it.

A frame that breaks the RELP syntax leaves no way to find the next one: the
connection gets the ``serverclose`` hint and is closed, with the reason
logged and counted. A well-formed frame with a command we do not serve gets
a ``500`` answer and the session goes on, up to ``MAX_REFUSED_FRAMES`` of
them: the next one ends it.

A sender that sends and never reads must not make the receiver keep its
answers. Reading from a session pauses (besides backpressure and the rate
limit, see :mod:`receiver.ingest.tcp`; none resumes what another paused):

- ``replies``: the transport holds more unsent answers than its buffer (the
  session registers a streaming producer with it, which Twisted pauses past
  its buffer size and resumes once drained; over TLS the TLS wrapper passes
  the TCP transport's pauses on);
- ``window``: more than ``MAX_UNANSWERED`` transactions wait for their
  commit (or for answers queued behind it), until answers go out.

A session the receiver ends gets ``END_GRACE_SECONDS`` to take its last
answers before the connection is aborted. Every pause and refusal is
counted with a reason code and logged (rate-limited).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from formats.framing import FlaggedFrame, flags_by_index
from formats.relp import (
    RelpDeframer,
    RelpFrame,
    RelpFramingError,
    encode_frame,
    offers,
    parse_offers,
    response,
)
from receiver import __version__
from receiver.ingest.tcp import StreamFactory, StreamReceiver
from receiver.telemetry.names import RelpPause, RelpRefusal

__all__ = ["END_GRACE_SECONDS", "MAX_REFUSED_FRAMES", "MAX_UNANSWERED", "RelpFactory", "RelpReceiver"]

MAX_UNANSWERED = 16_384
"""Transactions a session may have unanswered (waiting for their commit, or queued behind one)
before reading from it pauses. omrelp stops at its window until answered (128 by default, 1,024 or
more where operators raise it), so a sender past this is not waiting for answers; each one holds
its answer (up to 24 bytes) in memory until the commit. Checked after each read, so a session may
pass it by one read's frames."""

MAX_REFUSED_FRAMES = 10
"""``500`` answers a session gets (frames before ``open``, unknown commands, a second ``open``);
the next such frame ends it. librelp never earns one; a few tell a hand-made client why."""

END_GRACE_SECONDS = 10.0
"""How long an ended session may take to read its last answers before the connection is aborted:
Twisted closes only once they are sent, and a sender that does not read would hold it open."""

_SERVER_OFFERS = offers({
    "relp_version": "0",
    "relp_software": f"syslog-receiver,{__version__}",
    "commands": "syslog",
})
_SERVERCLOSE = encode_frame(0, "serverclose")

# Why a session's reading is paused (see StreamReceiver._hold).
_REPLIES, _WINDOW = "replies", "window"


@implementer(IPushProducer)
class _UnsentAnswers:
    """What a session registers with its transport: paused while the answers the transport has not
    sent are over its buffer size, resumed once they are out. It holds the session's reading."""

    __slots__ = ("_session",)

    def __init__(self, session: RelpReceiver) -> None:
        self._session = session

    def pauseProducing(self) -> None:
        self._session.answers_unread()

    def resumeProducing(self) -> None:
        self._session.answers_read()

    def stopProducing(self) -> None:
        """The connection is gone; ``connectionLost`` ends the session."""


class RelpReceiver(StreamReceiver):
    """One RELP session."""

    def __init__(self, factory: StreamFactory, peer: str, port: int) -> None:
        super().__init__(factory, peer, port)
        # The stream receiver's counting, closing and reporting work on it unchanged.
        self.deframer: RelpDeframer = RelpDeframer(factory.config.max_frame_bytes)  # type: ignore[assignment]
        self.opened = False
        self.ending = False  # after a close or a broken frame nothing more is read
        self.unanswered = 0  # transactions read and not yet answered: waiting for a commit, or queued behind one
        self.refused = 0  # frames answered 500
        self.finished = False  # serverclose written and the close begun
        self._answers = _UnsentAnswers(self)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.registerProducer(self._answers, True)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.ending:
            return
        factory = self.factory
        self.last_data = factory.clock.seconds()
        try:
            frames = self.deframer.feed(data)
        except RelpFramingError as e:
            self._end_session(f"a malformed frame: {e}")
            return
        messages: list[bytes] = []
        txnrs: list[int] = []
        for frame in frames:
            if frame.command == "syslog" and self.opened:
                message = _message(frame)
                if message:
                    messages.append(message)
                else:
                    self.deframer.empty_frames += 1
                txnrs.append(frame.txnr)
                continue
            if txnrs:  # every message has its transaction
                self._acknowledge_when_committed(messages, txnrs)
                messages, txnrs = [], []
            self._command(frame)
            if self.ending:
                return
        if txnrs:
            self._acknowledge_when_committed(messages, txnrs)
        if self.unanswered > MAX_UNANSWERED and _WINDOW not in self._held:
            self._hold(_WINDOW)
            factory.telemetry.relp_reading_paused(
                factory.config.name, self.peer, RelpPause.WINDOW_FULL,
                f"{self.unanswered} transactions unanswered, more than {MAX_UNANSWERED}: it does not wait "
                "for answers; reading resumes once they go out",
            )

    def _acknowledge_when_committed(self, messages: list[bytes], txnrs: list[int]) -> None:
        if messages:
            truncated = any(type(m) is FlaggedFrame for m in messages)
            flags = flags_by_index(messages) if truncated else {}
            self.factory.deliver(self, messages, flags, sum(map(len, messages)))
        answers = b"".join(response(txnr, 200, "OK") for txnr in txnrs)
        count = len(txnrs)
        self.unanswered += count
        # soon: a RELP sender stops at its window until answered; the group-commit delay would be idle time.
        self.factory.writer.after_commit(lambda: self._answered(count, answers), soon=True)

    def _answer(self, data: bytes) -> None:
        """Answer in the order of the transactions: after every answer still waiting, if any."""
        if self.unanswered:
            self.unanswered += 1
            self.factory.writer.after_commit(lambda: self._answered(1, data))
        else:
            self._write(data)

    def _answered(self, count: int, data: bytes) -> None:
        self.unanswered -= count
        self._write(data)
        if self.unanswered <= MAX_UNANSWERED:
            self._release(_WINDOW)

    def _command(self, frame: RelpFrame) -> None:
        if frame.command == "open":
            self._open(frame)
        elif frame.command == "close":
            # Answered once every message before it is committed (and acknowledged).
            self.ending = True
            self.factory.writer.after_commit(lambda: self._end(encode_frame(frame.txnr, "rsp")))
        elif frame.command == "syslog":
            self._refuse(frame, RelpRefusal.BEFORE_OPEN, "command disabled: open the session first")
        else:
            text = f"unknown command {frame.command!r}; this server takes syslog"
            self._refuse(frame, RelpRefusal.UNKNOWN_COMMAND, text)

    def _refuse(self, frame: RelpFrame, reason: RelpRefusal, text: str) -> None:
        """Answer ``500 text``; past ``MAX_REFUSED_FRAMES`` of them, end the session instead."""
        self.refused += 1
        factory = self.factory
        factory.telemetry.relp_frame_refused(factory.config.name, self.peer, reason, f"frame {frame.txnr}: {text}")
        if self.refused > MAX_REFUSED_FRAMES:
            self._end_session(f"more than {MAX_REFUSED_FRAMES} frames refused (500), the last: {text}")
            return
        self._answer(response(frame.txnr, 500, text))

    def _open(self, frame: RelpFrame) -> None:
        if self.opened:
            self._refuse(frame, RelpRefusal.SECOND_OPEN, "the session is already open")
            return
        offered = parse_offers(frame.data)
        commands = offered.get("commands", "").split(",")
        if "syslog" not in commands:
            text = "required command not supported by client: syslog"
            self.factory.telemetry.relp_frame_refused(
                self.factory.config.name, self.peer, RelpRefusal.OPEN_WITHOUT_SYSLOG, f"frame {frame.txnr}: {text}"
            )
            self._write(response(frame.txnr, 500, text))
            self._end_session("the sender does not offer the syslog command")
            return
        self.opened = True
        self._write(response(frame.txnr, 200, "OK", _SERVER_OFFERS))

    def _end_session(self, reason: str) -> None:
        """End a session that cannot go on; what was read before it is still committed and acknowledged."""
        self.ending = True
        self.factory.telemetry.relp_session_broken(self.factory.config.name, self.peer, reason)
        self.factory.writer.after_commit(lambda: self._end(b""))

    def _end(self, last: bytes) -> None:
        """Write ``last`` (a close's answer), the serverclose hint, and close."""
        transport = self.transport
        if transport is None or self.closed.called or self.finished:
            return
        self.finished = True
        transport.write(last + _SERVERCLOSE)
        # First: TLS sends close_notify only without a producer, and TCP never closes while it holds one paused.
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()
        if not self.closing:  # close_gracefully has its own deadline
            self._closed_within(END_GRACE_SECONDS, transport.abortConnection)  # type: ignore[attr-defined]

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.write(data)

    @property
    def reading_held(self) -> bool:
        """Never, for the idle sweep: a RELP sender resends what was not acknowledged, so a silent
        session may be closed whatever paused it (one that does not read its answers included)."""
        return False

    def answers_unread(self) -> None:
        """The transport holds more unsent answers than its buffer: read nothing more until they are out."""
        if _REPLIES in self._held:
            return
        self._hold(_REPLIES)
        self.factory.telemetry.relp_reading_paused(
            self.factory.config.name, self.peer, RelpPause.REPLIES_UNREAD,
            "it does not read its answers (more are unsent than the connection's buffer holds); "
            "reading resumes once they are sent",
        )

    def answers_read(self) -> None:
        self._release(_REPLIES)

    def close_gracefully(self, grace_seconds: float) -> Deferred[None]:
        """Stop reading, acknowledge what was read once it is committed, send serverclose, close.

        A RELP sender resends whatever was not acknowledged, so there is no
        need to read on until it stops, as plain TCP must.
        """
        transport = self.transport
        if transport is None or self.closing:
            return self.closed
        self.closing = self.ending = True
        self.factory.gate.unregister(self)
        self._hold("closing")
        self.factory.writer.after_commit(lambda: self._end(b""))
        return self._closed_within(grace_seconds, transport.abortConnection)  # type: ignore[attr-defined]


def _message(frame: RelpFrame) -> bytes:
    """A ``syslog`` frame's message, without the one LF a sender's template may end it with."""
    data = frame.data
    if data.endswith(b"\n"):
        stripped = data[:-1]
        return FlaggedFrame(stripped, data.flags) if type(data) is FlaggedFrame else stripped
    return data


class RelpFactory(StreamFactory):
    """One RELP listener: the TCP listener's limits, gate and counters, with RELP sessions."""

    receiver_class = RelpReceiver
