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
a ``500`` answer and the session goes on.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

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

__all__ = ["RelpFactory", "RelpReceiver"]

_SERVER_OFFERS = offers({
    "relp_version": "0",
    "relp_software": f"syslog-receiver,{__version__}",
    "commands": "syslog",
})
_SERVERCLOSE = encode_frame(0, "serverclose")


class RelpReceiver(StreamReceiver):
    """One RELP session."""

    def __init__(self, factory: StreamFactory, peer: str, port: int) -> None:
        super().__init__(factory, peer, port)
        # The stream receiver's counting, closing and reporting work on it unchanged.
        self.deframer: RelpDeframer = RelpDeframer(factory.config.max_frame_bytes)  # type: ignore[assignment]
        self.opened = False
        self.ending = False  # after a close or a broken frame nothing more is read
        self.waiting = 0  # acknowledgements waiting for their commit

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

    def _acknowledge_when_committed(self, messages: list[bytes], txnrs: list[int]) -> None:
        if messages:
            truncated = any(type(m) is FlaggedFrame for m in messages)
            flags = flags_by_index(messages) if truncated else {}
            self.factory.deliver(self, messages, flags, sum(map(len, messages)))
        answers = b"".join(response(txnr, 200, "OK") for txnr in txnrs)
        self.waiting += 1

        def answer() -> None:
            self.waiting -= 1
            self._write(answers)

        # soon: a RELP sender stops at its window until answered; the group-commit delay would be idle time.
        self.factory.writer.after_commit(answer, soon=True)

    def _answer(self, data: bytes) -> None:
        """Answer in the order of the transactions: after the acknowledgements still waiting, if any."""
        if self.waiting:
            self.factory.writer.after_commit(lambda: self._write(data))
        else:
            self._write(data)

    def _command(self, frame: RelpFrame) -> None:
        if frame.command == "open":
            self._open(frame)
        elif frame.command == "close":
            # Answered once every message before it is committed (and acknowledged).
            self.ending = True
            self.factory.writer.after_commit(lambda: self._end(encode_frame(frame.txnr, "rsp")))
        elif frame.command == "syslog":
            self._answer(response(frame.txnr, 500, "command disabled: open the session first"))
        else:
            self._answer(response(frame.txnr, 500, f"unknown command {frame.command!r}; this server takes syslog"))

    def _open(self, frame: RelpFrame) -> None:
        if self.opened:
            self._answer(response(frame.txnr, 500, "the session is already open"))
            return
        offered = parse_offers(frame.data)
        commands = offered.get("commands", "").split(",")
        if "syslog" not in commands:
            self._write(response(frame.txnr, 500, "required command not supported by client: syslog"))
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
        if transport is None or self.closed.called:
            return
        transport.write(last + _SERVERCLOSE)
        transport.loseConnection()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.write(data)

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
