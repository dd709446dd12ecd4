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

The helpers themselves (``free_port``, ``logger``, ``loggen``, ``BlastSender``,
...) are in ``tests/integration/programs.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.programs import Receiver, Rsyslog, SyslogNg

MakeReceiver = Callable[..., Receiver]
MakeRsyslog = Callable[..., Rsyslog]
MakeSyslogNg = Callable[..., SyslogNg]


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


@pytest.fixture
def make_rsyslog(tmp_path: Path) -> Iterator[MakeRsyslog]:
    """``make_rsyslog(conf_text, name="rsyslog", start=True, **Rsyslog options)``: a private rsyslogd."""
    made: list[Rsyslog] = []

    def make(conf_text: str, name: str = "rsyslog", *, start: bool = True, **options: Any) -> Rsyslog:
        rsyslog = Rsyslog(_unique(tmp_path, name), conf_text, **options)
        made.append(rsyslog)
        if start:
            rsyslog.start()
        return rsyslog

    yield make
    for rsyslog in reversed(made):
        rsyslog.close()
        print(f"==== {rsyslog.directory.name}: {rsyslog.config_path}, exit {rsyslog.returncode} ====")
        print(rsyslog.log[-20000:])


@pytest.fixture
def make_syslog_ng(tmp_path: Path) -> Iterator[MakeSyslogNg]:
    """``make_syslog_ng(conf_text, name="syslog-ng", start=True, **SyslogNg options)``: a private syslog-ng."""
    made: list[SyslogNg] = []

    def make(conf_text: str, name: str = "syslog-ng", *, start: bool = True, **options: Any) -> SyslogNg:
        syslog_ng = SyslogNg(_unique(tmp_path, name), conf_text, **options)
        made.append(syslog_ng)
        if start:
            syslog_ng.start()
        return syslog_ng

    yield make
    for syslog_ng in reversed(made):
        syslog_ng.close()
        print(f"==== {syslog_ng.directory.name}: {syslog_ng.config_path}, exit {syslog_ng.returncode} ====")
        print(syslog_ng.log[-20000:])
