"""The relay: rsyslog with Alibaba's forwarding configuration in front of a receiver.

    python bench/relay_bench.py [-n 500000] [--repeat 3] [--queues alibaba,memory]
                                [--downstreams discard,receiver,rsyslog] [--json bench/out/relay.json]

What a Logtail user runs: rsyslog on the client, forwarding everything with
``*.* @@host:port;ALI_LOG_FMT`` behind the action queue of Alibaba's guide
(``alibaba_rsyslog_conf`` of ``tests/support/senders.py``, used
verbatim: a LinkedList action queue with a file name, i.e. disk-assisted,
saved on shutdown, retried forever). Here that rsyslog (the *relay*) takes N
RFC 3164 lines of 200 bytes on an ``imptcp`` input (the in-memory blast
sender of ``bench/blast.py``, one connection, lines built before the clock
starts) and forwards them, rewritten as ALI_LOG_FMT lines, over its one TCP
connection to a downstream:

- ``discard``: a reader that costs next to nothing (a process of this file
  that reads the connection 1 MiB at a time and counts LFs; no framing, no
  storage). What the relay achieves into it is the relay's own ceiling.
- ``receiver``: our receiver, as in ``bench/ingest_bench.py`` (defaults,
  spool with an fsync per commit, delivery off: this measures taking the
  relay's output; delivery_bench measures the way onwards).
- ``rsyslog``: a second rsyslog, imtcp -> omfile, tuned as in
  ``bench/ingest_bench.py``: a C receiver in the same place, for reference.

Queues (``--queues``): ``alibaba`` is the configuration as Alibaba gives it;
``memory`` is the same without ``$ActionQueueFileName`` (a plain in-memory
LinkedList queue), the relay's faster set-up, to see whether the
downstream keeps up when the relay goes faster.

Measured per run: end-to-end msgs/s (first byte into the relay -> the
downstream holds all N: counted, committed to the spool, or written to the
file), the relay's and the downstream's CPU, the downstream's peak RSS, and,
every ``--queue-every`` seconds, the bytes waiting in the downstream's
socket receive queue (read by nobody yet) and in the relay's send queue, from
/proc/net/tcp. A downstream that is the bottleneck leaves bytes waiting in
its receive queue while the relay's send queue fills; one that keeps up reads
them as they come, and its receive queue is empty at most samples. The
stored messages are checked (every sequence number once) for ``receiver``
and ``rsyslog``; ``discard`` only counts lines. A run that ends short of N
(nothing new for ``--stall`` seconds) is reported as it is, with the first
missing sequence numbers and whether the relay still held them in its
disk-queue files once stopped (the JSON's ``missing``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ingest_bench
from bench.blast import line_seq
from bench.ingest_bench import (
    CASES,
    PYTHON,
    RSYSLOG_MODULES,
    RSYSLOGD,
    Case,
    Receiver,
    Sender,
    free_port,
    verify,
)
from tests.support.processes import cpu_seconds, peak_rss_kb
from tests.support.senders import alibaba_rsyslog_conf

ROOT = ingest_bench.ROOT
QUEUES = ("alibaba", "memory")
DOWNSTREAMS = ("discard", "receiver", "rsyslog")
BACKLOG_BYTES = 256 * 1024
"""A receive queue at least this full counts as a sample where the downstream was behind."""
INPUT_FORMAT = "rfc3164"
"""What the relay's clients send it (it rewrites them as ALI_LOG_FMT)."""


# -- the relay ------------------------------------------------------------------------


class Relay(Receiver):
    """rsyslog: an imptcp input, then Alibaba's forwarding configuration to ``downstream_port``."""

    name = "relay"

    def __init__(self, workdir: Path, port: int, case: Case, downstream_port: int, queue: str) -> None:
        super().__init__(workdir, port, case)
        self.downstream_port = downstream_port
        self.queue = queue

    @classmethod
    def available(cls) -> str | None:
        return None if RSYSLOGD.exists() else f"{RSYSLOGD} missing (make programs)"

    def write_config(self) -> None:
        w = self.workdir
        (w / "work").mkdir(exist_ok=True)
        forwarding = alibaba_rsyslog_conf(self.downstream_port)
        if self.queue == "memory":
            # Without a file name the LinkedList queue never goes to disk.
            forwarding = forwarding.replace("$ActionQueueFileName fwdRule1\n", "")
        (w / "rsyslog.conf").write_text(
            f"""# private benchmark relay: no imuxsock/imjournal, loopback only
global(workDirectory="{w}/work" maxMessageSize="64k")
module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="{self.port}")
{forwarding}"""
        )

    def command(self) -> list[str]:
        w = self.workdir
        return [str(RSYSLOGD), "-n", "-f", str(w / "rsyslog.conf"), "-i", str(w / "rsyslogd.pid"),
                "-M", str(RSYSLOG_MODULES)]


# -- the discarding downstream -----------------------------------------------------------


def serve_discard(port: int, count_file: Path) -> None:
    """Accept connections on 127.0.0.1:port, read and count LFs; the count goes to ``count_file``.

    Runs until killed. The count is written (8 bytes, in place) at most every
    10 ms, and only when it changed.
    """
    import selectors

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    lines = written = 0
    last_write = 0.0
    fd = os.open(count_file, os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(fd, (0).to_bytes(8, "little"), 0)
    while True:
        for key, _ in sel.select(timeout=0.01):
            if key.fileobj is server:
                accepted, _ = server.accept()
                accepted.setblocking(False)
                sel.register(accepted, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            try:
                k = conn.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                k = 0
            if k:
                lines += view[:k].tobytes().count(b"\n")
            else:
                sel.unregister(conn)
                conn.close()
        now = time.monotonic()
        if lines != written and now - last_write >= 0.01:
            os.pwrite(fd, lines.to_bytes(8, "little"), 0)
            written, last_write = lines, now


class DiscardSink(Receiver):
    """:func:`serve_discard` in a process of its own."""

    name = "discard"
    marker_is_count = True

    def __init__(self, workdir: Path, port: int, case: Case) -> None:
        super().__init__(workdir, port, case)
        self.count_file = workdir / "count"

    def write_config(self) -> None:
        pass

    def command(self) -> list[str]:
        return [PYTHON, str(Path(__file__).resolve()), "--serve-discard", str(self.port), str(self.count_file)]

    def stored(self) -> int:
        try:
            return int.from_bytes(self.count_file.read_bytes()[:8], "little")
        except FileNotFoundError:
            return 0

    def marker(self) -> int:
        return self.stored()

    def sequences(self) -> Iterator[bytes]:
        return iter(())


DOWNSTREAM_CLASSES: dict[str, type[Receiver]] = {
    "discard": DiscardSink, "receiver": ingest_bench.OurReceiver, "rsyslog": ingest_bench.Rsyslog,
}


# -- socket queues --------------------------------------------------------------------------


def socket_queues(port: int) -> tuple[int, int]:
    """(bytes in the receive queues of established sockets on local ``port``, bytes in the send
    queues of established sockets to remote ``port``), IPv4 loopback, from /proc/net/tcp."""
    local = f"0100007F:{port:04X}"
    received = unsent = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] != "01":
                continue
            tx, rx = parts[4].split(":")
            if parts[1] == local:
                received += int(rx, 16)
            elif parts[2] == local:
                unsent += int(tx, 16)
    return received, unsent


# -- one run ------------------------------------------------------------------------------------


def run_once(downstream_cls: type[Receiver], queue: str, n: int, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Blast n lines into a fresh relay forwarding to a fresh downstream; until the downstream holds all n."""
    workdir = Path(tempfile.mkdtemp(prefix=f"relay-{queue}-{downstream_cls.name}-", dir=base))
    (workdir / "down").mkdir()
    (workdir / "relay").mkdir()
    case = CASES["tcp1"]
    down = downstream_cls(workdir / "down", free_port(), case)
    relay = Relay(workdir / "relay", free_port(), case, down.port, queue)
    row: dict[str, Any] = {"downstream": down.name, "queue": queue, "messages": n, "load_average": os.getloadavg()}
    with contextlib.ExitStack() as stack:
        try:
            stack.callback(down.stop, 30)
            stack.callback(down.close)
            down.start()
            stack.callback(relay.stop, 30)
            relay.start()
            sender = Sender(relay.port, case, n, 0, "threads", INPUT_FORMAT, "lf", 0)
            stack.callback(sender.kill)
            if sender.expect(args.build_timeout) != {}:
                raise RuntimeError("sender not ready in time")
            time.sleep(0.2)
            cpu0 = (cpu_seconds(relay.pid), cpu_seconds(down.pid))
            queue_samples: list[tuple[int, int]] = []
            sender.go()
            started = last_sample = time.monotonic()
            deadline = started + args.timeout
            stored = 0
            marker: int | None = None
            marker_time = started
            end_time: float | None = None
            sent: dict[str, Any] | None = None
            while time.monotonic() < deadline:
                now = time.monotonic()
                if sent is None:
                    sent = sender.expect(0)
                for who in (relay, down):
                    if who.proc is not None and who.proc.poll() is not None:
                        raise RuntimeError(f"{who.name} exited during the run: {who.tail_log()}")
                if now - last_sample >= args.queue_every:
                    queue_samples.append(socket_queues(down.port))
                    last_sample = now
                m = down.marker()
                changed = m != marker
                if changed:
                    marker, marker_time = m, now
                if down.marker_is_count or not changed:
                    stored = m if down.marker_is_count else down.stored()
                    if stored >= n:
                        end_time = marker_time
                        break
                    if sent is not None and now - max(marker_time, sent["end"]) > args.stall:
                        break
                time.sleep(args.poll)
            cpu1 = (cpu_seconds(relay.pid), cpu_seconds(down.pid))
            if sent is None:
                sent = sender.expect(30)
            if sent is None:
                raise RuntimeError("sender did not report")
            end_time = end_time if end_time is not None else marker_time
            seconds = end_time - sent["start"]
            received = sorted(r for r, _ in queue_samples) or [0]
            unsent = sorted(u for _, u in queue_samples) or [0]
            row.update(
                complete=stored >= n, stored=stored, seconds=seconds,
                msgs_per_second=stored / seconds if seconds > 0 else None,
                relay_read_seconds=sent["seconds"],
                relay_cpu_seconds=cpu1[0] - cpu0[0], downstream_cpu_seconds=cpu1[1] - cpu0[1],
                downstream_peak_rss_kb=peak_rss_kb(down.pid),
                queue_samples=len(queue_samples),
                receive_queue_p50_kb=received[len(received) // 2] / 1024,
                receive_queue_max_kb=received[-1] / 1024,
                behind_share=sum(1 for r in received if r >= BACKLOG_BYTES) / len(received),
                relay_send_queue_p50_kb=unsent[len(unsent) // 2] / 1024,
                relay_send_queue_max_kb=unsent[-1] / 1024,
            )
            sender.finish()
            relay.stop(30)
            down.close()
            down.stop(30)
            if not args.no_verify and downstream_cls is not DiscardSink:
                row["check"] = verify(down, n, case)
                if row["check"]["missing"]:
                    row["missing"] = where_missing(down, relay, n)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return row


def where_missing(down: Receiver, relay: Relay, n: int, limit: int = 10) -> dict[str, Any]:
    """The first missing sequence numbers, and whether the relay still holds them (its queue files, after stop)."""
    seen = bytearray(n)
    for text in down.sequences():
        i = line_seq(text)
        if i is not None and i < n:
            seen[i] = 1
    missing = [i for i in range(n) if not seen[i]][:limit]
    files = sorted(p for p in (relay.workdir / "work").iterdir() if p.is_file())
    held = []
    for i in missing:
        needle = b"request %d " % i
        held.append([p.name for p in files if needle in p.read_bytes()])
    return {
        "first": missing, "in_relay_queue_files": held,
        "relay_queue_files": {p.name: p.stat().st_size for p in files},
        "relay_log_tail": relay.tail_log(10),
    }


# -- report -------------------------------------------------------------------------------------


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (queue, downstream): the best run's rate (and the median), medians of the rest."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["queue"], r["downstream"]), []).append(r)
    out = []
    for (queue, name), runs in groups.items():
        good = [r for r in runs if "error" not in r and r.get("msgs_per_second")]
        s: dict[str, Any] = {"queue": queue, "downstream": name, "runs": len(runs), "failed": len(runs) - len(good),
                             "load_average": [round(r["load_average"][0], 2) for r in runs]}
        if good:
            best = max(good, key=lambda r: r["msgs_per_second"])
            s.update(
                msgs_per_second=best["msgs_per_second"],
                msgs_per_second_median=statistics.median(r["msgs_per_second"] for r in good),
                complete=all(r["complete"] for r in good),
                checks_ok=all(r.get("check", {}).get("ok", True) for r in good),
                **{k: statistics.median(r[k] for r in good) for k in (
                    "relay_cpu_seconds", "downstream_cpu_seconds", "receive_queue_p50_kb", "behind_share",
                    "relay_send_queue_p50_kb")},
                receive_queue_max_kb=max(r["receive_queue_max_kb"] for r in good),
                downstream_peak_rss_mb=max(r["downstream_peak_rss_kb"] or 0 for r in good) / 1024,
            )
        out.append(s)
    for s in out:
        ref = next((x for x in out if x["queue"] == s["queue"] and x["downstream"] == "discard"), None)
        if ref and ref.get("msgs_per_second") and s.get("msgs_per_second"):
            s["vs_discard"] = s["msgs_per_second"] / ref["msgs_per_second"]
    return out


def table(summary: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| relay queue | downstream | msgs/s end to end (best; median) | vs discard | relay CPU s | downstream CPU s "
        "| downstream peak RSS MB | receive queue p50 / max KB | samples behind | relay send queue p50 KB | checked "
        "| load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in summary:
        load = ", ".join(f"{x:.1f}" for x in s["load_average"])
        if "msgs_per_second" not in s:
            lines.append(f"| {s['queue']} | {s['downstream']} | failed ({s['failed']}/{s['runs']}) | | | | | | | | | {load} |")
            continue
        vs = f"{s['vs_discard']:.2f}x" if "vs_discard" in s else ""
        checked = "count only" if s["downstream"] == "discard" else ("all once" if s["checks_ok"] else "CHECK FAILED")
        if not s["complete"]:
            checked += ", INCOMPLETE"
        lines.append(
            f"| {s['queue']} | {s['downstream']} | {s['msgs_per_second']:,.0f}; {s['msgs_per_second_median']:,.0f} "
            f"| {vs} | {s['relay_cpu_seconds']:.2f} | {s['downstream_cpu_seconds']:.2f} "
            f"| {s['downstream_peak_rss_mb']:.0f} | {s['receive_queue_p50_kb']:.0f} / {s['receive_queue_max_kb']:.0f} "
            f"| {s['behind_share']:.0%} | {s['relay_send_queue_p50_kb']:.0f} | {checked} | {load} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--messages", type=int, default=500_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--queues", default=",".join(QUEUES), help=f"comma-separated: {','.join(QUEUES)}")
    p.add_argument("--downstreams", default=",".join(DOWNSTREAMS), help=f"comma-separated: {','.join(DOWNSTREAMS)}")
    p.add_argument("--poll", type=float, default=0.02, help="seconds between polls of what the downstream holds")
    p.add_argument("--queue-every", type=float, default=0.05, help="seconds between samples of the socket queues")
    p.add_argument("--timeout", type=float, default=300, help="longest a run may take (seconds)")
    p.add_argument("--stall", type=float, default=15, help="give up after this long without progress once sent")
    p.add_argument("--build-timeout", type=float, default=180)
    p.add_argument("--tmp", type=Path, help="parent of the temporary directories (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep each run's directory")
    p.add_argument("--no-verify", action="store_true", help="skip checking the stored sequence numbers")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "relay.json")
    p.add_argument("--serve-discard", nargs=2, metavar=("PORT", "COUNT_FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_discard:
        serve_discard(int(args.serve_discard[0]), Path(args.serve_discard[1]))
        return 0
    queues = [q for q in args.queues.split(",") if q]
    downstreams = [d for d in args.downstreams.split(",") if d]
    if set(queues) - set(QUEUES) or set(downstreams) - set(DOWNSTREAMS):
        p.error("unknown queue or downstream")
    programs: list[type[Receiver]] = [Relay, *(DOWNSTREAM_CLASSES[d] for d in downstreams)]
    for cls in programs:
        why = cls.available()
        if why:
            p.error(f"{cls.name}: {why}")
    rows: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="relay-bench-", dir=args.tmp))
    try:
        for queue in queues:
            for rep in range(args.repeat):
                for name in downstreams:  # interleaved, so drift of the machine hits every downstream alike
                    row = run_once(DOWNSTREAM_CLASSES[name], queue, args.messages, base, args)
                    row["repeat"] = rep
                    rows.append(row)
                    brief = {k: row.get(k) for k in ("msgs_per_second", "relay_cpu_seconds", "downstream_cpu_seconds",
                                                     "behind_share", "receive_queue_max_kb", "stored")}
                    print(f"{queue} #{rep} {name}: {row.get('error') or brief} {row.get('check', '')} "
                          f"load={row['load_average'][0]:.2f}", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    summary = summarise(rows)
    print(table(summary))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
         "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
         "summary": summary, "runs": rows}, indent=1) + "\n")
    return 0 if all("error" not in r and r.get("complete") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
