"""``receiverctl spool stats``, ``spool frames`` and ``tail``: what the spool holds.

    receiverctl spool stats [-c CONFIG | --spool DIR] [--json]
    receiverctl spool frames [-c CONFIG | --spool DIR] [--last N] [--parse] [--raw]
    receiverctl tail [-f] [-n N] [--filter EXPR] [--json] [-c CONFIG | --spool DIR]

They read the spool's files (read-only, safe while the daemon runs); ``frames
--parse`` and ``tail`` parse frames as delivery parses them, each listener's
in its own format.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as _dt
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from formats.record import Record
from formats.text import escape_unprintable_json
from receiver.cli.terminal import record_line, terminal_ndjson
from receiver.cli.usage import UsageError, config_of
from receiver.config.model import Config
from receiver.spool import SpoolReader

__all__ = ["add_spool_commands", "add_tail_command"]


def add_spool_commands(spool_commands: Any) -> None:
    """Add ``stats`` and ``frames`` to ``receiverctl spool``'s subparsers."""
    for name, help_text, run in (
        ("stats", "segments, frames, bytes, oldest and newest frame, cursors", _spool_stats),
        ("frames", "the frames held, oldest first, one JSON object each (or raw, or parsed)", _spool_frames),
    ):
        c = spool_commands.add_parser(name, help=help_text, description=help_text)
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


def add_tail_command(commands: Any) -> None:
    """Add ``tail`` to ``receiverctl``'s subparsers."""
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
                out.write(terminal_ndjson([record]))
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
                out.write(terminal_ndjson([record]).decode())
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
