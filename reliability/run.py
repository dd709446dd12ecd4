"""Run the reliability scenarios and print what happened to every message.

    python -m reliability.run [--size full|ci] [--only NAME ...] [--json bench/out/reliability.json] [--list]

Exit status 0 when every scenario kept its promise, 1 when one did not (the
table says which and why), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import reliability.scenarios  # noqa: F401  (registers the scenarios)
from reliability.outcome import SCENARIOS, Outcome, Size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.run", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "ci"), default="full")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these scenarios only")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    parser.add_argument("--list", action="store_true", help="list the scenarios and their promises")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:28} {s.promise}")
        return 0
    unknown = sorted(set(args.only or ()) - SCENARIOS.keys())
    if unknown:
        parser.error(f"no scenario named {', '.join(unknown)}; --list shows them")
    chosen = [SCENARIOS[name] for name in (args.only or SCENARIOS)]
    size: Size = args.size
    results: list[tuple[str, Outcome]] = []
    print(f"{len(chosen)} scenarios, size {size}, {platform.node()}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for s in chosen:
        print(f"\n== {s.name}: {s.promise}", flush=True)
        started = time.monotonic()
        try:
            outcome = s.run(size)
        except Exception:  # a scenario that crashes has failed; the others still run
            outcome = Outcome(sent=0, failures=["crashed:\n" + traceback.format_exc()])
        outcome.seconds = outcome.seconds or round(time.monotonic() - started, 1)
        results.append((s.name, outcome))
        print(_line(s.name, outcome), flush=True)
    print("\n" + _table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"size": size, "outcomes": {name: dataclasses.asdict(o) for name, o in results}}, indent=2, default=str
        ))
    return 0 if all(o.ok for _, o in results) else 1


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _line(name: str, o: Outcome) -> str:
    verdict = "held" if o.ok else "FAILED: " + "; ".join(o.failures)
    notes = ", ".join(f"{k} {v}" for k, v in o.notes.items())
    return (f"{name}: sent {_count(o.sent)}, stored {_count(o.stored)}, delivered {_count(o.delivered)}, "
            f"lost {o.lost:,}, duplicated {o.duplicated:,} in {o.seconds:g} s{'; ' + notes if notes else ''}: {verdict}")


def _table(results: list[tuple[str, Outcome]]) -> str:
    rows = ["| scenario | sent | stored | delivered | lost | duplicated | seconds | promise |", "|---|" + "---:|" * 6 + "---|"]
    for name, o in results:
        rows.append(
            f"| {name} | {_count(o.sent)} | {_count(o.stored)} | {_count(o.delivered)} | {o.lost:,} | "
            f"{o.duplicated:,} | {o.seconds:g} | {'held' if o.ok else 'FAILED'} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
