"""``receiverctl parse`` and ``receiverctl format from-rsyslog``: what the receiver makes of given bytes.

    receiverctl parse [--format F] [--framing M] [--peer IP] [FILE|-]
    receiverctl format from-rsyslog FILE

``parse`` frames and parses bytes as a listener would (no daemon needed) and
prints one JSON object per record; ``format from-rsyslog`` turns rsyslog
templates into the streamlog formats the receiver's configuration takes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from formats.framing import DEFAULT_MAX_FRAME_BYTES, DatagramDeframer, StreamDeframer, frame_flags
from formats.parse import make_parser
from formats.record import FLAG_PARSE_ERROR
from formats.streamlog import StreamlogFormat, format_table
from receiver.cli.store_commands import time_ns_of
from receiver.cli.terminal import terminal_ndjson
from receiver.cli.usage import UsageError
from receiver.config.streamlog_formats import read_streamlog_formats

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
    p.add_argument("--format", choices=("auto", "streamlog", "rfc5424", "rfc3164"), default="auto")
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
    p.add_argument(
        "--timezone",
        default="UTC",
        metavar="ZONE",
        help="zone of timestamps without an offset (IANA name, e.g. Asia/Shanghai; default UTC)",
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
    try:
        tz = zoneinfo.ZoneInfo(args.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise UsageError(f"--timezone {args.timezone!r} is not a known time zone ({e})") from e
    extra: list[StreamlogFormat] = []
    if args.streamlog_formats is not None:
        extra, warnings = read_streamlog_formats(args.streamlog_formats)
        for warning in warnings:
            print(f"receiverctl: warning: {warning}", file=sys.stderr)
    formats = format_table(extra)
    parse = make_parser(
        format=args.format,
        streamlog_formats=formats,
        leading_space="keep" if args.keep_leading_space else "strip-rfc3164",
        strict_rfc5424=args.strict,
        default_tz=tz,
    )
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
