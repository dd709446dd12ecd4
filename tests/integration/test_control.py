"""The control API, receiverctl status, stats and tail against a running daemon, and without one."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from bench.blast import BlastSender
from tests.integration.conftest import MakeReceiver
from tests.support.programs import Receiver, wait_until
from tests.support.receiverctl import RECEIVERCTL_COMMAND, receiverctl

pytestmark = pytest.mark.integration


def control_socket(rx: Receiver) -> Path:
    return rx.state_directory / "control.sock"


def test_status_and_stats(make_receiver: MakeReceiver, tmp_path: Path) -> None:
    """If a receiver runs and delivers to its local store, then status names its listeners, spool and sink
    (lag 0 once delivered) and stats counts the frames, in tables and in JSON."""
    ids = tmp_path / "ids"
    ids.write_text("appliance-1\n")
    rx = make_receiver(deliver={}, settings={
        "identity": {"user_defined_id_file": str(ids)},
        "machine_groups": [{"name": "loopback", "networks": ["127.0.0.0/8"]}],
    })
    sock = control_socket(rx)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    BlastSender(rx.port, 2000).start().join(30).close()

    def status() -> dict[str, object]:
        result = receiverctl("status", "--json", "-c", str(rx.config_path))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    wait_until(lambda: status()["sinks"][0]["delivered_records"] == 2000, timeout=30, message="delivered")  # type: ignore[index]
    answer = status()
    assert answer["identities"] == ["appliance-1"]
    assert answer["machine_groups"] == [{"name": "loopback", "networks": ["127.0.0.0/8"], "hostnames": []}]
    assert [(x["name"], x["transport"], x["port"]) for x in answer["listeners"]] == [  # type: ignore[attr-defined]
        ("tcp", "tcp", rx.port), ("udp", "udp", rx.port),
    ]
    assert answer["listeners"][0]["frames"] == 2000  # type: ignore[index]
    assert answer["spool"]["backpressure"] == []  # type: ignore[index]
    assert answer["sinks"] == [{
        "name": "local", "type": "local", "lag_segments": 0, "delivered_records": 2000,
        "last_success_ns": answer["sinks"][0]["last_success_ns"],  # type: ignore[index]
        "last_error": None, "retrying_for_seconds": None, "dead_lettered_records": 0,
    }]
    table = receiverctl("status", "--socket", str(sock))
    assert table.returncode == 0, table.stderr
    assert "identities: appliance-1" in table.stdout
    assert f"tcp 127.0.0.1:{rx.port}" in table.stdout and "2,000 frames" in table.stdout
    assert "local (local)  lag 0 segments, 2,000 delivered" in table.stdout
    flushed = receiverctl("flush", "-c", str(rx.config_path))
    assert flushed.returncode == 0 and flushed.stdout == "flushed: 2,000 frames committed since the receiver started\n"
    stats = receiverctl("stats", "-c", str(rx.config_path))
    assert stats.returncode == 0, stats.stderr
    assert "receiver_frames_received_total{listener=tcp} 2,000" in stats.stdout
    assert "sink_delivered_records{sink=local} 2,000" in stats.stdout


def test_no_daemon_is_one_line_and_status_1(make_receiver: MakeReceiver) -> None:
    """If no receiver runs, then status exits 1 with one line saying where it looked; a socket a stopped
    receiver left is removed when it stops."""
    rx = make_receiver()
    sock = control_socket(rx)
    rx.terminate()
    assert not sock.exists()
    result = receiverctl("status", "-c", str(rx.config_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"receiverctl: no receiver is running with control socket {sock} (no such file)\n"


def test_a_crashed_receivers_socket_is_replaced_and_a_live_one_refused(make_receiver: MakeReceiver) -> None:
    """If the last receiver was killed (-9), then the next one replaces its socket; if one still runs on the
    same state, then a second refuses to start, saying why."""
    rx = make_receiver()
    rx.kill()
    assert control_socket(rx).exists()
    rx.start()
    assert receiverctl("status", "-c", str(rx.config_path)).returncode == 0
    twin = Receiver(rx.directory.parent / "twin", settings={"state_directory": str(rx.state_directory)})
    with pytest.raises(Exception, match="another receiver answers on"):
        twin.start()
    twin.close()


def test_a_file_at_the_socket_path_is_never_deleted(make_receiver: MakeReceiver) -> None:
    """If something other than a socket is at the control socket's path, then the receiver refuses to start,
    naming it, and leaves the file as it was: only a stale socket is the receiver's to remove."""
    rx = make_receiver(start=False)
    rx.state_directory.mkdir(parents=True)
    precious = control_socket(rx)
    precious.write_text("someone's file\n")
    with pytest.raises(Exception, match="exists and is not a socket"):
        rx.start()
    assert precious.read_text() == "someone's file\n"


def test_state_files_are_for_the_receiver_only(make_receiver: MakeReceiver) -> None:
    """If the receiver runs outside systemd from a shell whose umask is 022, then what it creates in its
    state directory is still not readable by other users: directories 0750, files 0640, the socket 0660."""
    from tests.support.programs import send_tcp

    old = os.umask(0o022)
    try:
        rx = make_receiver(deliver={})
    finally:
        os.umask(old)
    send_tcp(rx.port, b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 1 - stored\n")
    wait_until(lambda: (rx.state_directory / "store" / "metadata").exists(), timeout=30, message="the local store")
    wait_until(lambda: (rx.state_directory / "store.sock").exists(), timeout=30, message="the store's socket")
    modes = {
        str(path.relative_to(rx.directory)): stat.S_IMODE(path.stat().st_mode)
        for path in [rx.state_directory, *rx.state_directory.rglob("*")]
    }
    assert modes.pop("state/control.sock") == 0o660 and modes.pop("state/store.sock") == 0o660
    for name, mode in modes.items():
        assert mode & 0o007 == 0, f"{name} is mode {mode:04o}: other users can reach it"
    assert modes["state"] == 0o750 and modes["state/spool"] == 0o750
    assert modes["state/running-config.json"] == 0o640 and modes["state/spool/cache.db"] == 0o640


def test_tail_and_follow(make_receiver: MakeReceiver) -> None:
    """If records arrive, then tail shows the newest matching ones parsed, and tail -f prints new ones as
    they are committed."""
    import selectors

    from tests.support.programs import send_tcp

    rx = make_receiver()
    lines = [
        b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.err 0 todo-list 1 - first failure",
        b"0.1 sys_tag 1795323667 10.0.0.7 web-1 user.info 0 todo-list 2 - all good",
        b"0.1 sys_tag 1795323668 10.0.0.8 db-1 user.err 0 billing 3 - second failure",
    ]
    send_tcp(rx.port, b"\n".join(lines) + b"\n")
    wait_until(lambda: rx.frame_count() >= 3, timeout=10, message="three frames")
    result = receiverctl("tail", "-n", "5", "--filter", "_severity_<=err", "-c", str(rx.config_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "2026-11-22T05:01:06Z web-1 todo-list err first failure\n"
        "2026-11-22T05:01:08Z db-1 billing err second failure\n"
    )
    follower = subprocess.Popen(
        [*RECEIVERCTL_COMMAND, "tail", "-f", "-n", "0", "--json", "--filter", "app-name=late",
         "-c", str(rx.config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: follower.poll() is None, timeout=5, message="tail -f running")
        time.sleep(1.0)  # tail has read the spool's end by now
        send_tcp(rx.port, b"0.1 sys_tag 1795323669 10.0.0.7 web-1 user.notice 0 late 4 - arrived later\n"
                          b"0.1 sys_tag 1795323669 10.0.0.7 web-1 user.notice 0 other 5 - not this one\n")
        selector = selectors.DefaultSelector()
        assert follower.stdout is not None
        selector.register(follower.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=10), "tail -f printed nothing"
        record = json.loads(follower.stdout.readline())
        assert record["fields"]["msg"] == "arrived later" and record["source"] == "10.0.0.7"
    finally:
        follower.terminate()  # the tail this test started, by its handle
        follower.communicate(timeout=10)


def test_reload_under_load_loses_and_duplicates_nothing(make_receiver: MakeReceiver) -> None:
    """If the configuration gains a listener and loses one while a sender streams on a listener that stays,
    then reload adds and removes them, the streaming connection is kept, and every line arrives once."""
    from bench.blast import ali_seq
    from tests.support.programs import free_port, send_tcp, to_toml

    rx = make_receiver()
    n = 40_000
    sender = BlastSender(rx.port, n, rate=8000).start()  # about 5 s of sending
    wait_until(lambda: rx.frame_count() > 2000, timeout=20, message="streaming")
    extra = free_port("tcp")
    config = dict(rx.config)
    config["listeners"] = [
        next(x for x in rx.config["listeners"] if x["name"] == "tcp"),  # type: ignore[union-attr]
        {"name": "tcp-extra", "transport": "tcp", "address": "127.0.0.1", "port": extra},
    ]
    rx.config_path.write_text(to_toml(config))
    result = receiverctl("reload", "-c", str(rx.config_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "reloaded: listener 'tcp-extra' added; listener 'udp' removed\n"
    send_tcp(extra, b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 1 - via the new listener\n")
    sender.join(60)
    assert sender.lines_sent == n
    sender.close()
    frames = rx.wait_for_frames(n + 1, timeout=30)
    seqs = [ali_seq(f) for f in frames]
    assert sorted(s for s in seqs if s is not None) == list(range(n)), "every line once"
    assert any(f.endswith(b"via the new listener") for f in frames)
    status = json.loads(receiverctl("status", "--json", "-c", str(rx.config_path)).stdout)
    assert [x["name"] for x in status["listeners"]] == ["tcp", "tcp-extra"]


def test_bad_configuration_is_refused_and_sighup_reloads(make_receiver: MakeReceiver) -> None:
    """If the file has an error, then reload is refused with the reason and the running configuration stays;
    a good file then takes effect on SIGHUP."""
    import signal

    from tests.support.programs import free_port, send_tcp, to_toml

    rx = make_receiver()
    bad = dict(rx.config)
    bad["spool"] = {**rx.config["spool"], "sync": "fsync"}  # type: ignore[dict-item]
    rx.config_path.write_text(to_toml(bad))
    result = receiverctl("reload", "--socket", str(control_socket(rx)))  # the daemon reads the file and refuses
    assert result.returncode == 1
    assert "the configuration has errors; the running one stays" in result.stderr
    assert 'spool.sync: "fsync" is not one of' in result.stderr
    result = receiverctl("reload", "-c", str(rx.config_path))  # receiverctl reads it first, and says so
    assert result.returncode == 2
    assert result.stderr.startswith("receiverctl: not asking the receiver to reload: ")
    send_tcp(rx.port, b"still here\n")
    rx.wait_for_frames(1, timeout=10)
    extra = free_port("tcp")
    config = dict(rx.config)
    config["listeners"] = [*rx.config["listeners"], {"name": "late", "transport": "tcp", "address": "127.0.0.1", "port": extra}]  # type: ignore[misc]
    rx.config_path.write_text(to_toml(config))
    assert rx.pid is not None
    os.kill(rx.pid, signal.SIGHUP)  # the receiver this test started, by its PID
    wait_until(lambda: "listener 'late' added" in rx.log, timeout=10, message="reloaded on SIGHUP")
    send_tcp(extra, b"on the late listener\n")
    assert rx.wait_for_frames(2, timeout=10)[-1] == b"on the late listener"


def test_senders(make_receiver: MakeReceiver) -> None:
    """If a TCP sender stays connected and a UDP sender sends once, then senders lists both, with their
    state, counts and machine group."""
    from tests.support.programs import send_udp

    rx = make_receiver(settings={"machine_groups": [{"name": "loopback", "networks": ["127.0.0.0/8"]}]})
    sender = BlastSender(rx.port, 100, polite=True).start()
    sender.join(30)
    send_udp(rx.port, [b"<13>Oct 11 22:14:15 h app: over udp\n"])
    wait_until(lambda: rx.frame_count() >= 101, timeout=10, message="101 frames")
    answer = json.loads(receiverctl("senders", "--json", "-c", str(rx.config_path)).stdout)
    (only,) = answer["senders"]  # both come from 127.0.0.1
    assert only["address"] == "127.0.0.1" and only["frames"] == 101 and only["machine_groups"] == ["loopback"]
    assert only["state"] in ("connected", "sending")
    table = receiverctl("senders", "-c", str(rx.config_path))
    assert table.returncode == 0 and "127.0.0.1" in table.stdout and "1 senders:" in table.stdout
    sender.close()


def test_over_the_memory_limit_the_receiver_stops_cleanly_with_status_3(make_receiver: MakeReceiver) -> None:
    """If the daemon's memory is over [limits] memory_limit_bytes, then it says why, stops cleanly (the
    spool closed) and exits with status 3 for systemd to restart it."""
    rx = make_receiver(settings={"limits": {"memory_limit_bytes": 16 * 2**20}})
    wait_until(lambda: not rx.running, timeout=30, message="the receiver stopped itself")
    assert rx.terminate() == 3
    assert "is over [limits] memory_limit_bytes (16 MiB)" in rx.log
    assert "everything read is committed" in rx.log
