"""The parse function of each listener, with the parse profiles that apply to its senders.

Without profiles a listener's frames are all read one way. With them, the
profile a frame takes is worked out from its listener and its sender's
address once per sender (cached); only where an earlier profile names
senders by hostname is the frame read first, its hostname looked at, and
read again under that profile when it matches
(:mod:`receiver.config.profiles` says the rule).
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from formats.parse import Format, ParseFunction, make_parser
from formats.record import Record
from formats.rfc3164 import Rfc3164Parser
from formats.rfc5424 import Rfc5424Parser
from formats.streamlog import StreamlogFormat, format_table
from receiver.config.identity import SenderSet
from receiver.config.profiles import ParseProfile, ParseSettings
from receiver.deliver.batches import hostname_field

__all__ = [
    "ParserFactory",
    "listener_parsers",
    "profiled_parser",
    "rfc3164_parser",
    "rfc5424_parser",
    "streamlog_reads_as_columns",
]

_HOUR = 3600
_DAY = 24 * _HOUR


class ParserFactory:
    """Parse functions for a configuration's fixed settings, one per (format, settings), made once."""

    def __init__(
        self, streamlog_formats: Sequence[StreamlogFormat], *, leading_space: str, strict_rfc5424: bool
    ) -> None:
        self._formats = format_table(streamlog_formats)
        self._leading_space = leading_space
        self._strict = strict_rfc5424
        self.make = functools.cache(self._make)

    def _make(self, format: Format, settings: ParseSettings) -> ParseFunction:
        return make_parser(
            format=format,
            streamlog_formats=self._formats,
            leading_space=self._leading_space,  # type: ignore[arg-type]
            strict_rfc5424=self._strict,
            **_rfc3164_settings(settings),
            payload=settings.payload,
            sd_fields=settings.sd_fields,
        )


def _rfc3164_settings(settings: ParseSettings) -> dict[str, Any]:
    """What RFC 3164 reading takes of ``settings``, as :class:`Rfc3164Parser` (and make_parser) name it."""
    return {
        "default_tz": zoneinfo.ZoneInfo(settings.timezone),
        "future_tolerance_s": round(settings.future_tolerance_hours * _HOUR),
        "uncertain_year_age_s": round(settings.uncertain_year_days * _DAY),
        "dialect": settings.dialect,
    }


def rfc3164_parser(
    listener: str | None, format: Format, base: ParseSettings, profiles: Sequence[ParseProfile]
) -> Rfc3164Parser | None:
    """The parser ``listener``'s parse function hands its RFC 3164 frames to, where it does nothing more
    with its records (for reading them as columns): a listener of format ``rfc3164`` or ``auto``, with no
    payload grammar and no profile that may apply. None for any other."""
    if format not in ("rfc3164", "auto") or base.payload != "none" or any(p.reads_listener(listener) for p in profiles):
        return None
    return Rfc3164Parser(**_rfc3164_settings(base))


def rfc5424_parser(
    listener: str | None, format: Format, base: ParseSettings, profiles: Sequence[ParseProfile], *, strict: bool
) -> Rfc5424Parser | None:
    """The parser ``listener``'s parse function hands its RFC 5424 frames to, where it does nothing more
    with its records (for reading them as columns): a listener of format ``rfc5424`` or ``auto``, with no
    payload grammar, no SD fields and no profile that may apply; made as :func:`make_parser` makes it
    (``strict`` is the configuration's ``rfc5424_strict``). None for any other."""
    if (
        format not in ("rfc5424", "auto") or base.payload != "none" or base.sd_fields
        or any(p.reads_listener(listener) for p in profiles)
    ):
        return None
    return Rfc5424Parser(strict=strict, default_tz=zoneinfo.ZoneInfo(base.timezone))


def profiled_parser(
    listener: str | None,
    format: Format,
    base: ParseSettings,
    profiles: Sequence[ParseProfile],
    factory: ParserFactory,
) -> ParseFunction:
    """How ``listener`` (None: a listener since removed) reads a frame, profiles included."""
    mine = [p for p in profiles if p.reads_listener(listener)]
    plain = factory.make(format, base)
    if not mine:
        return plain
    chosen = [(p, SenderSet(p.networks, p.hostnames), factory.make(format, p.over(base))) for p in mine]
    by_sender = _sender_plans(chosen, plain)

    def parse(frame: bytes, peer: str, receive_time_ns: int) -> Record:
        first, by_hostname = by_sender(peer)
        record = first(frame, peer, receive_time_ns)
        if by_hostname:
            hostname = hostname_field(record)
            for senders, parse_so in by_hostname:
                if senders.has_hostname(hostname):
                    return parse_so(frame, peer, receive_time_ns)
        return record

    return parse


_Plan = tuple[ParseFunction, tuple[tuple[SenderSet, ParseFunction], ...]]


def _sender_plans(
    chosen: Sequence[tuple[ParseProfile, SenderSet, ParseFunction]], plain: ParseFunction
) -> Callable[[str], _Plan]:
    """For a sender address: the parse function its address alone chooses, and before it (in order)
    the hostname-named profiles that would win if its record's hostname matched."""

    @functools.lru_cache(maxsize=65536)
    def plan(peer: str) -> _Plan:
        by_hostname: list[tuple[SenderSet, ParseFunction]] = []
        for profile, senders, parse in chosen:
            if not profile.names_senders or senders.has_address(peer):
                return parse, tuple(by_hostname)
            if profile.hostnames:
                by_hostname.append((senders, parse))
        return plain, tuple(by_hostname)

    return plan


def streamlog_reads_as_columns(
    listener: str | None, base: ParseSettings, profiles: Sequence[ParseProfile]
) -> bool:
    """Whether ``listener``'s streamlog lines may be read as columns: only when no setting that applies
    to them could add fields (a payload grammar reads the message of streamlog lines too)."""
    if base.payload != "none":
        return False
    return all(p.payload in (None, "none") for p in profiles if p.reads_listener(listener))


def listener_parsers(
    listeners: Mapping[str, Format],
    base: ParseSettings,
    profiles: Sequence[ParseProfile],
    factory: ParserFactory,
) -> tuple[dict[str, ParseFunction], ParseFunction]:
    """Each listener's parse function, and the one for frames of listeners since removed (auto)."""
    return (
        {name: profiled_parser(name, fmt, base, profiles, factory) for name, fmt in listeners.items()},
        profiled_parser(None, "auto", base, profiles, factory),
    )
