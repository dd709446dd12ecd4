"""Scaling: connections and message sizes, and where a message's time goes, stage by stage.

    python bench/scaling_bench.py [--parts connections,sizes,stages] [--receivers receiver,rsyslog]
                                  [-n 1000000] [--connections 1,10,100,1000]
                                  [--sizes 100,1024,8192,65536] [--total-mb 400] [--repeat 3]
                                  [--stage-messages 1000000] [--py-spy PATH] [--json bench/out/scaling.json]

Three parts, each a table:

- ``connections``: the same N ALI_LOG_FMT lines of 200 bytes over 1, 10,
  100 and 1,000 TCP connections (each carries N/K of them), to our receiver
  and to rsyslog. Measured exactly as ``bench/ingest_bench.py`` measures (its
  ``run_once``: private instance, in-memory blast sender in its own process,
  every sequence number checked). Our listener allows 2,000 connections per
  source address here (the default, 1,000, is a policy for a fleet, not a
  capacity). The sender's open-files limit is raised to its hard limit.
- ``sizes``: ALI_LOG_FMT lines of 100 B, 1 KiB, 8 KiB and 64 KiB over one
  connection, the same total bytes (``--total-mb``) for each size, so the
  number of messages falls as they grow. Our listener's ``max_frame_bytes``
  is raised to 128 KiB (a 64 KiB line with its LF is one byte short of the
  default's limit); rsyslog has ``maxMessageSize="64k"``.
- ``stages``: the CPU cost of one message broken down by stage, from
  py-spy (a sampling profiler that reads another process's Python stacks
  from outside, so the receiver runs unmodified). First our receiver takes
  ``--stage-messages`` lines with delivery off (py-spy on the daemon: read,
  deframe, spool); then a receiver with one SLS sink (delivery_bench's SLS
  stand-in, in this process) takes and delivers them (py-spy on the delivery
  process and its worker processes: spool read, parse, route and group,
  encode, send). Each sample is given to a stage by the innermost frame
  whose file belongs to one (see ``STAGE_RULES``). The daemon's samples are
  of threads py-spy finds not idle (its spool thread spends its time in
  SQLite and lz4, which release the GIL); the delivery processes' are of
  threads holding the GIL (``--gil``: their waits on sockets and on each
  other otherwise pass for work). Two figures per stage: µs/msg from the
  samples (samples / rate / messages), and the stage's share of samples
  times the CPU the processes were measured to use (psutil), per message.
  Where the two totals differ, the second is the one to add up; the shares
  are what the profile says.

For each row of the first two tables: msgs/s and MB/s (best of
``--repeat``, and the median), the receiving process's CPU seconds and µs of
CPU per message, and its peak RSS (VmHWM). The load average before each run
is kept in the JSON.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ingest_bench
from bench.delivery_bench import (
    DeliveringReceiver,
    _upstream,
    _wait_delivered,
)
from bench.ingest_bench import (
    CASES,
    Case,
    OurReceiver,
    Sender,
    free_port,
)
from tests.support.processes import cpu_seconds, descendants, peak_rss_kb, tree_cpu_seconds

ROOT = ingest_bench.ROOT
PARTS = ("connections", "sizes", "stages")
RECEIVER_CLASSES: dict[str, type[ingest_bench.Receiver]] = {
    "receiver": ingest_bench.OurReceiver, "rsyslog": ingest_bench.Rsyslog, "syslog-ng": ingest_bench.SyslogNg,
}
CONNECTIONS_LISTENER_TOML = "max_connections_per_source = 2000\n"
SIZES_LISTENER_TOML = "max_frame_bytes = 131072\n"

# A sample belongs to the stage of its innermost frame whose file path contains one of these
# (checked in this order for each frame). Paths are py-spy's full file names.
STAGE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("deframe", ("/formats/framing.py", "/formats/relp.py")),
    ("spool", ("/receiver/spool/",)),
    ("encode (LogGroup, lz4, signature)", ("/formats/sls_pb.py", "/formats/ndjson.py", "/receiver/deliver/sinks/sls/",
                                           "/receiver/deliver/sinks/http_signatures.py", "/http_message_signatures/",
                                           "/http_sf/")),
    ("parse", ("/formats/",)),
    ("send (requests, urllib3, http.client)", ("/requests/", "/urllib3/", "/http/client.py", "/socket.py", "/ssl.py")),
    ("route, group, tag", ("/receiver/deliver/batches.py", "/receiver/config/identity.py", "/receiver/filters/")),
    ("between processes (pickle, pool)", ("/multiprocessing/", "/concurrent/futures/", "/pickle.py")),
    ("read (reactor, TCP protocol)", ("/twisted/", "/receiver/ingest/")),
)
OTHER_STAGE = "other"


# -- scaling runs (ingest_bench's run_once) -----------------------------------------


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it: the sender opens 1,000 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ingest_args(args: argparse.Namespace, size: int, listener_toml: str) -> argparse.Namespace:
    """ingest_bench's settings (its defaults) for one scaling run."""
    return ingest_bench.build_parser().parse_args(
        ["--size", str(size), "--listener-toml", listener_toml, "--timeout", str(args.timeout)]
    )


def scaling_runs(
    part: str, points: Sequence[tuple[Case, int, int]], receivers: Sequence[type[ingest_bench.Receiver]],
    listener_toml: str, base: Path, args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Each (case, messages, size) point, each receiver, ``--repeat`` times, interleaved."""
    rows = []
    for case, n, size in points:
        run_args = ingest_args(args, size, listener_toml)
        for rep in range(args.repeat):
            for cls in receivers:
                load = os.getloadavg()
                row = ingest_bench.run_once(cls, case, n, base, run_args)
                row.update(part=part, point=f"{case.name}/{size}", repeat=rep, load_average=load,
                           connections=case.connections)
                rows.append(row)
                brief = {k: row.get(k) for k in ("msgs_per_second", "cpu_seconds", "peak_rss_kb", "stored")}
                ok = row.get("check", {}).get("ok")
                print(f"{part} {case.connections} conn {size} B #{rep} {cls.name}: {row.get('error') or brief} "
                      f"check ok={ok} load={load[0]:.2f}", file=sys.stderr, flush=True)
    return rows


def summarise_points(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (point, receiver): best and median rate, median CPU, the highest peak RSS, checks."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        groups[(r["point"], r["receiver"])].append(r)
    out = []
    for (point, name), runs in groups.items():
        good = [r for r in runs if "error" not in r and r.get("msgs_per_second")]
        first = runs[0]
        s: dict[str, Any] = {
            "point": point, "receiver": name, "connections": first["connections"], "size": first["size"],
            "messages": first["messages"], "runs": len(runs), "failed": len(runs) - len(good),
        }
        if good:
            best = max(good, key=lambda r: r["msgs_per_second"])
            s.update(
                msgs_per_second=best["msgs_per_second"],
                msgs_per_second_median=statistics.median(r["msgs_per_second"] for r in good),
                mb_per_second=best["mb_per_second"],
                cpu_seconds=statistics.median(r["cpu_seconds"] for r in good),
                cpu_us_per_msg=statistics.median(r["cpu_us_per_msg"] for r in good),
                peak_rss_mb=max(r["peak_rss_kb"] or 0 for r in good) / 1024,
                checks_ok=all(r.get("check", {}).get("ok", True) for r in good),
                load_average=[round(r["load_average"][0], 2) for r in runs],
            )
        out.append(s)
    for s in out:
        ref = next((x for x in out if x["point"] == s["point"] and x["receiver"] == "rsyslog"), None)
        if ref and ref.get("msgs_per_second") and s.get("msgs_per_second"):
            s["vs_rsyslog"] = s["msgs_per_second"] / ref["msgs_per_second"]
    return out


def _size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def points_table(summary: Sequence[dict[str, Any]], first_column: str) -> str:
    lines = [
        f"| {first_column} | messages | receiver | msgs/s (best; median) | MB/s | vs rsyslog | CPU s | CPU µs/msg "
        "| peak RSS MB | checked | load (1 min) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in summary:
        key = f"{s['connections']:,}" if first_column == "connections" else _size_label(s["size"])
        if "msgs_per_second" not in s:
            lines.append(f"| {key} | {s['messages']:,} | {s['receiver']} | failed ({s['failed']}/{s['runs']}) "
                         "| | | | | | | |")
            continue
        vs = f"{s['vs_rsyslog']:.2f}x" if "vs_rsyslog" in s else ""
        checked = "all once" if s["checks_ok"] else "CHECK FAILED"
        if s["failed"]:
            checked += f" ({s['failed']} runs failed)"
        lines.append(
            f"| {key} | {s['messages']:,} | {s['receiver']} | {s['msgs_per_second']:,.0f}; "
            f"{s['msgs_per_second_median']:,.0f} | {s['mb_per_second']:.1f} | {vs} | {s['cpu_seconds']:.2f} "
            f"| {s['cpu_us_per_msg']:.2f} | {s['peak_rss_mb']:.0f} | {checked} "
            f"| {', '.join(f'{x:.1f}' for x in s['load_average'])} |"
        )
    return "\n".join(lines)


# -- stages: py-spy ------------------------------------------------------------------


def find_py_spy(explicit: str | None) -> str | None:
    for candidate in (explicit, str(ingest_bench.VENV_BIN / "py-spy"), shutil.which("py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class Profiler:
    """``py-spy record --format raw`` on one process (and its children), stopped with SIGINT."""

    def __init__(
        self, py_spy: str, pid: int, out: Path, rate: int, *, subprocesses: bool = False, gil: bool = False
    ) -> None:
        self.out = out
        self.rate = rate
        cmd = [py_spy, "record", "--format", "raw", "--full-filenames", "--nonblocking", "--rate", str(rate),
               "--pid", str(pid), "--output", str(out)]
        if subprocesses:
            cmd.append("--subprocesses")
        if gil:
            cmd.append("--gil")
        self.log = out.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(0.5)  # py-spy attaches (and finds the children) before the clock starts
        if self.proc.poll() is not None:
            raise RuntimeError(f"py-spy exited at start: {self.log.read_text(errors='replace')[-500:]}")

    def stop(self) -> dict[str, int]:
        """Stop sampling; the collapsed stacks and their sample counts."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        stacks: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.out.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    stacks[stack] = stacks.get(stack, 0) + int(count)
        return stacks


def stage_of(stack: str) -> str:
    """The stage of one collapsed stack (``root;...;leaf``): its innermost frame that belongs to one."""
    for frame in reversed(stack.split(";")):
        for stage, needles in STAGE_RULES:
            if any(needle in frame for needle in needles):
                return stage
    return OTHER_STAGE


def stage_costs(stacks: dict[str, int], rate: int, messages: int, cpu_seconds: float) -> dict[str, dict[str, float]]:
    """Per stage, largest first: samples, their share, seconds (samples / rate), µs per message
    from the samples, and µs per message as that share of the measured ``cpu_seconds``."""
    by_stage: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        by_stage[stage_of(stack)] += count
    total = sum(by_stage.values()) or 1
    return {
        stage: {
            "samples": count,
            "share": count / total,
            "cpu_seconds": count / rate,
            "us_per_msg": count / rate / max(1, messages) * 1e6,
            "us_per_msg_of_cpu": count / total * cpu_seconds / max(1, messages) * 1e6,
        }
        for stage, count in by_stage.most_common()
    }


def top_frames(stacks: dict[str, int], limit: int = 15) -> list[tuple[str, int]]:
    """The leaf frames with the most samples (for the JSON: what a stage's time is made of)."""
    leaves: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += count
    return leaves.most_common(limit)


def profile_ingest(py_spy: str, n: int, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Our receiver (delivery off) takes n ALI lines over one connection under py-spy."""
    workdir = Path(tempfile.mkdtemp(prefix="stages-ingest-", dir=base))
    rcv = OurReceiver(workdir, free_port(), CASES["tcp1"])
    with contextlib.ExitStack() as stack:
        stack.callback(rcv.stop, 60)
        stack.callback(rcv.close)
        rcv.start()
        sender = Sender(rcv.port, CASES["tcp1"], n, 0, "threads", "ali", "lf", 0)
        stack.callback(sender.kill)
        if sender.expect(args.build_timeout) != {}:
            raise RuntimeError("sender not ready in time")
        profiler = Profiler(py_spy, rcv.pid, workdir / "ingest.raw", args.rate, gil=args.ingest_samples == "gil")
        stack.callback(profiler.stop)
        load = os.getloadavg()
        cpu0 = cpu_seconds(rcv.pid)
        sender.go()
        got, end = _wait_delivered(rcv.stored, n, args.timeout, 0.02)
        cpu1 = cpu_seconds(rcv.pid)
        stacks = profiler.stop()
        sent = sender.expect(30) or {}
        seconds = end - sent.get("start", end)
        return {
            "process": "daemon (ingest)", "messages": n, "stored": got, "seconds": seconds, "load_average": load,
            "msgs_per_second": got / seconds if seconds > 0 else None,
            "cpu_seconds": cpu1 - cpu0, "cpu_us_per_msg": (cpu1 - cpu0) / n * 1e6,
            "peak_rss_kb": peak_rss_kb(rcv.pid),
            "stages": stage_costs(stacks, args.rate, n, cpu1 - cpu0), "top_frames": top_frames(stacks),
        }


def profile_delivery(py_spy: str, n: int, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A receiver with one SLS sink takes and delivers n ALI lines; py-spy on the delivery process tree."""
    workdir = Path(tempfile.mkdtemp(prefix="stages-deliver-", dir=base))
    with contextlib.ExitStack() as stack:
        sink_toml, delivered, _ = _upstream("sls", workdir, stack)
        rcv = DeliveringReceiver(workdir, free_port(), sink_toml)
        stack.callback(rcv.stop, 60)
        rcv.start()
        deadline = time.monotonic() + 30
        while rcv.delivery_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        child = rcv.delivery_pid()
        if child is None:
            raise RuntimeError(f"no delivery process: {rcv.tail_log()}")
        time.sleep(1.0)  # the worker processes start
        sender = Sender(rcv.port, CASES["tcp1"], n, 0, "threads", "ali", "lf", 0)
        stack.callback(sender.kill)
        if sender.expect(args.build_timeout) != {}:
            raise RuntimeError("sender not ready in time")
        profiler = Profiler(py_spy, child, workdir / "delivery.raw", args.rate, subprocesses=True,
                            gil=args.delivery_samples == "gil")
        stack.callback(profiler.stop)
        load = os.getloadavg()
        cpu0 = tree_cpu_seconds(child)
        sender.go()
        got, end = _wait_delivered(delivered, n, args.timeout, 0.05)
        cpu1 = tree_cpu_seconds(child)
        stacks = profiler.stop()
        sent = sender.expect(30) or {}
        seconds = end - sent.get("start", end)
        return {
            "process": f"delivery (+{len(descendants(child))} workers), SLS", "messages": n, "stored": got,
            "seconds": seconds, "load_average": load, "msgs_per_second": got / seconds if seconds > 0 else None,
            "cpu_seconds": cpu1 - cpu0, "cpu_us_per_msg": (cpu1 - cpu0) / n * 1e6, "peak_rss_kb": None,
            "stages": stage_costs(stacks, args.rate, n, cpu1 - cpu0), "top_frames": top_frames(stacks),
        }


def stages_table(profiles: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| process | stage | samples | share | µs/msg sampled | CPU µs/msg (share of measured) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for p in profiles:
        if "error" in p:
            lines.append(f"| {p['process']} | failed: {p['error']} | | | |")
            continue
        sampled = sum(s["us_per_msg"] for s in p["stages"].values())
        for stage, s in p["stages"].items():
            lines.append(
                f"| {p['process']} | {stage} | {s['samples']:,} | {s['share']:.0%} | {s['us_per_msg']:.2f} "
                f"| {s['us_per_msg_of_cpu']:.2f} |"
            )
        lines.append(
            f"| {p['process']} | **all** ({p['msgs_per_second']:,.0f} msgs/s, load {p['load_average'][0]:.2f}) "
            f"| | | {sampled:.2f} | **{p['cpu_us_per_msg']:.2f}** measured |"
        )
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {','.join(PARTS)}")
    p.add_argument("--receivers", default="receiver,rsyslog", help=f"comma-separated: {','.join(RECEIVER_CLASSES)}")
    p.add_argument("-n", "--messages", type=int, default=1_000_000, help="connections part: messages per run")
    p.add_argument("--connections", default="1,10,100,1000")
    p.add_argument("--sizes", default="100,1024,8192,65536", help="bytes per message, LF included")
    p.add_argument("--total-mb", type=float, default=400, help="sizes part: MB sent per run (messages = this / size)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--stage-messages", type=int, default=1_000_000, help="stages part: messages per profile")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--ingest-samples", choices=("active", "gil"), default="active",
                   help="stages: the daemon's samples: of threads not idle (default), or holding the GIL")
    p.add_argument("--delivery-samples", choices=("active", "gil"), default="gil",
                   help="stages: the delivery processes' samples: holding the GIL (default), or not idle")
    p.add_argument("--py-spy", help="the py-spy binary (default: .venv/bin/py-spy, then PATH)")
    p.add_argument("--timeout", type=float, default=300, help="longest a run may take (seconds)")
    p.add_argument("--build-timeout", type=float, default=180)
    p.add_argument("--tmp", type=Path, help="parent of the temporary directories (default: the system's)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "scaling.json")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    if set(parts) - set(PARTS):
        p.error(f"unknown parts {sorted(set(parts) - set(PARTS))}")
    receivers = []
    for name in args.receivers.split(","):
        cls = RECEIVER_CLASSES[name]
        why = cls.available()
        if why:
            print(f"skipping {name}: {why}", file=sys.stderr)
        else:
            receivers.append(cls)
    nofile = raise_open_files_limit()
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "open_files_limit": nofile, "load_average_at_start": os.getloadavg()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    failed = False
    base = Path(tempfile.mkdtemp(prefix="scaling-bench-", dir=args.tmp))
    try:
        if "connections" in parts:
            points = [
                (Case(f"tcp{k}", "tcp", k, f"TCP, {k} connections"), args.messages, 200)
                for k in (int(x) for x in args.connections.split(","))
            ]
            rows = scaling_runs("connections", points, receivers, CONNECTIONS_LISTENER_TOML, base, args)
            summary = summarise_points(rows)
            out["connections"] = {"summary": summary, "runs": rows}
            print(f"\nConnections: {args.messages:,} ALI lines of 200 B in all\n")
            print(points_table(summary, "connections"), flush=True)
            failed |= any("error" in r for r in rows)
        if "sizes" in parts:
            sizes = [int(x) for x in args.sizes.split(",")]
            points = [(CASES["tcp1"], max(1, int(args.total_mb * 1e6 / size)), size) for size in sizes]
            rows = scaling_runs("sizes", points, receivers, SIZES_LISTENER_TOML, base, args)
            summary = summarise_points(rows)
            out["sizes"] = {"summary": summary, "runs": rows}
            print(f"\nMessage sizes: {args.total_mb:g} MB of ALI lines over one connection\n")
            print(points_table(summary, "size"), flush=True)
            failed |= any("error" in r for r in rows)
        if "stages" in parts:
            py_spy = find_py_spy(args.py_spy)
            profiles: list[dict[str, Any]] = []
            if py_spy is None:
                print("stages: py-spy not found (--py-spy PATH); skipped", file=sys.stderr)
                out["stages"] = {"error": "py-spy not found"}
                failed = True
            else:
                for name, fn in (("daemon (ingest)", profile_ingest), ("delivery, SLS", profile_delivery)):
                    try:
                        profiles.append(fn(py_spy, args.stage_messages, base, args))
                    except Exception as e:  # one failed profile still leaves the other's table
                        profiles.append({"process": name, "error": f"{type(e).__name__}: {e}"})
                        failed = True
                out["stages"] = {"py_spy": py_spy, "rate": args.rate, "profiles": profiles}
                print(f"\nStages: {args.stage_messages:,} ALI lines of 200 B, py-spy at {args.rate} Hz\n")
                print(stages_table(profiles), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
