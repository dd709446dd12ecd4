"""Scenarios of bad input: fuzzed bytes, slow-loris connections, broken, oversize and non-UTF-8 frames."""

from __future__ import annotations

import collections
import contextlib
import functools
import random
import resource
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.blast import BlastSender, ali_line, ali_seq
from formats.framing import DatagramDeframer, StreamDeframer
from formats.parse import make_parser
from formats.record import Record
from formats.relp import RelpDeframer, RelpFramingError
from reliability.outcome import Outcome, Size, count_keys, scenario
from reliability.scenarios.ingest_support import (
    by_size,
    metric_total,
    prefix_seqs,
    stopping,
    wait_for,
    workspace,
)
from tests.support.processes import rss_kb
from tests.support.programs import LOOPBACK, REPO, Receiver, to_toml
from tests.support.senders import run_token

# -- (a) fuzzing the deframers and parsers ---------------------------------------------

_SEEDS = [
    b"<13>Oct 11 22:14:15 myhost app[123]: hello world",
    b"<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [ex@32473 iut=\"3\" k=\"v\\\"]\"] \xef\xbb\xbfmsg",
    b"<34>1 - - - - - -",
    b"0.1 sys_tag 1795323666 10.0.0.1 web-1 user.notice 0 app 705 - request 1 GET /",
    b"Oct  1 02:04:05 host su: pam",
    b"<13>Oct 11 2026 22:14:15 fw01 : %ASA-6-302013: Built",
    b"<999>Feb 29 24:61:61 h t[: x",
    b"2003-10-11T22:14:15+08:00 host app: iso",
    b"12 <13>abc\n\n7 <1>1 - \n",
    b"1 open 29 relp_version=0\ncommands=syslog\n2 syslog 5 hello\n",
]
_SEEDS += [p.read_bytes()[:2000] for p in sorted((REPO / "tests" / "fixtures" / "wire-samples").glob("*.bin"))[:8]]


def _splice(parts: tuple[bytes, int, bytes, int]) -> bytes:
    seed, at, junk, drop = parts
    at = min(at, len(seed))
    return seed[:at] + junk + seed[at + drop :]


_REGRESSIONS = [b'<0>1      [! !="" #=""]"]']
"""Inputs a fuzz run once broke a target with: checked first, every run."""

_DATA = st.one_of(
    st.binary(max_size=400),
    st.tuples(st.sampled_from(_SEEDS), st.integers(0, 400), st.binary(max_size=16), st.integers(0, 8)).map(_splice),
    st.lists(st.sampled_from(_SEEDS), max_size=6).map(b"\n".join),
)
_CHUNKS = st.lists(_DATA, max_size=6)


def _check_stream(args: tuple[list[bytes], str, int]) -> None:
    chunks, framing, limit = args
    deframer = StreamDeframer(framing=framing, max_frame_bytes=limit)  # type: ignore[arg-type]
    frames = [f for chunk in chunks for f in deframer.feed(chunk)] + deframer.finish()
    if any(len(f) > limit for f in frames):
        raise AssertionError(f"a frame over max_frame_bytes {limit}")
    if sum(map(len, frames)) > sum(map(len, chunks)):
        raise AssertionError("more frame bytes out than stream bytes in")


def _check_datagram(args: tuple[bytes, int]) -> None:
    datagram, limit = args
    frames = DatagramDeframer(max_frame_bytes=limit).feed(datagram)
    if any(len(f) > limit for f in frames):
        raise AssertionError(f"a frame over max_frame_bytes {limit}")


def _check_relp(args: tuple[list[bytes], int]) -> None:
    chunks, limit = args
    deframer = RelpDeframer(limit)
    try:
        frames = [f for chunk in chunks for f in deframer.feed(chunk)] + deframer.finish()
    except RelpFramingError:
        return  # documented: the session ends with serverclose
    if any(len(f.data) > limit for f in frames):
        raise AssertionError(f"RELP data over {limit}")


_PARSERS = {
    name: make_parser(**options)  # type: ignore[arg-type]
    for name, options in {
        "auto": {"format": "auto"},
        "streamlog": {"format": "streamlog"},
        "rfc5424": {"format": "rfc5424"},
        "rfc5424-strict": {"format": "rfc5424", "strict_rfc5424": True},
        "rfc3164": {"format": "rfc3164"},
        "rfc3164-shanghai": {"format": "rfc3164", "default_tz": ZoneInfo("Asia/Shanghai")},
        "auto-keep-space": {"format": "auto", "leading_space": "keep"},
    }.items()
}
_RECEIVE_NS = st.one_of(st.integers(0, 2**63 - 1), st.integers(1_700_000_000, 1_900_000_000).map(lambda s: s * 10**9))


def _check_parser(name: str) -> Callable[[tuple[bytes, int]], None]:
    parse = _PARSERS[name]

    def check(args: tuple[bytes, int]) -> None:
        frame, receive_ns = args
        record = parse(frame, "192.0.2.1", receive_ns)
        if not isinstance(record, Record) or not 0 <= record.time_ns < 10**9:
            raise AssertionError(f"{name}: not a record with time_ns in range: {record!r}")
        list(record.fields)  # every field readable

    return check


_TARGETS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], None]]] = [
    ("StreamDeframer", st.tuples(_CHUNKS, st.sampled_from(["auto", "lf", "octet"]), st.integers(1, 300)), _check_stream),
    ("DatagramDeframer", st.tuples(_DATA, st.integers(1, 300)), _check_datagram),
    ("RelpDeframer", st.tuples(_CHUNKS, st.integers(1, 300)), _check_relp),
    *((f"parse[{name}]", st.tuples(_DATA, _RECEIVE_NS), _check_parser(name)) for name in _PARSERS),
]


def _hypothesis_round(
    strategy: st.SearchStrategy[Any], check: Callable[[Any], None], counted: Callable[[], None]
) -> Callable[[], None]:
    """One hypothesis run of 100 examples of ``strategy`` through ``check`` (shrunk on failure)."""

    @settings(max_examples=100, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(data: Any) -> None:
        counted()
        check(data)

    return run


@scenario(
    "bad_input_fuzz",
    "hypothesis over the stream, datagram and RELP deframers and every parser for a fixed time: no exception "
    "(RELP's documented framing error aside), no frame over the limit",
)
def bad_input_fuzz(size: Size) -> Outcome:
    """Rounds of 100 examples per target until the budget is spent; a target that fails stops (shrunk example in the failure)."""
    budget = by_size(size, 3.0, 60.0)
    examples: collections.Counter[str] = collections.Counter()
    failures: dict[str, str] = {}
    for name in _PARSERS:
        for frame in _REGRESSIONS:
            examples[f"parse[{name}]"] += 1
            try:
                _check_parser(name)((frame, 0))
            except Exception as e:  # the failure is the finding
                failures[f"parse[{name}]"] = f"{type(e).__name__}: {e} on {frame!r}"
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        for name, strategy, check in _TARGETS:
            if name in failures or time.monotonic() >= deadline:
                continue

            run = _hypothesis_round(strategy, check, functools.partial(examples.update, (name,)))
            try:
                run()
            except Exception as e:  # the failure is the finding
                failures[name] = f"{type(e).__name__}: {str(e)[:400]}"
    out = Outcome(sent=sum(examples.values()))
    out.notes.update(budget_seconds=budget, **{f"examples_{k}": v for k, v in sorted(examples.items())})
    for name, failure in failures.items():
        out.expect(False, f"{name}: {failure}")
    return out


# -- (b) slow-loris -------------------------------------------------------------------

_PER_SOURCE = 900
"""Slow connections per 127.0.0.x source address: under the default max_connections_per_source (1,000)."""


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _slow_line(i: int) -> bytes:
    return b"<13>Oct 11 22:14:15 slowhost slow[%d]: drip drip drip drip drip drip drip drip drip\n" % i


@scenario(
    "bad_input_slowloris",
    "many connections each dribbling a byte a second: a normal sender's lines all arrive within the stated "
    "bound, the receiver's RSS stays under its bound, and each slow frame arrives, flagged incomplete, at close",
)
def bad_input_slowloris(size: Size) -> Outcome:
    """Slow connections from 127.0.0.2, .3, ... (900 each), opened first; the normal sender sends while they drip.

    The listener's ``max_connections`` is raised to the slow count plus 100: the default, 10,000,
    is a global limit and 10,000 slow connections would otherwise lock everyone else out (which is
    what the limit is for; the figures here are about memory and latency, not admission).
    """
    slow_count = by_size(size, 300, 10_000)
    normal_n = by_size(size, 20_000, 200_000)
    latency_bound, rss_bound = by_size(size, (5.0, 150 * 2**20), (10.0, 200 * 2**20))
    drip_seconds = by_size(size, 4, 15)
    soft = _raise_nofile(slow_count + 1000)
    run = run_token()
    out = Outcome(sent=normal_n + slow_count)
    out.expect(soft >= slow_count + 100, f"RLIMIT_NOFILE {soft}: too low for {slow_count} connections")
    with workspace("slowloris") as work, stopping() as stop_later:
        listener = {"name": "tcp", "transport": "tcp", "address": LOOPBACK, "port": 0, "framing": "auto",
                    "max_connections": slow_count + 100}
        rx = Receiver(work / "receiver", tcp=True, udp=False)
        listener["port"] = rx.port
        rx.config["listeners"] = [listener]
        rx.config_path.write_text(to_toml(rx.config))
        stop_later(rx)
        rx.start()
        assert rx.pid is not None
        rss_idle = (rss_kb(rx.pid) or 0) * 1024
        slow: list[socket.socket] = []
        opened = time.monotonic()
        try:
            for i in range(slow_count):
                s = socket.socket()
                slow.append(s)
                s.bind((f"127.0.0.{2 + i // _PER_SOURCE}", 0))
                s.settimeout(10)
                s.connect((LOOPBACK, rx.port))
                s.setblocking(False)
                s.send(_slow_line(i)[:1])
            out.notes["seconds_to_open_slow"] = round(time.monotonic() - opened, 1)
            sent_bytes = [1] * slow_count
            stop = threading.Event()
            rss_peak = [(rss_kb(rx.pid) or 0) * 1024]

            def drip() -> None:
                while not stop.wait(1.0):
                    for i, s in enumerate(slow):
                        with contextlib.suppress(OSError):  # a full or reset socket: the count says what went
                            sent_bytes[i] += s.send(_slow_line(i)[sent_bytes[i] : sent_bytes[i] + 1])
                    if rx.pid is not None:
                        rss_peak[0] = max(rss_peak[0], (rss_kb(rx.pid) or 0) * 1024)

            dripper = threading.Thread(target=drip, name="slowloris", daemon=True)
            dripper.start()
            time.sleep(1.5)  # a byte or two into every slow frame
            started = time.monotonic()
            blast = BlastSender(rx.port, normal_n, width=100, run=run, rate=by_size(size, None, 50_000))
            stop_later(blast)
            blast.start()
            arrived = wait_for(lambda: rx.frame_count() >= normal_n, timeout=60, interval=0.05)
            latency = time.monotonic() - started
            remaining = drip_seconds - (time.monotonic() - started)
            if remaining > 0:
                time.sleep(remaining)
            stop.set()
            dripper.join(30)
            rss_peak[0] = max(rss_peak[0], (rss_kb(rx.pid) or 0) * 1024)
            refused = metric_total(rx.metrics_url, "receiver_connections_refused_total")
        finally:
            for s in slow:
                s.close()
        all_in = wait_for(lambda: rx.frame_count() >= normal_n + slow_count, timeout=60)
        flagged = rx.flagged_frames()
        log = rx.current_log
    normal = [f for f, _ in flagged if f.startswith(b"0.1 ")]
    seqs, altered = prefix_seqs(normal, lambda s: ali_line(s, width=100, run=run), ali_seq)
    lost, duplicated, unexpected = count_keys(range(normal_n), seqs)
    slow_frames = collections.Counter(f for f, flags in flagged if f.startswith(b"<13>") and flags == ("incomplete",))
    want_slow = collections.Counter(_slow_line(i)[: sent_bytes[i]] for i in range(slow_count))
    out.stored = len(flagged)
    out.lost = lost + sum((want_slow - slow_frames).values())
    out.duplicated = duplicated
    out.notes.update(
        slow_connections=slow_count, normal_lines=normal_n, normal_seconds=round(latency, 2),
        normal_bound_seconds=latency_bound, rss_idle_mib=round(rss_idle / 2**20, 1),
        rss_peak_mib=round(rss_peak[0] / 2**20, 1), rss_bound_mib=rss_bound // 2**20,
        slow_bytes_sent=sum(sent_bytes), refused=int(refused),
    )
    out.expect(arrived and latency <= latency_bound, f"normal lines: arrived {arrived} in {latency:.1f} s (bound {latency_bound} s)")
    out.expect(rss_peak[0] <= rss_bound, f"RSS peaked at {rss_peak[0] / 2**20:.0f} MiB (bound {rss_bound // 2**20} MiB)")
    out.expect((lost, duplicated, unexpected, altered) == (0, 0, 0, 0),
               f"normal lines: lost {lost}, duplicated {duplicated}, unexpected {unexpected}, altered {altered}")
    out.expect(all_in and slow_frames == want_slow,
               f"slow frames: {sum(slow_frames.values())} of {slow_count} arrived as sent, flagged incomplete")
    out.expect(refused == 0, f"{refused:g} connections refused")
    out.expect("open files are limited" not in log, "the receiver could not raise its open-files limit")
    return out


# -- (c) broken, oversize and non-UTF-8 frames -----------------------------------------

_MAX_FRAME = 4096
Expected = list[tuple[bytes, tuple[str, ...]]]


def _connection_plan(rng: random.Random, i: int) -> tuple[bytes, Expected, collections.Counter[str]]:
    """What connection ``i`` sends (LF or octet framing, chosen at random) and what the spool must hold."""
    octet = rng.random() < 0.5
    data = bytearray()
    expected: Expected = []
    kinds: collections.Counter[str] = collections.Counter()
    for j in range(rng.randrange(0, 12)):
        kind = rng.choice(["plain", "plain", "invalid-utf8", "oversize"])
        head = b"<13>Oct 11 22:14:15 h%d app[%d]: %s " % (i, j, kind.encode())
        if kind == "plain":
            payload = head + bytes(rng.choice(b"abcdefghij \t") for _ in range(rng.randrange(0, 200)))
        elif kind == "invalid-utf8":
            body = bytes(rng.choice([0xFF, 0xC3, 0x80, 0xE6, 0x97, 0xFE, 0x41, 0x00]) for _ in range(rng.randrange(1, 100)))
            payload = head + body
        else:
            payload = head + b"O" * rng.randrange(_MAX_FRAME, 4 * _MAX_FRAME)
        kinds[kind] += 1
        if octet:
            data += b"%d %s" % (len(payload), payload)
        else:
            data += payload + b"\n"
        if len(payload) > _MAX_FRAME:
            expected.append((payload[:_MAX_FRAME], (f"truncated:{len(payload)}",)))
        else:
            expected.append((payload, ()))
    if rng.random() < 0.5:  # the sender goes away mid-frame
        payload = b"<13>Oct 11 22:14:15 h%d app: cut short " % i + b"c" * rng.randrange(0, 300)
        cut = rng.randrange(1, len(payload))
        data += (b"%d %s" % (len(payload), payload[:cut])) if octet else payload[:cut]
        expected.append((payload[:cut], ("incomplete",)))
        kinds["cut-mid-frame"] += 1
    return bytes(data), expected, kinds


@scenario(
    "bad_input_frames",
    "connections closing mid-frame, lines over max_frame_bytes and invalid UTF-8, in random chunks: every "
    "frame stored exactly (cut ones flagged truncated, broken ones incomplete, bytes kept), and counted",
)
def bad_input_frames(size: Size) -> Outcome:
    """A seeded plan per connection, sent in random chunk sizes by 8 threads; compared per connection."""
    connections = by_size(size, 200, 3000)
    rng = random.Random(20261231)
    plans = [_connection_plan(rng, i) for i in range(connections)]
    kinds = sum((k for _, _, k in plans), collections.Counter())
    total = sum(len(e) for _, e, _ in plans)
    out = Outcome(sent=total)
    with workspace("bad-frames") as work, stopping() as stop_later:
        # NUL is one of the invalid bytes sent: kept as a message byte here (auto framing would end frames at it).
        listener = {"name": "tcp", "transport": "tcp", "address": LOOPBACK, "port": 0, "max_frame_bytes": _MAX_FRAME,
                    "nul_ends_frame": False}
        rx = Receiver(work / "receiver", tcp=True, udp=False)
        listener["port"] = rx.port
        rx.config["listeners"] = [listener]
        rx.config_path.write_text(to_toml(rx.config))
        stop_later(rx)
        rx.start()
        by_port: dict[int, int] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def send(worker: int) -> None:
            chunker = random.Random(worker)
            for i in range(worker, connections, 8):
                data = plans[i][0]
                try:
                    with socket.create_connection((LOOPBACK, rx.port), timeout=30) as s:
                        with lock:
                            by_port[s.getsockname()[1]] = i
                        pos = 0
                        while pos < len(data):
                            step = chunker.choice([1, 7, 100, 1500, 65536])
                            s.sendall(data[pos : pos + step])
                            pos += step
                except OSError as e:
                    errors.append(f"connection {i}: {e}")

        threads = [threading.Thread(target=send, args=(w,), daemon=True) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        # The connections are not ordered among themselves: each one's last expected frame is its sentinel (a
        # cut one is ended by the close, the last thing on it). Once every connection's has come, all it sent has.
        last = {port: plans[i][1][-1] for port, i in by_port.items() if plans[i][1]}

        def every_connection_ended() -> bool:
            frames = {port: frames for (_, port), frames in rx.frames_by_connection().items()}
            return all(want in [(bytes(f), flags) for f, flags in frames.get(port, [])] for port, want in last.items())

        wait_for(every_connection_ended, timeout=60)
        got = rx.frames_by_connection()
        truncated_metric = metric_total(rx.metrics_url, "receiver_frames_truncated_total")
        incomplete_metric = metric_total(rx.metrics_url, "receiver_frames_incomplete_total")
    wrong = 0
    stored = 0
    for (_, port), frames in got.items():
        stored += len(frames)
        i = by_port.get(port)
        if i is None or [(bytes(f), flags) for f, flags in frames] != plans[i][1]:
            wrong += 1
    missing_connections = sum(1 for port, i in by_port.items() if plans[i][1] and not any(p == port for _, p in got))
    out.stored = stored
    out.lost = max(0, total - stored)
    out.duplicated = max(0, stored - total)
    out.notes.update(connections=connections, **{k.replace("-", "_"): v for k, v in sorted(kinds.items())},
                     truncated_counted=int(truncated_metric), incomplete_counted=int(incomplete_metric))
    out.expect(not errors, f"{len(errors)} send errors, first {errors[:1]}")
    out.expect(wrong == 0 and missing_connections == 0,
               f"{wrong} connections stored other than sent, {missing_connections} missing")
    out.expect(truncated_metric == kinds["oversize"], f"truncated counted {truncated_metric:g}, sent {kinds['oversize']}")
    out.expect(incomplete_metric == kinds["cut-mid-frame"],
               f"incomplete counted {incomplete_metric:g}, cut {kinds['cut-mid-frame']}")
    return out

