"""``receiverctl spool dead-letters | show | replay``: what upstreams rejected for good.

    receiverctl spool dead-letters [-c CONFIG] [--sink NAME] [--json]
    receiverctl spool show PACK_ID [-c CONFIG]
    receiverctl spool replay (PACK_ID ... | --all) [-c CONFIG] [--sink NAME]
    receiverctl spool purge (PACK_ID ... | --all) [-c CONFIG] [--sink NAME]

A replay is a request: the sink's worker in the delivery process sends the
group again (receiver/deliver/dead_letters.py), now if the daemon runs, or
when it next starts.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from formats.text import escape_unprintable, escape_unprintable_json
from receiver.cli.usage import UsageError, config_of
from receiver.deliver.dead_letters import DeadLetter, DeadLetters

__all__ = ["add_commands"]


def add_commands(spool_commands: Any) -> None:
    """Add the dead-letter commands to ``receiverctl spool``'s subparsers."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-c", "--config", type=Path, help="the receiver's configuration (to find its state)")

    c = spool_commands.add_parser(
        "dead-letters", help="groups upstreams rejected for good", description="Groups upstreams rejected for good."
    )
    common(c)
    c.add_argument("--sink", help="only this sink's")
    c.add_argument("--json", action="store_true", help="one JSON object per group")
    c.set_defaults(run=_list)

    c = spool_commands.add_parser("show", help="one dead letter's records", description="One dead letter, as kept.")
    common(c)
    c.add_argument("pack_id", metavar="PACK_ID")
    c.set_defaults(run=_show)

    for name, help_text, description, run in (
        ("replay", "send dead letters again", "Queue dead letters for their sink to send again.", _replay),
        ("purge", "delete dead letters for good", "Delete dead letters (their records are gone).", _purge),
    ):
        c = spool_commands.add_parser(name, help=help_text, description=description)
        common(c)
        which = c.add_mutually_exclusive_group(required=True)
        which.add_argument("pack_ids", metavar="PACK_ID", nargs="*", default=[])
        which.add_argument("--all", action="store_true", help="every dead letter (of --sink, if given)")
        c.add_argument("--sink", help="with --all: only this sink's")
        c.set_defaults(run=run)


def _area(args: argparse.Namespace) -> DeadLetters:
    return DeadLetters(config_of(args).state_directory / "dead-letters")


def _when(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    area = _area(args)
    letters = area.letters(args.sink)
    if args.json:
        for letter in letters:
            print(escape_unprintable_json(json.dumps({
                "sink": letter.sink, "pack_id": letter.pack_id, "records": letter.records,
                "destination": letter.destination, "reason": letter.reason, "time_ns": letter.time_ns,
                "replay_pending": letter.replay_pending, "path": str(letter.path),
            }, ensure_ascii=False)))
        return 0
    if not letters:
        print(f"no dead letters in {area.directory}")
        return 0
    for letter in letters:
        pending = " (replay pending)" if letter.replay_pending else ""
        print(escape_unprintable(
            f"{_when(letter.time_ns)}  {letter.sink}  {letter.pack_id}  {letter.records} records"
            f"  -> {letter.destination or '-'}{pending}"
        ) + f"\n    {escape_unprintable(letter.reason)}")
    print(f"{len(letters)} dead letters, {sum(d.records for d in letters):,} records")
    return 0


def _find(args: argparse.Namespace, area: DeadLetters, pack_id: str) -> DeadLetter:
    try:
        return area.find(pack_id)
    except KeyError:
        raise UsageError(
            f"no dead letter {pack_id} in {area.directory} (receiverctl spool dead-letters lists them)"
        ) from None


def _selected(args: argparse.Namespace, area: DeadLetters) -> list[DeadLetter]:
    """The dead letters named by PACK_ID arguments, or with --all every one (of --sink)."""
    return area.letters(args.sink) if args.all else [_find(args, area, pack_id) for pack_id in args.pack_ids]


def _show(args: argparse.Namespace) -> int:
    area = _area(args)
    letter = _find(args, area, args.pack_id)
    lines = letter.path.read_text(encoding="utf-8", errors="replace").split("\n")
    # The records are senders' text: nothing in them may drive the terminal.
    sys.stdout.write("\n".join(escape_unprintable_json(line) for line in lines))
    return 0


def _replay(args: argparse.Namespace) -> int:
    area = _area(args)
    letters = [d for d in _selected(args, area) if not (args.all and d.replay_pending)]
    for letter in letters:
        area.request_replay(letter)
    print(
        f"{len(letters)} dead letters ({sum(d.records for d in letters):,} records) queued for replay; "
        "the delivery process sends them within seconds while the receiver runs, else when it next starts"
    )
    return 0


def _purge(args: argparse.Namespace) -> int:
    area = _area(args)
    letters = _selected(args, area)
    for letter in letters:
        letter.path.unlink(missing_ok=True)
    print(f"{len(letters)} dead letters ({sum(d.records for d in letters):,} records) deleted")
    return 0
