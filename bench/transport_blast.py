"""In-memory senders over TLS and RELP (and plain TCP), for ``transport_bench.py``.

    python bench/transport_blast.py --port P --transport tls --ca receiver.crt [--tls-version 1.3]
    python bench/transport_blast.py --port P --transport relp [--window 1024]
    python bench/transport_blast.py --port P --transport tcp [--framing lf]

The lines are ``blast.build_lines`` ALI_LOG_FMT lines (200 bytes with the
LF, ``request SEQ`` in each), framed and joined BEFORE the clock starts, and
the connection (and the TLS handshake, and the RELP ``open``) is made before
it too, so what is timed is the sending.

- ``tcp``: ``blast.TcpBlast``, one ``sendall`` of everything.
- ``tls``: a Python ``ssl`` client (the receiver's certificate as its CA,
  TLS 1.3 or 1.2 exactly), octet-counted frames (``LEN SP line``, as RFC 5425
  and rsyslog's gtls senders do) in ``sendall`` chunks of ``--chunk-bytes``.
  Done when the last chunk is handed to the kernel, as for TCP.
- ``relp``: a RELP client over one connection: ``1 open``, then the
  messages as ``TXNR syslog LEN DATA LF`` (TXNR 2.., DATA the line without
  its LF, as omrelp sends it), never more than ``--window`` of them
  unanswered, as omrelp's ``windowSize``. Done when every message is
  answered. Each turn sends what the window lets go, then reads whatever
  answers have come. (Waking only for a batch of answers, ``SO_RCVLOWAT``,
  stalled imrelp at 2.9k msgs/s with a window of 128, about 44 ms a window:
  imrelp writes each answer by itself, and under Nagle the next one waits
  for the delayed ACK of the last.) Answers arrive in order, so the client
  counts them with two ``bytes.count`` per read and checks the last one's
  TXNR, and parses them one by one only when some answer is not
  ``200 OK``.

As a driver (``--wait-go``): builds, connects, prints ``ready``, waits for a
line on stdin, sends, prints one JSON result line (``start``/``end`` on
``time.monotonic()``, comparable across processes; ``cpu_seconds`` of this
process while sending), then (``--hold``) keeps the connection open until
stdin closes (RELP: then sends ``close`` and waits for ``serverclose``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import socket
import ssl
import sys
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.blast import LOOPBACK, TcpBlast, build_lines, frame_lines

__all__ = ["RelpBlast", "TlsBlast", "relp_frames"]

CONNECT_TIMEOUT = 10.0
RELP_OFFERS = b"relp_version=0\nrelp_software=transport_blast\ncommands=syslog"
_OK_ANSWER = b" rsp 6 200 OK\n"
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class SenderError(RuntimeError):
    """The peer closed, refused or answered in a way the sender cannot go on from."""


# -- TLS -------------------------------------------------------------------------


class TlsBlast:
    """One TLS connection (handshake done in the constructor) and the frames it is to send."""

    def __init__(
        self, host: str, port: int, frames: Sequence[bytes], *, ca_file: Path, version: str, chunk_bytes: int
    ) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
        self.messages = len(frames)
        data = b"".join(frames)
        self.bytes = len(data)
        view = memoryview(data)
        self._chunks = [view[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
        raw = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.sock.settimeout(None)
        self.version = self.sock.version()
        self.cipher = (self.sock.cipher() or ("?",))[0]

    def go(self) -> dict[str, Any]:
        cpu0 = _cpu()
        start = time.monotonic()
        for chunk in self._chunks:
            self.sock.sendall(chunk)
        end = time.monotonic()
        cpu = _cpu() - cpu0
        self._chunks = []
        return {
            "transport": "tls", "mode": f"{self.version} {self.cipher}", "connections": 1,
            "messages": self.messages, "bytes": self.bytes, "start": start, "end": end,
            "seconds": end - start, "cpu_seconds": cpu,
        }

    def close(self, timeout: float = 10.0) -> float:
        """Close the TLS session, half-close and read to the end (bounded), then close.

        Closing with unread bytes (TLS 1.3 session tickets) would send a reset,
        and the peer would drop what it had not read yet.
        """
        with contextlib.suppress(OSError, ValueError):
            self.sock.settimeout(timeout)
            raw = self.sock.unwrap()  # close_notify, and the peer's (rsyslog logs an error without)
            raw.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + timeout
            while raw.recv(65536) and time.monotonic() < deadline:
                pass
            raw.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        return 0.0


# -- RELP ------------------------------------------------------------------------


def relp_frames(lines: Sequence[bytes], first_txnr: int = 2) -> list[bytes]:
    """``TXNR syslog LEN DATA LF`` for each line, DATA the line without its trailing LF."""
    out = []
    for txnr, line in enumerate(lines, first_txnr):
        data = line[:-1] if line.endswith(b"\n") else line
        out.append(b"%d syslog %d %s\n" % (txnr, len(data), data))
    return out


def _read_frame(sock: socket.socket, buffer: bytearray, timeout: float) -> tuple[int, bytes, bytes]:
    """One whole RELP frame (blocking, bounded): (TXNR, command, DATA); ``buffer`` keeps what follows it."""
    deadline = time.monotonic() + timeout
    while True:
        first = buffer.find(b" ")
        second = buffer.find(b" ", first + 1) if first > 0 else -1
        digits_end = second + 1
        while 0 < digits_end < len(buffer) and buffer[digits_end : digits_end + 1].isdigit():
            digits_end += 1
        if second > 0 and digits_end < len(buffer) and digits_end > second + 1:
            length = int(buffer[second + 1 : digits_end])
            body = digits_end + (1 if length else 0)  # the SP before DATA, if any
            if len(buffer) >= body + length + 1:
                data = bytes(buffer[body : body + length])
                txnr, command = int(buffer[:first]), bytes(buffer[first + 1 : second])
                del buffer[: body + length + 1]
                return txnr, command, data
        if time.monotonic() > deadline:
            raise SenderError(f"no whole RELP frame within {timeout:g} s: {bytes(buffer[:200])!r}")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise SenderError(f"the peer closed during the RELP open: {bytes(buffer[:200])!r}")
        buffer += chunk


class RelpBlast:
    """One RELP session (``open`` answered in the constructor) and the messages it is to send.

    :meth:`go` sends the frames, at most ``window`` unanswered at any time,
    and returns once all are answered.
    """

    def __init__(self, host: str, port: int, lines: Sequence[bytes], *, window: int, timeout: float) -> None:
        if window < 1:
            raise ValueError("the window must be at least 1")
        self.window = window
        self.timeout = timeout
        self.messages = len(lines)
        frames = relp_frames(lines)
        self._data = b"".join(frames)
        self.bytes = len(self._data)
        ends = array("Q")
        acc = 0
        for frame in frames:
            acc += len(frame)
            ends.append(acc)
        self._ends = ends
        del frames
        self.sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = bytearray()
        self.sock.sendall(b"1 open %d %s\n" % (len(RELP_OFFERS), RELP_OFFERS))
        txnr, command, answer = _read_frame(self.sock, self._pending, CONNECT_TIMEOUT)
        if txnr != 1 or command != b"rsp" or not answer.startswith(b"200"):
            raise SenderError(f"RELP open refused: {txnr} {command!r} {answer!r}")
        self.open_answer = answer.decode(errors="replace")
        self.not_ok: list[str] = []
        """The first few answers other than ``200 OK`` (all are counted in the result)."""

    def go(self) -> dict[str, Any]:
        sock, data, ends, n, window = self.sock, memoryview(self._data), self._ends, self.messages, self.window
        # Blocking, two calls a turn: send what the window lets go, then read what was answered.
        # The send cannot block for long: the peer reads while it answers, and the answers a
        # window can owe us fit in our receive buffer many times over.
        sock.settimeout(self.timeout)
        answers = self._pending
        sent_bytes = 0
        answered = ok = not_ok = reads = 0
        cpu0 = _cpu()
        start = time.monotonic()
        deadline = start + self.timeout
        while answered < n:
            limit = ends[min(n, answered + window) - 1]
            if sent_bytes < limit:
                sock.sendall(data[sent_bytes:limit])
                sent_bytes = limit
            if time.monotonic() > deadline:
                raise SenderError(f"{answered} of {n} answered after {self.timeout:g} s")
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError as e:
                raise SenderError(f"{answered} of {n} answered, then nothing for {self.timeout:g} s") from e
            if not chunk:
                raise SenderError(f"the peer closed the RELP session after {answered} of {n} answers")
            reads += 1
            answers += chunk
            last_lf = answers.rfind(b"\n")
            if last_lf < 0:
                continue
            complete = bytes(answers[: last_lf + 1])
            del answers[: last_lf + 1]
            frames = complete.count(b"\n")
            good = complete.count(_OK_ANSWER)
            if good != frames:
                good, bad = self._slow_count(complete)
                not_ok += bad
            ok += good
            last_head = complete[complete.rfind(b"\n", 0, last_lf) + 1 :]
            last_txnr = int(last_head[: last_head.index(b" ")])
            if last_txnr - 1 != answered + frames:
                raise SenderError(f"answers out of order: TXNR {last_txnr} after {answered} answers and {frames} more")
            answered += frames
        end = time.monotonic()
        cpu = _cpu() - cpu0
        self._data = b""
        return {
            "transport": "relp", "mode": f"window {window}", "connections": 1,
            "messages": n, "bytes": self.bytes, "start": start, "end": end, "seconds": end - start,
            "cpu_seconds": cpu, "answered": answered, "acknowledged": ok, "answers_not_ok": not_ok,
            "not_ok_samples": self.not_ok, "reads": reads, "window": window,
            "acked_msgs_per_second": ok / (end - start) if end > start else None,
            "open_answer": self.open_answer,
        }

    def _slow_count(self, complete: bytes) -> tuple[int, int]:
        """(200 answers, other answers) of whole frames without LF in their DATA; serverclose raises."""
        good = bad = 0
        for frame in complete.splitlines():
            parts = frame.split(b" ", 3)
            if len(parts) >= 2 and parts[1] == b"serverclose":
                raise SenderError(f"serverclose from the peer: {complete[-300:]!r}")
            if len(parts) >= 4 and parts[1] == b"rsp" and parts[3].startswith(b"200"):
                good += 1
            else:
                bad += 1
                if len(self.not_ok) < 5:
                    self.not_ok.append(frame.decode(errors="replace"))
        return good, bad

    def close(self, timeout: float = 10.0) -> float:
        """``close`` the session and wait (bounded) for the peer to close."""
        with contextlib.suppress(OSError):
            txnr = self.messages + 2
            self.sock.settimeout(timeout)
            self.sock.sendall(b"%d close 0\n" % txnr)
            deadline = time.monotonic() + timeout
            while self.sock.recv(65536) and time.monotonic() < deadline:
                pass
        with contextlib.suppress(OSError):
            self.sock.close()
        return 0.0


# -- the driver ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=LOOPBACK)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--transport", choices=("tcp", "tls", "relp"), required=True)
    p.add_argument("-n", "--messages", type=int, default=200_000)
    p.add_argument("--size", type=int, default=200, help="bytes per line including the LF (before framing)")
    p.add_argument("--framing", choices=("lf", "octet"), default="lf", help="tcp only (tls is always octet)")
    p.add_argument("--ca", type=Path, help="tls: the certificate to trust (the receiver's)")
    p.add_argument("--tls-version", choices=tuple(TLS_VERSIONS), default="1.3")
    p.add_argument("--chunk-bytes", type=int, default=1 << 20, help="tls: bytes per sendall")
    p.add_argument("--window", type=int, default=1024, help="relp: unanswered messages at most")
    p.add_argument("--timeout", type=float, default=300.0, help="relp: longest wait for all answers")
    p.add_argument("--wait-go", action="store_true", help="print 'ready' when connected, then wait for a line on stdin")
    p.add_argument("--hold", action="store_true", help="after sending, keep the connection open until stdin closes")
    a = p.parse_args(argv)

    t0 = time.monotonic()
    lines = build_lines(a.messages, "ali", a.size)
    blast: TcpBlast | TlsBlast | RelpBlast
    if a.transport == "tcp":
        blast = TcpBlast(a.host, a.port, frame_lines(lines, a.framing))
    elif a.transport == "tls":
        if a.ca is None:
            p.error("--ca is required for tls")
        blast = TlsBlast(
            a.host, a.port, frame_lines(lines, "octet"), ca_file=a.ca, version=a.tls_version, chunk_bytes=a.chunk_bytes
        )
    else:
        blast = RelpBlast(a.host, a.port, lines, window=a.window, timeout=a.timeout)
    del lines
    build_seconds = time.monotonic() - t0
    if a.wait_go:
        print("ready", flush=True)
        if not sys.stdin.readline():
            blast.close()
            return 1
    result = blast.go()
    out: dict[str, Any] = result.to_dict() if not isinstance(result, dict) else result
    out["build_seconds"] = build_seconds
    if a.hold:
        print(json.dumps(out), flush=True)
        while sys.stdin.read(65536):
            pass
        print(json.dumps({"closed": True, "children_cpu_seconds": blast.close()}), flush=True)
    else:
        blast.close()
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
