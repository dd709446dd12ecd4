"""``receiverctl search`` and ``receiverctl sql``: what the embedded local store holds.

    receiverctl search EXPR [--since WHEN] [--until WHEN] [--limit N] [--oldest-first] [--json]
                       [-c CONFIG | --db DIR] [--sink NAME [--table TABLE]]
    receiverctl sql QUERY [--limit N] [--json] [-c CONFIG | --db DIR]

While the receiver runs, its delivery process holds the store (the engine
locks the directory): both commands ask it on its query socket
(receiver/deliver/sinks/local/server.py). When nothing answers there, they open
the directory themselves, read-only. Either way the output is the same.
``search --sink`` reads a ClickHouse sink's table on its server instead,
with the same filter compiled to the same SQL, and prints the same lines.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from formats.text import escape_unprintable, escape_unprintable_json
from receiver.cli.terminal import record_line
from receiver.cli.usage import UsageError, config_of
from receiver.config.model import Config, LocalSinkConfig

__all__ = ["add_commands", "time_ns_of"]

_AGE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)\s*")
_DIRECT_MEMORY_BYTES = 256 * 1024**2
"""The engine's memory when receiverctl opens a store itself (the daemon stopped)."""


def add_commands(commands: Any) -> None:
    """Add ``search`` and ``sql`` to receiverctl's subparsers."""
    s = commands.add_parser(
        "search",
        help="query the embedded local store (read-only; the daemon may run)",
        description=(
            "Print the records of the local store that match EXPR, newest first: one line each "
            "(time in UTC, host, app, severity, message), or NDJSON with --json. EXPR is a filter "
            "expression, the grammar of routes and tail: 'app-name=todo-list and _severity_<=warning', "
            "'\"connection refused\" host=web-*', 'timeout not flag=truncated'; '' matches every "
            "record. Exit status: 0 when records matched, 1 when none did, 2 on errors."
        ),
    )
    s.add_argument("expr", metavar="EXPR", help="the filter expression ('' for every record)")
    s.add_argument("--since", metavar="WHEN", help="records timed at or after WHEN: an age (15m, 2h, 7d) or an ISO time")
    s.add_argument("--until", metavar="WHEN", help="records timed before WHEN: an age (15m, 2h, 7d) or an ISO time")
    s.add_argument("--limit", type=int, default=100, metavar="N", help="at most N records (default 100; 0 for all)")
    s.add_argument("--oldest-first", action="store_true", help="the oldest matching records, oldest first")
    s.add_argument("--json", action="store_true", help="one JSON object per record: the record and its group's tags")
    s.add_argument("--sink", metavar="NAME", help="search this ClickHouse sink's table on its server instead (with -c)")
    s.add_argument("--table", metavar="TABLE", help="with --sink: this table of the sink's database (a route's destination)")
    _where(s)
    s.set_defaults(run=_search)

    q = commands.add_parser(
        "sql",
        help="a read-only ClickHouse SQL query over the local store (aggregations: top senders, errors per app)",
        description=(
            "Run one read-only query (SELECT, SHOW, DESCRIBE) over the local store's table receiver.records "
            "(docs/sinks/local.md lists its columns): "
            "\"SELECT host, count() AS n FROM receiver.records GROUP BY host ORDER BY n DESC LIMIT 10\". "
            "Table functions, file() and SETTINGS are refused. Prints a table, or one JSON object with --json."
        ),
    )
    q.add_argument("query", metavar="QUERY", help="the SQL query")
    q.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N rows (default 1000, at most 10000)")
    q.add_argument("--json", action="store_true", help='{"columns": [...], "rows": [[...], ...], "truncated": false}')
    _where(q)
    q.set_defaults(run=_sql)


def _where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="the receiver's configuration (to find its local store)")
    where.add_argument("--db", type=Path, metavar="DIR", help="the local store's directory itself")


# -- finding the store ------------------------------------------------------------------


class _Store:
    """Where a local store is, and how to reach it: its query socket, else its directory."""

    def __init__(self, args: argparse.Namespace) -> None:
        from receiver.deliver.sinks.local.server import store_socket
        from receiver.deliver.sinks.local.sink import local_store_directory

        if args.db is not None:
            self.directory, self.why, self.socket = args.db, "given by --db", None
            return
        config, source = _config_and_source(args)
        local = [sink for sink in config.sinks if isinstance(sink, LocalSinkConfig)]
        if not local:
            raise UsageError(
                f'{source} has no local sink (type = "local"), so no local store to search; give --db DIR for one'
            )
        self.directory = local_store_directory(local[0], config.state_directory)
        self.why = f"the path of local sink {local[0].name!r} in {source}"
        self.socket = store_socket(config.control_socket)
        self.legacy = config.state_directory / "local.db"


    def client(self) -> Any | None:
        """The running receiver's store client, or None when nothing answers."""
        if self.socket is None or not self.socket.exists():
            return None
        from receiver.deliver.sinks.local.server import StoreClient

        return StoreClient(self.socket)

    def open(self) -> Any:
        """The store opened here, read-only (nobody holds it)."""
        from receiver.deliver.sinks.local.store import EmbeddedStore, StoreError

        if not (self.directory / "metadata").exists():
            hint = ""
            if getattr(self, "legacy", None) is not None and self.legacy.exists():
                hint = f"; the SQLite store {self.legacy} of an older release is imported when the receiver next starts"
            raise UsageError(
                f"no local store in {self.directory}: the receiver has not delivered anything there yet "
                f"(looked there as {self.why}){hint}; give -c CONFIG or --db DIR to look elsewhere"
            )
        try:
            return EmbeddedStore(self.directory, max_age_hours=0, max_bytes=0,
                                 memory_limit_bytes=_DIRECT_MEMORY_BYTES, readonly=True)
        except StoreError as e:
            raise UsageError(str(e)) from e


def _config_and_source(args: argparse.Namespace) -> tuple[Config, str]:
    """The configuration ``-c`` names (else the built-in one), and how to name where it came from."""
    return config_of(args), str(args.config) if args.config is not None else "the built-in defaults (no -c CONFIG)"


# -- search -----------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    from receiver.deliver.sinks.local.server import StoreUnavailableError, stored_line
    from receiver.deliver.sinks.local.store import search
    from receiver.filters.expression import FilterError, parse_filter

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: give a number of records, or 0 for all")
    now_ns = time.time_ns()
    request = {
        "filter": args.expr, "since_ns": _when(args.since, now_ns, "--since"),
        "until_ns": _when(args.until, now_ns, "--until"), "limit": args.limit,
        "newest_first": not args.oldest_first,
    }
    try:
        parse_filter(args.expr)  # a bad filter is a usage error before anything is asked
    except FilterError as e:
        raise UsageError(str(e).splitlines()[0]) from e
    if args.table is not None and args.sink is None:
        raise UsageError("--table names a table of a ClickHouse sink: give --sink NAME too")
    if args.sink is not None:
        if args.db is not None:
            raise UsageError("--sink searches a sink of the configuration (-c CONFIG), --db a local store: give one")
        return _print_records(args, _sink_lines(args, request))
    where = _Store(args)

    def lines() -> Iterator[dict[str, Any]]:
        client = where.client()
        if client is not None:
            try:
                yield from client.search(**request)
                return
            except StoreUnavailableError:
                pass
        store = where.open()
        try:
            for stored in search(store, args.expr, since_ns=request["since_ns"], until_ns=request["until_ns"],
                                 limit=args.limit, newest_first=not args.oldest_first):
                yield stored_line(stored)
        finally:
            store.close()

    return _print_records(args, lines())


def _print_records(args: argparse.Namespace, lines: Iterator[dict[str, Any]]) -> int:
    from receiver.deliver.sinks.clickhouse import ClickHouseQueryError
    from receiver.deliver.sinks.local.store import StoreError

    out = sys.stdout
    found = 0
    try:
        for line in lines:
            found += 1
            columns = line.pop("columns")
            if args.json:
                out.write(escape_unprintable_json(json.dumps(line, ensure_ascii=False, separators=(",", ":"))) + "\n")
            else:
                out.write(record_line(int(line["time"]), int(line["time_ns"]), columns["host"], columns["app"],
                                      int(columns["severity"]), columns["message"]))
    except (StoreError, ClickHouseQueryError) as e:
        raise UsageError(str(e)) from e
    out.flush()
    return 0 if found else 1


def _sink_lines(args: argparse.Namespace, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The lines of ``search --sink``: the records of a ClickHouse sink's table, as the store's search gives them."""
    from receiver.config.model import ClickHouseSinkConfig
    from receiver.deliver.sinks.clickhouse import ClickHouseConfigError, ClickHouseSink
    from receiver.deliver.sinks.local.server import stored_line
    from receiver.deliver.sinks.local.store import search

    config, source = _config_and_source(args)
    sinks = {sink.name: sink for sink in config.sinks}
    chosen = sinks.get(args.sink)
    if chosen is None:
        raise UsageError(
            f"{source} has no sink named {args.sink!r} (it has: {', '.join(sorted(sinks)) or 'none'})"
        )
    if not isinstance(chosen, ClickHouseSinkConfig):
        hint = "; search the local store without --sink" if isinstance(chosen, LocalSinkConfig) else ""
        raise UsageError(f"sink {args.sink!r} is of type {chosen.type}: --sink searches ClickHouse sinks{hint}")
    try:
        sink = ClickHouseSink(chosen)
        table = sink.search_table(args.table)
    except ClickHouseConfigError as e:
        raise UsageError(f"sink {args.sink!r}: {e}") from e
    try:
        for stored in search(table, args.expr, since_ns=request["since_ns"], until_ns=request["until_ns"],
                             limit=args.limit, newest_first=request["newest_first"]):
            yield stored_line(stored)
    finally:
        sink.close()


# -- sql --------------------------------------------------------------------------------


def _sql(args: argparse.Namespace) -> int:
    from receiver.deliver.sinks.local.server import StoreUnavailableError
    from receiver.deliver.sinks.local.store import StoreError, run_sql

    if args.limit < 1:
        raise UsageError(f"--limit {args.limit}: give a number of rows from 1")
    where = _Store(args)
    try:
        result = None
        client = where.client()
        if client is not None:
            try:
                result = client.sql(args.query, args.limit)
            except StoreUnavailableError:
                result = None
        if result is None:
            store = where.open()
            try:
                result = run_sql(store, args.query, args.limit)
            finally:
                store.close()
    except StoreError as e:
        raise UsageError(str(e)) from e
    out = sys.stdout
    if args.json:
        out.write(escape_unprintable_json(json.dumps(result, ensure_ascii=False)) + "\n")
    else:
        out.write(_table(result["columns"], result["rows"]))
        if result.get("truncated"):
            print(f"receiverctl: more rows than --limit {args.limit}; give a larger --limit or refine the query",
                  file=sys.stderr)
    return 0


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    """Rows as aligned text columns (numbers right-aligned), every value escaped for the terminal."""
    shown = [[escape_unprintable(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for v in row]
             for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in shown]) for i, name in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        cells = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(cells).rstrip() + "\n"

    return line([escape_unprintable(c) for c in columns]) + "".join(line(row) for row in shown)


# -- shared with the other commands ---------------------------------------------------


def time_ns_of(text: str) -> int | None:
    """Epoch seconds or an ISO 8601 time (UTC unless it says otherwise), in ns; None if neither."""
    try:
        return int(float(text) * 1_000_000_000)
    except (ValueError, OverflowError):  # not a number; "inf" and "nan" neither
        pass
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _when(text: str | None, now_ns: int, option: str) -> int | None:
    """``15m``, ``2h``, ``7d`` ago; an ISO 8601 time (UTC unless it says otherwise); epoch seconds."""
    if text is None:
        return None
    age = _AGE.fullmatch(text)
    if age is not None:
        return now_ns - int(float(age[1]) * _AGE_UNITS[age[2]] * 1_000_000_000)
    when = time_ns_of(text)
    if when is None:
        raise UsageError(
            f"{option} {text!r} is neither an age (15m, 2h, 7d) nor an ISO time (2026-01-01T10:00:00+08:00)"
        )
    return when
