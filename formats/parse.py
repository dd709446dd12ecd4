"""From frame to record: auto-detection and the parser a listener uses.

Auto-detection, per frame:

1. streamlog, when the frame starts with a configured version and a space
   (``0.1 ``);
2. RFC 5424, when it starts with ``<PRI>1 ``;
3. RFC 3164, when it starts with ``<PRI>`` or with a timestamp;
4. otherwise the frame is kept whole as ``_content_``, flagged ``parse-error``.

Whatever the path, a final NUL and a CR before it are not part of the record
(:func:`formats.framing.message_bytes`): each parser drops them where it makes
the record, and so does the raw record here.

:func:`make_parser` checks the settings once and returns the function that
the hot path calls for each frame. Flags the deframer attached to a frame
(truncated, incomplete, ...) travel with the frame through the spool; the
caller adds them with :meth:`Record.with_flags`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Literal

from formats._timestamps import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_UNCERTAIN_YEAR_AGE_S, UTC
from formats.errors import FormatDefinitionError
from formats.framing import message_bytes
from formats.logtail_fields import raw_record
from formats.record import FLAG_INVALID_UTF8, FLAG_PARSE_ERROR, Record
from formats.rfc3164 import Dialect, Rfc3164Parser, looks_like_rfc3164_timestamp
from formats.rfc5424 import Rfc5424Parser
from formats.streamlog import LeadingSpace, StreamlogFormat, StreamlogParser, format_table

__all__ = ["Format", "ParseFunction", "make_parser"]

Format = Literal["auto", "streamlog", "rfc5424", "rfc3164"]
ParseFunction = Callable[[bytes, str, int], Record]
"""``parse(frame, peer_address, receive_time_ns) -> Record``; never raises."""


def make_parser(
    *,
    format: Format = "auto",
    streamlog_formats: Mapping[str, StreamlogFormat] | None = None,
    leading_space: LeadingSpace = "strip-rfc3164",
    strict_rfc5424: bool = False,
    default_tz: _dt.tzinfo = UTC,
    future_tolerance_s: int = DEFAULT_FUTURE_TOLERANCE_S,
    uncertain_year_age_s: int = DEFAULT_UNCERTAIN_YEAR_AGE_S,
    dialect: Dialect = "auto",
) -> ParseFunction:
    """The parse function for one set of settings.

    ``streamlog_formats`` maps versions to layouts (default: the built-in
    ``0.1``); ``default_tz`` is the zone of timestamps that carry no offset.
    ``future_tolerance_s`` and ``uncertain_year_age_s`` set the year rule of
    timestamps without a year (:class:`formats._timestamps.ClassicTimes`).
    ``dialect`` (``auto``, ``cisco``, ``none``) says whether RFC 3164 frames
    are read for network devices' headers and codes (:mod:`formats.cisco`).
    A setting out of range raises :class:`FormatDefinitionError`.
    """
    streamlog = StreamlogParser(
        streamlog_formats if streamlog_formats is not None else format_table(),
        leading_space=leading_space,
    )
    rfc5424 = Rfc5424Parser(strict=strict_rfc5424, default_tz=default_tz)
    try:
        rfc3164 = Rfc3164Parser(
            default_tz=default_tz,
            future_tolerance_s=future_tolerance_s,
            uncertain_year_age_s=uncertain_year_age_s,
            dialect=dialect,
        )
    except ValueError as e:
        raise FormatDefinitionError(str(e)) from None
    if format == "streamlog":
        return _never_raising(streamlog.parse)
    if format == "rfc5424":
        return _never_raising(rfc5424.parse)
    if format == "rfc3164":
        return _never_raising(rfc3164.parse)
    if format == "auto":
        return _auto(streamlog, rfc5424, rfc3164)
    raise FormatDefinitionError(f"format must be auto, streamlog, rfc5424 or rfc3164, not {format!r}")


def _unparsed(frame: bytes, peer: str, receive_time_ns: int, error: str) -> Record:
    """The frame kept whole, flagged parse-error, with ``error`` saying why."""
    if frame[-1:] in (b"\0", b"\r"):
        frame = message_bytes(frame)
    try:
        text = frame.decode()
        flags: tuple[str, ...] = (FLAG_PARSE_ERROR,)
    except UnicodeDecodeError:
        text = frame.decode("utf-8", "replace")
        flags = (FLAG_INVALID_UTF8, FLAG_PARSE_ERROR)
    return raw_record(text, peer, receive_time_ns, flags, error)


def _parser_failed(error: Exception) -> str:
    # A parser bug: the record says so, and one odd frame costs its own fields, never a batch.
    return f"the parser failed ({type(error).__name__}: {error}); the frame is kept whole"


def _never_raising(parse: ParseFunction) -> ParseFunction:
    def guarded(frame: bytes, peer: str, receive_time_ns: int) -> Record:
        try:
            return parse(frame, peer, receive_time_ns)
        except Exception as e:
            return _unparsed(frame, peer, receive_time_ns, _parser_failed(e))

    return guarded


def _auto(streamlog: StreamlogParser, rfc5424: Rfc5424Parser, rfc3164: Rfc3164Parser) -> ParseFunction:
    prefixes = tuple(v.encode() + b" " for v in streamlog.versions)
    parse_streamlog = streamlog.parse
    parse_5424 = rfc5424.parse
    parse_3164 = rfc3164.parse

    def parse_auto(frame: bytes, peer: str, receive_time_ns: int) -> Record:
        try:  # free in CPython 3.11 until something raises
            if frame[:1] == b"<":
                gt = frame.find(b">", 1, 5)
                if gt > 0 and frame[gt + 1 : gt + 3] == b"1 ":
                    return parse_5424(frame, peer, receive_time_ns)
                return parse_3164(frame, peer, receive_time_ns)
            if frame.startswith(prefixes):
                return parse_streamlog(frame, peer, receive_time_ns)
            if looks_like_rfc3164_timestamp(frame[:16]):
                return parse_3164(frame, peer, receive_time_ns)
        except Exception as e:
            return _unparsed(frame, peer, receive_time_ns, _parser_failed(e))
        return _unparsed(frame, peer, receive_time_ns, "not streamlog, RFC 5424 or RFC 3164")

    return parse_auto
