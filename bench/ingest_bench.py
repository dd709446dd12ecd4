"""Ingest throughput, side by side: our receiver (-> spool), rsyslog (imtcp -> omfile), syslog-ng (network() -> file).

    python bench/ingest_bench.py [-n 1000000] [--repeat 3] [--cases tcp1,tcp100,udp]
                                 [--receivers receiver,rsyslog,syslog-ng] [--udp-rate 100000]
                                 [--formats ali,rfc3164,rfc5424] [--size 200]
                                 [--json bench/out/ingest.json]

Every receiver gets the same bytes from the in-memory blast sender
(``bench/blast.py``, a separate process: lines built and connections opened
before the clock starts, one ``sendall`` per connection). Each run starts a
private instance (its own configuration and directories under a temporary
directory, free loopback ports), measures, stops it by PID and deletes its
output.

- msgs/s: N / (first byte sent -> the moment all N are stored). Stored means
  committed to the spool (``SpoolReader``) for our receiver, and written to
  the output file for rsyslog and syslog-ng. Files are watched by size every
  ``--poll`` seconds and their lines counted once the size settles, so the
  watcher does not compete for CPU while the receiver works; the end time is
  the first poll that saw the final size. The spool's counters are read
  every ``--poll`` seconds.
- CPU: the receiver process's utime+stime (all threads, and waited-for
  children) over the same window, read with psutil; cores = CPU / wall.
- peak RSS: VmHWM of the receiver process at the end of the run.
- UDP: datagrams are sent at ``--udp-rate`` (UDP has no flow control); the
  table shows what each receiver stored of what was sent, and the kernel's
  UDP receive-buffer drop counter (RcvbufErrors) over the run.
- Each run's stored messages are checked afterwards (``--no-verify`` skips
  it): every sequence number 0..N-1 once (TCP), no duplicates (UDP).
- Formats (``--formats``): ALI_LOG_FMT lines (the default), RFC 3164, and
  RFC 5424 with structured data, all from ``bench/blast.py``'s builders, of
  ``--size`` bytes each. Our receiver spools frames as they came, whatever
  the format (parsing is delivery's work); rsyslog parses every message
  before writing it out; syslog-ng parses too, RFC 5424 with
  ``flags(syslog-protocol)`` on its source (without it, it reads them as
  RFC 3164).
- The JSON also keeps, per run: CPU per thread, RSS samples over the run,
  when the sender finished, the sender's CPU, the watcher's own CPU.

The C receivers' settings:

- rsyslog: imtcp with ``MaxSessions="2000"`` and, for LF-framed input,
  ``SupportOctetCountedFraming="off"``: imtcp takes any frame that starts
  with a digit for an octet count, and ALI_LOG_FMT lines start with ``0.1``;
  left on, every line is two framing errors (10x the CPU, 50k msgs/s) and
  loses its ``0.1``. Main queue: FixedArray of 200,000, batches of 1,024, one
  worker. omfile: RSYSLOG_FileFormat, ``ioBufferSize="256k"``, one write per
  batch (``flushOnTXEnd="on"``, ``asyncWriting="off"``). The async writer
  with ``flushOnTXEnd="off"`` reads as fast but writes its last buffer only
  at ``flushInterval`` (1 s at least), which adds up to a second to every
  run's end: measured 0.36-0.38M msgs/s against 0.6-0.7M. Both are
  options (``--rsyslog-main-queue``, ``--rsyslog-omfile``).
- syslog-ng: ``network()`` with ``log_iw_size(100000) log_fetch_limit(1000)``
  and ``max_connections`` of at least the case's connections (the window is
  shared among them); file() with ``log_fifo_size(100000) flush_lines(1000)``;
  UDP with ``so_rcvbuf(33554432)`` (capped by net.core.rmem_max: syslog-ng
  does not force it).
- Our receiver: the configuration's defaults, one listener.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.blast import line_seq
from tests.support.processes import cpu_seconds, peak_rss_kb, rss_kb, thread_cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
VENV_BIN = ROOT / ".venv" / "bin"
RSYSLOG_DIR = ROOT / ".programs" / "rsyslog"
RSYSLOGD = RSYSLOG_DIR / "usr" / "sbin" / "rsyslogd"
RSYSLOG_MODULES = RSYSLOG_DIR / "usr" / "lib" / "x86_64-linux-gnu" / "rsyslog"
# rsyslog tuning (override with --rsyslog-main-queue / --rsyslog-omfile)
RSYSLOG_MAIN_QUEUE = 'queue.type="FixedArray" queue.size="200000" queue.dequeueBatchSize="1024" queue.workerThreads="1"'
RSYSLOG_OMFILE = 'asyncWriting="off" flushOnTXEnd="on" ioBufferSize="256k"'


@dataclass(frozen=True)
class Case:
    name: str
    transport: str
    connections: int
    label: str


FORMAT_LABELS = {"ali": "ALI lines", "rfc3164": "RFC 3164", "rfc5424": "RFC 5424 + SD"}

CASES = {
    "tcp1": Case("tcp1", "tcp", 1, "TCP, 1 connection"),
    "tcp100": Case("tcp100", "tcp", 100, "TCP, 100 connections"),
    "udp": Case("udp", "udp", 1, "UDP"),
}


# -- the kernel's sockets ------------------------------------------------------


def udp_rcvbuf_errors() -> int:
    """UDP datagrams the kernel dropped for a full receive buffer, machine-wide (psutil does not count these)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])


def listening(port: int, transport: str) -> bool:
    """Is something bound to 127.0.0.1:port (TCP: in LISTEN)?"""
    return any(
        c.laddr == ("127.0.0.1", port) and (transport == "udp" or c.status == psutil.CONN_LISTEN)
        for c in psutil.net_connections(kind=f"{transport}4")
    )


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (bounded tries)."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


# -- counting what arrived ----------------------------------------------------


class FileLines:
    """Counts the lines of a growing file, reading only new bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def count(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            while True:
                data = os.pread(fd, 8 << 20, self.offset)
                if not data:
                    break
                self.offset += len(data)
                self.lines += data.count(b"\n")
        finally:
            os.close(fd)
        return self.lines


# -- the receivers ---------------------------------------------------------------


class Receiver:
    """One private instance: configure, start, wait until ready, count stored, stop, check."""

    name = ""

    def __init__(self, workdir: Path, port: int, case: Case) -> None:
        self.workdir = workdir
        self.port = port
        self.case = case
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = workdir / "stderr.log"
        self.octet_framing = False
        """The sender uses octet counting (set by the bench before start)."""
        self.format = "ali"
        """What the sender sends (set by the bench before start): one of ``bench.blast.FORMATS``."""

    @classmethod
    def available(cls) -> str | None:
        """None if it can run here, else why not."""
        return None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        self.write_config()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start ({self.proc.returncode}): {self.tail_log()}")
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout:g} s: {self.tail_log()}")

    def write_config(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        return listening(self.port, self.case.transport)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stored(self) -> int:
        """Messages stored so far (cheap: called every poll)."""
        raise NotImplementedError

    marker_is_count = False
    """True if :meth:`marker` is the stored count itself."""

    def marker(self) -> int:
        """A cheap figure that changes whenever something is stored (files: their size)."""
        raise NotImplementedError

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM by PID, wait (bounded), SIGKILL by PID if needed; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def sequences(self) -> Iterator[bytes]:
        """Every stored message's text (after stop), for the check."""
        raise NotImplementedError

    def tail_log(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        pass


class FileReceiver(Receiver):
    """A C daemon writing one line per message to ``out.log``."""

    def __init__(self, workdir: Path, port: int, case: Case) -> None:
        super().__init__(workdir, port, case)
        self.out = workdir / "out.log"
        self.lines = FileLines(self.out)

    def stored(self) -> int:
        return self.lines.count()

    def marker(self) -> int:
        return self.lines.size()

    def sequences(self) -> Iterator[bytes]:
        with open(self.out, "rb") as f:
            yield from f


class Rsyslog(FileReceiver):
    """rsyslog imtcp/imudp -> omfile, tuned as one would for a busy log host."""

    name = "rsyslog"
    main_queue = RSYSLOG_MAIN_QUEUE
    omfile = RSYSLOG_OMFILE

    @classmethod
    def available(cls) -> str | None:
        return None if RSYSLOGD.exists() else f"{RSYSLOGD} missing (make programs)"

    def write_config(self) -> None:
        w = self.workdir
        (w / "work").mkdir(exist_ok=True)
        # imtcp takes a frame that starts with a digit for octet counting; ALI_LOG_FMT
        # lines start with "0.1 ", so with it on every line is a framing error (two
        # internal messages each, 10x the CPU) and loses its "0.1": LF framing only then.
        octet = "on" if self.octet_framing else "off"
        inputs = (
            f'input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="bench" SupportOctetCountedFraming="{octet}")'
            if self.case.transport == "tcp"
            else f'input(type="imudp" address="127.0.0.1" port="{self.port}" ruleset="bench" rcvbufSize="32m")'
        )
        (w / "rsyslog.conf").write_text(
            f"""# private benchmark instance: no imuxsock/imjournal, loopback only
global(workDirectory="{w}/work" maxMessageSize="64k")
module(load="imtcp" MaxSessions="2000")
module(load="imudp" BatchSize="128")
main_queue({self.main_queue})
ruleset(name="bench") {{
    action(type="omfile" file="{w}/out.log" template="RSYSLOG_FileFormat" {self.omfile})
}}
{inputs}
"""
        )

    def command(self) -> list[str]:
        w = self.workdir
        return [str(RSYSLOGD), "-n", "-f", str(w / "rsyslog.conf"), "-i", str(w / "rsyslogd.pid"), "-M", str(RSYSLOG_MODULES)]


class SyslogNg(FileReceiver):
    """syslog-ng network() -> file, with the throughput settings of the reference notes."""

    name = "syslog-ng"

    @classmethod
    def available(cls) -> str | None:
        return None if shutil.which("syslog-ng") else "syslog-ng not on PATH"

    def write_config(self) -> None:
        w = self.workdir
        # log_iw_size is shared by the source's connections (each gets iw/max_connections)
        max_conn = max(10, self.case.connections)
        # network() reads RFC 3164 unless told the messages are RFC 5424
        flags = " flags(syslog-protocol)" if self.format == "rfc5424" else ""
        if self.case.transport == "tcp":
            src = (
                f'network(ip("127.0.0.1") port({self.port}) transport("tcp") max_connections({max_conn}) '
                f"log_iw_size(100000) log_fetch_limit(1000){flags})"
            )
        else:
            src = (
                f'network(ip("127.0.0.1") port({self.port}) transport("udp") so_rcvbuf(33554432) '
                f"log_iw_size(100000) log_fetch_limit(1000){flags})"
            )
        (w / "syslog-ng.conf").write_text(
            f"""@version: 3.38
# private benchmark instance
options {{ use_dns(no); use_fqdn(no); keep_hostname(yes); chain_hostnames(no); stats_freq(0); log_msg_size(65536); }};
source s_net {{ {src}; }};
destination d_file {{ file("{w}/out.log" log_fifo_size(100000) flush_lines(1000)); }};
log {{ source(s_net); destination(d_file); }};
"""
        )

    def command(self) -> list[str]:
        w = self.workdir
        return [
            "syslog-ng", "-F", "--no-caps", "-f", str(w / "syslog-ng.conf"), "-p", str(w / "syslog-ng.pid"),
            "-R", str(w / "syslog-ng.persist"), "-c", str(w / "syslog-ng.ctl"),
        ]


class OurReceiver(Receiver):
    """``receiver run -c``: TCP/UDP -> the durable spool."""

    name = "receiver"

    @classmethod
    def available(cls) -> str | None:
        if not (VENV_BIN / "receiver").exists():
            return f"{VENV_BIN / 'receiver'} missing (make venv)"
        import importlib

        for module in ("receiver.cli.daemon", "receiver.config.file", "receiver.spool"):
            try:
                importlib.import_module(module)
            except ImportError as e:
                return f"not runnable yet ({e})"
        return None

    def __init__(self, workdir: Path, port: int, case: Case) -> None:
        super().__init__(workdir, port, case)
        self.state = workdir / "state"
        self.extra_toml = (
            "# Ingest alone: delivery_bench.py measures the way to the sinks.\n[deliver]\nenabled = false\n"
            "[metrics]\nenabled = false\n"
        )
        """The configuration after the listener."""
        self.listener_toml = ""
        """More keys of the listener's table (e.g. ``max_frame_bytes = 131072``)."""
        self._reader: Any = None
        self._count: Callable[[], int] | None = None

    def write_config(self) -> None:
        t = self.case.transport
        (self.workdir / "receiver.toml").write_text(
            f"""# private benchmark instance
state_directory = "{self.state}"

[[listeners]]
name = "{t}"
transport = "{t}"
address = "127.0.0.1"
port = {self.port}
{self.listener_toml}
{self.extra_toml}"""
        )

    def command(self) -> list[str]:
        return [str(VENV_BIN / "receiver"), "run", "-c", str(self.workdir / "receiver.toml")]

    def ready(self) -> bool:
        try:
            return b"receiver ready" in self.stderr_path.read_bytes()
        except FileNotFoundError:
            return False

    def _open(self) -> None:
        from receiver.spool import SpoolReader

        self._reader = SpoolReader(self.state / "spool")
        store = getattr(self._reader, "_store", None)
        if store is not None and hasattr(store, "refresh"):
            # The committed-frames counter alone: one small SQLite read. stats()
            # also walks every segment key, which costs milliseconds per poll
            # once hundreds of segments exist, and would compete for the CPU.
            self._count = lambda: int(store.refresh().frames)
        else:
            self._count = lambda: int(self._reader.stats().frames)

    marker_is_count = True

    def marker(self) -> int:
        return self.stored()

    def stored(self) -> int:
        if self._count is None:
            self._open()
        assert self._count is not None
        return self._count()

    def stats_frames(self) -> int:
        """The public interface's figure (for the record; slower)."""
        from receiver.spool import SpoolReader

        with SpoolReader(self.state / "spool") as r:
            return int(r.stats().frames)

    def sequences(self) -> Iterator[bytes]:
        from receiver.spool import SpoolReader

        with SpoolReader(self.state / "spool") as r:
            for entry in r.entries():
                yield from entry.frames

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._count = None


RECEIVERS: dict[str, type[Receiver]] = {"receiver": OurReceiver, "rsyslog": Rsyslog, "syslog-ng": SyslogNg}


# -- the sender -----------------------------------------------------------------


class Sender:
    """bench/blast.py in its own process (its CPU is its own), driven over stdin/stdout."""

    def __init__(
        self, port: int, case: Case, n: int, udp_rate: float, mode: str, fmt: str, framing: str, burst_ms: float,
        *, size: int = 200, hosts: int = 100,
    ) -> None:
        cmd = [
            PYTHON, str(ROOT / "bench" / "blast.py"), "--port", str(port), "--transport", case.transport,
            "-n", str(n), "-c", str(case.connections), "--mode", mode, "--format", fmt, "--framing", framing,
            "--size", str(size), "--hosts", str(hosts), "--wait-go", "--hold",
        ]
        if case.transport == "udp":
            cmd += ["--rate", str(udp_rate), "--burst-ms", str(burst_ms)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def expect(self, timeout: float) -> dict[str, Any] | None:
        """The next line: 'ready' -> {}, a JSON result -> the dict, None if nothing came in time."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if not line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"sender exited: {err[-2000:]}")
        line = line.strip()
        return {} if line == b"ready" else json.loads(line)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Close the connections (stdin EOF); returns the closing report."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        report = self.expect(timeout) or {}
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return report

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# -- one run ---------------------------------------------------------------------


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_once(
    receiver_cls: type[Receiver], case: Case, n: int, base: Path, args: argparse.Namespace
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{receiver_cls.name}-{case.name}-", dir=base))
    port = free_port()
    rcv = receiver_cls(workdir, port, case)
    rcv.octet_framing = args.framing == "octet"
    rcv.format = args.format
    if isinstance(rcv, OurReceiver):
        rcv.listener_toml = args.listener_toml
    sender: Sender | None = None
    row: dict[str, Any] = {
        "receiver": rcv.name, "case": case.name, "format": args.format, "size": args.size, "messages": n, "port": port,
    }
    try:
        rcv.start()
        pid = rcv.pid
        sender = Sender(
            port, case, n, args.udp_rate, args.mode, args.format, args.framing, args.udp_burst_ms, size=args.size
        )
        if sender.expect(args.build_timeout) != {}:
            raise RuntimeError("sender not ready in time")
        time.sleep(0.2)  # let the receiver settle after the connections opened
        rss0 = rss_kb(pid)
        drops0 = udp_rcvbuf_errors()
        cpu0 = cpu_seconds(pid)
        threads0 = thread_cpu_seconds(pid)
        mine0 = self_cpu()
        rss_samples: list[tuple[float, int | None]] = []
        sender.go()
        sent: dict[str, Any] | None = None
        started = time.monotonic()
        deadline = started + args.timeout
        stall = args.udp_settle if case.transport == "udp" else args.stall
        stored = 0
        marker: int | None = None
        marker_time = started
        end_time: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if sent is None:
                sent = sender.expect(0)
            if rcv.proc is not None and rcv.proc.poll() is not None:
                raise RuntimeError(f"{rcv.name} exited during the run ({rcv.proc.returncode}): {rcv.tail_log()}")
            if not rss_samples or now - started - rss_samples[-1][0] >= args.rss_every:
                rss_samples.append((round(now - started, 3), rss_kb(pid)))
            m = rcv.marker()
            changed = m != marker
            if changed:
                marker, marker_time = m, now
            if rcv.marker_is_count or not changed:
                # files: counted only once their size settles; the end is when that size first showed
                stored = m if rcv.marker_is_count else rcv.stored()
                if stored >= n:
                    end_time = marker_time
                    break
                if sent is not None and now - max(marker_time, sent["end"]) > stall:
                    break  # no progress since the sender finished: this is all that will arrive
            time.sleep(args.poll)
        cpu1 = cpu_seconds(pid)
        threads1 = thread_cpu_seconds(pid)
        mine1 = self_cpu()
        drops1 = udp_rcvbuf_errors()
        if sent is None:
            sent = sender.expect(30)
        if sent is None:
            raise RuntimeError("sender did not report")
        if end_time is None:
            end_time = marker_time
        rss_peak = peak_rss_kb(pid)
        rss_now = rss_kb(pid)
        closing = sender.finish()
        # our receiver: the public interface's figure as well, before stopping
        stats_frames = rcv.stats_frames() if isinstance(rcv, OurReceiver) else None
        rcv.close()
        status = rcv.stop(args.stop_timeout)
        seconds = end_time - sent["start"]
        sender_cpu = sent["cpu_seconds"] + float(closing.get("children_cpu_seconds", 0.0))
        row.update(
            complete=stored >= n if case.transport == "tcp" else None,
            sent=sent["messages"],
            sent_bytes=sent["bytes"],
            send_seconds=sent["seconds"],
            stored=stored,
            seconds=seconds,
            msgs_per_second=stored / seconds if seconds > 0 else None,
            mb_per_second=stored * (sent["bytes"] / max(1, sent["messages"])) / seconds / 1e6 if seconds > 0 else None,
            cpu_seconds=cpu1 - cpu0,
            cores=(cpu1 - cpu0) / seconds if seconds > 0 else None,
            cpu_us_per_msg=(cpu1 - cpu0) / stored * 1e6 if stored else None,
            rss_before_kb=rss0,
            rss_after_kb=rss_now,
            peak_rss_kb=rss_peak,
            kernel_udp_drops=drops1 - drops0 if case.transport == "udp" else None,
            sender_cpu_seconds=sender_cpu,
            sender_mode=sent["mode"],
            udp_rate=sent.get("rate_asked"),
            bench_poll_cpu_seconds=mine1 - mine0,
            exit_status=status,
            spool_stats_frames=stats_frames,
            thread_cpu_seconds={
                k: round(v - threads0.get(k, 0.0), 2) for k, v in threads1.items() if v - threads0.get(k, 0.0) >= 0.01
            },
            rss_samples_kb=rss_samples,
        )
        if not args.no_verify:
            row["check"] = verify(rcv, n, case)
        if status != 0:
            row["stop_log"] = rcv.tail_log()
        if isinstance(rcv, OurReceiver):
            row["log_tail"] = rcv.tail_log(8)
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
        rcv.close()
        with contextlib.suppress(Exception):
            rcv.stop(10)
    finally:
        end_run(rcv, sender, workdir, keep=args.keep)
    return row


def verify(rcv: Receiver, n: int, case: Case) -> dict[str, Any]:
    """Sequence numbers stored: missing, duplicated, unparsable (bounded by n's bitmap)."""
    seen = bytearray(n)
    dup = other = total = 0
    for text in rcv.sequences():
        total += 1
        i = line_seq(text)
        if i is None or i >= n:
            other += 1
        elif seen[i]:
            dup += 1
        else:
            seen[i] = 1
    distinct = sum(seen) if n else 0
    result = {"stored": total, "distinct": distinct, "duplicates": dup, "unrecognised": other, "missing": n - distinct}
    result["ok"] = dup == 0 and other == 0 and (case.transport == "udp" or distinct == n)
    return result


def end_run(rcv: Any, sender: Any, workdir: Path, *, keep: bool) -> None:
    """After a run, whatever happened: the sender and the receiver stopped (killed if need be), its files gone."""
    if sender is not None:
        sender.kill()
    rcv.close()
    if rcv.proc is not None and rcv.proc.poll() is None:
        rcv.proc.kill()
        rcv.proc.wait(10)
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)


# -- report --------------------------------------------------------------------------


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r.get("format", "ali"), r["case"], r["receiver"]), []).append(r)
    out = []
    for (fmt, case, name), runs in groups.items():
        good = [r for r in runs if "error" not in r and r.get("msgs_per_second")]
        s: dict[str, Any] = {
            "format": fmt, "case": case, "receiver": name, "runs": len(runs), "failed": len(runs) - len(good),
        }
        if good:
            rates = [r["msgs_per_second"] for r in good]
            s.update(
                msgs_per_second=statistics.median(rates),
                msgs_per_second_min=min(rates),
                msgs_per_second_max=max(rates),
                mb_per_second=statistics.median(r["mb_per_second"] for r in good),
                cpu_seconds=statistics.median(r["cpu_seconds"] for r in good),
                cores=statistics.median(r["cores"] for r in good),
                cpu_us_per_msg=statistics.median(r["cpu_us_per_msg"] for r in good),
                peak_rss_mb=max(r["peak_rss_kb"] or 0 for r in good) / 1024,
                sent=statistics.median(r["sent"] for r in good),
                stored_min=min(r["stored"] for r in good),
                stored_max=max(r["stored"] for r in good),
                sender_cpu_seconds=statistics.median(r["sender_cpu_seconds"] for r in good),
                kernel_udp_drops=(
                    max(r["kernel_udp_drops"] for r in good) if good[0]["kernel_udp_drops"] is not None else None
                ),
                checks_ok=all(r.get("check", {}).get("ok", True) for r in good),
            )
        out.append(s)
    for s in out:
        ref = next(
            (x for x in out if x["case"] == s["case"] and x["format"] == s["format"] and x["receiver"] == "rsyslog"),
            None,
        )
        if ref and ref.get("msgs_per_second") and s.get("msgs_per_second"):
            s["vs_rsyslog"] = s["msgs_per_second"] / ref["msgs_per_second"]
            s["cpu_per_msg_vs_rsyslog"] = s["cpu_us_per_msg"] / ref["cpu_us_per_msg"]
    return out


def table(summary: list[dict[str, Any]], n: int) -> str:
    lines = [
        "| case | receiver | msgs/s (median; min-max) | MB/s | vs rsyslog | CPU s | cores | CPU µs/msg | peak RSS MB | stored / sent | sender CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    plain = all(s.get("format", "ali") == "ali" for s in summary)
    for s in summary:
        case = CASES[s["case"]].label
        if not plain:
            case = f"{FORMAT_LABELS[s.get('format', 'ali')]}, {case}"
        if "msgs_per_second" not in s:
            lines.append(f"| {case} | {s['receiver']} | failed ({s['failed']}/{s['runs']} runs) | | | | | | | | |")
            continue
        stored = (
            f"{s['stored_min']:,}" if s["stored_min"] == s["stored_max"] else f"{s['stored_min']:,}-{s['stored_max']:,}"
        )
        stored += f" / {int(s['sent']):,}"
        if s.get("kernel_udp_drops") is not None:
            stored += f" (kernel drops ≤{s['kernel_udp_drops']:,})"
        if not s["checks_ok"]:
            stored += " CHECK FAILED"
        if s["failed"]:
            stored += f" ({s['failed']} runs failed)"
        vs = f"{s['vs_rsyslog']:.2f}x" if "vs_rsyslog" in s else ""
        lines.append(
            f"| {case} | {s['receiver']} | {s['msgs_per_second']:,.0f}; {s['msgs_per_second_min']:,.0f}-{s['msgs_per_second_max']:,.0f} "
            f"| {s['mb_per_second']:.1f} | {vs} | {s['cpu_seconds']:.2f} | {s['cores']:.2f} | {s['cpu_us_per_msg']:.2f} "
            f"| {s['peak_rss_mb']:.0f} | {stored} | {s['sender_cpu_seconds']:.2f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line (other benches parse their own settings with it, for its defaults)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--messages", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cases", default="tcp1,tcp100,udp", help=f"comma-separated: {','.join(CASES)}")
    p.add_argument("--receivers", default="receiver,rsyslog,syslog-ng", help=f"comma-separated: {','.join(RECEIVERS)}")
    p.add_argument("--udp-rate", type=float, default=100_000, help="UDP messages per second (default 100000)")
    p.add_argument("--udp-burst-ms", type=float, default=5.0, help="UDP: the sender's bursts, in ms worth of messages")
    p.add_argument("--rss-every", type=float, default=0.25, help="seconds between RSS samples (kept in the JSON)")
    p.add_argument("--mode", choices=("threads", "procs"), default="threads", help="blast sender: thread or process per connection")
    p.add_argument("--format", choices=("ali", "rfc3164", "rfc5424"), default="ali", help="one format (see --formats)")
    p.add_argument(
        "--formats", help="comma-separated formats, each a case of its own: ali,rfc3164,rfc5424 (default: --format)"
    )
    p.add_argument("--size", type=int, default=200, help="bytes per message including its LF (default 200)")
    p.add_argument("--listener-toml", default="", help="more keys for our receiver's listener table")
    p.add_argument("--framing", choices=("lf", "octet"), default="lf")
    p.add_argument("--poll", type=float, default=0.02, help="seconds between polls of what is stored")
    p.add_argument("--timeout", type=float, default=300, help="longest a run may take (seconds)")
    p.add_argument("--stall", type=float, default=15, help="TCP: give up after this long without progress once sent")
    p.add_argument("--udp-settle", type=float, default=2, help="UDP: done after this long without progress once sent")
    p.add_argument("--build-timeout", type=float, default=180)
    p.add_argument("--stop-timeout", type=float, default=60)
    p.add_argument("--rsyslog-main-queue", default=RSYSLOG_MAIN_QUEUE, help="rsyslog main_queue() parameters")
    p.add_argument("--rsyslog-omfile", default=RSYSLOG_OMFILE, help="rsyslog omfile action parameters")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "ingest.json")
    p.add_argument("--tmp", type=Path, help="parent of the temporary directories (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep each run's directory (configs, logs, output)")
    p.add_argument("--no-verify", action="store_true", help="skip checking the stored sequence numbers")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    formats = [f for f in (args.formats or args.format).split(",") if f]
    for fmt in formats:
        if fmt not in FORMAT_LABELS:
            p.error(f"unknown format {fmt!r}: one of {','.join(FORMAT_LABELS)}")

    cases = [CASES[c] for c in args.cases.split(",") if c]
    Rsyslog.main_queue = args.rsyslog_main_queue
    Rsyslog.omfile = args.rsyslog_omfile
    receivers = []
    for name in args.receivers.split(","):
        cls = RECEIVERS[name]
        why = cls.available()
        if why:
            print(f"skipping {name}: {why}", file=sys.stderr)
        else:
            receivers.append(cls)
    rows: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.tmp))
    try:
        for fmt in formats:
            run_args = argparse.Namespace(**{**vars(args), "format": fmt})
            for case in cases:
                for rep in range(args.repeat):
                    for cls in receivers:  # interleaved, so drift of the machine hits every receiver alike
                        row = run_once(cls, case, args.messages, base, run_args)
                        row["repeat"] = rep
                        row["load_average"] = os.getloadavg()
                        rows.append(row)
                        brief = {k: row.get(k) for k in ("msgs_per_second", "cpu_seconds", "peak_rss_kb", "stored", "sender_cpu_seconds")}
                        print(
                            f"{fmt} {case.name} #{rep} {cls.name}: {row.get('error') or brief} {row.get('check', '')}",
                            file=sys.stderr, flush=True,
                        )
    finally:
        if args.keep:
            print(f"kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    summary = summarise(rows)
    print(table(summary, args.messages))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "load_average_at_end": os.getloadavg(),
                },
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "summary": summary,
                "runs": rows,
            },
            indent=1,
        )
        + "\n"
    )
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
