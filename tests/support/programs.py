"""Running the receiver and the real syslog senders as private processes, over loopback.

Used by the integration tests (through the fixtures in ``conftest.py``) and by
the benchmarks. Everything here starts its own processes, with its own
configuration and work directories, talks only to 127.0.0.1, waits with a
bound on every step, and stops what it started by PID (SIGTERM, then SIGKILL).

The pieces:

``free_port(kind)``
    A loopback port nobody is bound to (``"tcp"``, ``"udp"`` or ``"both"``).
``Receiver``, ``Rsyslog``, ``SyslogNg``
    Each a private program in its own directory, run by ``start()`` (or
    ``with``), stopped by ``terminate()`` (SIGTERM, then SIGKILL after
    ``stop_timeout``), ``kill()`` or ``close()``; ``log`` has what every run of
    it printed, ``returncode`` the latest run's exit status.
``Receiver(directory, ...)``
    ``receiver run -c <directory>/receiver.toml`` with TCP and UDP listeners on
    one free port. ``start()`` waits for ``receiver ready`` on its stderr (read
    by a thread into a buffer, so the pipe never fills; ``.log`` has the text).
    ``spool_stats()``, ``entries()``, ``frames()``, ``flagged_frames()`` and
    ``wait_for_frames(n, timeout)`` read the spool with ``SpoolReader``
    (committed segments only); ``terminate()`` (SIGTERM), ``kill()``
    (SIGKILL), ``restart()`` (same configuration and spool), ``close()``.
``Rsyslog(directory, conf_text)``
    A private ``rsyslogd -n``: a header (``global(workDirectory=...)``, an
    ``imptcp`` input on ``.inject_port``) followed by ``conf_text``, your rules
    and actions. ``send(lines)`` injects messages (see :meth:`Rsyslog.send` for
    why imptcp is the reliable way).
``SyslogNg(directory, conf_text)``
    A private ``syslog-ng -F --no-caps``: ``@version`` and a ``source
    s_inject`` (a TCP ``network()`` source on ``.inject_port``, hostnames
    kept) followed by ``conf_text``, your destinations and log paths.
``logger(port, messages, ...)`` and ``loggen(port, count=..., ...)``
    One bounded run of util-linux ``logger`` or syslog-ng's ``loggen``.

The in-memory blast (``BlastSender``, ``ali_line``, ``ali_seq``) is
``bench/blast.py``'s, shared with the benchmarks.

A missing program raises :class:`ProgramMissingError` saying to run
``tests/install-programs.sh``: tests that need a program never skip. A
configuration is checked with the program's own checker (``rsyslogd -N1``,
``syslog-ng -s``) before it starts, and every failure carries the program's
own output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from receiver.spool import SpoolEntry, SpoolReader, SpoolStats

__all__ = [
    "INSTALL_HINT",
    "LOOPBACK",
    "REPO",
    "RSYSLOGD",
    "RSYSLOG_MODULES",
    "HarnessError",
    "LoggenRun",
    "ProgramFailedError",
    "ProgramMissingError",
    "Receiver",
    "Rsyslog",
    "SyslogNg",
    "free_port",
    "loggen",
    "logger",
    "require_program",
    "send_tcp",
    "send_udp",
    "to_toml",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
RSYSLOG_DIR = Path(os.environ.get("RSYSLOG_DIR", REPO / ".programs" / "rsyslog"))
RSYSLOGD = RSYSLOG_DIR / "usr" / "sbin" / "rsyslogd"
RSYSLOG_MODULES = RSYSLOG_DIR / "usr" / "lib" / "x86_64-linux-gnu" / "rsyslog"
INSTALL_HINT = "run `sudo tests/install-programs.sh` (or `sudo make programs`) to install the real programs"

PortKind = Literal["tcp", "udp", "both"]
_OUTPUT_TAIL_LINES = 60


# -- errors ------------------------------------------------------------------


class HarnessError(RuntimeError):
    """Something the harness drives did not do what it must; the message says what and shows its output."""


class ProgramMissingError(HarnessError):
    """A program the tests drive is not installed; the message says how to install it."""


class ProgramFailedError(HarnessError):
    """A program refused its configuration, exited early or did not answer in time."""


def require_program(name: str) -> str:
    """The path of ``name`` (on PATH, or ``rsyslogd`` from ``.programs``), or ProgramMissingError."""
    if name == "rsyslogd":
        if not os.access(RSYSLOGD, os.X_OK):
            raise ProgramMissingError(f"rsyslogd not found at {RSYSLOGD}: {INSTALL_HINT}")
        return str(RSYSLOGD)
    path = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := Path(d) / name, os.X_OK)), None
    )
    if path is None:
        raise ProgramMissingError(f"{name} not found on PATH: {INSTALL_HINT}")
    return path


# -- small helpers -----------------------------------------------------------


def free_port(kind: PortKind = "tcp", *, address: str = LOOPBACK) -> int:
    """A port on ``address`` that is free for ``kind`` (``"both"``: TCP and UDP at once).

    Ports are taken below the kernel's ephemeral range when there is room, so an
    outgoing connection of some test cannot grab the port between this check and
    the bind of the program that uses it; otherwise the kernel picks (bind to 0).
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates: list[int] = random.sample(range(20000, low), k=min(200, low - 20000)) if low > 20200 else []
    for port in [*candidates, *([0] * 50)]:
        try:
            return _bind_check(kind, address, port)
        except OSError:
            continue
    raise HarnessError(f"no free {kind} port on {address}")


def _bind_check(kind: PortKind, address: str, port: int) -> int:
    first = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, first) as s:
        s.bind((address, port))
        port = s.getsockname()[1]
        if kind == "both":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((address, port))
    return port


def wait_until(
    predicate: Callable[[], Any], timeout: float, *, interval: float = 0.05, message: str | Callable[[], str] = ""
) -> Any:
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` s pass (TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"not within {timeout:g} s: {text or predicate}")
        time.sleep(interval)


def _can_connect(port: int, address: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def send_tcp(port: int, data: bytes, *, address: str = LOOPBACK, timeout: float = 30.0, wait_close: bool = False) -> None:
    """One connection: send ``data``, close our side; ``wait_close`` also waits for the peer's close."""
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        if wait_close:
            while s.recv(65536):
                pass


def send_udp(port: int, datagrams: Iterable[bytes], *, address: str = LOOPBACK, pause_every: int = 100) -> int:
    """Send each datagram (a pause of 1 ms every ``pause_every``, so a loopback burst is not dropped)."""
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for n, datagram in enumerate(datagrams, 1):
            s.sendto(datagram, (address, port))
            if n % pause_every == 0:
                time.sleep(0.001)
    return n


def _tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    parts = text.splitlines()
    shown = "\n".join(parts[-lines:])
    return shown if len(parts) <= lines else f"[... {len(parts) - lines} earlier lines]\n{shown}"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(document: Mapping[str, object]) -> str:
    """A small TOML writer for configurations: scalars, tables, arrays of tables (one level deep)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, object]]] = []
    arrays: list[tuple[str, Sequence[Mapping[str, object]]]] = []
    for key, value in document.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{key}]]"] + [f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    for key, table in tables:
        lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


# -- processes ---------------------------------------------------------------


class _Process:
    """A child process whose combined stdout/stderr a thread collects, so its pipe never fills."""

    def __init__(self, name: str, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._watch: tuple[str, threading.Event] | None = None
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # Ctrl-C on pytest must not hit it first: teardown stops it in order
        )
        self._reader = threading.Thread(target=self._pump, name=f"{name}-output", daemon=True)
        self._reader.start()

    def watch_for(self, text: str) -> threading.Event:
        """An event set once a line containing ``text`` is (or was) printed."""
        event = threading.Event()
        with self._lock:
            self._watch = (text, event)
            if any(text in line for line in self._lines):
                event.set()
        return event

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", "replace")
                with self._lock:
                    self._lines.append(line)
                    if self._watch is not None and self._watch[0] in line:
                        self._watch[1].set()

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)  # by PID; a no-op once reaped

    def wait(self, timeout: float) -> int:
        """Wait for exit (``subprocess.TimeoutExpired`` after ``timeout``); collects the output."""
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5.0)
        return rc

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, bool]:
        """``sig``, then SIGKILL if it has not exited within ``timeout``: (exit status, whether it was killed)."""
        if self.proc.poll() is not None:
            return self.wait(5.0), False
        self.send_signal(sig)
        try:
            return self.wait(timeout), False
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            return self.wait(10.0), True


def _wait_listening(process: _Process, port: int, timeout: float) -> None:
    """Wait until ``process`` accepts connections on ``port``; raises with its output if it exits or is slow."""
    deadline = time.monotonic() + timeout
    while not _can_connect(port):
        if not process.running:
            rc = process.wait(5.0)
            raise ProgramFailedError(f"{process.name} exited ({_describe_exit(rc)}) at start; output:\n{_tail(process.output)}")
        if time.monotonic() > deadline:
            process.stop(sig=signal.SIGKILL)
            raise ProgramFailedError(
                f"{process.name} did not listen on {LOOPBACK}:{port} within {timeout:g} s (killed); "
                f"output:\n{_tail(process.output)}"
            )
        time.sleep(0.05)


def _describe_exit(rc: int) -> str:
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-rc).name}"
    return f"status {rc}"


def _as_lines(lines: Iterable[bytes | str]) -> list[bytes]:
    """Messages as bytes, each ending with one LF (added where missing)."""
    encoded = [line.encode() if isinstance(line, str) else line for line in lines]
    return [line if line.endswith(b"\n") else line + b"\n" for line in encoded]


class _ManagedProgram:
    """A private program in ``directory`` (configuration ``config_name``), one :class:`_Process` per run.

    What ``Receiver``, ``Rsyslog`` and ``SyslogNg`` share: ``start()`` (theirs)
    is one run, named ``label`` (in errors and in the headers of ``log``);
    ``returncode`` is the latest run's exit status once it is stopped (None
    while it runs); ``terminate()`` and ``close()`` stop it by PID (SIGTERM,
    then SIGKILL after ``stop_timeout``); ``close()`` never raises.
    """

    def __init__(self, label: str, directory: Path, config_name: str, *, stop_timeout: float) -> None:
        self._label = label
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / config_name
        self.stop_timeout = stop_timeout
        self._process: _Process | None = None
        self._runs: list[_Process] = []
        self.returncode: int | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> _Process:
        """Start a run (in ``directory``); the caller waits until it is ready."""
        if self.running:
            raise HarnessError(f"{self._label} is already running (pid {self.pid})")
        process = _Process(self._label, argv, cwd=self.directory, env=env)
        self._process = process
        self._runs.append(process)
        self.returncode = None
        return process

    def _check_config(self, argv: Sequence[str], *, complaint: str | None = None) -> str:
        """Run the program's configuration checker: its output, or ProgramFailedError with it and the config.

        The config is bad if the checker fails or (``complaint``) prints that text.
        """
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        output = result.stdout + result.stderr
        if result.returncode != 0 or (complaint is not None and complaint in output):
            raise ProgramFailedError(
                f"{Path(argv[0]).name} {argv[1]} rejects {self.config_path} (status {result.returncode}):\n{output}\n"
                f"config:\n{self.config_path.read_text()}"
            )
        return output

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log(self) -> str:
        """Everything every run of it printed (stderr and stdout), runs separated by a header line."""
        return "".join(f"---- {self._label} run {i} (pid {p.pid}) ----\n{p.output}" for i, p in enumerate(self._runs, 1))

    def _stop(self, sig: int, timeout: float) -> tuple[int, bool]:
        """``sig`` to the latest run, SIGKILL after ``timeout``: (exit status, whether it was killed)."""
        if self._process is None:
            raise HarnessError(f"{self._label} was never started")
        rc, killed = self._process.stop(sig=sig, timeout=timeout)
        self.returncode = rc
        return rc, killed

    def terminate(self, timeout: float | None = None) -> int:
        """SIGTERM, SIGKILL if it has not exited within ``timeout`` (default ``stop_timeout``); returns the exit status."""
        rc, _ = self._stop(signal.SIGTERM, self.stop_timeout if timeout is None else timeout)
        return rc

    def kill(self) -> int:
        """SIGKILL (kill -9) and wait; returns the exit status (-9)."""
        rc, _ = self._stop(signal.SIGKILL, 10.0)
        return rc

    def close(self) -> None:
        """Stop the process if it still runs (SIGTERM; SIGKILL if it hangs). Never raises."""
        if self.running:
            self._stop(signal.SIGTERM, self.stop_timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


# -- the receiver ------------------------------------------------------------


class Receiver(_ManagedProgram):
    """``receiver run -c CONFIG`` as a subprocess, its spool read with ``SpoolReader``.

    By default two listeners share one free loopback port: ``tcp`` (framing
    ``auto``) and ``udp``, with ``[spool] segment_max_delay_ms = 5`` and
    ``[shutdown] drain_seconds = 2``. ``spool``, ``shutdown`` and ``settings``
    (any other top-level keys or tables) are merged over those; ``listeners``
    replaces the list. Delivery is off (``[deliver] enabled = false``) unless
    ``deliver`` is given: the ingest tests read frames back from the spool, and
    a delivering receiver removes segments once every sink has them. The
    configuration goes to ``<directory>/receiver.toml``, the state (and spool)
    to ``<directory>/state``; the local store is ``<directory>/state/store``.
    Metrics listen on a free loopback port: :attr:`metrics_url` after start.

    Use as a context manager, or ``start()`` and ``close()``; ``close()`` always
    stops the process it started (SIGTERM, SIGKILL after ``stop_timeout``).
    """

    READY = "receiver ready"

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        tcp: bool = True,
        udp: bool = True,
        framing: str = "auto",
        listeners: Sequence[Mapping[str, object]] | None = None,
        spool: Mapping[str, object] | None = None,
        shutdown: Mapping[str, object] | None = None,
        settings: Mapping[str, object] | None = None,
        deliver: Mapping[str, object] | None = None,
        ready_timeout: float = 20.0,
        stop_timeout: float = 30.0,
        address: str = LOOPBACK,
    ) -> None:
        super().__init__("receiver", directory, "receiver.toml", stop_timeout=stop_timeout)
        self.address = address
        self.state_directory = self.directory / "state"
        self.spool_directory = self.state_directory / "spool"
        self.port = port or free_port("both" if tcp and udp else "udp" if udp else "tcp", address=address)
        self.ready_timeout = ready_timeout
        if listeners is None:
            listeners = []
            if tcp:
                listeners.append({"name": "tcp", "transport": "tcp", "address": address, "port": self.port, "framing": framing})
            if udp:
                listeners.append({"name": "udp", "transport": "udp", "address": address, "port": self.port})
        self.config: dict[str, object] = {
            "state_directory": str(self.state_directory),
            "listeners": [dict(listener) for listener in listeners],
            "spool": {"segment_max_delay_ms": 5, **(spool or {})},
            "shutdown": {"drain_seconds": 2, **(shutdown or {})},
            "deliver": {"enabled": False} if deliver is None else {"enabled": True, "poll_interval_ms": 10, **deliver},
            "metrics": {"port": 0},  # several receivers run at once: any free port (the log says which)
            **(settings or {}),
        }
        self.config_path.write_text(to_toml(self.config))

    # -- lifecycle -----------------------------------------------------------

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "receiver.cli.daemon", "run", "-c", str(self.config_path)]

    def start(self) -> Receiver:
        """Start it and wait (at most ``ready_timeout`` s) for ``receiver ready``; raises with its log if not."""
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        process = self._spawn(self.command, env=env)
        ready = process.watch_for(self.READY)
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.05):
            if not process.running:
                rc = process.wait(5.0)
                self.returncode = rc
                raise ProgramFailedError(
                    f"the receiver exited ({_describe_exit(rc)}) before saying {self.READY!r}; "
                    f"command {' '.join(self.command)}\nconfig {self.config_path}:\n{self.config_path.read_text()}"
                    f"log:\n{_tail(process.output)}"
                )
            if time.monotonic() > deadline:
                process.stop(sig=signal.SIGKILL)
                raise ProgramFailedError(
                    f"the receiver did not say {self.READY!r} within {self.ready_timeout:g} s (killed); "
                    f"log:\n{_tail(process.output)}"
                )
        return self

    @property
    def metrics_url(self) -> str:
        """Where this run serves its metrics (from its log)."""
        found = re.findall(r"metrics on (http://\S+/metrics)", self.current_log)
        if not found:
            raise ProgramFailedError(f"the receiver did not say where its metrics are; log:\n{_tail(self.current_log)}")
        return str(found[-1])

    def terminate(self, timeout: float | None = None) -> int:
        """SIGTERM, wait (bounded), return the exit status; raises if it had to be killed."""
        timeout = self.stop_timeout if timeout is None else timeout
        rc, killed = self._stop(signal.SIGTERM, timeout)
        if killed:
            raise ProgramFailedError(
                f"the receiver did not exit within {timeout:g} s of SIGTERM and was killed; "
                f"log:\n{_tail(self.current_log)}"
            )
        return rc

    def restart(self, timeout: float | None = None) -> Receiver:
        """Stop it if it runs (SIGTERM), then start again with the same configuration and spool."""
        if self.running:
            self.terminate(timeout)
        return self.start()

    # -- its log (all runs: ``log``) -------------------------------------------

    @property
    def current_log(self) -> str:
        """What the latest run printed."""
        return self._process.output if self._process is not None else ""

    def log_tail(self, lines: int = _OUTPUT_TAIL_LINES) -> str:
        return _tail(self.log, lines)

    # -- its spool -----------------------------------------------------------

    def reader(self) -> SpoolReader:
        """A read-only ``SpoolReader`` on the spool (close it; it is a context manager)."""
        from receiver.spool import SpoolReader

        return SpoolReader(self.spool_directory)

    def spool_stats(self) -> SpoolStats:
        with self.reader() as reader:
            return reader.stats()

    def frame_count(self) -> int:
        """Frames committed (0 before the spool exists)."""
        try:
            return self.spool_stats().frames
        except FileNotFoundError:
            return 0

    def entries(self) -> list[SpoolEntry]:
        """Every committed entry (one read of one connection, or one datagram), in commit order."""
        with self.reader() as reader:
            return list(reader.entries())

    def frames(self) -> list[bytes]:
        """Every committed frame, in commit order, without its framing."""
        return [frame for entry in self.entries() for frame in entry.frames]

    def flagged_frames(self) -> list[tuple[bytes, tuple[str, ...]]]:
        """Every committed frame with its flags (``()`` for most), in commit order."""
        return [
            (frame, entry.frame_flags.get(i, ())) for entry in self.entries() for i, frame in enumerate(entry.frames)
        ]

    def frames_by_connection(self) -> dict[tuple[str, int], list[tuple[bytes, tuple[str, ...]]]]:
        """Frames with flags grouped by (peer address, peer port), each list in commit order."""
        out: dict[tuple[str, int], list[tuple[bytes, tuple[str, ...]]]] = {}
        for entry in self.entries():
            bucket = out.setdefault((entry.peer, entry.port), [])
            bucket.extend((frame, entry.frame_flags.get(i, ())) for i, frame in enumerate(entry.frames))
        return out

    def wait_for_frames(self, n: int, timeout: float = 20.0, *, interval: float = 0.05) -> list[bytes]:
        """Poll until at least ``n`` frames are committed, then return them all; TimeoutError with the log if not.

        Fails at once if the receiver is not running and has fewer (nothing more can arrive).
        """
        deadline = time.monotonic() + timeout
        count = 0
        while True:
            count = self.frame_count()
            if count >= n:
                return self.frames()
            if not self.running or time.monotonic() >= deadline:
                break
            time.sleep(interval)
        state = "is not running" if not self.running else f"did not commit them within {timeout:g} s"
        raise TimeoutError(f"{count} of {n} frames in the spool; the receiver {state}. Log:\n{self.log_tail()}")


# -- rsyslog -----------------------------------------------------------------


class Rsyslog(_ManagedProgram):
    """A private rsyslogd in the foreground; ``conf_text`` follows a header this class writes.

    The header is ``global(workDirectory=<directory>/work)`` (plus
    ``maxMessageSize`` if given) and an ``imptcp`` input on ``127.0.0.1:
    .inject_port``. No imuxsock, no imjournal: nothing from this machine gets
    in, only what a test injects with :meth:`send`. The configuration is checked
    with ``rsyslogd -N1`` first; the checker's output is in the exception.
    On ``terminate()`` (SIGTERM) rsyslogd saves its queues.
    """

    def __init__(
        self,
        directory: Path,
        conf_text: str,
        *,
        max_message_size: str | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.rsyslogd = require_program("rsyslogd")
        super().__init__("rsyslogd", directory, "rsyslog.conf", stop_timeout=stop_timeout)
        self.work_directory = self.directory / "work"
        self.work_directory.mkdir(exist_ok=True)
        self.pid_file = self.directory / "rsyslogd.pid"
        self.inject_port = free_port("tcp")
        self.start_timeout = start_timeout
        size = f' maxMessageSize="{max_message_size}"' if max_message_size else ""
        self.header = (
            "# private instance written by tests/support/programs.py\n"
            f'global(workDirectory="{self.work_directory}"{size})\n'
            'module(load="imptcp")\n'
            f'input(type="imptcp" address="{LOOPBACK}" port="{self.inject_port}")\n'
        )
        self.conf_text = conf_text
        self.config_path.write_text(self.header + conf_text.rstrip("\n") + "\n")

    def check(self) -> str:
        """``rsyslogd -N1``: returns its output, raises ProgramFailedError with it if the config is bad."""
        argv = [self.rsyslogd, "-N1", "-f", str(self.config_path), "-M", str(RSYSLOG_MODULES)]
        # A clean run prints only its banner; every complaint links to rsyslog.com/e/NNNN.
        return self._check_config(argv, complaint="rsyslog.com/e/")

    def start(self) -> Rsyslog:
        """Check the config, start ``rsyslogd -n``, wait until its inject port accepts connections."""
        self.check()
        argv = [self.rsyslogd, "-n", "-f", str(self.config_path), "-i", str(self.pid_file), "-M", str(RSYSLOG_MODULES)]
        _wait_listening(self._spawn(argv), self.inject_port, self.start_timeout)
        return self

    def send(self, lines: Iterable[bytes | str], *, chunk_lines: int = 0, pause: float = 0.0, timeout: float = 60.0) -> int:
        """Inject messages (one per line; LF added where missing) on one connection to the imptcp input.

        Why this way: imptcp reads a TCP stream with no rate limit (imuxsock has
        one) and no datagram loss (imudp can drop), and when it sees our close
        it reads to the end and closes too. So this returns, with the number of
        lines, only after rsyslog has read every line (its close is the proof),
        which makes "N injected" exact. ``chunk_lines``/``pause`` pace the
        sending (``pause`` s after every ``chunk_lines`` lines).
        """
        encoded = _as_lines(lines)
        step = chunk_lines or len(encoded) or 1
        with socket.create_connection((LOOPBACK, self.inject_port), timeout=timeout) as s:
            for i in range(0, len(encoded), step):
                s.sendall(b"".join(encoded[i : i + step]))
                if pause and i + step < len(encoded):
                    time.sleep(pause)
            s.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + timeout
            while s.recv(65536):
                if time.monotonic() > deadline:
                    raise ProgramFailedError("rsyslogd did not close the inject connection")
        return len(encoded)

    def queue_files(self) -> list[Path]:
        """The files in its work directory (disk-queue files, ``.qi`` state)."""
        return sorted(p for p in self.work_directory.iterdir() if p.is_file())


# -- syslog-ng ---------------------------------------------------------------


def _syslog_ng_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    match = re.search(r"^Installer-Version:\s*(\d+\.\d+)", out, re.M) or re.search(r"\((\d+\.\d+)", out)
    if match is None:
        raise ProgramFailedError(f"cannot tell the syslog-ng version from:\n{out}")
    return match.group(1)


class SyslogNg(_ManagedProgram):
    """A private ``syslog-ng -F --no-caps``; ``conf_text`` follows a header this class writes.

    The header is ``@version`` (the installed one) and ``source s_inject``: a
    ``network()`` TCP source on ``127.0.0.1:.inject_port`` with
    ``keep-hostname(yes)``, so injected RFC 3164 lines keep their host. Write
    destinations and ``log { source(s_inject); ... };`` in ``conf_text``; give
    each destination that points at the same host and port its own
    ``persist-name()`` (syslog-ng refuses duplicates). The configuration is
    checked with ``syslog-ng -s`` first.
    """

    def __init__(
        self, directory: Path, conf_text: str, *, start_timeout: float = 20.0, stop_timeout: float = 20.0
    ) -> None:
        self.binary = require_program("syslog-ng")
        super().__init__("syslog-ng", directory, "syslog-ng.conf", stop_timeout=stop_timeout)
        self.pid_file = self.directory / "syslog-ng.pid"
        self.persist_file = self.directory / "syslog-ng.persist"
        self.control_socket = self.directory / "syslog-ng.ctl"
        self.inject_port = free_port("tcp")
        self.start_timeout = start_timeout
        self.header = (
            f"@version: {_syslog_ng_version(self.binary)}\n"
            "# private instance written by tests/support/programs.py\n"
            f'source s_inject {{ network(ip("{LOOPBACK}") port({self.inject_port}) transport("tcp") '
            'keep-hostname(yes) persist-name("s_inject")); };\n'
        )
        self.conf_text = conf_text
        self.config_path.write_text(self.header + conf_text.rstrip("\n") + "\n")

    def check(self) -> str:
        """``syslog-ng -s``: returns its output, raises ProgramFailedError with it if the config is bad."""
        return self._check_config([self.binary, "-s", "-f", str(self.config_path)])

    def start(self) -> SyslogNg:
        """Check the config, start it in the foreground, wait until its inject port accepts connections."""
        self.check()
        argv = [
            self.binary, "-F", "--no-caps", "-e", "-f", str(self.config_path), "-p", str(self.pid_file),
            "-R", str(self.persist_file), "-c", str(self.control_socket),
        ]
        _wait_listening(self._spawn(argv), self.inject_port, self.start_timeout)
        return self

    def send(self, lines: Iterable[bytes | str], *, timeout: float = 60.0) -> int:
        """Inject messages (one per line) on one connection to ``s_inject``; returns how many.

        syslog-ng does not close when we do, so this cannot prove it read
        everything: wait for the frames at the receiver.
        """
        encoded = _as_lines(lines)
        send_tcp(self.inject_port, b"".join(encoded), timeout=timeout)
        return len(encoded)


# -- logger and loggen -------------------------------------------------------


def logger(
    port: int,
    messages: str | Sequence[str],
    *,
    transport: Literal["tcp", "udp"] = "tcp",
    octet_count: bool = False,
    rfc: Literal["5424", "3164"] = "5424",
    tag: str = "itest",
    priority: str = "user.notice",
    extra_args: Sequence[str] = (),
    address: str = LOOPBACK,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """One run of util-linux logger to ``address:port``; raises ProgramFailedError with its stderr if it fails.

    ``messages``: one string is sent as the message argument; a sequence is fed
    on stdin, one message per line (logger then sends them all on one
    connection). ``octet_count`` (TCP only) frames as RFC 6587 counts without a
    trailing LF; otherwise TCP frames end with LF and each UDP datagram is one
    message.
    """
    binary = require_program("logger")
    argv = [binary, "-n", address, "-P", str(port), "--tcp" if transport == "tcp" else "--udp",
            f"--rfc{rfc}", "-t", tag, "-p", priority]
    if octet_count:
        argv.append("--octet-count")
    argv += list(extra_args)
    stdin = None
    if isinstance(messages, str):
        argv += ["--", messages]
    else:
        if any("\n" in m for m in messages):
            raise ValueError("logger reads one message per line: no LF inside a message")
        stdin = "".join(m + "\n" for m in messages)
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise ProgramFailedError(f"logger did not finish within {timeout:g} s: {argv}") from e
    if result.returncode != 0:
        raise ProgramFailedError(f"logger failed (status {result.returncode}): {argv}\n{result.stderr}")
    return result


@dataclasses.dataclass(frozen=True)
class LoggenRun:
    argv: list[str]
    returncode: int
    output: str
    """loggen's report (rate, count) and any errors."""
    seconds: float


def loggen(
    port: int,
    *,
    count: int,
    transport: Literal["tcp", "udp"] = "tcp",
    connections: int = 1,
    rate: int | None = 100_000,
    syslog_proto: bool = False,
    framing: bool = True,
    size: int | None = None,
    extra_args: Sequence[str] = (),
    address: str = LOOPBACK,
    timeout: float = 60.0,
) -> LoggenRun:
    """One bounded run of syslog-ng's loggen: ``count`` messages *per connection*, at ``rate`` per connection per second.

    Each message carries ``seq: NNNNNNNNNN, thread: TTTT`` (``thread`` is the
    connection, 0-based); ``syslog_proto`` sends RFC 5424 (octet-counted, the
    count including the LF, unless ``framing=False``). Its run time is capped
    (``-I``) above ``timeout`` so a slow run fails loudly instead of stopping
    short; raises ProgramFailedError with its output on failure or timeout.
    """
    binary = require_program("loggen")
    argv = [binary, "-i", "-S" if transport == "tcp" else "-D", "-n", str(count),
            f"--active-connections={connections}", "-I", str(int(timeout) + 10)]
    if rate is not None:
        argv += ["-r", str(rate)]
    if syslog_proto:
        argv.append("-P")
        if not framing:
            argv.append("-F")
    if size is not None:
        argv += ["-s", str(size)]
    argv += [*extra_args, address, str(port)]
    started = time.monotonic()
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise ProgramFailedError(f"loggen did not finish within {timeout:g} s: {argv}") from e
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise ProgramFailedError(f"loggen failed (status {result.returncode}): {argv}\n{output}")
    return LoggenRun(argv, result.returncode, output, time.monotonic() - started)
