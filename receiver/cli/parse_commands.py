"""``receiverctl parse`` and ``receiverctl format from-rsyslog``: what the receiver makes of given bytes.

    receiverctl parse [--format F] [--framing M] [--peer IP] [-c FILE [--listener NAME]]
                      [--profile NAME] [--dialect D] [--payload P] ... [FILE|-]
    receiverctl format from-rsyslog FILE

``parse`` frames and parses bytes as a listener would (no daemon needed) and
prints one JSON object per record. With ``-c`` it reads them as delivery
does with that configuration: its ``[parse]`` settings and the profile that
names the sender (``--peer``, the hostname in the bytes, ``--listener``), or
the one ``--profile`` names; options given on the command line win; ``format from-rsyslog`` turns rsyslog
templates into the streamlog formats the receiver's configuration takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from formats.framing import DEFAULT_MAX_FRAME_BYTES, DatagramDeframer, StreamDeframer, frame_flags
from formats.parse import PAYLOADS
from formats.record import FLAG_PARSE_ERROR
from formats.rfc3164 import DIALECTS
from formats.streamlog import StreamlogFormat, format_table
from receiver.cli.store_commands import time_ns_of
from receiver.cli.terminal import terminal_ndjson
from receiver.cli.usage import UsageError, config_of
from receiver.config.model import Config
from receiver.config.profiles import ParseProfile, ParseSettings
from receiver.config.streamlog_formats import read_streamlog_formats
from receiver.deliver.parsing import ParserFactory, profiled_parser

__all__ = ["add_commands"]

_READ_BYTES = 64 * 1024


def add_commands(commands: Any) -> None:
    """Add ``parse`` and ``format from-rsyslog`` to ``receiverctl``'s subparsers."""
    p = commands.add_parser(
        "parse",
        help="show how the receiver parses given bytes (JSON lines; no daemon needed)",
        description=(
            "Read raw bytes as a sender would send them and print one JSON object per "
            "record: time, time_ns, fields, source, tags, flags. A summary goes to stderr."
        ),
    )
    p.add_argument("file", nargs="?", default="-", help="the bytes to parse; - or nothing for stdin")
    p.add_argument(
        "--format", choices=("auto", "streamlog", "rfc5424", "rfc3164"),
        help="how frames are read (default: auto, or the --listener's format)",
    )
    p.add_argument(
        "--framing",
        choices=("auto", "lf", "octet", "datagram"),
        default="auto",
        help="how frames are delimited (datagram: the whole input is one UDP datagram)",
    )
    p.add_argument("--peer", default="", metavar="IP", help="the sender's address, as a listener would see it")
    p.add_argument(
        "--receive-time",
        metavar="TIME",
        help="when the bytes arrived (epoch seconds or ISO 8601; default now): "
        "RFC 3164 years are inferred from it",
    )
    p.add_argument("-c", "--config", type=Path, help="read as delivery does with this configuration's [parse] and profiles")
    p.add_argument("--listener", metavar="NAME", help="with -c: the listener the bytes arrived on (its format, its profiles)")
    p.add_argument("--profile", metavar="NAME", help="with -c: read with this profile, whoever the sender is")
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        help="zone of timestamps without an offset (IANA name, e.g. Asia/Shanghai; default UTC)",
    )
    p.add_argument("--dialect", choices=DIALECTS, help="network devices' RFC 3164 headers (default auto)")
    p.add_argument("--payload", choices=PAYLOADS, help="fields from a structured message (default none)")
    p.add_argument(
        "--sd-fields", action="store_true", default=None,
        help="each RFC 5424 structured-data parameter as a field too",
    )
    p.add_argument(
        "--future-tolerance-hours", type=float, metavar="H",
        help="a time without a year is dated at most this far after receipt (default 48)",
    )
    p.add_argument(
        "--uncertain-year-days", type=float, metavar="D",
        help="such a time dated longer ago than this is flagged uncertain-year (default 30)",
    )
    p.add_argument(
        "--streamlog-formats",
        type=Path,
        metavar="FILE",
        help="extra streamlog formats: ilogtail_config.json, a JSON list, or rsyslog templates",
    )
    p.add_argument(
        "--keep-leading-space",
        action="store_true",
        help="keep the space rsyslog puts before an RFC 3164 msg in streamlog lines",
    )
    p.add_argument("--strict", action="store_true", help="reject RFC 5424 that breaks the RFC's grammar")
    p.add_argument("--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME_BYTES, metavar="N")
    p.set_defaults(run=_parse)

    f = commands.add_parser("format", help="streamlog formats")
    fc = f.add_subparsers(title="format commands", required=True, metavar="COMMAND")
    r = fc.add_parser(
        "from-rsyslog",
        help="print the streamlog formats that rsyslog templates produce",
        description=(
            "Read rsyslog configuration text (legacy $template lines or template() "
            "blocks) and print, as JSON, the streamlog format of each template that "
            "writes streamlog lines; the others are reported on stderr with the reason."
        ),
    )
    r.add_argument("file", type=Path, help="rsyslog.conf or a snippet of it")
    r.set_defaults(run=_format_from_rsyslog)


def _parse(args: argparse.Namespace) -> int:
    receive_time_ns = _receive_time_ns(args.receive_time)
    if args.timezone is not None:
        try:
            zoneinfo.ZoneInfo(args.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise UsageError(f"--timezone {args.timezone!r} is not a known time zone ({e})") from e
    config = config_of(args) if args.config is not None else None
    if config is None and (args.listener is not None or args.profile is not None):
        raise UsageError(f"--{'listener' if args.listener is not None else 'profile'} needs -c: the configuration that names it")
    extra: list[StreamlogFormat] = list(config.parse.streamlog_formats) if config is not None else []
    if args.streamlog_formats is not None:
        more, warnings = read_streamlog_formats(args.streamlog_formats)
        extra += more
        for warning in warnings:
            print(f"receiverctl: warning: {warning}", file=sys.stderr)
    formats = format_table(extra)
    settings, profiles = _settings(args, config)
    factory = ParserFactory(
        extra,
        leading_space="keep" if args.keep_leading_space else (
            config.parse.streamlog_leading_space if config is not None else "strip-rfc3164"
        ),
        strict_rfc5424=args.strict or (config is not None and config.parse.rfc5424_strict),
    )
    parse = profiled_parser(args.listener, _format(args, config), settings, profiles, factory)
    deframer: StreamDeframer | DatagramDeframer
    if args.framing == "datagram":
        deframer = DatagramDeframer(max_frame_bytes=args.max_frame_bytes)
    else:
        deframer = StreamDeframer(
            framing=args.framing, max_frame_bytes=args.max_frame_bytes, streamlog_versions=tuple(formats)
        )
    out = sys.stdout.buffer
    records = parse_errors = 0
    with _open_input(args.file) as stream:
        for frames in _frames(stream, deframer):
            batch = [parse(frame, args.peer, receive_time_ns).with_flags(frame_flags(frame)) for frame in frames]
            records += len(batch)
            parse_errors += sum(FLAG_PARSE_ERROR in r.flags for r in batch)
            out.write(terminal_ndjson(batch))
    out.flush()
    print(
        f"receiverctl: {records} records; {parse_errors} parse errors, "
        f"{deframer.truncated_frames} truncated, {deframer.empty_frames} empty frames skipped, "
        f"{deframer.incomplete_frames} incomplete, {deframer.framing_errors} framing errors",
        file=sys.stderr,
    )
    return 0


def _settings(args: argparse.Namespace, config: Config | None) -> tuple[ParseSettings, tuple[ParseProfile, ...]]:
    """The settings to read with (the file's, a profile's over them, the options' over all) and the
    profiles still to choose from by sender."""
    settings = config.parse.settings if config is not None else ParseSettings()
    profiles = config.parse.profiles if config is not None else ()
    if args.profile is not None:
        named = [p for p in profiles if p.name == args.profile]
        if not named:
            known = ", ".join(p.name for p in profiles) or "none"
            raise UsageError(f"--profile {args.profile!r}: {args.config} has no such profile (it has: {known})")
        settings, profiles = named[0].over(settings), ()
    given = {
        name: getattr(args, name)
        for name in ("timezone", "dialect", "payload", "sd_fields", "future_tolerance_hours", "uncertain_year_days")
        if getattr(args, name) is not None
    }
    if given:
        # What the command line says holds for every sender: no profile may change it back.
        cleared: dict[str, Any] = dict.fromkeys(given)
        profiles = tuple(dataclasses.replace(p, **cleared) for p in profiles)
    return dataclasses.replace(settings, **given), profiles


def _format(args: argparse.Namespace, config: Config | None) -> Any:
    """``--format``, else the ``--listener``'s format, else auto."""
    if args.listener is None or config is None:
        return args.format or "auto"
    for listener in config.listeners:
        if listener.name == args.listener:
            return args.format or listener.format
    names = ", ".join(listener.name for listener in config.listeners)
    raise UsageError(f"--listener {args.listener!r}: {args.config} has no such listener (it has: {names})")


def _frames(stream: BinaryIO, deframer: StreamDeframer | DatagramDeframer) -> Iterator[list[bytes]]:
    if isinstance(deframer, DatagramDeframer):
        yield deframer.feed(stream.read())
        return
    while chunk := stream.read(_READ_BYTES):
        yield deframer.feed(chunk)
    yield deframer.finish()


class _open_input:
    """The named file, or stdin for ``-``, as a binary stream."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._file: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if self._name == "-":
            return sys.stdin.buffer
        try:
            self._file = open(self._name, "rb")
        except OSError as e:
            raise UsageError(f"cannot read {self._name}: {e.strerror}") from e
        return self._file

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def _receive_time_ns(text: str | None) -> int:
    if text is None:
        return time.time_ns()
    when = time_ns_of(text)
    if when is None:
        raise UsageError(f"--receive-time {text!r} is neither epoch seconds nor ISO 8601 (2026-01-01T00:00:05+00:00)")
    return when


def _format_from_rsyslog(args: argparse.Namespace) -> int:
    formats, warnings = read_streamlog_formats(args.file)
    for warning in warnings:
        print(f"receiverctl: skipped: {warning}", file=sys.stderr)
    json.dump({"streamlog_formats": [f.to_logtail() for f in formats]}, sys.stdout, indent=2)
    print()
    return 0
