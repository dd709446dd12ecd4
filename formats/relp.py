"""RELP, the Reliable Event Logging Protocol of rsyslog's omrelp/imrelp: its frames.

A frame, in either direction, is::

    TXNR SP COMMAND SP DATALEN [SP DATA] LF

``TXNR`` is the transaction number (1 to 999,999,999; the server's own
``serverclose`` hint uses 0), ``COMMAND`` 1-32 letters (``open``,
``syslog``, ``close``, ``rsp``, ``serverclose``), ``DATALEN`` the length of
``DATA`` in bytes, 0 to 999,999,999, and when it is 0 there is no ``SP DATA``.
The server answers every client frame with ``TXNR rsp DATALEN CODE SP TEXT``
on the same ``TXNR``; ``200 OK`` means the client may forget the message.

This module is pure: :class:`RelpDeframer` turns bytes into
:class:`RelpFrame` values (data longer than the limit is cut, flagged
``truncated:<length>`` and the rest skipped as it streams by, never held),
and :func:`encode_frame` / :func:`response` make the bytes of answers. A
malformed frame raises :class:`RelpFramingError`: the stream cannot be
resynchronised (the length that would say where the next frame starts is
what is broken), so the connection must end.
"""

from __future__ import annotations

import dataclasses
import re

from formats.framing import DeframerCounters, FlaggedFrame

__all__ = [
    "MAX_DATALEN",
    "MAX_TXNR",
    "RelpDeframer",
    "RelpFrame",
    "RelpFramingError",
    "encode_frame",
    "offers",
    "parse_offers",
    "response",
]

MAX_TXNR = 999_999_999
MAX_DATALEN = 999_999_999
_HEADER = re.compile(rb"([0-9]{1,9}) ([A-Za-z]{1,32}) ([0-9]{1,9})")
_HEADER_MAX_BYTES = 9 + 1 + 32 + 1 + 9 + 1  # the longest header and the byte after it


class RelpFramingError(ValueError):
    """Bytes that are not a RELP frame; the message says what was expected and what came."""


@dataclasses.dataclass(frozen=True, slots=True)
class RelpFrame:
    """One frame: its transaction number, command and data.

    ``data`` is a :class:`~formats.framing.FlaggedFrame` flagged
    ``truncated:<DATALEN>`` when DATALEN was over the deframer's limit.
    """

    txnr: int
    command: str
    data: bytes


class RelpDeframer(DeframerCounters):
    """Bytes in, frames out, in any chunking; memory bounded by ``max_data_bytes``.

    Counts ``frames`` and ``truncated_frames`` as the stream deframers do.
    A malformed frame raises instead of being counted, and a frame cut short
    by the end of the stream is nothing: neither was acknowledged, so the
    sender sends it again.
    """

    __slots__ = ("_buffer", "_kept", "_max", "_pending", "_skip")

    def __init__(self, max_data_bytes: int) -> None:
        if max_data_bytes < 1:
            raise ValueError(f"max_data_bytes must be at least 1, not {max_data_bytes}")
        super().__init__()
        self._max = max_data_bytes
        self._buffer = bytearray()
        self._pending: tuple[int, str, int] | None = None  # a cut frame's header while its rest streams by
        self._kept = bytearray()  # extended in place: rebuilding it per chunk made a long frame cost its square
        self._skip = 0  # bytes of a cut frame's data still to pass over

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RelpFrame]:
        """The frames completed by ``data``. Raises RelpFramingError on malformed input."""
        buffer = self._buffer
        buffer += data
        frames: list[RelpFrame] = []
        pos = 0
        end = len(buffer)
        return self._frames(buffer, pos, end, frames)

    def finish(self) -> list[RelpFrame]:
        """The end of the stream. A frame begun and not completed is nothing: it was never answered."""
        self._buffer.clear()
        self._pending = None
        return []

    def _frames(self, buffer: bytearray, pos: int, end: int, frames: list[RelpFrame]) -> list[RelpFrame]:
        try:
            while pos < end:
                if self._pending is not None:
                    pos = self._pass_over(buffer, pos, end, frames)
                    if self._pending is not None:
                        break
                    continue
                match = _HEADER.match(buffer, pos)
                if match is None or match.end() == end:
                    if end - pos >= _HEADER_MAX_BYTES or _bad_start(buffer, pos, end):
                        raise RelpFramingError(f"not a RELP frame header: {_show(buffer[pos : pos + 40])}")
                    break  # the header is not all here yet
                txnr, command, datalen = int(match[1]), match[2].decode("ascii"), int(match[3])
                after = match.end()
                if datalen == 0:
                    if buffer[after] != 0x0A:
                        raise RelpFramingError(
                            f"frame {txnr} {command}: DATALEN 0 must be followed by LF, not {_show(buffer[after:after + 1])}"
                        )
                    frames.append(RelpFrame(txnr, command, b""))
                    pos = after + 1
                    continue
                if buffer[after] != 0x20:
                    raise RelpFramingError(f"frame {txnr} {command}: SP expected after DATALEN {datalen}")
                start = after + 1
                if datalen > self._max:
                    self._pending = (txnr, command, datalen)
                    self._kept = bytearray()
                    self._skip = datalen
                    pos = start
                    continue
                if end - start < datalen + 1:
                    break  # the data and trailer are not all here yet
                if buffer[start + datalen] != 0x0A:
                    raise RelpFramingError(
                        f"frame {txnr} {command}: LF expected after {datalen} bytes of data, "
                        f"not {_show(buffer[start + datalen : start + datalen + 1])} (is DATALEN right?)"
                    )
                frames.append(RelpFrame(txnr, command, bytes(buffer[start : start + datalen])))
                pos = start + datalen + 1
        finally:
            del buffer[:pos]
        self.frames += len(frames)
        return frames

    def _pass_over(self, buffer: bytearray, pos: int, end: int, frames: list[RelpFrame]) -> int:
        """Keep the first ``max`` bytes of a long frame's data, skip the rest, then its LF."""
        assert self._pending is not None
        txnr, command, datalen = self._pending
        if self._skip:
            take = min(self._skip, end - pos)
            want = self._max - len(self._kept)
            if want > 0:
                self._kept += buffer[pos : pos + min(want, take)]
            self._skip -= take
            pos += take
        if self._skip or pos == end:
            return pos
        if buffer[pos] != 0x0A:
            raise RelpFramingError(f"frame {txnr} {command}: LF expected after {datalen} bytes of data")
        frames.append(RelpFrame(txnr, command, FlaggedFrame(bytes(self._kept), (f"truncated:{datalen}",))))
        self.truncated_frames += 1
        self._pending, self._kept = None, bytearray()
        return pos + 1


def _bad_start(buffer: bytearray, pos: int, end: int) -> bool:
    """Whether the bytes so far cannot begin a header, so waiting for more is pointless."""
    head = bytes(buffer[pos:end])
    return re.fullmatch(rb"[0-9]{0,9}( ([A-Za-z]{0,32}( [0-9]{0,9})?)?)?", head) is None


def _show(data: bytes | bytearray) -> str:
    return repr(bytes(data)) if data else "the end of the data"


def encode_frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    """The bytes of one frame."""
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode("ascii"), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode("ascii"))


def response(txnr: int, code: int, text: str, body: bytes = b"") -> bytes:
    """An ``rsp`` frame: ``CODE SP TEXT``, then ``LF body`` when there is one (the ``open`` offers)."""
    data = b"%d %s" % (code, text.encode("utf-8"))
    if body:
        data += b"\n" + body
    return encode_frame(txnr, "rsp", data)


def parse_offers(data: bytes) -> dict[str, str]:
    """The offers of an ``open`` (``name=value`` lines); a name without ``=`` has the empty value."""
    found: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        name, _, value = line.strip().partition("=")
        if name:
            found[name] = value
    return found


def offers(values: dict[str, str]) -> bytes:
    """The ``name=value`` lines of an ``open`` or its answer, separated by LF."""
    return "\n".join(f"{name}={value}" for name, value in values.items()).encode()
