"""Delivery end to end: real senders -> ``receiver run`` -> its delivery process -> an upstream.

The receiver runs as in production (the daemon supervising its delivery
process); the upstreams are the in-test SLS server written from sls.md
(tests/support/sls_server.py), the local store, and a real clickhouse-server
(tests/integration/test_clickhouse_sink.py drives the sink alone;
here it is the whole path). Every test counts: each line sent arrives,
once, with every field as the sender wrote it.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.blast import BlastSender, ali_seq
from formats.sls_pb import DecodedLogGroup
from tests.integration.conftest import MakeReceiver, MakeRsyslog
from tests.support.processes import (
    child_running,
    descendants,
    exited,
    tree_peak_rss_kb,
    tree_rss_kb,
)
from tests.support.programs import Receiver, wait_until
from tests.support.receiverctl import receiverctl, sinks_caught_up
from tests.support.senders import (
    FACILITIES,
    SEVERITIES,
    alibaba_rsyslog_conf,
    run_token,
    sentinel_line,
    sentinel_mark,
)
from tests.support.sls_server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, SlsTestServer

pytestmark = pytest.mark.integration


@pytest.fixture
def sls_server() -> Iterator[SlsTestServer]:
    with SlsTestServer() as server:
        yield server


def keys_file(directory: Path) -> Path:
    path = directory / "sls.keys"
    path.write_text(f"access_key_id = {DEFAULT_ACCESS_KEY_ID}\naccess_key_secret = {DEFAULT_ACCESS_KEY_SECRET}\n")
    path.chmod(0o600)
    return path


def sls_receiver(make_receiver: MakeReceiver, server: SlsTestServer, tmp_path: Path, **settings: object) -> Receiver:
    """A receiver delivering to ``server`` (project ``p``, logstore ``syslog``), identity ``test-id``."""
    ids = tmp_path / "user_defined_id"
    ids.write_text("test-id\n\n  second-id  \n")
    sink = {
        "type": "sls", "name": "sls", "endpoint": server.endpoint, "project": "p", "logstore": "syslog",
        "credentials_file": str(keys_file(tmp_path)), "max_records": 500,
    }
    config: dict[str, object] = {
        "sinks": [sink],
        "identity": {"user_defined_id_file": str(ids)},
        "machine_groups": [{"name": "loopback", "networks": ["127.0.0.0/8"]}],
        **settings,
    }
    return make_receiver(deliver={}, settings=config)


def logs_by_seq(groups: list[DecodedLogGroup]) -> dict[int, list[tuple[DecodedLogGroup, int]]]:
    """Every delivered log with an ALI sequence number in its msg: seq -> [(group, index in group)]."""
    found: dict[int, list[tuple[DecodedLogGroup, int]]] = collections.defaultdict(list)
    for group in groups:
        for i, log in enumerate(group.logs):
            msg = dict(log.contents).get("msg", "")
            seq = ali_seq(msg.encode())
            if seq is not None:
                found[seq].append((group, i))
    return found


def delivered(server: SlsTestServer) -> int:
    return sum(len(g.group.logs) for g in server.groups)


def test_rsyslog_to_sls_every_field_and_tag(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If rsyslog forwards N messages with Alibaba's ALI_LOG_FMT config to the receiver and it delivers
    to SLS, then the SLS server gets N logs, once each, with every field rsyslog wrote, the LogGroup
    source and the tags of design.md."""
    n = 1200
    run = run_token()
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    rsyslog = make_rsyslog(alibaba_rsyslog_conf(rx.port))
    lines = []
    for i in range(n):
        facility, severity = i % 24, (i // 24) % 8
        lines.append(f"<{facility * 8 + severity}>Oct 11 22:14:15 host-{i % 7} app{i % 5}[{1000 + i}]: {run} {i:05d} hello")
    t0 = int(time.time())
    assert rsyslog.send([*lines, sentinel_line(run)], chunk_lines=300) == n + 1
    sentinel = sentinel_mark(run).decode()
    # rsyslog's one connection puts the sentinel in the spool after every line; a sink's cursor passes a batch
    # only once all of it is settled: so once the sentinel is delivered and the cursor at the spool's end, a
    # duplicate or a missing log is visible for certain.
    wait_until(
        lambda: any(sentinel in dict(log.contents).get("msg", "") for g in sls_server.groups for log in g.group.logs)
        and sinks_caught_up(rx.config_path),
        timeout=60, message="the sentinel at the SLS server",
    )
    groups = [g for g in sls_server.groups]
    assert {(g.project, g.logstore) for g in groups} == {("p", "syslog")}
    by_mark: dict[int, list[tuple[DecodedLogGroup, int]]] = collections.defaultdict(list)
    for received in groups:
        for i, log in enumerate(received.group.logs):
            msg = dict(log.contents).get("msg", "")
            if sentinel in msg:
                continue
            m = re.search(rf"{run} (\d{{5}}) hello", msg)
            assert m is not None, log
            by_mark[int(m.group(1))].append((received.group, i))
    assert sorted(by_mark) == list(range(n)), "missing or unexpected"
    assert [k for k, v in by_mark.items() if len(v) > 1] == [], "duplicates"
    pack_ids = [dict(g.group.tags)["__pack_id__"] for g in groups]
    assert len(set(pack_ids)) == len(pack_ids)
    for i in range(n):
        ((group, index),) = by_mark[i]
        log = group.logs[index]
        fields = dict(log.contents)
        facility, severity = i % 24, (i // 24) % 8
        assert fields == {
            "hostname": f"host-{i % 7}", "pri-text": f"{FACILITIES[facility]}.{SEVERITIES[severity]}",
            "protocol-version": "0", "app-name": f"app{i % 5}", "procid": str(1000 + i), "msgid": "-",
            "msg": f"{run} {i:05d} hello",
        }, fields
        assert t0 - 1 <= log.time <= time.time() + 1
        assert group.source == "127.0.0.1"
        tags = dict(group.tags)
        assert tags["__client_ip__"] == "127.0.0.1"
        assert tags["__user_defined_id__"] == "test-id second-id"  # space-joined, as Logtail does
        assert tags["__machine_group__"] == "loopback"
        assert tags["__hostname__"] and tags["__pack_id__"]
        assert t0 - 1 <= int(tags["__receive_time__"]) <= time.time() + 1


def test_upstream_down_then_back_delivers_everything_once(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If SLS answers 503 while N lines arrive, then nothing is lost meanwhile (the spool holds them) and
    once it recovers every line is delivered exactly once, in order of arrival."""
    n = 20_000
    sls_server.fail_all(503, "ServerBusy", "test outage")
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    BlastSender(rx.port, n).start().join(60).close()
    wait_until(lambda: rx.frame_count() >= n, timeout=30, message=f"{n} frames spooled")
    wait_until(lambda: len(sls_server.refusals) >= 3, timeout=30, message="delivery retrying")
    assert delivered(sls_server) == 0
    sls_server.clear_failures()
    wait_until(lambda: delivered(sls_server) >= n, timeout=90, message=f"{n} logs delivered after the outage")
    # All n were in the spool before; the cursor at its end means every batch is settled: nothing more comes.
    wait_until(lambda: sinks_caught_up(rx.config_path), timeout=30, message="the sink's cursor at the spool's end")
    found = logs_by_seq([g.group for g in sls_server.groups])
    assert sorted(found) == list(range(n))
    assert [k for k, v in found.items() if len(v) > 1] == []
    order = [ali_seq(dict(log.contents)["msg"].encode()) for g in sls_server.groups for log in g.group.logs]
    assert None not in order
    assert order == sorted(seq for seq in order if seq is not None), "one sender's records arrive in the order received"
    assert "503" in rx.log and "the spool keeps everything meanwhile" in rx.log


def test_permanent_rejection_is_kept_and_replayed(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If SLS rejects a batch for good (400 PostBodyInvalid), then it is kept as a dead letter that
    receiverctl lists, shows and replays, and the replay delivers it with the same pack id."""
    sls_server.fail_next(1, 400, "PostBodyInvalid", "test rejection")
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    BlastSender(rx.port, 10).start().join(30).close()
    dead = rx.state_directory / "dead-letters" / "sls"
    wait_until(lambda: list(dead.glob("*.ndjson")), timeout=30, message="a dead letter")
    (kept,) = dead.glob("*.ndjson")
    assert receiverctl("spool", "dead-letters", "-c", str(rx.config_path)).returncode == 0
    assert receiverctl("spool", "show", kept.stem, "-c", str(rx.config_path)).returncode == 0
    assert delivered(sls_server) == 0
    assert receiverctl("spool", "replay", "--all", "-c", str(rx.config_path)).returncode == 0
    wait_until(lambda: delivered(sls_server) >= 10, timeout=30, message="the replayed records")
    (group,) = sls_server.groups
    assert dict(group.group.tags)["__pack_id__"] == kept.stem
    # The letter is removed once the sink has the upstream's answer, a moment after the upstream has it.
    wait_until(lambda: not list(dead.rglob("*.ndjson")), timeout=30, message="the replayed letter removed")
    sls_server.fail_next(1, 400, "PostBodyInvalid", "rejected again")
    BlastSender(rx.port, 3, run="again").start().join(30).close()
    wait_until(lambda: list(dead.glob("*.ndjson")), timeout=30, message="a second dead letter")
    assert receiverctl("spool", "purge", "--all", "-c", str(rx.config_path)).returncode == 0
    assert not list(dead.rglob("*.ndjson"))


def _delivery_pid(rx: Receiver) -> int | None:
    assert rx.pid is not None
    return child_running(rx.pid, "receiver.deliver.process")


def test_delivery_process_killed_mid_flood_resends_only_with_the_same_pack_id(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If the delivery process is killed (-9) while sending, then the daemon restarts it, every line is
    delivered, any line delivered twice came both times in a group with the same __pack_id__, and the
    killed process's worker processes (and their forkserver) exit by themselves: no orphans pile up."""
    n = 60_000
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    first = _delivery_pid(rx)
    assert first is not None
    sender = BlastSender(rx.port, n).start()
    try:
        wait_until(lambda: delivered(sls_server) > 2000, timeout=60, message="delivery under way")
        workers = descendants(first)
        assert workers, "the delivery process has worker processes"
        os.kill(first, signal.SIGKILL)  # the child of the receiver under test, by its PID
        sender.join(60)
    finally:
        sender.close()
    wait_until(lambda: (_delivery_pid(rx) or first) != first, timeout=30, message="delivery restarted")
    wait_until(lambda: len(logs_by_seq([g.group for g in sls_server.groups])) >= n, timeout=120, message="all delivered")
    found = logs_by_seq([g.group for g in sls_server.groups])
    assert sorted(found) == list(range(n))
    for seq, copies in found.items():
        packs = {dict(group.tags)["__pack_id__"] for group, _ in copies}
        assert len(packs) == 1, f"line {seq} came in groups {packs}"
    assert "delivery process ended unexpectedly" in rx.log
    wait_until(lambda: all(exited(pid) for pid in workers), timeout=30,
               message=lambda: f"orphaned workers of the killed delivery process: {workers}")


def test_delivery_runs_the_configuration_the_daemon_runs(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If the configuration file is edited without a reload and the delivery process restarts, then it
    still delivers as the daemon runs (the file's new logstore is not used); and if a reload then changes
    the spool directory (kept until restart) together with the sink, then delivery takes the new sink and
    goes on reading the spool the daemon writes: every line arrives."""

    from tests.support.programs import send_tcp, to_toml

    def line(text: str) -> bytes:
        return f"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 app 1 - {text}\n".encode()

    def logstores() -> dict[str, str]:
        return {dict(log.contents)["msg"]: g.logstore for g in sls_server.groups for log in g.group.logs}

    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    send_tcp(rx.port, line("before any edit"))
    wait_until(lambda: "before any edit" in logstores(), timeout=30, message="the first line")
    edited = dict(rx.config)
    edited["spool"] = {**rx.config["spool"], "directory": str(tmp_path / "another-spool")}  # type: ignore[dict-item]
    edited["sinks"] = [{**rx.config["sinks"][0], "logstore": "edited"}]  # type: ignore[index]
    rx.config_path.write_text(to_toml(edited))
    first = _delivery_pid(rx)
    assert first is not None
    os.kill(first, signal.SIGKILL)  # the child of the receiver under test, by its PID
    wait_until(lambda: (_delivery_pid(rx) or first) != first, timeout=30, message="delivery restarted")
    send_tcp(rx.port, line("edited, not reloaded"))
    # Wait for the line itself: a restart may deliver an earlier line again (at least once), so a count could
    # be reached before it arrives.
    wait_until(lambda: "edited, not reloaded" in logstores(), timeout=30, message="the line after the restart")
    assert logstores()["edited, not reloaded"] == "syslog"

    result = receiverctl("reload", "-c", str(rx.config_path))
    assert result.returncode == 0, result.stderr
    assert "[spool] changed: takes effect at the next restart" in result.stdout
    assert "delivery restarted" in result.stdout
    send_tcp(rx.port, line("after the reload"))
    wait_until(lambda: "after the reload" in logstores(), timeout=30, message="the line after the reload")
    assert logstores()["after the reload"] == "edited"
    assert not (tmp_path / "another-spool").exists()


def test_routes_by_tag_and_filter_and_counts_unknown_tags(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If routes send tag ``sys_tag`` errors to logstore ``errors`` and the rest of ``sys_tag`` to
    ``syslog``, then each record lands where its route says, and a tag no route names goes to the
    default sink and is counted in the log, never dropped."""
    from tests.support.programs import send_tcp

    routes = [
        {"drop": True, "filter": "app-name=noisy"},
        {"sink": "sls", "tag": "sys_tag", "filter": "_severity_<=err", "destination": "errors"},
        {"sink": "sls", "tag": "sys_tag", "destination": "syslog"},
    ]
    rx = sls_receiver(make_receiver, sls_server, tmp_path, routes=routes)
    lines = [
        b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.err 0 todo-list 705 - disk failed",
        b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 todo-list 705 - created a task",
        b"0.1 other_tag 1795323666 10.0.0.8 web-2 user.notice 0 shop 1 - unrouted tag",
        b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.debug 0 noisy 9 - dropped by a route",
    ]
    send_tcp(rx.port, b"\n".join(lines) + b"\n")
    wait_until(lambda: delivered(sls_server) >= 3, timeout=30, message="three logs")
    where = {dict(log.contents)["msg"]: g.logstore for g in sls_server.groups for log in g.group.logs}
    assert where == {"disk failed": "errors", "created a task": "syslog", "unrouted tag": "syslog"}
    wait_until(lambda: "a streamlog tag no route names" in rx.log, timeout=10, message="the unknown tag counted")
    wait_until(lambda: "routes with drop = true dropped 1 records" in rx.log, timeout=10, message="the drop counted")


def rsyslog_lines(n: int, run: str) -> list[str]:
    """RFC 3164 lines cycling through every facility and severity, marked ``run i``."""
    return [
        f"<{(i % 24) * 8 + (i // 24) % 8}>Oct 11 22:14:15 host-{i % 7} app{i % 5}[{1000 + i}]: {run} {i:05d} hello"
        for i in range(n)
    ]


def expected_fields(i: int, run: str) -> dict[str, str]:
    """What rsyslog's ALI_LOG_FMT line for ``rsyslog_lines(...)[i]`` holds, field by field."""
    facility, severity = i % 24, (i // 24) % 8
    return {
        "hostname": f"host-{i % 7}", "pri-text": f"{FACILITIES[facility]}.{SEVERITIES[severity]}",
        "protocol-version": "0", "app-name": f"app{i % 5}", "procid": str(1000 + i), "msgid": "-",
        "msg": f"{run} {i:05d} hello",
    }


def test_rsyslog_to_the_local_store_and_receiverctl_search(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, tmp_path: Path
) -> None:
    """If rsyslog forwards N messages and the receiver runs on its defaults (the local store), then
    ``receiverctl search`` finds all N, once each, with every field, while the daemon runs; and a filter
    finds exactly the records it names."""
    import json
    import subprocess

    n = 1000
    run = run_token()
    rx = make_receiver(deliver={})
    rsyslog = make_rsyslog(alibaba_rsyslog_conf(rx.port))
    assert rsyslog.send(rsyslog_lines(n, run), chunk_lines=250) == n

    def search(*args: str) -> subprocess.CompletedProcess[str]:
        return receiverctl("search", "-c", str(rx.config_path), "--json", *args)

    def found() -> list[dict[str, object]]:
        result = search(run, "--limit", str(2 * n))
        return [json.loads(line) for line in result.stdout.splitlines()]

    wait_until(lambda: len(found()) >= n, timeout=60, message=f"{n} records in the local store")
    records = found()
    by_mark = collections.defaultdict(list)
    for record in records:
        fields = record["fields"]
        assert isinstance(fields, dict)
        m = re.search(rf"{run} (\d{{5}}) hello", str(fields["msg"]))
        assert m is not None
        by_mark[int(m.group(1))].append(record)
    assert sorted(by_mark) == list(range(n)) and all(len(v) == 1 for v in by_mark.values())
    for i, (record,) in by_mark.items():
        assert record["fields"] == expected_fields(i, run)
        assert record["source"] == "127.0.0.1"
        tags = record["group_tags"]
        assert isinstance(tags, dict) and tags["__client_ip__"] == "127.0.0.1" and tags["__pack_id__"]

    # app3 and severity err or worse: i % 5 == 3 and (i // 24) % 8 <= 3
    result = search(f"{run} and app-name=app3 and _severity_<=err", "--limit", str(n))
    assert result.returncode == 0, result.stderr
    marks = sorted(int(str(json.loads(line)["fields"]["msg"]).split()[1]) for line in result.stdout.splitlines())
    assert marks == [i for i in range(n) if i % 5 == 3 and (i // 24) % 8 <= 3]
    assert search("no-such-word-anywhere").returncode == 1


def test_rsyslog_to_clickhouse_every_field(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, tmp_path: Path
) -> None:
    """If rsyslog forwards N messages and the receiver delivers to a real clickhouse-server, then the
    table holds N rows, once each, with every column as rsyslog wrote it and the group's tags."""
    from tests.support.clickhouse import ClickHouseServer

    n = 1000
    run = run_token()
    with ClickHouseServer(tmp_path / "clickhouse") as server:
        password = tmp_path / "clickhouse.password"
        password.write_text(server.users["default"].password + "\n")
        password.chmod(0o600)
        sink = {"type": "clickhouse", "url": server.url, "table": "syslog", "password_file": str(password)}
        rx = make_receiver(deliver={}, settings={
            "sinks": [sink], "machine_groups": [{"name": "loopback", "networks": ["127.0.0.0/8"]}],
        })
        rsyslog = make_rsyslog(alibaba_rsyslog_conf(rx.port))
        assert rsyslog.send([*rsyslog_lines(n, run), sentinel_line(run)], chunk_lines=250) == n + 1

        def count() -> int:
            try:
                return int(server.scalar("SELECT count() FROM default.syslog"))
            except Exception:
                return 0  # the sink creates the table with its first insert

        def sentinel_stored() -> bool:
            try:
                return int(server.scalar(f"SELECT count() FROM default.syslog WHERE position(message, '{sentinel}') > 0")) > 0
            except Exception:
                return False  # the sink creates the table with its first insert

        # As with SLS above: the sentinel follows every line through the spool, and the cursor at the spool's
        # end means every batch before it is settled.
        sentinel = sentinel_mark(run).decode()
        wait_until(lambda: sentinel_stored() and sinks_caught_up(rx.config_path), timeout=60,
                   message=lambda: f"the sentinel in ClickHouse ({count()} rows)")
        rows = [r for r in server.rows("SELECT * FROM default.syslog") if sentinel not in r["message"]]
    assert len(rows) == n
    by_mark = {int(re.search(rf"{run} (\d{{5}}) hello", r["message"]).group(1)): r for r in rows}  # type: ignore[union-attr]
    assert sorted(by_mark) == list(range(n))
    for i, row in by_mark.items():
        fields = expected_fields(i, run)
        assert dict(zip(row["field_keys"], row["field_values"], strict=True)) == fields
        facility, severity = i % 24, (i // 24) % 8
        assert (row["host"], row["app"], row["severity"], row["facility"], row["message"]) == (
            fields["hostname"], fields["app-name"], severity, facility, fields["msg"],
        )
        assert (row["source"], row["client_ip"], row["tag"], row["machine_group"]) == (
            "127.0.0.1", "127.0.0.1", "sys_tag", "loopback",
        )
        assert row["pack_id"] and row["flags"] == []


def test_delivery_process_ends_with_the_daemon_even_on_kill9(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If the daemon is killed (-9), then its delivery process and that process's workers notice and
    exit by themselves: no orphan keeps reading the spool."""
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    child = _delivery_pid(rx)
    assert child is not None
    wait_until(lambda: "worker processes build and encode" in rx.log, timeout=20, message="delivery started")
    family = [child, *descendants(child)]
    rx.kill()
    wait_until(lambda: all(exited(pid) for pid in family), timeout=30, message=f"{family} exited")


def test_memory_stays_flat_while_the_upstream_is_down(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If SLS is down while 300,000 lines arrive, then the delivery processes' memory stays bounded
    (the spool holds the backlog, not memory), and every line is delivered once SLS is back."""
    n = 300_000
    sls_server.fail_all(503, "ServerBusy", "test outage")
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    child = _delivery_pid(rx)
    assert child is not None
    sender = BlastSender(rx.port, n // 10).start()
    sender.join(60)
    sender.close()
    wait_until(lambda: len(sls_server.refusals) >= 2, timeout=30, message="delivery retrying")
    after_a_tenth = tree_rss_kb(child)
    sender = BlastSender(rx.port, n, run="more").start()
    sender.join(120)
    sender.close()
    wait_until(lambda: rx.frame_count() >= n + n // 10, timeout=60, message="all spooled")
    retries = len(sls_server.refusals)
    wait_until(lambda: len(sls_server.refusals) >= retries + 2, timeout=30, message="a few more retries against the outage")
    after_all = tree_rss_kb(child)
    assert after_all - after_a_tenth < 64 * 1024, f"delivery grew from {after_a_tenth} to {after_all} KiB"
    assert tree_peak_rss_kb(child) < 1024 * 1024
    sls_server.clear_failures()
    wait_until(lambda: delivered(sls_server) >= n + n // 10, timeout=120, message="caught up")


def test_metrics_show_ingest_spool_and_each_sink(
    make_receiver: MakeReceiver, sls_server: SlsTestServer, tmp_path: Path
) -> None:
    """If lines are received and delivered, then /metrics counts them at ingest and at the sink, with the
    sink's latency histogram and its cursor lag back at 0."""
    import requests

    n = 5000
    rx = sls_receiver(make_receiver, sls_server, tmp_path)
    BlastSender(rx.port, n).start().join(30).close()
    wait_until(lambda: delivered(sls_server) >= n, timeout=60, message="delivered")

    def scrape() -> dict[str, float]:
        response = requests.get(rx.metrics_url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        out = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    wait_until(lambda: scrape().get('receiver_sink_delivered_records_total{sink="sls"}') == n, timeout=10,
               message="the delivery stats reach the daemon")
    figures = scrape()
    assert figures['receiver_frames_received_total{listener="tcp"}'] == n
    assert figures["receiver_spool_frames_committed_total"] == n
    assert figures['receiver_sink_latency_seconds_count{sink="sls"}'] == n
    assert figures['receiver_sink_latency_seconds_bucket{sink="sls",le="+Inf"}'] == n
    assert figures['receiver_sink_lag_segments{sink="sls"}'] == 0
    assert figures["process_resident_memory_bytes"] > 0
    assert requests.get(rx.metrics_url.replace("/metrics", "/other"), timeout=10).status_code == 404
