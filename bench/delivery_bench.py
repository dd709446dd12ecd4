"""End to end, to each sink: sender -> receiver (TCP, spool) -> delivery process -> upstream.

    python bench/delivery_bench.py [-n 1000000] [--sinks local,sls,http,clickhouse]
                                   [--format ali|rfc3164|rfc5424]
                                   [--latency-seconds 10] [--upstream-delay-ms 0]
                                   [--json bench/out/delivery.json]

For each sink a private receiver (``receiver run``, the configuration's
defaults plus that one sink) gets N ALI_LOG_FMT lines (or RFC 3164 or RFC
5424 lines of a fleet of 100 hosts, ``--format``; the latency run sends
ALI lines whatever the format) from the in-memory
blast sender (``bench/blast.py`` in its own process, one connection, lines
built before the clock starts), and the bench watches the upstream until it
has acknowledged all N.

- msgs/s: N / (first byte sent -> the upstream holds all N).
- CPU seconds: the receiver daemon's, and its delivery process's with that
  process's workers (which build and encode batches), utime+stime over
  that window (read with psutil), each and together.
- peak RSS: VmHWM of the daemon, and the sum of VmHWM over the delivery
  process and its workers; and the delivery side's peak PSS: the largest sum
  of their proportional set sizes, sampled every 0.2 s (pages the processes
  share, such as what the forkserver loaded before forking the workers and
  the libraries' code, counted once instead of once a process).
- latency: then, on the same receiver, lines paced at half the measured
  rate for ``--latency-seconds``; a line's latency is from the moment it was
  written to the socket to the first poll (every 10 ms) at which the
  upstream's count covers it. Each host's records are delivered in order
  (two groups of one sender's source are never in flight together), so the
  count says which lines are in, give or take the few groups of other hosts
  in flight beside it (milliseconds at these rates). p50 and p99.

The upstreams, and what they cost: ``sls`` and ``http`` are light stand-ins
in this process (threads): the SLS one checks Content-MD5, decompresses the
lz4 body and counts the LogGroup's logs by walking its top-level fields; the
HTTP one gunzips and counts lines. They do not verify signatures (the tests
do, against tests/support/sls_server.py and tests/support/http_verifier.py),
so the receiver's signing cost is measured and the stand-in's checking is
not. ``local`` is the embedded ClickHouse store (counted through its query socket);
``clickhouse`` a private clickhouse-server (tests/support/clickhouse.py),
counted with ``SELECT count()``; its own CPU competes for the two cores and
is reported.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lz4.block

from bench.blast import FORMATS, TcpStream, ali_line
from bench.ingest_bench import (
    CASES,
    OurReceiver,
    Sender,
    free_port,
)
from tests.support.processes import (
    child_running,
    cpu_seconds,
    descendants,
    peak_rss_kb,
    tree_cpu_seconds,
    tree_peak_rss_kb,
    tree_pss_kb,
)

SINKS = ("local", "sls", "http", "clickhouse")


# -- light upstream stand-ins ---------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def count_logs(group: bytes) -> int:
    """Logs in a LogGroup: its top-level field 1 entries (every top-level field is length-delimited).

    Keys are one byte (fields 1 to 15) and lengths read inline while under 16 KiB: the stand-in shares
    the receiver's two cores, and a varint call per field was 127 us of CPU for a group of 200 logs.
    """
    pos = n = 0
    end = len(group)
    while pos < end:
        key = group[pos]
        if key >= 0x80:
            key, pos = _varint(group, pos)
        else:
            pos += 1
        length = group[pos]
        if length < 0x80:
            pos += 1
        elif group[pos + 1] < 0x80:  # a Log of 128 bytes to 16 KiB
            length = (length & 0x7F) | group[pos + 1] << 7
            pos += 2
        else:
            length, pos = _varint(group, pos)
        pos += length
        n += key == 0x0A  # field 1, length-delimited
    return n


class CountingUpstream:
    """An HTTP/1.1 server on 127.0.0.1 that counts the records of each accepted POST, answering each
    ``delay`` seconds after it arrived (an upstream that far away); a thread per connection, kept alive.

    It reads a request's line, its headers and its Content-Length body, and nothing more: it shares
    the receiver's two cores, and the standard library's server (headers parsed as e-mail) cost 420-448 us
    of CPU per request of 416 logs, against 279-290 us this way (Content-MD5, LZ4 and counting the logs
    take about 180 of them).
    """

    def __init__(self, count: Callable[[dict[str, str], bytes], int], delay: float = 0.0) -> None:
        self.count_body = count
        self.delay = delay
        self.records = 0
        self.requests = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def delivered(self) -> int:
        return self.records

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as stream:
            while not self._closed:
                if not stream.readline():  # the request line; nothing: the sink closed the connection
                    return
                headers: dict[str, str] = {}
                while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower().decode()] = value.strip().decode()
                body = stream.read(int(headers.get("content-length", "0")))
                try:
                    n = self.count_body(headers, body)
                except Exception as e:  # a bench stand-in: say what was wrong, refuse it
                    with self._lock:
                        self.errors.append(f"{type(e).__name__}: {e}")
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    continue
                if self.delay:
                    time.sleep(self.delay)
                with self._lock:
                    self.records += n
                    self.requests += 1
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-log-requestid: bench\r\n\r\n")


def sls_count(headers: dict[str, str], body: bytes) -> int:
    if hashlib.md5(body).hexdigest().upper() != headers.get("content-md5"):
        raise ValueError("Content-MD5 does not match the body")
    raw = int(headers["x-log-bodyrawsize"])
    if headers.get("x-log-compresstype") == "lz4":
        body = lz4.block.decompress(body, uncompressed_size=raw)
    return count_logs(body)


def http_count(headers: dict[str, str], body: bytes) -> int:
    expected = headers.get("content-digest", "")
    if expected != "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":":
        raise ValueError("Content-Digest does not match the body")
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return body.count(b"\n")


# -- the receiver with one sink -------------------------------------------------------------


class DeliveringReceiver(OurReceiver):
    """``receiver run`` with delivery on, to the one sink given as TOML."""

    def __init__(self, workdir: Path, port: int, sink_toml: str, deliver: Sequence[str] = ()) -> None:
        super().__init__(workdir, port, CASES["tcp1"])
        deliver_toml = "[deliver]\n" + "".join(f"{setting}\n" for setting in deliver) if deliver else ""
        self.extra_toml = sink_toml + "\n[metrics]\nport = 0\n" + deliver_toml

    def delivery_pid(self) -> int | None:
        return child_running(self.pid, "receiver.deliver.process")


def _upstream(
    sink: str, workdir: Path, stack: contextlib.ExitStack, delay: float = 0.0
) -> tuple[str, Callable[[], int], Callable[[], float]]:
    """The sink's TOML, a count of what its upstream holds, and the upstream's own CPU seconds
    (``delay``: how long the SLS and HTTP stand-ins take to answer)."""
    no_cpu: Callable[[], float] = lambda: 0.0  # noqa: E731 - in-process stand-ins: part of the bench's CPU
    if sink == "local":
        from receiver.deliver.sinks.local.server import StoreClient, StoreUnavailableError
        from receiver.deliver.sinks.local.store import StoreError

        client = StoreClient(workdir / "state" / "store.sock", timeout=30)

        def local_count() -> int:
            """What the store holds, asked of the delivery process that holds it (as receiverctl sql asks)."""
            try:
                return int(client.sql("SELECT count() FROM receiver.records", 1)["rows"][0][0])
            except (StoreUnavailableError, StoreError, OSError):
                return 0  # not serving yet

        return '[[sinks]]\ntype = "local"\n', local_count, no_cpu
    if sink == "sls":
        upstream = stack.enter_context(contextlib.closing(CountingUpstream(sls_count, delay)))
        keys = workdir / "sls.keys"
        keys.write_text("access_key_id = bench-id\naccess_key_secret = bench-secret\n")
        keys.chmod(0o600)
        toml = (
            f'[[sinks]]\ntype = "sls"\nendpoint = "http://127.0.0.1:{upstream.port}"\nproject = "bench"\n'
            f'logstore = "syslog"\ncredentials_file = "{keys}"\n'
        )
        return toml, upstream.delivered, no_cpu
    if sink == "http":
        upstream = stack.enter_context(contextlib.closing(CountingUpstream(http_count, delay)))
        key = workdir / "http.key"
        key.write_bytes(os.urandom(32).hex().encode())
        key.chmod(0o600)
        toml = (
            f'[[sinks]]\ntype = "http"\nname = "collector"\nurl = "http://127.0.0.1:{upstream.port}/logs"\n'
            f'key_file = "{key}"\n'
        )
        return toml, upstream.delivered, no_cpu
    from tests.support.clickhouse import ClickHouseServer

    server = stack.enter_context(ClickHouseServer(workdir / "clickhouse"))

    def clickhouse_count() -> int:
        # The rows of the active parts: what count() gives, without reading a column of every part
        # (18.16 does: 6 ms a poll over a million rows, and the latency run polls every 10 ms).
        try:
            return int(server.query(
                "SELECT sum(rows) FROM system.parts WHERE database = 'default' AND table = 'syslog' AND active"
            ).strip() or 0)
        except Exception:  # the table appears with the first insert
            return 0

    password = workdir / "clickhouse.password"
    password.write_text(server.users["default"].password + "\n")
    password.chmod(0o600)
    toml = f'[[sinks]]\ntype = "clickhouse"\nurl = "{server.url}"\npassword_file = "{password}"\n'
    pid = server.pid
    assert pid is not None, "clickhouse-server is running"
    return toml, clickhouse_count, lambda: cpu_seconds(pid)


# -- one run ----------------------------------------------------------------------


def _wait_delivered(count: Callable[[], int], target: int, timeout: float, poll: float) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    got = count()
    while got < target and time.monotonic() < deadline:
        time.sleep(poll)
        got = count()
    return got, time.monotonic()


def run_sink(sink: str, n: int, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"deliver-{sink}-", dir=base))
    row: dict[str, Any] = {"sink": sink, "messages": n, "format": args.format, "hosts": args.hosts}
    with contextlib.ExitStack() as stack:
        try:
            sink_toml, delivered, upstream_cpu = _upstream(sink, workdir, stack, args.upstream_delay_ms / 1000)
            rcv = DeliveringReceiver(workdir, free_port(), sink_toml, args.deliver)
            stack.callback(rcv.stop, 60)
            rcv.start()
            deadline = time.monotonic() + 30
            while rcv.delivery_pid() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            child = rcv.delivery_pid()
            if child is None:
                raise RuntimeError(f"no delivery process: {rcv.tail_log()}")
            sender = Sender(rcv.port, CASES["tcp1"], n, 0, "threads", args.format, "lf", 0, hosts=args.hosts)
            stack.callback(sender.kill)
            if sender.expect(args.build_timeout) != {}:
                raise RuntimeError("sender not ready in time")
            time.sleep(0.2)
            cpu0 = (cpu_seconds(rcv.pid), tree_cpu_seconds(child), upstream_cpu())
            pss = PeakSampler(lambda: tree_pss_kb(child), 0.2)
            sender.go()
            got, end = _wait_delivered(delivered, n, args.timeout, args.poll)
            cpu1 = (cpu_seconds(rcv.pid), tree_cpu_seconds(child), upstream_cpu())
            pss.stop()
            stand_in = getattr(delivered, "__self__", None)  # the SLS and HTTP stand-ins count their requests
            if rcv.delivery_pid() != child:  # its CPU and memory would be a stranger's
                raise RuntimeError(f"the delivery process restarted during the run: {rcv.tail_log(3)}")
            sent = sender.expect(30) or {}
            sender.finish()
            seconds = end - sent.get("start", end)
            row.update(
                delivered=got, complete=got >= n, seconds=round(seconds, 3),
                msgs_per_second=round(got / seconds) if seconds > 0 else None,
                ingest_seconds=round(sent.get("seconds", 0.0), 3),
                daemon_cpu_seconds=round(cpu1[0] - cpu0[0], 2),
                delivery_cpu_seconds=round(cpu1[1] - cpu0[1], 2),
                cpu_seconds=round(cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1], 2),
                upstream_cpu_seconds=round(cpu1[2] - cpu0[2], 2) if sink == "clickhouse" else None,
                upstream_requests=stand_in.requests if isinstance(stand_in, CountingUpstream) else None,
                daemon_peak_rss_kb=peak_rss_kb(rcv.pid),
                delivery_peak_rss_kb=tree_peak_rss_kb(child),
                delivery_peak_pss_kb=pss.peak,
                delivery_processes=1 + len(descendants(child)),
            )
            if got >= n and args.latency_seconds > 0 and row["msgs_per_second"]:
                row.update(latency(rcv.port, delivered, row["msgs_per_second"] / 2, args))
            row["log_tail"] = rcv.tail_log(5)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return row


class PeakSampler:
    """The largest value ``read`` gives, read every ``interval`` seconds on a thread until :meth:`stop`."""

    def __init__(self, read: Callable[[], int], interval: float) -> None:
        self.peak = 0
        self._read = read
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            self.peak = max(self.peak, self._read())

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def latency(port: int, delivered: Callable[[], int], rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """Lines at ``rate`` for ``--latency-seconds``: receipt-to-acknowledged p50/p99 (see the module docstring)."""
    count = int(rate * args.latency_seconds)
    lines = [ali_line(i, run="latency") for i in range(count)]
    base = delivered()
    sent_at: list[float] = []
    stream = TcpStream("127.0.0.1", port, lines, chunk_lines=max(1, int(rate / 100)), rate=rate)
    marks: list[tuple[float, int]] = []
    start = time.monotonic()
    stream.start()
    deadline = start + args.latency_seconds + 30
    while time.monotonic() < deadline:
        got = delivered() - base
        marks.append((time.monotonic(), got))
        if got >= count:
            break
        time.sleep(0.01)
    stream.join(30)
    stream.close()
    # Line i was written at start + i / rate (the stream paces to that schedule, in chunks of 10 ms).
    sent_at = [start + i / rate for i in range(count)]
    latencies = []
    j = 0
    for i in range(count):
        while j < len(marks) and marks[j][1] <= i:
            j += 1
        if j == len(marks):
            break
        latencies.append(max(0.0, marks[j][0] - sent_at[i]))
    if not latencies:
        return {"latency_error": "nothing delivered"}
    q = statistics.quantiles(latencies, n=100)
    return {
        "latency_rate": round(rate), "latency_lines": count, "latency_delivered": len(latencies),
        "latency_p50_ms": round(q[49] * 1000, 1), "latency_p99_ms": round(q[98] * 1000, 1),
    }


def baselines(n: int, base: Path, fmt: str) -> dict[str, float]:
    """msgs/s of rsyslog and syslog-ng storing the same lines to a file (bench/ingest_bench.py, same run)."""
    out = base / "baselines.json"
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("ingest_bench.py")), "-n", str(n), "--repeat", "1",
         "--cases", "tcp1", "--receivers", "rsyslog,syslog-ng", "--format", fmt, "--json", str(out)],
        check=False, stdout=subprocess.DEVNULL, timeout=900,
    )
    try:
        rows = json.loads(out.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return {}
    return {r["receiver"]: r["msgs_per_second"] for r in rows if r.get("msgs_per_second") and not r.get("error")}


def table(rows: Sequence[dict[str, Any]], n: int, against: dict[str, float], fmt: str) -> str:
    lines = {"ali": "ALI_LOG_FMT", "rfc3164": "RFC 3164", "rfc5424": "RFC 5424"}[fmt]
    out = [
        f"End to end, {n:,} {lines} lines over one TCP connection, on {os.cpu_count()} cores "
        f"({platform.python_implementation()} {platform.python_version()})",
        "",
        "| sink | msgs/s | vs rsyslog -> file | vs syslog-ng -> file | CPU s (daemon + delivery) "
        "| peak RSS MB (daemon, delivery) | delivery peak PSS MB | latency p50 / p99 at half rate |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ratio(rate: float, name: str) -> str:
        return f"{rate / against[name]:.2f}x" if against.get(name) else "-"

    for r in rows:
        if "error" in r:
            out.append(f"| {r['sink']} | error: {r['error'][:80]} | | | | | | |")
            continue
        lat = (
            f"{r['latency_p50_ms']:.0f} ms / {r['latency_p99_ms']:.0f} ms at {r['latency_rate']:,}/s"
            if "latency_p50_ms" in r else "-"
        )
        out.append(
            f"| {r['sink']} | {r['msgs_per_second']:,} | {ratio(r['msgs_per_second'], 'rsyslog')} | "
            f"{ratio(r['msgs_per_second'], 'syslog-ng')} | {r['cpu_seconds']:.1f} "
            f"({r['daemon_cpu_seconds']:.1f} + {r['delivery_cpu_seconds']:.1f}) | "
            f"{(r['daemon_peak_rss_kb'] or 0) / 1024:.0f}, {(r['delivery_peak_rss_kb'] or 0) / 1024:.0f} | "
            f"{(r.get('delivery_peak_pss_kb') or 0) / 1024:.0f} | {lat} |"
        )
    if against:
        out.append("")
        out.append("Same run, same lines, one connection, to a file: " + ", ".join(
            f"{name} {rate:,.0f} msgs/s" for name, rate in against.items()
        ))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--sinks", default=",".join(SINKS))
    parser.add_argument("--format", choices=FORMATS, default="ali", help="the lines of the throughput run")
    parser.add_argument("--hosts", type=int, default=100, help="hosts the throughput run's lines name (a relay's sources)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--build-timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--deliver", action="append", default=[], metavar="KEY=VALUE",
                        help="a [deliver] setting of the receiver's config, e.g. 'build_processes = 1' (repeatable)")
    parser.add_argument("--upstream-delay-ms", type=float, default=0.0,
                        help="the SLS and HTTP stand-ins answer so long after each request (a distant upstream)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-baselines", action="store_true", help="skip rsyslog and syslog-ng to a file")
    args = parser.parse_args(argv)
    sinks = [s for s in args.sinks.split(",") if s]
    unknown = set(sinks) - set(SINKS)
    if unknown:
        parser.error(f"unknown sinks {sorted(unknown)}; known: {', '.join(SINKS)}")
    base = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    rows = []
    against: dict[str, float] = {}
    try:
        if not args.no_baselines:
            against = baselines(args.n, base, args.format)
        for sink in sinks:
            row = run_sink(sink, args.n, base, args)
            print(json.dumps({k: v for k, v in row.items() if k != "log_tail"}), flush=True)
            rows.append(row)
    finally:
        if args.keep:
            print(f"work directories kept in {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(table(rows, args.n, against, args.format))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n": args.n, "rows": rows, "baselines": against}, indent=2))
    return 1 if any("error" in r or not r.get("complete") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
