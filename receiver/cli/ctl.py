"""``receiverctl``: the operator's tool. This module assembles the command line and runs it; each
command lives in the module of what it does:

    daemon_commands.py  status, stats, senders, reload, flush: ask the running daemon (its control socket)
    parse_commands.py   parse, format from-rsyslog: what the receiver makes of given bytes
    spool_commands.py   spool stats, spool frames, tail: what the spool holds (read-only; the daemon may run)
    dead_letters.py     spool dead-letters, show, replay, purge: what upstreams rejected for good
    client_config.py    rsyslog-config, identity: the senders' side, and who this appliance is
    tls.py              tls selfsigned, tls show: certificates for TLS listeners
    store_commands.py   search, sql: what the embedded local store holds (read-only; the daemon may run)

Commands that ask the running daemon:

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

A command that cannot be carried out raises ``UsageError`` (usage.py): ``main``
prints it as one line, ``receiverctl: ...``, and exits with status 2. Every
command reads ``-c CONFIG`` with ``usage.config_of``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from formats.errors import FormatDefinitionError
from receiver import __version__
from receiver.cli import (
    client_config,
    daemon_commands,
    dead_letters,
    parse_commands,
    spool_commands,
    store_commands,
    tls,
)
from receiver.cli.usage import UsageError
from receiver.config.streamlog_formats import StreamlogFormatsFileError

__all__ = ["main"]


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
    """Every command, added in the order ``receiverctl --help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="receiverctl", description="Administer the syslog receiver appliance."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    parse_commands.add_commands(commands)
    spool = commands.add_parser("spool", help="what the spool holds (read-only; the daemon may run)")
    spool_subcommands = spool.add_subparsers(title="spool commands", required=True, metavar="COMMAND")
    spool_commands.add_spool_commands(spool_subcommands)
    dead_letters.add_commands(spool_subcommands)
    daemon_commands.add_commands(commands)
    client_config.add_commands(commands)
    tls.add_commands(commands)
    spool_commands.add_tail_command(commands)
    store_commands.add_commands(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
