"""Transports side by side: plain TCP, TLS and RELP, our receiver (-> spool) beside rsyslog (-> omfile).

    python bench/transport_bench.py [-n 200000] [--repeat 3] [--window 1024]
                                    [--cases tcp,tcp-octet,tls13,tls12,relp,relp128]
                                    [--receivers receiver,rsyslog] [--json bench/out/transport.json]

One connection per run, the same ALI_LOG_FMT lines as ``ingest_bench.py``
(200 bytes with the LF, ``request SEQ`` in each), from a sender in its own
process (``bench/transport_blast.py``: everything built, the connection
open, the TLS handshake and the RELP ``open`` done before the clock starts).

- ``tcp``: LF-framed, as ``ingest_bench.py``'s ``tcp1`` (the baseline).
- ``tcp-octet``: octet-counted plain TCP: the same frames as TLS, without TLS.
- ``tls13`` / ``tls12``: octet-counted frames over TLS 1.3 / 1.2 (the client
  allows that version only), ``sendall`` in 1 MiB chunks. Our receiver: a TCP
  listener with ``framing = "octet"`` and a ``[listeners.tls]`` table.
  rsyslog: imtcp with the gtls stream driver, ``StreamDriver.Mode="1"``,
  ``StreamDriver.AuthMode="anon"`` (the client still checks the server's
  certificate) and ``gnutlsPriorityString="NORMAL"`` (with anon mode's own
  priorities rsyslog 8.2302 offers no TLS 1.3 suite and refuses 1.3 clients). Both use one self-signed ECDSA P-256 certificate from
  ``receiver.cli.tls.write_selfsigned``.
- ``relp`` / ``relp128``: a RELP client keeping ``--window`` (default 1024)
  / 128 (omrelp's default ``windowSize``) messages unanswered at most. Our
  receiver answers once the message is committed to the spool; rsyslog's
  imrelp once it is in its main queue. The sender's own figure, messages
  acknowledged per second, is in the table beside the stored rate.

Measured as ``ingest_bench.py`` does (its receivers, /proc readers and check
are imported from it): msgs/s = N / (first byte sent -> all N stored), stored
= committed to the spool (ours) or written to the output file (rsyslog);
CPU = the receiver process's utime+stime over that window; peak RSS = VmHWM;
every run's stored sequence numbers are checked (each of 0..N-1 once). Each
(case, receiver) runs ``--repeat`` times, interleaved, and the table shows the
best run (highest msgs/s) with the range; the JSON keeps every run.

rsyslog's settings are ingest_bench's (FixedArray main queue of 200,000,
batches of 1,024, omfile one write per batch); ours are the configuration's
defaults (5 ms group commit, fsync), delivery and metrics off.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ingest_bench
from bench.ingest_bench import (
    PYTHON,
    ROOT,
    RSYSLOG_MODULES,
    end_run,
    self_cpu,
    verify,
)
from tests.support.processes import cpu_seconds, peak_rss_kb, thread_cpu_seconds

GTLS_DRIVER = RSYSLOG_MODULES / "lmnsd_gtls.so"
IMRELP = RSYSLOG_MODULES / "imrelp.so"
SENDER = ROOT / "bench" / "transport_blast.py"


@dataclasses.dataclass(frozen=True)
class TransportCase(ingest_bench.Case):
    """A case of one connection; ``transport`` stays ``tcp`` (the socket), ``protocol`` says what runs on it."""

    protocol: str = "tcp"
    """``tcp``, ``tls`` or ``relp``."""
    framing: str = "lf"
    tls_version: str | None = None
    window: int | None = None


def make_cases(window: int) -> dict[str, TransportCase]:
    cases = [
        TransportCase("tcp", "tcp", 1, "TCP, LF"),
        TransportCase("tcp-octet", "tcp", 1, "TCP, octet-counted", framing="octet"),
        TransportCase("tls13", "tcp", 1, "TLS 1.3, octet-counted", protocol="tls", framing="octet", tls_version="1.3"),
        TransportCase("tls12", "tcp", 1, "TLS 1.2, octet-counted", protocol="tls", framing="octet", tls_version="1.2"),
        TransportCase("relp", "tcp", 1, f"RELP, window {window}", protocol="relp", window=window),
        TransportCase("relp128", "tcp", 1, "RELP, window 128", protocol="relp", window=128),
    ]
    return {c.name: c for c in cases}


@dataclasses.dataclass(frozen=True)
class Certificate:
    certificate_file: Path
    key_file: Path


# -- the receivers ---------------------------------------------------------------


class OurReceiver(ingest_bench.OurReceiver):
    """ingest_bench's receiver, with the case's listener: plain TCP, TLS or RELP."""

    certificate: Certificate | None = None
    segment_max_delay_ms: float | None = None
    """``[spool] segment_max_delay_ms`` (None: the default): the group commit's wait."""

    def __init__(self, workdir: Path, port: int, case: TransportCase) -> None:
        super().__init__(workdir, port, case)
        self.transport_case = case
        if self.segment_max_delay_ms is not None:
            self.extra_toml += f"[spool]\nsegment_max_delay_ms = {self.segment_max_delay_ms:g}\n"

    def write_config(self) -> None:
        case = self.transport_case
        listener = [
            f'name = "{case.protocol}"',
            f'transport = "{"relp" if case.protocol == "relp" else "tcp"}"',
            'address = "127.0.0.1"',
            f"port = {self.port}",
        ]
        if case.protocol != "relp":
            listener.append(f'framing = "{case.framing}"')
        if case.protocol == "tls":
            assert self.certificate is not None
            listener += [
                "[listeners.tls]",
                f'certificate_file = "{self.certificate.certificate_file}"',
                f'key_file = "{self.certificate.key_file}"',
            ]
        body = "\n".join(listener)
        (self.workdir / "receiver.toml").write_text(
            f'# private benchmark instance\nstate_directory = "{self.state}"\n\n[[listeners]]\n{body}\n\n{self.extra_toml}'
        )


class Rsyslog(ingest_bench.Rsyslog):
    """ingest_bench's rsyslog (same queue and omfile), its input imtcp, imtcp over gtls, or imrelp."""

    certificate: Certificate | None = None

    def __init__(self, workdir: Path, port: int, case: TransportCase) -> None:
        super().__init__(workdir, port, case)
        self.transport_case = case

    @classmethod
    def missing_for(cls, case: TransportCase) -> str | None:
        """Why rsyslog cannot run ``case`` here (None: it can)."""
        if case.protocol == "tls" and not GTLS_DRIVER.exists():
            return f"{GTLS_DRIVER} missing: rsyslog has no gtls stream driver"
        if case.protocol == "relp" and not IMRELP.exists():
            return f"{IMRELP} missing"
        return None

    def write_config(self) -> None:
        w, case, port = self.workdir, self.transport_case, self.port
        (w / "work").mkdir(exist_ok=True)
        globals_extra = ""
        if case.protocol == "relp":
            inputs = (
                'module(load="imrelp")\n'
                f'input(type="imrelp" address="127.0.0.1" port="{port}" ruleset="bench")'
            )
        else:
            # LF framing: octet counting off, as in ingest_bench (ALI lines start with a digit)
            octet = "on" if case.framing == "octet" else "off"
            driver = priorities = ""
            if case.protocol == "tls":
                cert = self.certificate
                assert cert is not None
                globals_extra = (
                    f' DefaultNetstreamDriverCAFile="{cert.certificate_file}"'
                    f' DefaultNetstreamDriverCertFile="{cert.certificate_file}"'
                    f' DefaultNetstreamDriverKeyFile="{cert.key_file}"'
                )
                driver = ' StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"'
                # anon mode's own GnuTLS priorities offer no TLS 1.3 suite (the handshake fails
                # with "No supported cipher suites have been found"); GnuTLS's defaults do
                priorities = ' gnutlsPriorityString="NORMAL"'
            inputs = (
                f'module(load="imtcp" MaxSessions="2000"{driver})\n'
                f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="bench" '
                f'SupportOctetCountedFraming="{octet}"{priorities})'
            )
        (w / "rsyslog.conf").write_text(
            f"""# private benchmark instance: no imuxsock/imjournal, loopback only
global(workDirectory="{w}/work" maxMessageSize="64k"{globals_extra})
main_queue({self.main_queue})
ruleset(name="bench") {{
    action(type="omfile" file="{w}/out.log" template="RSYSLOG_FileFormat" {self.omfile})
}}
{inputs}
"""
        )


RECEIVERS: dict[str, type[OurReceiver] | type[Rsyslog]] = {"receiver": OurReceiver, "rsyslog": Rsyslog}


# -- the sender -----------------------------------------------------------------------


class Sender(ingest_bench.Sender):
    """``transport_blast.py --wait-go --hold`` in its own process, driven as ingest_bench drives blast.py."""

    def __init__(self, port: int, case: TransportCase, n: int, certificate: Certificate | None, timeout: float) -> None:
        cmd = [
            PYTHON, str(SENDER), "--port", str(port), "--transport", case.protocol, "-n", str(n),
            "--wait-go", "--hold", "--timeout", str(timeout),
        ]
        if case.protocol == "tcp":
            cmd += ["--framing", case.framing]
        if case.protocol == "tls":
            assert certificate is not None and case.tls_version is not None
            cmd += ["--ca", str(certificate.certificate_file), "--tls-version", case.tls_version]
        if case.protocol == "relp":
            cmd += ["--window", str(case.window)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()


# -- one run ------------------------------------------------------------------------


def run_once(
    receiver_cls: type[OurReceiver] | type[Rsyslog],
    case: TransportCase,
    n: int,
    base: Path,
    certificate: Certificate,
    args: argparse.Namespace,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{receiver_cls.name}-{case.name}-", dir=base))
    port = ingest_bench.free_port()
    rcv = receiver_cls(workdir, port, case)
    rcv.certificate = certificate
    rcv.octet_framing = case.framing == "octet"
    sender: Sender | None = None
    row: dict[str, Any] = {"receiver": rcv.name, "case": case.name, "messages": n, "port": port}
    try:
        rcv.start()
        pid = rcv.pid
        sender = Sender(port, case, n, certificate, args.timeout)
        if sender.expect(args.build_timeout) != {}:
            raise RuntimeError("sender not ready in time")
        time.sleep(0.2)  # let the receiver settle after the connection (and handshake) opened
        cpu0 = cpu_seconds(pid)
        threads0 = thread_cpu_seconds(pid)
        mine0 = self_cpu()
        sender.go()
        sent: dict[str, Any] | None = None
        started = time.monotonic()
        deadline = started + args.timeout
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
                if sent is not None and now - max(marker_time, sent["end"]) > args.stall:
                    break  # no progress since the sender finished: this is all that will arrive
            time.sleep(args.poll)
        cpu1 = cpu_seconds(pid)
        threads1 = thread_cpu_seconds(pid)
        mine1 = self_cpu()
        if sent is None:
            sent = sender.expect(args.timeout)  # RELP: the last answers may come after the last store
        if sent is None:
            raise RuntimeError("sender did not report")
        if end_time is None:
            end_time = marker_time
        rss_peak = peak_rss_kb(pid)
        closing = sender.finish()
        rcv.close()
        status = rcv.stop(args.stop_timeout)
        seconds = end_time - sent["start"]
        row.update(
            complete=stored >= n,
            sent=sent["messages"],
            sent_bytes=sent["bytes"],
            send_seconds=sent["seconds"],
            sender_mode=sent["mode"],
            stored=stored,
            seconds=seconds,
            msgs_per_second=stored / seconds if seconds > 0 else None,
            mb_per_second=stored * (sent["bytes"] / max(1, sent["messages"])) / seconds / 1e6 if seconds > 0 else None,
            cpu_seconds=cpu1 - cpu0,
            cores=(cpu1 - cpu0) / seconds if seconds > 0 else None,
            cpu_us_per_msg=(cpu1 - cpu0) / stored * 1e6 if stored else None,
            peak_rss_kb=rss_peak,
            sender_cpu_seconds=sent["cpu_seconds"] + float(closing.get("children_cpu_seconds", 0.0)),
            acked=sent.get("acknowledged"),
            acked_msgs_per_second=sent.get("acked_msgs_per_second"),
            answers_not_ok=sent.get("answers_not_ok"),
            sender_reads=sent.get("reads"),
            bench_poll_cpu_seconds=mine1 - mine0,
            exit_status=status,
            thread_cpu_seconds={
                k: round(v - threads0.get(k, 0.0), 2) for k, v in threads1.items() if v - threads0.get(k, 0.0) >= 0.01
            },
        )
        if not args.no_verify:
            row["check"] = verify(rcv, n, case)
        if status != 0:
            row["stop_log"] = rcv.tail_log()
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
        row["log_tail"] = rcv.tail_log()
        rcv.close()
        with contextlib.suppress(Exception):
            rcv.stop(10)
    finally:
        end_run(rcv, sender, workdir, keep=args.keep)
    return row


# -- report --------------------------------------------------------------------------


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (case, receiver): the best run (highest msgs/s), the range, ratios to rsyslog and to plain TCP."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["receiver"]), []).append(r)
    out = []
    for (case, name), runs in groups.items():
        good = [r for r in runs if "error" not in r and r.get("msgs_per_second")]
        s: dict[str, Any] = {"case": case, "receiver": name, "runs": len(runs), "failed": len(runs) - len(good)}
        if not good:
            s["errors"] = [r.get("error") for r in runs]
        else:
            best = max(good, key=lambda r: r["msgs_per_second"])
            rates = [r["msgs_per_second"] for r in good]
            s.update(
                msgs_per_second=best["msgs_per_second"],
                msgs_per_second_min=min(rates),
                msgs_per_second_median=statistics.median(rates),
                **{
                    k: best[k]
                    for k in (
                        "mb_per_second", "cpu_seconds", "cores", "cpu_us_per_msg", "sent", "stored",
                        "sender_cpu_seconds", "sender_mode", "acked", "acked_msgs_per_second", "answers_not_ok",
                    )
                },
                peak_rss_mb=max(r["peak_rss_kb"] or 0 for r in good) / 1024,
                stored_min=min(r["stored"] for r in good),
                checks_ok=all(r.get("check", {}).get("ok", True) for r in good),
            )
        out.append(s)
    for s in out:
        if "msgs_per_second" not in s:
            continue
        ref = next((x for x in out if x["case"] == s["case"] and x["receiver"] == "rsyslog"), None)
        if ref and ref.get("msgs_per_second"):
            s["vs_rsyslog"] = s["msgs_per_second"] / ref["msgs_per_second"]
        tcp = next((x for x in out if x["case"] == "tcp" and x["receiver"] == s["receiver"]), None)
        if tcp and tcp.get("msgs_per_second"):
            s["vs_tcp"] = s["msgs_per_second"] / tcp["msgs_per_second"]
    return out


def table(summary: list[dict[str, Any]], cases: dict[str, TransportCase]) -> str:
    lines = [
        "| case | receiver | msgs/s (best; min) | MB/s | vs rsyslog | vs TCP | CPU s | cores | CPU µs/msg "
        "| peak RSS MB | stored / sent | sender: acked msgs/s | sender CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for s in summary:
        case = cases[s["case"]].label
        if "msgs_per_second" not in s:
            lines.append(f"| {case} | {s['receiver']} | failed ({s['failed']}/{s['runs']} runs) | | | | | | | | | | |")
            continue
        stored = f"{s['stored_min']:,} / {int(s['sent']):,}"
        if not s["checks_ok"]:
            stored += " CHECK FAILED"
        if s["failed"]:
            stored += f" ({s['failed']} runs failed)"
        vs = f"{s['vs_rsyslog']:.2f}x" if "vs_rsyslog" in s else ""
        vs_tcp = f"{s['vs_tcp']:.2f}x" if "vs_tcp" in s else ""
        acked = f"{s['acked_msgs_per_second']:,.0f}" if s.get("acked_msgs_per_second") else ""
        if s.get("answers_not_ok"):
            acked += f" ({s['answers_not_ok']} not OK)"
        lines.append(
            f"| {case} | {s['receiver']} | {s['msgs_per_second']:,.0f}; {s['msgs_per_second_min']:,.0f} "
            f"| {s['mb_per_second']:.1f} | {vs} | {vs_tcp} | {s['cpu_seconds']:.2f} | {s['cores']:.2f} "
            f"| {s['cpu_us_per_msg']:.2f} | {s['peak_rss_mb']:.0f} | {stored} | {acked} | {s['sender_cpu_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--messages", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3, help="runs per case and receiver; the table shows the best")
    p.add_argument("--window", type=int, default=1024, help="RELP: unanswered messages at most (case relp)")
    p.add_argument("--cases", default="tcp,tcp-octet,tls13,tls12,relp,relp128", help="comma-separated")
    p.add_argument("--segment-max-delay-ms", type=float, help="our receiver's [spool] segment_max_delay_ms (default: its default)")
    p.add_argument("--receivers", default="receiver,rsyslog", help=f"comma-separated: {','.join(RECEIVERS)}")
    p.add_argument("--poll", type=float, default=0.005, help="seconds between polls of what is stored")
    p.add_argument("--timeout", type=float, default=300, help="longest a run may take (seconds)")
    p.add_argument("--stall", type=float, default=15, help="give up after this long without progress once sent")
    p.add_argument("--build-timeout", type=float, default=120)
    p.add_argument("--stop-timeout", type=float, default=60)
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "transport.json")
    p.add_argument("--tmp", type=Path, help="parent of the temporary directories (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep each run's directory (configs, logs, output)")
    p.add_argument("--no-verify", action="store_true", help="skip checking the stored sequence numbers")
    args = p.parse_args(argv)

    from receiver.cli.tls import write_selfsigned

    OurReceiver.segment_max_delay_ms = args.segment_max_delay_ms
    all_cases = make_cases(args.window)
    cases = []
    for name in args.cases.split(","):
        if name and name not in all_cases:
            p.error(f"unknown case {name!r}: {','.join(all_cases)}")
        if name:
            cases.append(all_cases[name])
    receivers: list[type[OurReceiver] | type[Rsyslog]] = []
    for name in args.receivers.split(","):
        cls = RECEIVERS[name]
        why = cls.available()
        if why:
            print(f"skipping {name}: {why}", file=sys.stderr)
        else:
            receivers.append(cls)
    skipped: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="transport-bench-", dir=args.tmp))
    try:
        written = write_selfsigned(base / "tls", name="localhost", sans=["localhost", "127.0.0.1"])
        certificate = Certificate(written.certificate_file, written.key_file)
        for case in cases:
            for rep in range(args.repeat):
                for cls in receivers:  # interleaved, so drift of the machine hits every receiver alike
                    why = Rsyslog.missing_for(case) if cls is Rsyslog else None
                    if why:
                        skipped[f"{case.name}/{cls.name}"] = why
                        continue
                    row = run_once(cls, case, args.messages, base, certificate, args)
                    row["repeat"] = rep
                    rows.append(row)
                    brief = {k: row.get(k) for k in ("msgs_per_second", "cpu_seconds", "acked_msgs_per_second", "stored")}
                    print(f"{case.name} #{rep} {cls.name}: {row.get('error') or brief} {row.get('check', '')}",
                          file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    for what, why in skipped.items():
        print(f"skipped {what}: {why}", file=sys.stderr)
    summary = summarise(rows)
    print(table(summary, all_cases))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "skipped": skipped,
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
