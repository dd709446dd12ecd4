"""systemd integration: the unit file passes systemd-analyze, and the daemon speaks sd_notify.

The notify test owns the NOTIFY_SOCKET: a datagram socket in the test's
directory, handed to ``receiver run`` in its environment, as systemd would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.service.systemd import Notifier, watchdog_interval_seconds
from tests.integration.conftest import MakeReceiver
from tests.support.programs import ProgramMissingError, send_tcp

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "receiver.service"


def unit_for_this_checkout(tmp_path: Path) -> tuple[str, Path, str]:
    """systemd-analyze, and the unit with its commands pointed at this checkout's receiver (and its text)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise ProgramMissingError("systemd-analyze is missing: run tests/install-programs.sh as root")
    text = UNIT.read_text().replace("/opt/syslog-receiver/bin/receiver", str(Path(sys.executable).parent / "receiver"))
    unit = tmp_path / "syslog-receiver.service"
    unit.write_text(text)
    return analyze, unit, text


def test_unit_file_passes_systemd_analyze(tmp_path: Path) -> None:
    """If systemd/receiver.service is checked by systemd-analyze verify (its commands pointed at this
    checkout's receiver), then it reports nothing."""
    analyze, unit, text = unit_for_this_checkout(tmp_path)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "\nCapabilityBoundingSet=\n",
                   "StateDirectory=", "RuntimeDirectory=", "ProtectSystem=strict", "NoNewPrivileges=yes",
                   "RestrictAddressFamilies=", "User=", "ProtectProc=invisible", "PrivateMounts=yes",
                   "RemoveIPC=yes", "MemoryMax=", "UMask=0027"):
        assert needed in text, needed
    active = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in active if line.startswith(("AmbientCapabilities=", "EnvironmentFile="))], (
        "no capability unless a drop-in asks for one; keys through LoadCredential=, not the environment"
    )


def test_systemd_analyze_security_lists_only_what_the_receiver_needs(tmp_path: Path) -> None:
    """If systemd-analyze security judges the unit, then every exposure it still lists is one the receiver
    needs (its sockets, setrlimit, cffi's executable memory...), each kept on purpose."""
    analyze, unit, _ = unit_for_this_checkout(tmp_path)
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    exposed = {line.split()[1].split("=")[0] + "=" for line in result.stdout.splitlines() if line.startswith("✗")}
    needed = {
        "SystemCallFilter=",  # ~@resources: setrlimit(RLIMIT_NOFILE)
        "RootDirectory=",  # a venv on the host
        "MemoryDenyWriteExecute=",  # cffi callbacks (cryptography)
        "RestrictAddressFamilies=",  # AF_UNIX (control socket), AF_INET/AF_INET6 (the listeners)
        "ProcSubset=",  # /proc/net/udp: the UDP drop counter
        "PrivateNetwork=", "IPAddressDeny=",  # it is a network service for a fleet
        "PrivateUsers=",  # a static system user, as the spool's owner
        "DeviceAllow=",  # PrivateDevices' defaults
        "CapabilityBoundingSet=",  # judged on the bounding set's other entries: it is empty
        "UMask=",  # 0027: the receiver's group (receiverctl's users) reads its state
    }
    assert exposed <= needed, f"newly exposed: {sorted(exposed - needed)}"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A NOTIFY_SOCKET this test owns, set in the environment the receiver is started with."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    old = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    os.environ["NOTIFY_SOCKET"] = str(path)
    os.environ["WATCHDOG_USEC"] = "2000000"  # 2 s: the daemon pings every second
    os.environ.pop("WATCHDOG_PID", None)
    try:
        yield sock
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sock.close()


def messages(sock: socket.socket, until: float) -> list[str]:
    out = []
    while time.monotonic() < until:
        try:
            out.append(sock.recv(65536).decode())
        except TimeoutError:
            continue
    return out


def test_ready_status_watchdog_and_stopping(make_receiver: MakeReceiver, notify_socket: socket.socket) -> None:
    """If systemd runs the receiver (NOTIFY_SOCKET, WATCHDOG_USEC set), then it says READY=1 with a
    STATUS once listening, pings WATCHDOG=1 at half the timeout, refreshes STATUS, and says STOPPING=1
    on SIGTERM; its delivery process says nothing."""
    rx = make_receiver(deliver={})
    send_tcp(rx.port, b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 1 - hello\n")
    got = messages(notify_socket, time.monotonic() + 6.5)
    ready = [m for m in got if "READY=1" in m]
    assert len(ready) == 1, got
    assert "STATUS=2 listeners, " in ready[0]
    assert sum(m == "WATCHDOG=1" for m in got) >= 4, got
    statuses = [m for m in got if m.startswith("STATUS=") and "READY=1" not in m]
    assert statuses and "1 frames committed" in statuses[-1] and "delivery running" in statuses[-1], statuses
    rx.terminate()
    stopping = messages(notify_socket, time.monotonic() + 1.0)
    assert any(m.startswith("STOPPING=1\nSTATUS=stopping") for m in stopping), stopping


def test_watchdog_only_for_its_own_pid() -> None:
    """If WATCHDOG_PID names another process, then this one does not ping (a child must not ping for it)."""
    assert watchdog_interval_seconds({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_seconds({}) is None


def test_notifier_off_without_systemd(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If NOTIFY_SOCKET is not set, then nothing is sent; if it names no socket, then the receiver says
    so once and goes on without notifying."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier().enabled
    Notifier().ready("x")  # does nothing, raises nothing
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    missing = Notifier()
    assert not missing.enabled
    assert "cannot be reached" in caplog.text
