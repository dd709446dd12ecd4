"""``receiverctl status`` and ``receiverctl stats``: ask the running daemon (receiver/service/control.py).

    receiverctl status [--json] [-c CONFIG | --socket PATH]
    receiverctl stats [--json] [-c CONFIG | --socket PATH]
    receiverctl reload [--json] [-c CONFIG | --socket PATH]
    receiverctl flush [--json] [-c CONFIG | --socket PATH]
    receiverctl senders [--json] [-c CONFIG | --socket PATH]

People get a table; scripts get ``--json``. When no daemon answers, the
exit status is 1 and one line on stderr says why and where it looked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from receiver.cli.usage import UsageError, config_of
from receiver.service.control import ControlError, get_json

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``status`` and ``stats`` to ``receiverctl``'s subparsers."""
    for name, help_text, run in (
        ("status", "the running daemon: listeners, spool, each sink's state", _status),
        ("stats", "the running daemon's counters (ingest, spool, delivery)", _stats),
        ("senders", "every source the running daemon has heard from, with its state", _senders),
        ("reload", "make the running daemon re-read its configuration file (as SIGHUP does)", _reload),
        ("flush", "make the running daemon commit what it has read; returns once it is on disk", _flush),
    ):
        c = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        where = c.add_mutually_exclusive_group()
        where.add_argument("-c", "--config", type=Path, help="the receiver's configuration (to find its socket)")
        where.add_argument("--socket", type=Path, help="the control socket itself")
        c.add_argument("--json", action="store_true", help="the daemon's answer as JSON")
        c.set_defaults(run=run)


SYSTEMD_CONTROL_SOCKET = Path("/run/syslog-receiver/control.sock")
"""Where the daemon of systemd/receiver.service listens (its RuntimeDirectory)."""


def _socket(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    try:
        here = config_of(args).control_socket
    except UsageError as e:
        if args.run is _reload:
            raise UsageError(f"not asking the receiver to reload: the file has errors (the running "
                             f"configuration stays):\n{e}") from e
        raise
    if args.config is None and not here.exists() and SYSTEMD_CONTROL_SOCKET.exists():
        # From an operator's shell the unit's $RUNTIME_DIRECTORY is not set: find the service's socket.
        return SYSTEMD_CONTROL_SOCKET
    return here


def _ask(args: argparse.Namespace, endpoint: str, method: str = "GET") -> Any:
    path = _socket(args)
    try:
        return get_json(path, endpoint, method=method, timeout=120.0 if method == "POST" else 10.0)
    except ControlError as e:
        hint = "" if args.config or args.socket else " (give -c CONFIG or --socket PATH if it runs elsewhere)"
        print(f"receiverctl: {e}{hint}", file=sys.stderr)
        raise SystemExit(1) from None


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _status(args: argparse.Namespace) -> int:
    status = _ask(args, "/status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    now_ns = time.time_ns()
    print(f"receiver {status['version']}, pid {status['pid']}, up {_age(status['uptime_seconds'])}, "
          f"configuration {status['config']}")
    print(f"identities: {', '.join(status['identities']) or 'none'}")
    groups = [f"{g['name']} ({'; '.join([*g['networks'], *g['hostnames']])})" for g in status["machine_groups"]]
    print(f"machine groups: {', '.join(groups) or 'none'}")
    print("listeners:")
    for listener in status["listeners"]:
        host = f"[{listener['address']}]" if ":" in listener["address"] else listener["address"]
        connections = f"{listener['connections']:,} connections, " if listener["transport"] != "udp" else ""
        transport = listener["transport"] + ("+tls" if listener.get("tls") else "")
        print(f"  {listener['name']:<16} {transport} {host}:{listener['port']}  "
              f"format {listener['format']}  {connections}{listener['frames']:,} frames")
    spool = status["spool"]
    if "frames" in spool:
        pressure = ", ".join(spool["backpressure"]) or "none"
        print(f"spool: {spool['frames']:,} frames in {spool['segments']:,} segments, "
              f"{spool['stored_bytes'] / 1e6:,.1f} MB of {spool['max_bytes'] / 1e9:,.1f} GB, "
              f"oldest {_age(spool['oldest_age_seconds'])}; backpressure: {pressure}")
    delivery = status["delivery"]
    if delivery is None:
        print("delivery: off ([deliver] enabled = false)")
    else:
        print(f"delivery: pid {delivery['pid'] or '- (restarting)'}, {delivery['restarts']} restarts, "
              f"last report {_age(delivery['report_age_seconds'])} ago")
    print("sinks:")
    for sink in status["sinks"]:
        parts = [f"lag {sink['lag_segments'] if sink['lag_segments'] is not None else '-'} segments"]
        if sink["delivered_records"] is not None:
            parts.append(f"{sink['delivered_records']:,} delivered")
        if sink["last_success_ns"]:
            parts.append(f"last success {_age((now_ns - sink['last_success_ns']) / 1e9)} ago")
        if sink["dead_lettered_records"]:
            parts.append(f"{sink['dead_lettered_records']:,} dead-lettered")
        if sink["retrying_for_seconds"] is not None:
            parts.append(f"retrying in {_age(sink['retrying_for_seconds'])}: {sink['last_error']}")
        print(f"  {sink['name']} ({sink['type']})  " + ", ".join(parts))
    return 0


def _reload(args: argparse.Namespace) -> int:
    answer = _ask(args, "/reload", "POST")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    changes = answer["changes"]
    print("reloaded: " + ("; ".join(changes) if changes else "nothing changed"))
    return 0


def _flush(args: argparse.Namespace) -> int:
    answer = _ask(args, "/flush", "POST")
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"flushed: {answer['committed_frames']:,} frames committed since the receiver started")
    return 0


def _senders(args: argparse.Namespace) -> int:
    answer = _ask(args, "/senders")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    senders = answer["senders"]
    if not senders:
        print("no sender heard from since the receiver started")
        return 0
    now = time.time()
    print(f"{'address':<40} {'state':<9} {'conn':>4} {'last seen':>10} {'frames/min':>11} {'frames':>12}  groups")
    for s in senders:
        print(f"{s['address']:<40} {s['state']:<9} {s['connections']:>4} {_age(now - s['last_seen']) + ' ago':>10} "
              f"{s['frames_last_minute']:>11,} {s['frames']:>12,}  {', '.join(s['machine_groups']) or '-'}")
    counts: dict[str, int] = {}
    for s in senders:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    print(f"{len(senders)} senders: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0


def _stats(args: argparse.Namespace) -> int:
    stats = _ask(args, "/stats")
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    for counter in stats["counters"]:
        labels = ",".join(f"{k}={v}" for k, v in counter["labels"].items())
        print(f"{counter['name']}{'{' + labels + '}' if labels else ''} {counter['value']:,}")
    return 0
