"""Turning a byte stream (or a datagram) into frames.

Stream framings:

``lf``
    A frame ends at LF (the LF is not part of it).
``octet``
    RFC 6587 octet counting: ``MSG-LEN SP SYSLOG-MSG``. rsyslog, syslog-ng and
    loggen count a trailing LF inside the frame and logger does not, so at most
    one trailing LF is stripped from each frame. A frame that does not start
    with a count is read up to LF and flagged ``framing-error``, so an LF sender
    pointed at an octet listener is flagged, not lost.
``auto``
    Decided per frame. A frame is octet-counted only when it starts with
    ``[1-9][0-9]{0,9} `` *and* what follows is how a message starts (``<`` of a
    PRI, or a configured streamlog version and a space). Anything else is an LF
    frame, so LF messages that begin with digits (``2024-01-02 ...``,
    ``0.1 sys_tag ...``, ``100 errors``) are never taken for counts. A NUL
    ends a frame as LF does (``nul_ends_frame``, on by default): Python's
    ``logging.handlers.SysLogHandler`` ends every message with NUL and sends
    no LF over TCP. Octet-counted frames are taken whole, NULs and all.

Datagrams: one or more LF-separated records; a final LF, or a final NUL
(Python's handler) with or without an LF before it, ends the last record.

What ends a frame is not part of the message, and that holds for the bytes
just before the end too: :func:`message_bytes` drops a final NUL and a CR
before it (CRLF senders: nxlog, Snare, Windows appliances). The parsers apply
it where the record is made, so it holds on every transport and framing
(octet counting, RELP, UDP, frames already in the spool) while the spool
keeps each frame as it arrived and the deframers' hot paths do no per-frame
work for it.

Limits: a frame longer than ``max_frame_bytes`` is cut at the limit (never
inside a UTF-8 character), flagged ``truncated:<original length>`` and the rest
of that frame is skipped, so the stream stays in sync and no remainder is ever
read as a new message. Empty frames are skipped and counted. Memory held per
stream is bounded by the limit whatever the sender does.

Nothing here raises on input bytes.
"""

from __future__ import annotations

import re
from typing import Literal

from formats.errors import FormatDefinitionError
from formats.record import FLAG_FRAMING_ERROR, FLAG_INCOMPLETE, truncated_flag

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "DatagramDeframer",
    "DeframerCounters",
    "FlaggedFrame",
    "Framing",
    "StreamDeframer",
    "flags_by_index",
    "frame_flags",
    "message_bytes",
]

DEFAULT_MAX_FRAME_BYTES = 64 * 1024

Framing = Literal["auto", "lf", "octet"]

# What may follow an octet count in auto mode: the "<" of a PRI. Listeners
# add their streamlog versions ("0.1 ").
_SYSLOG_START = b"<"
_HEADER = re.compile(rb"([1-9][0-9]{0,9}) ")
_DIGITS = re.compile(rb"[0-9]{1,10}")
# An LF followed by a digit 1-9: the only place an auto-framed LF run can end.
_LF_THEN_COUNT = re.compile(rb"\n[1-9]")
# The same when NUL ends frames too; searched only for bytes that hold a NUL.
_END_THEN_COUNT = re.compile(rb"[\n\0][1-9]")

_START, _LF, _OCTET = 0, 1, 2


class FlaggedFrame(bytes):
    """A frame the deframer noticed something about (cut, incomplete, ...).

    Plain frames are plain ``bytes``; only these rare ones carry ``flags``.
    """

    flags: tuple[str, ...]

    def __new__(cls, payload: bytes, flags: tuple[str, ...]) -> FlaggedFrame:
        frame = super().__new__(cls, payload)
        frame.flags = flags
        return frame

    def __repr__(self) -> str:
        return f"FlaggedFrame({bytes(self)!r}, {self.flags!r})"


def frame_flags(frame: bytes) -> tuple[str, ...]:
    """The flags a deframer attached to ``frame`` (none for plain bytes)."""
    return frame.flags if type(frame) is FlaggedFrame else ()


def flags_by_index(frames: list[bytes]) -> dict[int, tuple[str, ...]]:
    """Index -> flags of the flagged frames in ``frames`` (a scan: call it only when the counters moved)."""
    return {i: frame.flags for i, frame in enumerate(frames) if type(frame) is FlaggedFrame}


def message_bytes(frame: bytes) -> bytes:
    """``frame`` without a final NUL, then without a final CR: the ends of frames, not of messages.

    ``...\\0``, ``...\\r`` and ``...\\r\\0`` all give ``...``; only one of
    each goes, so a message's own trailing bytes stay. Callers test
    ``frame[-1:] in (b"\\0", b"\\r")`` first: one slice comparison per frame.
    """
    if frame[-1:] == b"\0":
        frame = frame[:-1]
    if frame[-1:] == b"\r":
        frame = frame[:-1]
    return frame


def _cut_utf8(payload: bytes) -> bytes:
    """``payload`` without a UTF-8 sequence left incomplete at its end."""
    n = len(payload)
    for back in range(1, min(4, n) + 1):
        b = payload[n - back]
        if b < 0x80:
            return payload
        if b >= 0xC0:  # lead byte: how long is its sequence?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            # Never cut to nothing: a limit below one character keeps the bytes.
            return payload if back >= need or back == n else payload[: n - back]
    return payload  # not UTF-8 anyway: cut where the limit says


class DeframerCounters:
    """What a deframer counted; the receivers report the changes to the telemetry."""

    __slots__ = ("empty_frames", "frames", "framing_errors", "incomplete_frames", "truncated_frames")

    @property
    def flag_events(self) -> int:
        """Grows whenever a flagged frame is produced: compare before and after ``feed``."""
        return self.truncated_frames + self.incomplete_frames + self.framing_errors

    def __init__(self) -> None:
        self.frames = 0
        """Frames returned."""
        self.empty_frames = 0
        """Frames of zero bytes, skipped."""
        self.truncated_frames = 0
        """Frames cut at the limit (returned, flagged)."""
        self.framing_errors = 0
        """Frames without a count on an octet listener (returned, flagged)."""
        self.incomplete_frames = 0
        """Frames cut short by the end of the stream (returned, flagged)."""


class StreamDeframer(DeframerCounters):
    """Incremental deframer for one byte stream (one TCP connection).

    ``feed`` returns the frames completed by each chunk, whatever the chunk
    boundaries; ``finish`` returns what the stream held when it ended.
    """

    __slots__ = (
        "_kept",
        "_max",
        "_mode",
        "_need",
        "_nul",
        "_octet_header",
        "_octet_starts",
        "_pending",
        "_seen",
        "_state",
        "_wip_flags",
    )

    def __init__(
        self,
        *,
        framing: Framing = "auto",
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        streamlog_versions: tuple[str, ...] = ("0.1",),
        nul_ends_frame: bool = True,
    ) -> None:
        super().__init__()
        if framing not in ("auto", "lf", "octet"):
            raise FormatDefinitionError(f"framing must be auto, lf or octet, not {framing!r}")
        if max_frame_bytes < 1:
            raise FormatDefinitionError(f"max_frame_bytes must be at least 1, not {max_frame_bytes}")
        self._mode = framing
        self._max = max_frame_bytes
        # lf and octet keep their RFC 6587 meaning: there NUL is a message byte.
        self._nul = nul_ends_frame and framing == "auto"
        self._octet_starts = (_SYSLOG_START, *(v.encode() + b" " for v in streamlog_versions))
        # The common case in one match: a count, and (auto) a message start after it.
        starts = b"|".join(re.escape(start) for start in self._octet_starts)
        self._octet_header = _HEADER if framing == "octet" else re.compile(_HEADER.pattern + b"(?=" + starts + b")")
        self._state = _START
        self._pending = b""  # START: an undecided frame start (a few bytes at most)
        self._kept = bytearray()  # LF/OCTET: the frame so far, at most max bytes
        self._seen = 0  # LF/OCTET: bytes of the frame so far, kept or not
        self._need = 0  # OCTET: bytes still to come
        self._wip_flags: tuple[str, ...] = ()  # LF/OCTET: flags of the frame so far

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for frames not yet complete."""
        return len(self._pending) + len(self._kept)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames that ``data`` completes, in order."""
        out: list[bytes] = []
        pos = 0
        state = self._state
        if state == _LF:
            nl = data.find(b"\n")
            if self._nul:
                nul = data.find(b"\0", 0, nl if nl >= 0 else len(data))
                if nul >= 0:
                    nl = nul
            if nl < 0:
                self._keep(data, len(data))
                return out
            self._keep(data, nl)
            self._emit_kept(out, ())
            pos = nl + 1
        elif state == _OCTET:
            need = self._need
            if len(data) < need:
                self._keep(data, len(data))
                self._need = need - len(data)
                return out
            self._keep(data, need)
            self._need = 0
            self._emit_kept(out, ())
            pos = need
        elif self._pending:
            data = self._pending + data
            self._pending = b""
        self._state = _START
        if pos < len(data):
            self._scan(data, pos, out)
        self.frames += len(out)
        return out

    def finish(self) -> list[bytes]:
        """What the stream held when it ended: an unfinished frame, flagged."""
        out: list[bytes] = []
        if self._pending:
            self._state = _LF  # an undecided start is kept as it came
            self._keep(self._pending, len(self._pending))
            self._pending = b""
        if self._seen:
            self.incomplete_frames += 1
            self._emit_kept(out, (FLAG_INCOMPLETE,))
        self._kept = bytearray()
        self._need = 0
        self._wip_flags = ()
        self._state = _START
        self.frames += len(out)
        return out

    # -- the frame in progress -------------------------------------------

    def _keep(self, data: bytes, n: int) -> None:
        """Account ``n`` more bytes of the current frame, keeping up to the limit."""
        room = self._max - len(self._kept)
        if room > 0:
            self._kept += data[: min(n, room)]
        self._seen += n

    def _emit_kept(self, out: list[bytes], flags: tuple[str, ...]) -> None:
        """End the frame in progress; ``flags`` add to those it gathered."""
        seen = self._seen
        payload = bytes(self._kept)
        flags = (*self._wip_flags, *flags)
        complete_octet = self._state == _OCTET and self._need == 0
        self._kept = bytearray()
        self._seen = 0
        self._need = 0
        self._wip_flags = ()
        self._state = _START
        if complete_octet and seen <= self._max and payload[-1:] == b"\n":
            payload = payload[:-1]
        if seen > self._max:
            self.truncated_frames += 1
            flags = (*flags, truncated_flag(seen))
            payload = _cut_utf8(payload)
        if not payload and not flags:
            self.empty_frames += 1
            return
        out.append(FlaggedFrame(payload, flags) if flags else payload)

    # -- frame starts ----------------------------------------------------

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> None:
        """Read frames starting at ``pos``, leaving state for an unfinished one."""
        end = len(buf)
        mode = self._mode
        limit = self._max
        # Where the next NUL is (-1: none; -2: not looked for yet): NULs are rare,
        # so a read is searched for them once, and only if it has LF runs.
        next_nul = -2 if self._nul else -1
        while pos < end:
            if mode != "lf" and 0x31 <= buf[pos] <= 0x39:
                run_end = self._octet_run(buf, pos, out)
                if run_end != pos:
                    pos = run_end
                    continue
                header = _HEADER.match(buf, pos)
                if header is None:
                    if _DIGITS.fullmatch(buf, pos):
                        self._pending = buf[pos:]  # a count may still be arriving
                        return
                    is_octet = False
                elif mode == "octet":
                    is_octet = True
                else:
                    verdict = self._starts_message(buf, header.end())
                    if verdict is None:
                        self._pending = buf[pos:]
                        return
                    is_octet = verdict
                if is_octet:
                    assert header is not None
                    pos = self._octet_frame(buf, header.end(), int(header.group(1)), out)
                    continue
            if mode == "octet":
                pos = self._lf_frame(buf, pos, out, (FLAG_FRAMING_ERROR,))
                continue
            # A run of LF frames: in auto mode it can only end before a line
            # that starts with a count, so split everything up to there at once.
            nul = False
            if mode == "auto":
                m = _LF_THEN_COUNT.search(buf, pos)
                stop = m.start() if m is not None else buf.rfind(b"\n", pos)
                if next_nul != -1:
                    if next_nul < pos:
                        next_nul = buf.find(b"\0", pos)
                    nul = 0 <= next_nul < (end if m is None else stop)
                if nul:
                    m = _END_THEN_COUNT.search(buf, pos)
                    stop = m.start() if m is not None else max(stop, buf.rfind(b"\0", pos))
            else:
                stop = buf.rfind(b"\n", pos)
            if stop < 0:
                self._state = _LF
                self._keep(buf[pos:], end - pos)
                return
            region = buf[pos:stop]
            pos = stop + 1
            lines = (region.replace(b"\0", b"\n") if nul else region).split(b"\n")
            if len(region) > limit and max(map(len, lines)) > limit:
                lines = [self._cut(line) if len(line) > limit else line for line in lines]
            if not all(lines):  # empty frames; cheaper than searching the region for LF LF
                before = len(lines)
                lines = [line for line in lines if line]
                self.empty_frames += before - len(lines)
            out += lines

    def _octet_run(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        """Whole octet-counted frames from ``pos`` while they come one after another; where they stop.

        The fast path of a sender that counts every frame. Anything else (a
        frame cut by the chunk's end, one over the limit, a start still
        undecided) is left to the general path, from where this stopped.
        """
        match = self._octet_header.match
        limit = self._max
        end = len(buf)
        append = out.append
        empty = 0
        while pos < end:
            header = match(buf, pos)
            if header is None:
                break
            count = int(header[1])
            body = header.end()
            frame_end = body + count
            if frame_end > end or count > limit:
                break
            payload = buf[body:frame_end]
            if payload[-1:] == b"\n":
                payload = payload[:-1]
            if payload:
                append(payload)
            else:
                empty += 1
            pos = frame_end
        self.empty_frames += empty
        return pos

    def _starts_message(self, buf: bytes, at: int) -> bool | None:
        """Does a message start at ``at``? None while too few bytes have come."""
        undecided = False
        for start in self._octet_starts:
            got = buf[at : at + len(start)]
            if got == start:
                return True
            if len(got) < len(start) and start.startswith(got):
                undecided = True
        return None if undecided else False

    def _octet_frame(self, buf: bytes, body: int, count: int, out: list[bytes]) -> int:
        end = body + count
        if end <= len(buf):
            payload = buf[body:end]
            if count > self._max:
                self.truncated_frames += 1
                out.append(FlaggedFrame(_cut_utf8(payload[: self._max]), (truncated_flag(count),)))
            else:
                if payload[-1:] == b"\n":
                    payload = payload[:-1]
                if payload:
                    out.append(payload)
                else:
                    self.empty_frames += 1
            return end
        self._state = _OCTET
        self._keep(buf[body:], len(buf) - body)
        self._need = end - len(buf)
        return len(buf)

    def _lf_frame(self, buf: bytes, pos: int, out: list[bytes], flags: tuple[str, ...]) -> int:
        """One LF frame at ``pos`` (octet mode's fallback for a frame without a count)."""
        nl = buf.find(b"\n", pos)
        if nl < 0:
            self._state = _LF
            self._wip_flags = flags
            self._keep(buf[pos:], len(buf) - pos)
            self.framing_errors += 1
            return len(buf)
        line = buf[pos:nl]
        if line:
            self.framing_errors += 1
            out.append(FlaggedFrame(line, flags) if len(line) <= self._max else self._cut(line, flags))
        else:
            self.empty_frames += 1
        return nl + 1

    def _cut(self, line: bytes, flags: tuple[str, ...] = ()) -> bytes:
        self.truncated_frames += 1
        return FlaggedFrame(_cut_utf8(line[: self._max]), (*flags, truncated_flag(len(line))))


class DatagramDeframer(DeframerCounters):
    """Frames of datagrams (UDP): each datagram holds one or more LF-separated records.

    A trailing LF is a terminator, not an empty record (rsyslog and syslog-ng
    end UDP datagrams with LF, logger does not). So is a trailing NUL, and an
    LF before it: Python's SysLogHandler sends ``<PRI>message\\0``, and a
    logged message of its own may end with LF.
    """

    __slots__ = ("_max",)

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        super().__init__()
        if max_frame_bytes < 1:
            raise FormatDefinitionError(f"max_frame_bytes must be at least 1, not {max_frame_bytes}")
        self._max = max_frame_bytes

    def feed(self, datagram: bytes) -> list[bytes]:
        """The records of one datagram."""
        if datagram[-1:] == b"\0":
            datagram = datagram[:-1]
        if datagram[-1:] == b"\n":
            datagram = datagram[:-1]
        lines = datagram.split(b"\n")
        if not all(lines):
            before = len(lines)
            lines = [line for line in lines if line]
            self.empty_frames += before - len(lines)
        limit = self._max
        for i, line in enumerate(lines):
            if len(line) > limit:
                self.truncated_frames += 1
                lines[i] = FlaggedFrame(_cut_utf8(line[:limit]), (truncated_flag(len(line)),))
        self.frames += len(lines)
        return lines
