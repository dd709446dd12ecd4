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
import json
from collections.abc import Callable, Mapping
from typing import Literal

from formats._timestamps import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_UNCERTAIN_YEAR_AGE_S, UTC
from formats.errors import FormatDefinitionError
from formats.framing import message_bytes
from formats.logtail_fields import CONTENT, STRUCTURED_DATA, raw_record
from formats.payloads import payload_fields
from formats.record import FLAG_INVALID_UTF8, FLAG_PARSE_ERROR, Record
from formats.rfc3164 import Dialect, Rfc3164Parser, looks_like_rfc3164_timestamp
from formats.rfc5424 import Rfc5424Parser
from formats.streamlog import LeadingSpace, StreamlogFormat, StreamlogParser, format_table

__all__ = ["PAYLOADS", "Format", "ParseFunction", "Payload", "make_parser"]

Format = Literal["auto", "streamlog", "rfc5424", "rfc3164"]
Payload = Literal["none", "kv", "cef", "leef", "auto"]
PAYLOADS: tuple[Payload, ...] = ("none", "kv", "cef", "leef", "auto")
_LAYOUT_LIMIT = 4096  # key=value lines vary their keys; past this many shapes, keys tuples are not shared
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
    payload: Payload = "none",
    sd_fields: bool = False,
) -> ParseFunction:
    """The parse function for one set of settings.

    ``streamlog_formats`` maps versions to layouts (default: the built-in
    ``0.1``); ``default_tz`` is the zone of timestamps that carry no offset.
    ``future_tolerance_s`` and ``uncertain_year_age_s`` set the year rule of
    timestamps without a year (:class:`formats._timestamps.ClassicTimes`).
    ``dialect`` (``auto``, ``cisco``, ``none``) says whether RFC 3164 frames
    are read for network devices' headers and codes (:mod:`formats.cisco`).
    ``payload`` adds the fields of a structured ``_content_`` (key=value,
    CEF, LEEF, or ``auto``: :mod:`formats.payloads`); ``sd_fields`` adds each
    RFC 5424 SD-PARAM as a field ``sd.<SD-ID>.<PARAM-NAME>`` (the first value
    of a repeated one; ``_structured_data_`` keeps them all).
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
    if payload not in PAYLOADS:
        raise FormatDefinitionError(f"payload must be one of {', '.join(PAYLOADS)}, not {payload!r}")
    parse: ParseFunction
    if format == "streamlog":
        parse = streamlog.parse
    elif format == "rfc5424":
        parse = rfc5424.parse
    elif format == "rfc3164":
        parse = rfc3164.parse
    elif format == "auto":
        parse = _auto(streamlog, rfc5424, rfc3164)
    else:
        raise FormatDefinitionError(f"format must be auto, streamlog, rfc5424 or rfc3164, not {format!r}")
    if payload != "none" or sd_fields:
        parse = _with_payload_fields(parse, payload, sd_fields)
    return _never_raising(parse)


def _sd_pairs(sd_json: str) -> list[tuple[str, str]]:
    """``sd.<SD-ID>.<PARAM>`` pairs of a ``_structured_data_`` JSON column."""
    pairs = []
    elements: dict[str, dict[str, str | list[str]]] = json.loads(sd_json)
    for sd_id, params in elements.items():
        for name, value in params.items():
            pairs.append((f"sd.{sd_id}.{name}", value if isinstance(value, str) else value[0]))
    return pairs


def _with_payload_fields(parse: ParseFunction, payload: Payload, sd_fields: bool) -> ParseFunction:
    """``parse``, then the fields of the record's structured data and payload after its own."""
    layouts: dict[tuple[str, ...], tuple[str, ...]] = {}

    def parse_with_fields(frame: bytes, peer: str, receive_time_ns: int) -> Record:
        record = parse(frame, peer, receive_time_ns)
        if FLAG_PARSE_ERROR in record.flags:
            return record
        extra: list[tuple[str, str]] = []
        if sd_fields:
            sd = record.get(STRUCTURED_DATA)
            if sd:
                extra += _sd_pairs(sd)
        if payload != "none":
            content = record.get(CONTENT)
            if content:
                extra += payload_fields(content, payload)
        if extra:
            keys = record.keys + tuple(name for name, _ in extra)
            shared = layouts.get(keys)
            if shared is None:
                shared = keys
                if len(layouts) < _LAYOUT_LIMIT:
                    layouts[keys] = keys
            record.keys = shared
            record.values = [*record.values, *(value for _, value in extra)]
        return record

    return parse_with_fields


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
