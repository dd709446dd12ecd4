"""In-memory blast sender: syslog load that costs the sender almost no CPU.

    python bench/blast.py --port 11111 [-n 1000000] [-c 1] [--format ali] [--framing lf]
    python bench/blast.py --port 11111 --transport udp --rate 200000

Every line is built BEFORE the clock starts (about 200 bytes each with the
LF, a sequence number in each, hosts, programs and pids varying the way a
fleet's do). TCP: each connection's lines are joined into one buffer and
written with one ``sendall``, so the sender's cost is the kernel's copy, not
Python. ``--mode threads`` (default) sends from one thread per connection,
``--mode procs`` from one forked process per connection; both are measured
(``cpu_seconds`` in the result; run with ``--compare-modes`` to see both).
UDP: one datagram per line (with its LF, as rsyslog and syslog-ng send), at
an optional bounded rate, since UDP has no flow control; the result says
what was sent.

As a module::

    from bench.blast import build_lines, send_tcp
    lines = build_lines(1_000_000, "ali")
    result = send_tcp("127.0.0.1", 11111, lines, connections=100)

The integration tests use it too: :func:`ali_line` builds fixed-width
ALI_LOG_FMT lines that :func:`ali_seq` reads the sequence number back from,
and :class:`BlastSender` sends them over one connection on a thread, watched
(``lines_sent``, ``unsent_bytes()``), paced or polite (stops at the peer's
FIN). Every TCP connection here, the bench's and the tests', is a
:class:`TcpStream`.

As a driver for another process (``ingest_bench.py``): ``--wait-go`` builds
and connects, prints ``ready``, waits for a line on stdin, sends, prints one
JSON result line, then (``--hold``) keeps the connections open until stdin
closes.

Sequence numbers: line ``i`` of the run carries ``seq i`` (0-based);
connection ``j`` of ``K`` carries the contiguous slice ``[j*N/K, (j+1)*N/K)``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import resource
import select
import socket
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

__all__ = [
    "FORMATS",
    "BlastSender",
    "SendResult",
    "TcpStream",
    "ali_line",
    "ali_seq",
    "build_lines",
    "frame_lines",
    "line_seq",
    "send_tcp",
    "send_udp",
    "split_even",
]

BASE_TIME = 1_795_323_666  # 2026-11-22T05:01:06Z, as in the captures
FORMATS = ("ali", "rfc3164", "rfc5424")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PATHS = ("/api/v1/items", "/api/v1/users/me", "/healthz", "/static/app.js", "/api/v2/orders", "/login")
METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
STATUSES = ("200", "200", "200", "201", "304", "404", "500")
SEVERITIES = (("user.notice", 13), ("user.info", 14), ("local4.notice", 165), ("auth.crit", 34), ("daemon.err", 27))
PAD_WORDS = b" lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt"
LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = 10.0  # loopback: a connection is accepted or refused at once


# -- lines ---------------------------------------------------------------------


def _trace(i: int) -> str:
    """A 16-hex-digit id that changes on every line (so compression stays honest)."""
    x = (i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return f"{x & 0xFFFFFFFFFFFFFFFF:016x}"


def _fit(text: str, size: int, pad: bytes = PAD_WORDS) -> bytes:
    """``text`` + LF, padded with ``pad`` repeated (or cut) to exactly ``size`` bytes."""
    raw = text.encode()
    body = size - 1
    if len(raw) < body:
        need = body - len(raw)
        raw += (pad * (need // len(pad) + 1))[:need]
    else:
        raw = raw[:body]
    return raw + b"\n"


def _ali_text(stamp: int, ip: str, host: str, pri_text: str, app: str, procid: int, msg: str) -> str:
    """The ALI_LOG_FMT layout (Logtail's rsyslog template), protocol version 0, no msgid."""
    return f"0.1 sys_tag {stamp} {ip} {host} {pri_text} 0 {app} {procid} - {msg}"


HOSTS = 100
"""The fleet the lines come from, by default: host ``web-N`` at 10.0.N/10.N%10 (a relay's sources)."""


def _fleet(i: int, hosts: int) -> tuple[int, str, int, int]:
    """Line ``i``'s host number (of ``hosts``), severity (name, PRI) and time (a second per 1,000 lines)."""
    sev, pri = SEVERITIES[i % 97 % 5]
    return i % hosts, sev, pri, BASE_TIME + i // 1000


def _ip(h: int) -> str:
    return f"10.{h // 2500}.{h // 10 % 250}.{h % 10}"  # 10.0.H/10.H%10 for the first 2,500


def _ali(i: int, size: int, hosts: int) -> bytes:
    h, sev, _, t = _fleet(i, hosts)
    return _fit(
        _ali_text(
            t, _ip(h), f"web-{h}", sev, f"app{i % 20}", 1000 + i % 977,
            f"request {i} {METHODS[i % 6]} {PATHS[i % 5]} status={STATUSES[i % 7]} "
            f"took={i % 997}ms bytes={(i * 37) % 50000} trace={_trace(i)}",
        ),
        size,
    )


def _rfc3164(i: int, size: int, hosts: int) -> bytes:
    h, _, pri, t = _fleet(i, hosts)
    st = time.gmtime(t)
    return _fit(
        f"<{pri}>{MONTHS[st.tm_mon - 1]} {st.tm_mday:2d} {st.tm_hour:02d}:{st.tm_min:02d}:{st.tm_sec:02d} "
        f"web-{h} app{i % 20}[{1000 + i % 977}]: request {i} {METHODS[i % 6]} {PATHS[i % 5]} "
        f"status={STATUSES[i % 7]} took={i % 997}ms trace={_trace(i)}",
        size,
    )


def _rfc5424(i: int, size: int, hosts: int) -> bytes:
    h, _, pri, t = _fleet(i, hosts)
    st = time.gmtime(t)
    stamp = (
        f"{st.tm_year:04d}-{st.tm_mon:02d}-{st.tm_mday:02d}T{st.tm_hour:02d}:{st.tm_min:02d}:"
        f"{st.tm_sec:02d}.{(i * 997) % 1_000_000:06d}Z"
    )
    return _fit(
        f"<{pri}>1 {stamp} web-{h} app{i % 20} {1000 + i % 977} ID{i % 50} "
        f'[req@32473 seq="{i}" status="{STATUSES[i % 7]}" method="{METHODS[i % 6]}"] '
        f"\ufeffrequest {i} {PATHS[i % 5]} took={i % 997}ms trace={_trace(i)}",
        size,
    )


_BUILDERS: dict[str, Callable[[int, int, int], bytes]] = {"ali": _ali, "rfc3164": _rfc3164, "rfc5424": _rfc5424}
_REQUEST_SEQ = re.compile(rb"request (\d+) ")


def build_lines(n: int, fmt: str = "ali", size: int = 200, start: int = 0, hosts: int = HOSTS) -> list[bytes]:
    """``n`` lines of ``fmt`` from ``hosts`` hosts in turn, each exactly ``size`` bytes including its LF,
    seq ``start..start+n-1``."""
    build = _BUILDERS[fmt]
    return [build(i, size, hosts) for i in range(start, start + n)]


def line_seq(line: bytes) -> int | None:
    """The sequence number of a :func:`build_lines` line, any format (None if it has none)."""
    match = _REQUEST_SEQ.search(line)
    return int(match.group(1)) if match else None


_ALI_SEQ = re.compile(rb"seq=(\d{10})")


def ali_line(seq: int, *, width: int = 100, run: str = "blast") -> bytes:
    """An ALI_LOG_FMT line (with LF) of exactly ``width`` bytes carrying ``seq=NNNNNNNNNN``.

    Every field is fixed but the sequence number and ``run`` (the app-name), so
    a stored frame can be checked byte for byte against ``ali_line(ali_seq(frame))``.
    """
    head = _ali_text(BASE_TIME, LOOPBACK, "web-1", "user.notice", run, 705, f"seq={seq:010d} ")
    if len(head.encode()) + 1 > width:
        raise ValueError(f"width {width} is too small for {head.encode()!r}")
    return _fit(head, width, pad=b"x")


def ali_seq(frame: bytes) -> int | None:
    """The ``seq=`` number of an :func:`ali_line` frame (None if it has none)."""
    match = _ALI_SEQ.search(frame)
    return int(match.group(1)) if match else None


def frame_lines(lines: Sequence[bytes], framing: str = "lf") -> list[bytes]:
    """TCP frames: ``lf`` as is; ``octet`` = ``LEN SP line`` with LEN counting the LF (as rsyslog, syslog-ng and loggen do)."""
    if framing == "lf":
        return list(lines)
    if framing == "octet":
        return [b"%d %s" % (len(line), line) for line in lines]
    raise ValueError(f"unknown framing {framing!r}")


def split_even(items: Sequence[bytes], k: int) -> list[Sequence[bytes]]:
    """Contiguous slices ``[j*N/K, (j+1)*N/K)``."""
    n = len(items)
    return [items[j * n // k : (j + 1) * n // k] for j in range(k)]


def _wait_for_rate(start: float, done: int, rate: float | None, stop: threading.Event | None = None) -> bool:
    """Wait until ``done`` messages are due at ``rate`` a second since ``start`` (no rate: no wait).

    Returns True if ``stop`` was set meanwhile (the wait ends then).
    """
    if not rate:
        return False
    delay = start + done / rate - time.monotonic()
    if delay <= 0:
        return False
    if stop is None:
        time.sleep(delay)
        return False
    return stop.wait(delay)


@dataclasses.dataclass
class SendResult:
    transport: str
    mode: str
    connections: int
    messages: int
    """Messages handed to the kernel (UDP: datagrams sent without error)."""
    bytes: int
    start: float
    """time.monotonic() just before the first byte (CLOCK_MONOTONIC: comparable across processes)."""
    end: float
    """time.monotonic() when the last send returned."""
    cpu_seconds: float
    """The sender's user+system CPU while sending (all threads; forked children included)."""
    send_errors: int = 0
    rate_asked: float | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["seconds"] = self.seconds
        d["msgs_per_second"] = self.messages / self.seconds if self.seconds > 0 else None
        return d


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _close_all(socks: Sequence[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


class TcpStream:
    """One TCP connection and the lines it is to send, ``chunk_lines`` per ``sendall`` (0: all in one).

    The lines are joined into chunks and the connection opened up front;
    :meth:`send` sends them in order (``start()``: on a thread, ``join()``
    waits for it). ``lines_sent`` counts the lines of the chunks ``sendall``
    accepted (they are in the kernel: what a sender can know, not what the
    peer read); an ``OSError`` ends the sending and is kept in ``error``.
    ``rate`` (lines per second) paces the chunks; ``polite`` checks before
    each chunk whether the peer closed its side (FIN, as on a graceful stop)
    and then stops, as a sender that watches its socket would; ``stop()``
    stops before the next chunk. ``sndbuf`` fixes SO_SNDBUF (the kernel
    doubles it) instead of autotuning; ``timeout`` bounds each blocking send
    (None: none). The connection is closed when the sending ends, or with
    ``close_when_done=False`` by :meth:`close` only.
    """

    def __init__(
        self,
        host: str,
        port: int,
        lines: Sequence[bytes],
        *,
        chunk_lines: int = 0,
        rate: float | None = None,
        polite: bool = False,
        sndbuf: int | None = None,
        nodelay: bool = False,
        timeout: float | None = 30.0,
        close_when_done: bool = True,
    ) -> None:
        self.chunk_lines = chunk_lines or max(1, len(lines))
        self.rate = rate
        self.polite = polite
        self.timeout = timeout
        self.close_when_done = close_when_done
        self.lines_sent = 0
        self.error: OSError | None = None
        self.saw_fin = False
        self.started_at = 0.0
        self.finished_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        step = self.chunk_lines
        self._chunks = [(b"".join(lines[i : i + step]), len(lines[i : i + step])) for i in range(0, len(lines), step)]
        self.bytes = sum(len(chunk) for chunk, _ in self._chunks)
        self.sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        self.sock.settimeout(timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sndbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sndbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.local_port = self.sock.getsockname()[1]

    def send(self) -> None:
        """Send the chunks in this thread (see the class); never raises ``OSError`` (see ``error``)."""
        self.started_at = time.monotonic()
        queued = 0
        try:
            for chunk, lines in self._chunks:
                if _wait_for_rate(self.started_at, queued, self.rate, self._stop):
                    break
                if self._stop.is_set() or (self.polite and self._peer_closed()):
                    break
                self.sock.sendall(chunk)
                self.lines_sent += lines
                queued += lines
        except OSError as e:
            self.error = e
        finally:
            self.finished_at = time.monotonic()
            if self.close_when_done:
                self.close()

    def start(self, barrier: threading.Barrier | None = None) -> Self:
        """:meth:`send` on a thread, once ``barrier`` (if given) lets it go."""

        def run() -> None:
            if barrier is not None:
                barrier.wait()
            self.send()

        self._thread = threading.Thread(target=run, name=f"tcp-stream-{self.local_port}", daemon=True)
        self._thread.start()
        return self

    def _peer_closed(self) -> bool:
        poller = select.poll()  # not select(): it refuses descriptors numbered 1024 or more
        poller.register(self.sock, select.POLLIN)
        if poller.poll(0):
            try:
                data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                data = b""
            if not data:
                self.saw_fin = True
                return True
        return False

    def unsent_bytes(self) -> int:
        """Bytes in our send queue not yet acknowledged by the peer (SIOCOUTQ); -1 once closed."""
        try:
            buf = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        except (OSError, ValueError):
            return -1
        return int(struct.unpack("i", buf)[0])

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> Self:
        """Wait for the thread (at most ``timeout``, default the send timeout plus 10 s); raises if it hangs."""
        if self._thread is None:
            raise RuntimeError("the stream was never started")
        if timeout is None and self.timeout is not None:
            timeout = self.timeout + 10
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"TCP sender still running after join; {self.lines_sent} lines sent")
        return self

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at

    def close(self) -> None:
        """Close the connection and drop the chunks."""
        self._chunks = []
        with contextlib.suppress(OSError):
            self.sock.close()


class BlastSender(TcpStream):
    """Sends ``count`` :func:`ali_line` lines (seq 0 to count-1) over one TCP connection, on a thread.

    A :class:`TcpStream` of ``chunk_lines`` per ``sendall``, as fast as they go
    or at ``rate`` lines per second; ``start()``, then ``lines_sent``,
    ``unsent_bytes()``, ``done``, ``join()``.
    """

    def __init__(
        self,
        port: int,
        count: int,
        *,
        width: int = 100,
        chunk_lines: int = 1000,
        polite: bool = False,
        sndbuf: int | None = None,
        address: str = LOOPBACK,
        run: str = "blast",
        rate: float | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.port = port
        self.count = count
        self.width = width
        self.address = address
        self.run = run
        lines = [ali_line(seq, width=width, run=run) for seq in range(count)]
        super().__init__(
            address, port, lines, chunk_lines=chunk_lines, rate=rate, polite=polite, sndbuf=sndbuf, timeout=timeout
        )


class TcpBlast:
    """Connections opened and buffers joined up front; :meth:`go` times only the sending.

    One :class:`TcpStream` per connection, each sending its contiguous slice
    of ``frames`` with one ``sendall``; the connections stay open after
    sending until :meth:`close` (the ``--hold`` of the driver).
    """

    def __init__(
        self, host: str, port: int, frames: Sequence[bytes], connections: int = 1, mode: str = "threads"
    ) -> None:
        if mode not in ("threads", "procs"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.messages = len(frames)
        self.streams: list[TcpStream] = []
        for part in split_even(frames, connections):
            self.streams.append(
                TcpStream(host, port, part, nodelay=True, timeout=None, close_when_done=False)
            )
        self.bytes = sum(s.bytes for s in self.streams)
        self._children: list[int] = []
        self._hold_w: int | None = None

    def go(self) -> SendResult:
        return self._go_threads() if self.mode == "threads" else self._go_procs()

    def _go_threads(self) -> SendResult:
        k = len(self.streams)
        barrier = threading.Barrier(k + 1)
        for s in self.streams:
            s.start(barrier)
        cpu0 = _cpu()
        start = time.monotonic()
        barrier.wait()
        for s in self.streams:
            s.join()
        end = time.monotonic()
        cpu = _cpu() - cpu0
        errors = [s.error for s in self.streams if s.error is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} connections failed: {errors[0]}")
        return SendResult("tcp", "threads", k, self.messages, self.bytes, start, end, cpu)

    def _go_procs(self) -> SendResult:
        k = len(self.streams)
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        hold_r, hold_w = os.pipe()
        for j in range(k):
            pid = os.fork()
            if pid == 0:  # child: send its buffer, report, wait for the hold to end
                status = 0
                try:
                    os.close(go_w)
                    os.close(done_r)
                    os.close(hold_w)
                    for i, s in enumerate(self.streams):
                        if i != j:
                            s.close()
                    os.read(go_r, 1)
                    stream = self.streams[j]
                    stream.send()
                    if stream.error is not None:
                        raise stream.error
                    os.write(done_w, b"%.9f\n" % stream.finished_at)
                    while os.read(hold_r, 4096):
                        pass
                except BaseException:
                    status = 1
                    with contextlib.suppress(OSError):
                        os.write(done_w, b"error\n")
                finally:
                    os._exit(status)
            self._children.append(pid)
        os.close(go_r)
        os.close(done_w)
        os.close(hold_r)
        for s in self.streams:
            s.close()  # the children own the connections now; the parent no longer needs its copy of the buffers
        self._hold_w = hold_w
        cpu0 = _cpu()
        start = time.monotonic()
        os.write(go_w, b"g" * k)
        os.close(go_w)
        ends = []
        with os.fdopen(done_r, "rb") as done:
            for _ in range(k):
                line = done.readline()
                if not line or line.startswith(b"error"):
                    raise RuntimeError("a sending process failed")
                ends.append(float(line))
        end = max(ends)
        # children's CPU is known once they exit; close() adds it
        parent_cpu = _cpu() - cpu0
        return SendResult("tcp", "procs", k, self.messages, self.bytes, start, end, parent_cpu)

    def close(self) -> float:
        """Close every connection; returns the CPU seconds of forked senders (procs mode)."""
        child_cpu0 = _cpu(resource.RUSAGE_CHILDREN)
        if self._hold_w is not None:
            os.close(self._hold_w)
            self._hold_w = None
        for pid in self._children:
            os.waitpid(pid, 0)
        self._children = []
        for s in self.streams:
            s.close()
        return _cpu(resource.RUSAGE_CHILDREN) - child_cpu0


def send_tcp(
    host: str, port: int, frames: Sequence[bytes], connections: int = 1, mode: str = "threads"
) -> SendResult:
    """Send ``frames`` over ``connections`` TCP connections; returns once all is handed to the kernel, connections closed."""
    blast = TcpBlast(host, port, frames, connections, mode)
    result = blast.go()
    result.cpu_seconds += blast.close()
    return result


class _SendMmsg:
    """``sendmmsg(2)`` over datagrams laid out once in one buffer (about 30% less CPU than a send() loop).

    The kernel's loopback delivery is charged to the sender either way: about
    3 µs per datagram here, most of what a UDP sender costs.
    """

    _ITEM = 64  # sizeof(struct mmsghdr) on x86_64 / aarch64 (LP64)

    def __init__(self, lines: Sequence[bytes]) -> None:
        import ctypes
        import ctypes.util
        from array import array

        if ctypes.sizeof(ctypes.c_void_p) != 8 or not sys.platform.startswith("linux"):
            raise OSError("sendmmsg layout known for 64-bit Linux only")
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fn = libc.sendmmsg
        self._fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._fn.restype = ctypes.c_int
        self._errno = ctypes.get_errno
        n = len(lines)
        self._data = bytearray(b"".join(lines))
        data_addr = ctypes.addressof(ctypes.c_char.from_buffer(self._data)) if n else 0
        lengths = array("Q", map(len, lines))
        offsets = array("Q", [0]) * n
        acc = data_addr
        for i, length in enumerate(lengths):
            offsets[i] = acc
            acc += length
        self._iov = array("Q", [0]) * (2 * n)  # struct iovec {base, len}
        self._iov[0::2] = offsets
        self._iov[1::2] = lengths
        iov_addr = self._iov.buffer_info()[0]
        self._msgs = array("Q", [0]) * (8 * n)  # struct mmsghdr: msghdr (56 B) + msg_len, 8 words
        self._msgs[2::8] = array("Q", range(iov_addr, iov_addr + 16 * n, 16))  # msg_iov
        self._msgs[3::8] = array("Q", [1]) * n  # msg_iovlen
        self._base = self._msgs.buffer_info()[0]

    def send(self, fd: int, first: int, count: int) -> int:
        """Send datagrams ``first..first+count-1``; returns how many went (at least 1, or raises)."""
        k = int(self._fn(fd, self._base + first * self._ITEM, count, 0))
        if k < 0:
            raise OSError(self._errno(), os.strerror(self._errno()))
        return k


class UdpBlast:
    """One datagram per line from ``sockets`` sockets (source ports), at ``rate`` msgs/s in total (None: as fast as possible).

    Datagrams go out in bursts of ``burst_ms`` worth with ``sendmmsg`` (a
    ``send()`` loop where it is unavailable), each burst from the next socket.
    Longer bursts wake the receiver less often (less CPU on both sides) but
    need more of its receive buffer at once.
    """

    def __init__(
        self, host: str, port: int, lines: Sequence[bytes], rate: float | None = None, sockets: int = 1,
        burst_ms: float = 1.0,
    ) -> None:
        self.lines = lines
        self.rate = rate
        self.burst_ms = burst_ms
        self.socks = []
        for _ in range(max(1, sockets)):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            s.connect((host, port))
            self.socks.append(s)
        self._mmsg: _SendMmsg | None
        try:
            self._mmsg = _SendMmsg(lines)
        except (OSError, AttributeError):
            self._mmsg = None

    def go(self) -> SendResult:
        lines = self.lines
        n = len(lines)
        fds = [s.fileno() for s in self.socks]
        sends = [s.send for s in self.socks]
        k = len(fds)
        burst = 1024 if self.rate is None else max(1, int(self.rate * self.burst_ms / 1000))
        mmsg = self._mmsg
        errors = sent = nbytes = 0
        cpu0 = _cpu()
        start = time.monotonic()
        i = burst_no = 0
        while i < n:
            stop = min(n, i + burst)
            j = burst_no % k
            burst_no += 1
            while i < stop:
                try:
                    if mmsg is not None:
                        went = mmsg.send(fds[j], i, stop - i)
                        nbytes += sum(map(len, lines[i : i + went]))
                    else:
                        nbytes += sends[j](lines[i])
                        went = 1
                    sent += went
                    i += went
                except OSError:
                    errors += 1
                    i += 1
            _wait_for_rate(start, i, self.rate)
        end = time.monotonic()
        cpu = _cpu() - cpu0
        mode = "sendmmsg" if mmsg is not None else "send"
        return SendResult("udp", mode, k, sent, nbytes, start, end, cpu, errors, self.rate)

    def close(self) -> float:
        _close_all(self.socks)
        return 0.0


def send_udp(
    host: str, port: int, lines: Sequence[bytes], rate: float | None = None, sockets: int = 1,
    burst_ms: float = 1.0,
) -> SendResult:
    blast = UdpBlast(host, port, lines, rate, sockets, burst_ms)
    try:
        return blast.go()
    finally:
        blast.close()


def _sink_server(connections: int) -> tuple[int, Callable[[], int]]:
    """A loopback sink that reads and discards (for --compare-modes); returns (port, join -> bytes read)."""
    srv = socket.socket()
    srv.bind((LOOPBACK, 0))
    srv.listen(connections + 16)
    total = [0]

    def serve() -> None:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(srv, selectors.EVENT_READ)
        open_conns = accepted = 0
        while accepted < connections or open_conns:
            for key, _ in sel.select(timeout=30):
                if key.fileobj is srv:
                    c, _ = srv.accept()
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                    accepted += 1
                    open_conns += 1
                else:
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    try:
                        data = conn.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if data:
                        total[0] += len(data)
                    else:
                        sel.unregister(conn)
                        conn.close()
                        open_conns -= 1
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    def join() -> int:
        t.join(120)
        return total[0]

    return srv.getsockname()[1], join


def compare_modes(n: int, connections: Sequence[int], size: int) -> list[dict[str, object]]:
    """Sender CPU of threads vs procs into a discarding sink (the sink's CPU is the reader's, not counted)."""
    frames = build_lines(n, "ali", size)
    rows = []
    for k in connections:
        for mode in ("threads", "procs"):
            port, join = _sink_server(k)
            r = send_tcp(LOOPBACK, port, frames, k, mode)
            got = join()
            rows.append({"connections": k, "mode": mode, "received_bytes": got, **r.to_dict()})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=LOOPBACK)
    p.add_argument("--port", type=int)
    p.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    p.add_argument("-n", "--messages", type=int, default=1_000_000)
    p.add_argument("-c", "--connections", type=int, default=1, help="TCP connections (UDP: source sockets)")
    p.add_argument("--format", choices=FORMATS, default="ali")
    p.add_argument("--framing", choices=("lf", "octet"), default="lf", help="TCP only")
    p.add_argument("--size", type=int, default=200, help="bytes per line including the LF (before octet framing)")
    p.add_argument("--hosts", type=int, default=HOSTS, help=f"hosts the lines name, in turn (default {HOSTS})")
    p.add_argument("--mode", choices=("threads", "procs"), default="threads")
    p.add_argument("--rate", type=float, help="UDP: messages per second in total (default: as fast as possible)")
    p.add_argument("--burst-ms", type=float, default=1.0, help="UDP with --rate: send in bursts of this many ms worth")
    p.add_argument("--wait-go", action="store_true", help="print 'ready' when built and connected, then wait for a line on stdin")
    p.add_argument("--hold", action="store_true", help="after sending, keep connections open until stdin closes")
    p.add_argument("--compare-modes", action="store_true", help="measure sender CPU, threads vs procs, into a discarding sink")
    a = p.parse_args(argv)

    if a.compare_modes:
        for row in compare_modes(a.messages, sorted({1, a.connections}), a.size):
            print(json.dumps(row), flush=True)
        return 0
    if a.port is None:
        p.error("--port is required")
    t0 = time.monotonic()
    lines = build_lines(a.messages, a.format, a.size, hosts=a.hosts)
    blast: TcpBlast | UdpBlast
    if a.transport == "tcp":
        blast = TcpBlast(a.host, a.port, frame_lines(lines, a.framing), a.connections, a.mode)
        del lines
    else:
        blast = UdpBlast(a.host, a.port, lines, a.rate, a.connections, a.burst_ms)
    build_seconds = time.monotonic() - t0
    if a.wait_go:
        print("ready", flush=True)
        if not sys.stdin.readline():
            blast.close()
            return 1
    result = blast.go()
    out = result.to_dict()
    out["build_seconds"] = build_seconds
    if a.hold:
        print(json.dumps(out), flush=True)
        while sys.stdin.read(65536):
            pass
        child_cpu = blast.close()
        print(json.dumps({"closed": True, "children_cpu_seconds": child_cpu}), flush=True)
    else:
        child_cpu = blast.close()
        out["cpu_seconds"] = result.cpu_seconds + child_cpu
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
