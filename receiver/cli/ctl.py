"""``receiverctl``: the operator's tool.

Commands that ask the running daemon (its control socket):

    receiverctl status | stats | senders [--json] [-c CONFIG | --socket PATH]
    receiverctl reload | flush [-c CONFIG | --socket PATH]

Commands that need no daemon:

    receiverctl parse [--format F] [--framing M] [--peer IP] [FILE|-]
    receiverctl format from-rsyslog FILE
    receiverctl spool stats [-c CONFIG | --spool DIR] [--json]
    receiverctl spool frames [-c CONFIG | --spool DIR] [--last N] [--parse] [--raw]
    receiverctl spool dead-letters | show PACK_ID | replay (PACK_ID... | --all) | purge ... [-c CONFIG]
    receiverctl tail [-f] [-n N] [--filter EXPR] [--json] [-c CONFIG | --spool DIR]
    receiverctl rsyslog-config [--transport tcp|udp|tls|relp] [--tag TAG] [--host HOST] [--port PORT] [-c CONFIG]
    receiverctl identity [-c CONFIG] [--sender IP [HOSTNAME]]
    receiverctl tls selfsigned [--out DIR] [--name CN] [--days N] [--san NAME ...] [--force] | show FILE
    receiverctl search EXPR [--since WHEN] [--until WHEN] [--limit N] [--oldest-first] [--json]
                       [-c CONFIG | --db DIR]
    receiverctl sql QUERY [--limit N] [--json] [-c CONFIG | --db DIR]

``parse`` shows exactly what the receiver makes of given bytes, one JSON
object per record; ``format from-rsyslog`` turns rsyslog templates into the
streamlog formats the receiver's configuration takes; ``spool`` shows what
the spool holds (read-only, safe while the daemon runs); ``search`` and
``sql`` query the embedded local store (read-only too, with the daemon
running or not: receiver/cli/store_commands.py).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as _dt
import json
import sys
import time
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from formats.errors import FormatDefinitionError
from formats.framing import DEFAULT_MAX_FRAME_BYTES, DatagramDeframer, StreamDeframer, frame_flags
from formats.ndjson import encode_ndjson
from formats.parse import make_parser
from formats.record import FLAG_PARSE_ERROR, Record
from formats.streamlog import StreamlogFormat, format_table
from formats.text import escape_unprintable_json
from receiver import __version__
from receiver.cli.client_config import add_commands as add_client_config_commands
from receiver.cli.daemon_commands import add_commands as add_daemon_commands
from receiver.cli.dead_letters import add_commands as add_dead_letter_commands
from receiver.cli.store_commands import add_commands as add_store_commands
from receiver.cli.store_commands import record_line, time_ns_of
from receiver.cli.tls import add_commands as add_tls_commands
from receiver.cli.usage import UsageError, config_of
from receiver.config.model import Config
from receiver.config.streamlog_formats import StreamlogFormatsFileError, read_streamlog_formats
from receiver.spool import SpoolReader

__all__ = ["main"]

_READ_BYTES = 64 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``receiverctl``; returns the exit status."""
    parser = _argument_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
        return status
    except (UsageError, StreamlogFormatsFileError, FormatDefinitionError) as e:
        print(f"receiverctl: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours.
        sys.stderr.close()
        return 0


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="receiverctl", description="Administer the syslog receiver appliance."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

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

    sp = commands.add_parser("spool", help="what the spool holds (read-only; the daemon may run)")
    spc = sp.add_subparsers(title="spool commands", required=True, metavar="COMMAND")
    for name, help_text, run in (
        ("stats", "segments, frames, bytes, oldest and newest frame, cursors", _spool_stats),
        ("frames", "the frames held, oldest first, one JSON object each (or raw, or parsed)", _spool_frames),
    ):
        c = spc.add_parser(name, help=help_text, description=help_text)
        where = c.add_mutually_exclusive_group()
        where.add_argument("-c", "--config", type=Path, help="the receiver's configuration (to find its spool)")
        where.add_argument("--spool", type=Path, help="the spool directory itself")
        if name == "stats":
            c.add_argument("--json", action="store_true", help="one JSON object")
        else:
            c.add_argument("--last", type=int, metavar="N", help="only the newest N frames")
            mode = c.add_mutually_exclusive_group()
            mode.add_argument("--raw", action="store_true", help="the frames' bytes, each followed by LF")
            mode.add_argument("--parse", action="store_true", help="the records delivery will make of them")
        c.set_defaults(run=run)
    add_dead_letter_commands(spc)
    add_daemon_commands(commands)
    add_client_config_commands(commands)
    add_tls_commands(commands)

    t = commands.add_parser(
        "tail",
        help="the newest records, parsed, and (-f) those that follow (reads the spool; the daemon may run)",
        description=(
            "Print the newest records the spool holds, parsed as delivery parses them, oldest first; with "
            "-f, keep printing records as they are committed (within milliseconds of receipt) until Ctrl-C. "
            "--filter takes the filter grammar of routes and search."
        ),
    )
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    t.add_argument("-n", "--lines", type=int, default=10, metavar="N", help="how many of the newest to print first (10)")
    t.add_argument("--filter", default="", metavar="EXPR", help="only records matching EXPR")
    t.add_argument("--json", action="store_true", help="one JSON object per record")
    where = t.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="the receiver's configuration (to find its spool)")
    where.add_argument("--spool", type=Path, help="the spool directory itself")
    t.set_defaults(run=_tail)

    add_store_commands(commands)
    return parser


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
            out.write(_terminal_ndjson(batch))
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


def _spool_config(args: argparse.Namespace) -> tuple[Path, Config]:
    """The spool directory (``--spool``, else the configuration's) and the configuration ``-c`` names."""
    config = config_of(args)
    return (args.spool if args.spool is not None else config.spool_directory), config


def _open_spool(directory: Path) -> SpoolReader:
    try:
        return SpoolReader(directory)
    except FileNotFoundError as e:
        raise UsageError(f"{e} (give --spool DIR or -c CONFIG)") from e


def _spool_stats(args: argparse.Namespace) -> int:
    directory, _ = _spool_config(args)
    with _open_spool(directory) as reader:
        stats = reader.stats()
    if args.json:
        json.dump({"spool": str(directory), **dataclasses.asdict(stats)}, sys.stdout)
        print()
        return 0
    now = time.time_ns()

    def when(ns: int | None) -> str:
        if ns is None:
            return "-"
        stamp = _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{stamp} ({_age(now - ns)} ago)"

    cursors = ", ".join(f"{k} at segment {v}" for k, v in sorted(stats.cursors.items())) or "none (no sink delivers yet)"
    print(f"spool {directory}")
    print(f"  segments  {stats.segments:,}")
    print(f"  frames    {stats.frames:,} held; {stats.frames_written:,} written since the spool was created")
    print(f"  bytes     {stats.bytes:,} stored ({stats.raw_bytes:,} uncompressed)")
    print(f"  oldest    {when(stats.oldest_receive_time_ns)}")
    print(f"  newest    {when(stats.newest_receive_time_ns)}")
    print(f"  discarded {stats.discarded_frames:,} frames by retention before delivery")
    print(f"  damaged   {stats.quarantined:,} segments quarantined")
    print(f"  cursors   {cursors}")
    return 0


def _age(ns: int) -> str:
    seconds = max(0, ns // 1_000_000_000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


def _spool_frames(args: argparse.Namespace) -> int:
    from receiver.deliver.building import parsers_for

    directory, config = _spool_config(args)
    # As delivery parses them: each listener's frames in its own format.
    parsers, default_parser = parsers_for(config) if args.parse else ({}, None)
    out = sys.stdout.buffer
    with _open_spool(directory) as reader:
        frames = (
            (entry, frame, entry.frame_flags.get(i, ()))
            for entry in reader.entries()
            for i, frame in enumerate(entry.frames)
        )
        selected = collections.deque(frames, maxlen=args.last) if args.last else frames
        for entry, frame, flags in selected:
            if args.raw:
                out.write(frame + b"\n")
            elif default_parser is not None:
                parse = parsers.get(entry.listener, default_parser)
                record = parse(frame, entry.peer, entry.receive_time_ns).with_flags(flags)
                out.write(_terminal_ndjson([record]))
            else:
                line = {
                    "seq": entry.seq, "receive_time_ns": entry.receive_time_ns, "peer": entry.peer,
                    "port": entry.port, "listener": entry.listener, "transport": entry.transport,
                    "frame": frame.decode("utf-8", "backslashreplace"), "flags": list(flags),
                }
                out.write(escape_unprintable_json(json.dumps(line, ensure_ascii=False)).encode() + b"\n")
    out.flush()
    return 0


_TAIL_BACKLOG_SEGMENTS = 64
"""How far back the first records of ``tail`` are looked for (a spool may hold gigabytes)."""
_TAIL_POLL_SECONDS = 0.2


def _tail(args: argparse.Namespace) -> int:
    from formats.columns import columns_of
    from receiver.deliver.building import parsers_for
    from receiver.filters.expression import FilterError, parse_filter

    if args.lines < 0:
        raise UsageError(f"-n {args.lines}: give a number of records")
    try:
        matches = parse_filter(args.filter).matches
    except FilterError as e:
        raise UsageError(str(e).splitlines()[0]) from e
    directory, config = _spool_config(args)
    parsers, default_parser = parsers_for(config)
    out = sys.stdout

    def read(reader: SpoolReader, after: int, keep: int | None) -> tuple[int, Iterable[Record]]:
        """The matching records of the segments after ``after`` (the last ``keep``), and the last segment read."""
        last = after
        kept: collections.deque[Record] | list[Record] = collections.deque(maxlen=keep) if keep is not None else []
        for entry in reader.entries(after):
            last = entry.seq
            parse = parsers.get(entry.listener, default_parser)
            for i, frame in enumerate(entry.frames):
                record = parse(frame, entry.peer, entry.receive_time_ns).with_flags(entry.frame_flags.get(i, ()))
                if matches(record):
                    kept.append(record)
        return last, kept

    def show(records: Iterable[Record]) -> None:
        for record in records:
            if args.json:
                out.write(_terminal_ndjson([record]).decode())
            else:
                host, app, severity, _, message = columns_of(record)
                out.write(record_line(record.time, record.time_ns, host, app, severity, message))
        out.flush()

    with _open_spool(directory) as reader:
        seen, backlog = read(reader, max(0, reader.last_seq() - _TAIL_BACKLOG_SEGMENTS), args.lines)
        show(backlog if args.lines else ())
        try:
            while args.follow:
                time.sleep(_TAIL_POLL_SECONDS)
                seen, new = read(reader, seen, None)
                show(new)
        except KeyboardInterrupt:
            pass
    return 0


def _format_from_rsyslog(args: argparse.Namespace) -> int:
    formats, warnings = read_streamlog_formats(args.file)
    for warning in warnings:
        print(f"receiverctl: skipped: {warning}", file=sys.stderr)
    json.dump({"streamlog_formats": [f.to_logtail() for f in formats]}, sys.stdout, indent=2)
    print()
    return 0


def _terminal_ndjson(records: Sequence[Record]) -> bytes:
    """``records`` as NDJSON whose strings escape what a terminal would obey (C1 controls, bidi)."""
    lines = encode_ndjson(records).decode().split("\n")
    return "\n".join(escape_unprintable_json(line) for line in lines).encode()


if __name__ == "__main__":
    sys.exit(main())
