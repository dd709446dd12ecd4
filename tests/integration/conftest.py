"""Fixtures for the integration tests: the receiver and the real senders, each a private process.

Every process a fixture starts is stopped at teardown by its PID (SIGTERM,
then SIGKILL if it hangs), senders before the receiver (pytest tears fixtures
down in the reverse order of set-up, and tests ask for the receiver first).
Each one's log is printed at teardown, so a failing test shows it under
"Captured stdout teardown".

    def test_something(receiver):                 # started, default listeners
        send_tcp(receiver.port, b"hello\\n")
        assert receiver.wait_for_frames(1) == [b"hello"]

    def test_other(make_receiver, make_rsyslog):  # factories for options and several instances
        rx = make_receiver(spool={"segment_max_delay_ms": 50})
        rs = make_rsyslog(f"*.* @@127.0.0.1:{rx.port}")
        rs.send(["<13>Oct 11 22:14:15 myhost myapp[1]: hello"])

The helpers themselves (``free_port``, ``logger``, ``loggen``, ...) are in
``tests/support/programs.py``; the in-memory blast (``BlastSender``,
``ali_line``) is ``bench/blast.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.programs import Receiver, Rsyslog, SyslogNg

MakeReceiver = Callable[..., Receiver]
MakeRsyslog = Callable[..., Rsyslog]
MakeSyslogNg = Callable[..., SyslogNg]
_Sender = TypeVar("_Sender", Rsyslog, SyslogNg)


def _unique(base: Path, name: str) -> Path:
    path, n = base / name, 1
    while path.exists():
        n += 1
        path = base / f"{name}-{n}"
    return path


@pytest.fixture
def make_receiver(tmp_path: Path) -> Iterator[MakeReceiver]:
    """``make_receiver(name="receiver", start=True, **Receiver options)``: a receiver in ``tmp_path/name``."""
    made: list[Receiver] = []

    def make(name: str = "receiver", *, start: bool = True, **options: Any) -> Receiver:
        receiver = Receiver(_unique(tmp_path, name), **options)
        made.append(receiver)
        if start:
            receiver.start()
        return receiver

    yield make
    for receiver in reversed(made):
        receiver.close()
        print(f"==== {receiver.directory.name}: {receiver.config_path}, exit {receiver.returncode} ====")
        print(receiver.log_tail(300))


@pytest.fixture
def receiver(make_receiver: MakeReceiver) -> Receiver:
    """A started receiver: listeners ``tcp`` (framing auto) and ``udp`` on ``receiver.port``."""
    return make_receiver()


def _make_senders(tmp_path: Path, cls: type[_Sender], default_name: str) -> Iterator[Callable[..., _Sender]]:
    """The factory of ``make_rsyslog`` and ``make_syslog_ng``: ``make(conf_text, name=default_name, start=True, **options)``.

    Each instance gets its own directory ``tmp_path/name`` (``name-2``, ... if
    taken); at teardown each is closed, last made first, and its log printed.
    """
    made: list[_Sender] = []

    def make(conf_text: str, name: str = default_name, *, start: bool = True, **options: Any) -> _Sender:
        sender = cls(_unique(tmp_path, name), conf_text, **options)
        made.append(sender)
        if start:
            sender.start()
        return sender

    yield make
    for sender in reversed(made):
        sender.close()
        print(f"==== {sender.directory.name}: {sender.config_path}, exit {sender.returncode} ====")
        print(sender.log[-20000:])


@pytest.fixture
def make_rsyslog(tmp_path: Path) -> Iterator[MakeRsyslog]:
    """``make_rsyslog(conf_text, name="rsyslog", start=True, **Rsyslog options)``: a private rsyslogd."""
    yield from _make_senders(tmp_path, Rsyslog, "rsyslog")


@pytest.fixture
def make_syslog_ng(tmp_path: Path) -> Iterator[MakeSyslogNg]:
    """``make_syslog_ng(conf_text, name="syslog-ng", start=True, **SyslogNg options)``: a private syslog-ng."""
    yield from _make_senders(tmp_path, SyslogNg, "syslog-ng")
