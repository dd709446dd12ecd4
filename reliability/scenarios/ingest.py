"""Scenarios of the receiving side: crashes, stops, restarts under load, a full disk.

Bad input is in :mod:`reliability.scenarios.ingest_input`, clocks in
:mod:`reliability.scenarios.ingest_clock`. Every scenario starts its own
receiver (and sender) in a temporary directory, talks over loopback only and
stops what it started by PID. The harness and the load are the integration
tests' (``tests/support/programs.py``, ``bench/blast.py``), and so are
the bounds: the kill -9 bound is computed as in
``test_kill9_mid_flood_loses_at_most_the_commit_window_and_socket_buffers``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.blast import BlastSender, TcpStream, ali_line, ali_seq, build_lines, line_seq
from reliability.outcome import Outcome, Size, count_keys, scenario
from reliability.scenarios.ingest_support import (
    by_size,
    prefix_seqs,
    stopping,
    wait_for,
    workspace,
)
from tests.support.flood import KILL_SPOOL, kill9_loss_bound_bytes, socket_queues
from tests.support.programs import LOOPBACK, Receiver, Rsyslog, free_port, to_toml
from tests.support.senders import (
    OMRELP_WINDOW,
    alibaba_rsyslog_conf,
    omrelp_conf,
    relp_listener,
    run_token,
    sentinel_line,
    sentinel_mark,
)

WIDTH = 100
"""Bytes per blast line, LF included."""


def _tcp_only() -> dict[str, object]:
    return {"tcp": True, "udp": False}


# -- kill -9 under a plain TCP flood ---------------------------------------------


@scenario(
    "kill9_tcp",
    "kill -9 mid-flood of plain TCP, restart: the spool is an exact prefix of what was sent (no gap, "
    "no duplicate, byte-exact), needs no repair, and loses at most one commit window plus socket buffers",
)
def kill9_tcp(size: Size) -> Outcome:
    """One flood per round (flat out, or paced), the receiver killed at a fraction of it, restarted.

    The bound is the integration test's: (memory high watermark + one read + tcp_rmem max +
    SO_SNDBUF) / line width + one chunk of the sender.
    """
    rounds: list[tuple[int, float | None, float]] = by_size(
        size,
        [(150_000, 50_000, 0.3)],
        [(1_000_000, None, 0.25), (600_000, 50_000, 0.5), (600_000, 100_000, 0.75)],
    )
    out = Outcome(sent=0, stored=0)
    for number, (n, rate, kill_at) in enumerate(rounds, 1):
        _kill9_round(out, f"round {number} ({'paced' if rate else 'flat out'}, killed at {kill_at:.0%})",
                     f"round{number}", n, rate, kill_at)
    return out


def _kill9_round(out: Outcome, tag: str, key: str, n: int, rate: float | None, kill_at: float) -> None:
    """One flood of ``n`` lines, the receiver killed once ``kill_at`` of them are committed; adds to ``out``."""
    with workspace("kill9-tcp") as work, stopping() as stop_later:
        run = run_token()
        rx = Receiver(work / "receiver", spool=KILL_SPOOL, **_tcp_only())  # type: ignore[arg-type]
        stop_later(rx)
        rx.start()
        blast = BlastSender(rx.port, n, width=WIDTH, sndbuf=256 * 1024, rate=rate, run=run)
        stop_later(blast)
        blast.start()
        if not wait_for(lambda: rx.frame_count() >= n * kill_at, timeout=60):
            out.expect(False, f"{tag}: {rx.frame_count()} frames after 60 s; log:\n{rx.log_tail(20)}")
            return
        committed_before = rx.frame_count()
        queues = socket_queues(rx.port)
        mid_flood = not blast.done
        rc = rx.kill()
        blast.join(60)
        rx.start()
        stats = rx.spool_stats()
        seqs, altered = prefix_seqs(rx.frames(), lambda s: ali_line(s, width=WIDTH, run=run), ali_seq)
        rx.terminate()
    lost, duplicated, unexpected = count_keys(range(blast.lines_sent), seqs)
    bound = kill9_loss_bound_bytes(blast.sndbuf) // WIDTH + blast.chunk_lines
    out.sent += blast.lines_sent
    out.stored = (out.stored or 0) + len(seqs)
    out.lost += lost
    out.duplicated += duplicated
    out.notes[f"{key}_lost_lines"] = lost
    out.notes[f"{key}_bound_lines"] = bound
    out.notes[f"{key}_recv_q_before_kill"] = sum(q for q, _ in queues)
    out.expect(rc == -9, f"{tag}: exit status {rc}, not -9")
    out.expect(mid_flood, f"{tag}: the flood was over before the kill")
    out.expect(seqs == list(range(len(seqs))), f"{tag}: the spool is not an exact prefix (gap or reorder)")
    out.expect(altered == 0 and unexpected == 0, f"{tag}: {altered} frames altered, {unexpected} unexpected")
    out.expect(duplicated == 0, f"{tag}: {duplicated} duplicates")
    out.expect(stats.quarantined == 0, f"{tag}: {stats.quarantined} segments quarantined at restart")
    out.expect(len(seqs) >= committed_before, f"{tag}: {committed_before} committed before, {len(seqs)} after")
    out.expect(lost <= bound, f"{tag}: lost {lost} lines, bound {bound}")


# -- RELP: kill -9 and restarts under omrelp -----------------------------------------

_RELP_MARK = re.compile(rb"relp (r[0-9a-f]{8}) (\d+) ")


def _relp_lines(run: str, n: int) -> list[bytes]:
    return [b"<13>Oct 11 22:14:15 myhost relp[1]: relp %s %07d message" % (run.encode(), i) for i in range(n)]


def _relp_keys(rx: Receiver, run: str) -> list[int]:
    token = run.encode()
    return [int(m.group(2)) for f in rx.frames() if (m := _RELP_MARK.search(f)) and m.group(1) == token]


class _Injector:
    """``rsyslog.send`` of ``lines`` on a thread (paced), so the load runs while the receiver is stopped."""

    def __init__(self, rsyslog: Rsyslog, lines: list[bytes], *, chunk_lines: int, pause: float) -> None:
        self.sent: list[int] = []
        self.errors: list[BaseException] = []

        def send() -> None:
            try:
                self.sent.append(rsyslog.send(lines, chunk_lines=chunk_lines, pause=pause, timeout=600))
            except Exception as e:  # reported in the outcome, not lost on a thread
                self.errors.append(e)

        self.thread = threading.Thread(target=send, name="rsyslog-inject", daemon=True)
        self.thread.start()


def _relp_receiver(work: Path, **options: object) -> Receiver:
    port = free_port()
    return Receiver(work / "receiver", port=port, listeners=[relp_listener(port)], **options)  # type: ignore[arg-type]


def _settle(rx: Receiver, rsyslog: Rsyslog, run: str, n: int, timeout: float) -> tuple[list[int], float]:
    """Wait until every key of ``range(n)`` is stored (or ``timeout``), then for a sentinel behind late resends.

    omrelp re-sends what was unacknowledged when its session reopened before
    anything newer, so once the sentinel, injected last, is stored, so is every resend.
    """
    started = time.monotonic()
    wait_for(lambda: len(set(_relp_keys(rx, run))) >= n, timeout=timeout, interval=0.5)
    took = time.monotonic() - started
    _sentinel_through(rx, rsyslog, run)
    return _relp_keys(rx, run), took


def _sentinel_through(rx: Receiver, rsyslog: Rsyslog, run: str) -> None:
    """Inject the sentinel of ``run`` through ``rsyslog`` and wait (bounded) until the receiver stored it."""
    rsyslog.send([sentinel_line(run)])
    mark = sentinel_mark(run)
    wait_for(lambda: any(mark in frame for frame in rx.frames()), timeout=60, interval=0.2)


@scenario(
    "kill9_relp",
    "rsyslog omrelp -> RELP listener, kill -9 mid-flood, restart: lost 0, duplicates at most omrelp's window",
)
def kill9_relp(size: Size) -> Outcome:
    """A long commit window (100 ms), so a receiver that acknowledged on reading would lose messages."""
    n = by_size(size, 4_000, 40_000)
    run = run_token()
    with workspace("kill9-relp") as work, stopping() as stop_later:
        rx = _relp_receiver(work, spool={"segment_max_delay_ms": 100})
        stop_later(rx)
        rx.start()
        rsyslog = Rsyslog(work / "rsyslog", omrelp_conf(rx.port))
        stop_later(rsyslog)
        rsyslog.start()
        injector = _Injector(rsyslog, _relp_lines(run, n), chunk_lines=100, pause=0.01)
        out = Outcome(sent=n)
        out.expect(wait_for(lambda: len(_relp_keys(rx, run)) >= n // 4, timeout=60), "not a quarter stored in 60 s")
        stored_at_kill = len(_relp_keys(rx, run))
        rx.kill()
        rx.start()
        injector.thread.join(600)
        keys, took = _settle(rx, rsyslog, run, n, timeout=by_size(size, 60, 180))
        stats = rx.spool_stats()
    lost, duplicated, unexpected = count_keys(range(n), keys)
    out.stored, out.lost, out.duplicated = len(keys), lost, duplicated
    out.notes.update(stored_at_kill=stored_at_kill, seconds_to_complete_after_restart=round(took, 1), window=OMRELP_WINDOW)
    out.expect(injector.sent == [n] and not injector.errors, f"rsyslog read {injector.sent} lines: {injector.errors}")
    out.expect(lost == 0, f"{lost} of {n} lost")
    out.expect(duplicated <= OMRELP_WINDOW, f"{duplicated} duplicates, more than the window of {OMRELP_WINDOW}")
    out.expect(unexpected == 0 and stats.quarantined == 0, f"{unexpected} unexpected frames, {stats.quarantined} quarantined")
    return out


@scenario(
    "restart_loop",
    "K restarts (SIGTERM, then kill -9, alternately) under a steady omrelp load: lost 0, duplicates at "
    "most omrelp's window per restart",
)
def restart_loop(size: Size) -> Outcome:
    """Restarts every ``interval`` s while rsyslog injects at a steady pace; rsyslog's queue holds the rest."""
    restarts, interval = by_size(size, (4, 1.0), (12, 1.5))
    n = by_size(size, 16_000, 100_000)
    chunk, pause = by_size(size, (50, 0.025), (100, 0.03))  # about 2,000 and 3,300 lines/s
    run = run_token()
    out = Outcome(sent=n)
    kinds: collections.Counter[str] = collections.Counter()
    with workspace("restart-loop") as work, stopping() as stop_later:
        rx = _relp_receiver(work, spool={"segment_max_delay_ms": 20})
        stop_later(rx)
        rx.start()
        rsyslog = Rsyslog(work / "rsyslog", omrelp_conf(rx.port))
        stop_later(rsyslog)
        rsyslog.start()
        injector = _Injector(rsyslog, _relp_lines(run, n), chunk_lines=chunk, pause=pause)
        sigterm_exits: list[int] = []
        for i in range(restarts):
            time.sleep(interval)
            if i % 2 == 0:
                sigterm_exits.append(rx.terminate(timeout=30))
                kinds["sigterm"] += 1
            else:
                rx.kill()
                kinds["kill9"] += 1
            if injector.thread.is_alive():
                kinds["during_load"] += 1
            rx.start()
        injector.thread.join(600)
        keys, took = _settle(rx, rsyslog, run, n, timeout=by_size(size, 60, 180))
        stats = rx.spool_stats()
    lost, duplicated, unexpected = count_keys(range(n), keys)
    out.stored, out.lost, out.duplicated = len(keys), lost, duplicated
    out.notes.update(
        restarts=restarts, sigterm=kinds["sigterm"], kill9=kinds["kill9"],
        seconds_to_complete_after_last_restart=round(took, 1),
    )
    out.expect(injector.sent == [n] and not injector.errors, f"rsyslog read {injector.sent} lines: {injector.errors}")
    out.expect(kinds["during_load"] == restarts, f"only {kinds['during_load']} of {restarts} restarts under load")
    out.expect(all(rc == 0 for rc in sigterm_exits), f"SIGTERM exit statuses {sigterm_exits}")
    out.expect(lost == 0, f"{lost} of {n} lost")
    out.expect(duplicated <= OMRELP_WINDOW * restarts, f"{duplicated} duplicates, more than {OMRELP_WINDOW} per restart")
    out.expect(unexpected == 0 and stats.quarantined == 0, f"{unexpected} unexpected frames, {stats.quarantined} quarantined")
    return out


# -- SIGTERM under rsyslog's disk-assisted queue -----------------------------------------

_ALI_MARK = re.compile(rb"ali (r[0-9a-f]{8}) (\d+) flood")


@scenario(
    "sigterm_tcp",
    "SIGTERM mid-flood from rsyslog with Alibaba's disk-assisted queue, restart: lost 0 (duplicates counted)",
)
def sigterm_tcp(size: Size) -> Outcome:
    """As ``test_sigterm_mid_flood_with_rsyslog_disk_queue_loses_nothing``, at a size that can be chosen."""
    n = by_size(size, 10_000, 100_000)
    run = run_token()
    token = run.encode()
    lines = [b"<13>Oct 11 22:14:15 myhost flood[1]: ali %s %07d flood" % (token, i) for i in range(n)]

    def keys(rx: Receiver) -> list[int]:
        return [int(m.group(2)) for f in rx.frames() if (m := _ALI_MARK.search(f)) and m.group(1) == token]

    out = Outcome(sent=n)
    with workspace("sigterm-tcp") as work, stopping() as stop_later:
        rx = Receiver(work / "receiver", shutdown={"drain_seconds": 2}, **_tcp_only())  # type: ignore[arg-type]
        stop_later(rx)
        rx.start()
        rsyslog = Rsyslog(work / "rsyslog", alibaba_rsyslog_conf(rx.port, extra="$ActionResumeInterval 1"))
        stop_later(rsyslog)
        rsyslog.start()
        injector = _Injector(rsyslog, lines, chunk_lines=250, pause=by_size(size, 0.05, 0.02))
        out.expect(wait_for(lambda: rx.frame_count() >= n // 5, timeout=60), "not a fifth stored in 60 s")
        at_sigterm = rx.frame_count()
        rc = rx.terminate(timeout=30)
        at_exit = rx.frame_count()
        rx.start()
        restarted = time.monotonic()
        injector.thread.join(600)
        wait_for(lambda: count_keys(range(n), keys(rx))[0] == 0, timeout=by_size(size, 45, 120), interval=0.5)
        took = time.monotonic() - restarted
        _sentinel_through(rx, rsyslog, run)  # rsyslog's queue is in order: behind any re-sent tail
        got = keys(rx)
    lost, duplicated, unexpected = count_keys(range(n), got)
    out.stored, out.lost, out.duplicated = len(got), lost, duplicated
    out.notes.update(stored_at_sigterm=at_sigterm, stored_at_exit=at_exit, seconds_to_complete_after_restart=round(took, 1))
    out.expect(injector.sent == [n] and not injector.errors, f"rsyslog read {injector.sent} lines: {injector.errors}")
    out.expect(rc == 0, f"exit status {rc} after SIGTERM")
    out.expect(lost == 0, f"{lost} of {n} lost")
    out.expect(unexpected == 0, f"{unexpected} unexpected frames")
    return out


# -- a full spool ----------------------------------------------------------------------

def _disk_spool(max_bytes: int) -> dict[str, object]:
    # A low memory watermark: reading may not run more than 2 MiB ahead of the commits, or a fast
    # machine reads every line into memory before the disk limit is seen and the sender is never held.
    return {
        "max_bytes": max_bytes, "segment_max_bytes": 16 * 1024, "when_full": "backpressure",
        "memory_high_watermark_bytes": 2 * 1024 * 1024, "memory_low_watermark_bytes": 1024 * 1024,
    }


def _frame_count(rx: Receiver) -> int:
    """Frames committed; -1 when the spool cannot be read (opening a reader writes to SQLite: a full disk refuses)."""
    try:
        return rx.frame_count()
    except sqlite3.Error:
        return -1


def _frames_held(rx: Receiver) -> int:
    try:
        return sum(len(entry.frames) for entry in rx.entries())
    except sqlite3.Error:
        return -1


def _blocked(stream: TcpStream, rx: Receiver, seconds: float, timeout: float = 20.0) -> tuple[bool, int, int]:
    """Whether ``stream`` comes to send nothing for ``seconds`` on end (within ``timeout``):
    (blocked, the sender's unacknowledged bytes, the receiver's Recv-Q bytes).

    Measured at the sender (``lines_sent``, SIOCOUTQ) and with ``ss``: the spool cannot always be
    read meanwhile (a full file system refuses the reader).
    """
    deadline = time.monotonic() + timeout
    while True:
        before = stream.lines_sent
        time.sleep(seconds)
        blocked = stream.lines_sent == before and not stream.done
        if blocked or time.monotonic() >= deadline:
            return blocked, stream.unsent_bytes(), sum(q for q, _ in socket_queues(rx.port))


@scenario(
    "disk_full",
    "the spool reaches max_bytes (backpressure, delivery off): the TCP sender is paused, nothing it handed "
    "over is lost; restarted with a bigger max_bytes, every message arrives exactly once",
)
def disk_full(size: Size) -> Outcome:
    """A polite sender (stops at the receiver's FIN) floods a small spool; the stop drains what it wrote.

    Then it goes on from the line after the last one it wrote, as a sender that watches its
    socket would, to the same receiver restarted with a 64 MiB limit.
    """
    # ALI blast lines compress about 20:1: the limit is reached at about a quarter of the lines.
    n, max_bytes = by_size(size, (300_000, 512 * 1024), (1_000_000, 1024 * 1024))
    run = run_token()
    out = Outcome(sent=n)
    with workspace("disk-full") as work, stopping() as stop_later:
        rx = Receiver(work / "receiver", spool=_disk_spool(max_bytes), **_tcp_only())  # type: ignore[arg-type]
        stop_later(rx)
        rx.start()
        first = BlastSender(rx.port, n, width=WIDTH, polite=True, sndbuf=256 * 1024, run=run, timeout=300)
        stop_later(first)
        first.start()
        paused = wait_for(lambda: "backpressure on (disk)" in rx.current_log, timeout=60)
        out.expect(paused, "the disk limit never paused reading")
        blocked, unacked, recv_q = _blocked(first, rx, 2.0)
        limit_stats = rx.spool_stats()
        out.notes.update(
            sender_blocked_2s=blocked, sender_unacked_bytes=unacked, receiver_recv_q_bytes=recv_q,
            spool_bytes_at_pause=limit_stats.bytes, max_bytes=max_bytes,
            lines_sent_at_pause=first.lines_sent, frames_at_pause=limit_stats.frames,
        )
        out.expect(blocked and unacked > 0, f"the sender was not held: blocked {blocked}, unacked {unacked} bytes")
        rc = rx.terminate(timeout=60)  # drains what the sender wrote; the polite sender stops at the FIN
        first.join(60)
        handed_over = first.lines_sent
        drained = rx.frame_count()
        out.notes.update(lines_sent_first=handed_over, spool_bytes_after_drain=rx.spool_stats().bytes)
        out.expect(rc == 0 and first.error is None, f"stop: exit {rc}, sender error {first.error!r}")
        out.expect(drained == handed_over, f"the sender handed over {handed_over} lines, {drained} stored")
        spool = rx.config["spool"]
        assert isinstance(spool, dict)
        spool["max_bytes"] = 64 * 1024 * 1024
        rx.config_path.write_text(to_toml(rx.config))
        rx.start()
        rest = TcpStream(LOOPBACK, rx.port, [ali_line(s, width=WIDTH, run=run) for s in range(handed_over, n)],
                         chunk_lines=1000, timeout=120)
        stop_later(rest)
        rest.start()
        rest.join(180)
        wait_for(lambda: rx.frame_count() >= n, timeout=60)
        seqs, altered = prefix_seqs(rx.frames(), lambda s: ali_line(s, width=WIDTH, run=run), ali_seq)
    lost, duplicated, unexpected = count_keys(range(n), seqs)
    out.stored, out.lost, out.duplicated = len(seqs), lost, duplicated
    out.expect(rest.error is None, f"second sender: {rest.error!r}")
    out.expect((lost, duplicated, unexpected, altered) == (0, 0, 0, 0),
               f"lost {lost}, duplicated {duplicated}, unexpected {unexpected}, altered {altered}")
    out.expect(seqs == list(range(n)), "not in the order sent")
    return out


@contextlib.contextmanager
def _tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def _can_mount() -> str | None:
    """None if this process may mount a tmpfs; otherwise why not."""
    if os.geteuid() != 0:
        return "not root"
    with workspace("mount-probe") as work:
        try:
            with _tmpfs(work / "probe", 1024 * 1024):
                return None
        except (subprocess.CalledProcessError, OSError) as e:
            return f"mount -t tmpfs failed: {e}"


@scenario(
    "disk_full_tmpfs",
    "the spool's file system fills (a real tmpfs: ENOSPC): commits are retried, the TCP sender is paused, "
    "nothing is lost; once the file system grows, every message arrives exactly once and the spool's "
    "counters match its frames, also after a restart",
)
def disk_full_tmpfs(size: Size) -> Outcome:
    """The spool on a small tmpfs (root only), grown with ``mount -o remount,size=`` while the sender waits.

    The lines are the bench's varied ALI lines (about 3.5:1 under lz4), so the compressed
    spool outgrows the file system; the memory watermark is 8 MiB, so the backlog of failed
    commits pauses reading soon.
    """
    why = _can_mount()
    if why is not None:
        out = Outcome(sent=0)
        out.notes["skipped"] = why
        return out
    # More than the file system, the memory watermark and both sockets' buffers (tcp_rmem max) hold.
    n, fs_bytes = by_size(size, (350_000, 4 * 1024 * 1024), (600_000, 16 * 1024 * 1024))
    lines = build_lines(n, "ali", 200)
    out = Outcome(sent=n)
    with workspace("disk-full-tmpfs") as work, _tmpfs(work / "fs", fs_bytes) as fs, stopping() as stop_later:
        spool = {"directory": str(fs / "spool"), "memory_high_watermark_bytes": 8 * 1024 * 1024,
                 "memory_low_watermark_bytes": 2 * 1024 * 1024}
        rx = Receiver(work / "receiver", spool=spool, **_tcp_only())  # type: ignore[arg-type]
        rx.spool_directory = fs / "spool"
        stop_later(rx)
        rx.start()
        sender = TcpStream(LOOPBACK, rx.port, lines, chunk_lines=1000, sndbuf=256 * 1024, timeout=300)
        stop_later(sender)
        sender.start()
        failed = wait_for(lambda: "spool commit failed" in rx.current_log, timeout=60)
        out.expect(failed, "the file system never filled (no failed commit logged)")
        wait_for(lambda: "backpressure on (memory)" in rx.current_log, timeout=30)
        blocked, unacked, recv_q = _blocked(sender, rx, 3.0)
        out.notes.update(
            fs_bytes=fs_bytes, sender_blocked_3s=blocked, sender_unacked_bytes=unacked, receiver_recv_q_bytes=recv_q,
            lines_sent_when_full=sender.lines_sent, frames_when_full=_frame_count(rx),
        )
        try:  # what an operator's `receiverctl spool` would do now
            rx.spool_stats()
            out.notes["reader_on_full_fs"] = "ok"
        except sqlite3.Error as e:
            out.notes["reader_on_full_fs"] = f"{type(e).__name__}: {e}"
        out.expect(blocked and unacked > 0, f"the sender was not held: blocked {blocked}, unacked {unacked} bytes")
        subprocess.run(["mount", "-o", f"remount,size={256 * 1024 * 1024}", str(fs)], check=True, timeout=30)
        grown = time.monotonic()
        sender.join(300)
        # Counted from the frames themselves: the spool's frame counter is what is being checked.
        complete = wait_for(lambda: _frames_held(rx) >= n, timeout=120, interval=0.5)
        out.notes["seconds_to_complete_after_growing"] = round(time.monotonic() - grown, 1)
        frames = rx.frames()
        stats = rx.spool_stats()
        rx.terminate(timeout=60)
        rx.start()
        after_restart = rx.spool_stats()
        frames_after_restart = len(rx.frames())
    keys = [line_seq(f) for f in frames]
    lost, duplicated, unexpected = count_keys(range(n), [k for k in keys if k is not None])
    altered = sum(1 for f, k in zip(frames, keys, strict=True) if k is None or f + b"\n" != lines[k])
    out.stored, out.lost, out.duplicated = len(frames), lost, duplicated
    out.notes.update(spool_frames_counter=stats.frames, spool_segments=stats.segments,
                     frames_after_restart=frames_after_restart, counter_after_restart=after_restart.frames)
    out.expect(complete and sender.error is None, f"complete {complete}, sender error {sender.error!r}")
    out.expect((lost, duplicated, unexpected, altered) == (0, 0, 0, 0),
               f"lost {lost}, duplicated {duplicated}, unexpected {unexpected}, altered {altered}")
    out.expect(stats.frames == len(frames), f"the spool counts {stats.frames} frames and holds {len(frames)}")
    out.expect(after_restart.quarantined == 0 and frames_after_restart == len(frames),
               f"after a restart: {after_restart.quarantined} quarantined, {frames_after_restart} frames")
    return out
