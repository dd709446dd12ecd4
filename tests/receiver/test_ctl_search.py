"""receiverctl search and sql, run as an operator runs them, on a local store written here.

With the store closed, receiverctl opens it itself (--db, or the path a
configuration gives); with a store server answering beside the control
socket (as the delivery process runs one), it asks that.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path

import pytest

from formats.parse import make_parser
from formats.record import Record
from receiver.deliver.batches import Group
from receiver.deliver.sinks.local.server import StoreServer
from receiver.deliver.sinks.local.store import EmbeddedStore
from tests.support.receiverctl import BARE_ENV, receiverctl

PARSE = make_parser()
NOW = int(time.time())


def ali(seconds: int, host: str, pri: str, app: str, msg: str) -> bytes:
    return f"0.1 sys_tag {seconds} 10.0.0.7 {host} {pri} 0 {app} 1 - {msg}".encode()


def open_store(path: Path) -> EmbeddedStore:
    return EmbeddedStore(path, max_age_hours=24, max_bytes=1 << 30, memory_limit_bytes=256 << 20)


def insert(store: EmbeddedStore, records: list[Record], pack_id: str, group_tags: list[tuple[str, str]]) -> None:
    store.insert_groups([Group("", "10.0.0.7", "10.0.0.7", records, group_tags, pack_id)], token=pack_id)


def make_store(path: Path) -> Path:
    """Three records: five hours, two hours and half an hour old."""
    store = open_store(path)
    frames = [
        ali(NOW - 5 * 3600, "web-1", "user.err", "todo-list", "Connection refused by upstream"),
        ali(NOW - 2 * 3600, "web-2", "user.info", "todo-list", "Create a new task"),
        ali(NOW - 1800, "db-1", "local0.warning", "billing", "line one\nline two \x1b[31mred"),
    ]
    records = [PARSE(frame, "10.0.0.7", NOW * 10**9) for frame in frames]
    group_tags = [("__client_ip__", "10.0.0.7"), ("__receive_time__", str(NOW)), ("__pack_id__", "ABC-1")]
    insert(store, records, "ABC-1", group_tags)
    store.close()
    return path


def stamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_store(tmp_path / "store")


class TestOutput:
    def test_human_lines(self, db: Path) -> None:
        """If records match, then each is one line: time, host, app, severity name, message; exit 0."""
        result = receiverctl("search", "--db", str(db), "", env=BARE_ENV)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"{stamp(NOW - 1800)} db-1 billing warning line one\\nline two \\x1b[31mred",
            f"{stamp(NOW - 2 * 3600)} web-2 todo-list info Create a new task",
            f"{stamp(NOW - 5 * 3600)} web-1 todo-list err Connection refused by upstream",
        ]
        assert result.stderr == ""

    def test_json_lines(self, db: Path) -> None:
        """If --json is given, then each line is the record's JSON plus its group tags."""
        result = receiverctl("search", "--db", str(db), "--json", "refused", env=BARE_ENV)
        assert result.returncode == 0, result.stderr
        (line,) = result.stdout.splitlines()
        record = json.loads(line)
        assert list(record) == ["time", "time_ns", "fields", "source", "tags", "flags", "group_tags", "received_ns"]
        assert record["fields"]["app-name"] == "todo-list"
        assert record["fields"]["msg"] == "Connection refused by upstream"
        assert record["tags"] == {"__streamlog_tag__": "sys_tag"}
        assert record["group_tags"] == {"__client_ip__": "10.0.0.7", "__receive_time__": str(NOW), "__pack_id__": "ABC-1"}
        assert record["received_ns"] == NOW * 10**9

    def test_nothing_a_sender_wrote_drives_the_terminal(self, tmp_path: Path) -> None:
        """If a record's host, app or message holds C1 controls (CSI), bidirectional overrides or line
        separators, then neither the lines nor the --json output carry them raw: each is an escape, and
        the JSON still decodes to the sender's exact text."""
        hostile = "pay \u202egnp.exe\u202c done \x9b31m \u2028next \u2066x\u2069"
        store = open_store(tmp_path / "store")
        record = PARSE(ali(NOW - 60, "web\x9b1", "user.info", "app\u202e", hostile), "10.0.0.7", NOW * 10**9)
        insert(store, [record], "ABC-2", [("__receive_time__", str(NOW))])
        store.close()
        for extra in ((), ("--json",)):
            result = receiverctl("search", "--db", str(tmp_path / "store"), *extra, "", env=BARE_ENV)
            assert result.returncode == 0, result.stderr
            assert result.stdout.isascii() or all(c.isprintable() or c == "\n" for c in result.stdout), result.stdout
            for raw in ("\u202e", "\x9b", "\u2028", "\u2066"):
                assert raw not in result.stdout
        (line,) = receiverctl("search", "--db", str(tmp_path / "store"), "--json", "", env=BARE_ENV).stdout.splitlines()
        assert json.loads(line)["fields"]["msg"] == hostile
        (text,) = receiverctl("search", "--db", str(tmp_path / "store"), "", env=BARE_ENV).stdout.splitlines()
        assert "web\\x9b1 app\\u202e info pay \\u202egnp.exe" in text

    def test_filter_limit_and_order(self, db: Path) -> None:
        """If a filter, --limit and --oldest-first are given, then they select and order the records."""
        result = receiverctl("search", "--db", str(db), "app-name=todo-list and _severity_<=info", "--limit", "1", env=BARE_ENV)
        assert [line.split(" ", 4)[4] for line in result.stdout.splitlines()] == ["Create a new task"]
        result = receiverctl("search", "--db", str(db), "--oldest-first", "--limit", "2", "", env=BARE_ENV)
        assert [line.split()[1] for line in result.stdout.splitlines()] == ["web-1", "web-2"]

    def test_no_match_exits_1(self, db: Path) -> None:
        """If nothing matches, then nothing is printed and the exit status is 1, as grep's."""
        result = receiverctl("search", "--db", str(db), "app-name=nothing-like-it", env=BARE_ENV)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


class TestTimes:
    def test_since_age(self, db: Path) -> None:
        """If --since is an age, then only records timed within it come.

        The records are hours apart, so the minutes a long test run takes after NOW was read do not matter.
        """
        result = receiverctl("search", "--db", str(db), "--since", "3h", "", env=BARE_ENV)
        assert [line.split()[1] for line in result.stdout.splitlines()] == ["db-1", "web-2"]
        result = receiverctl("search", "--db", str(db), "--since", "6h", "--until", "1h", "", env=BARE_ENV)
        assert [line.split()[1] for line in result.stdout.splitlines()] == ["web-2", "web-1"]

    def test_since_iso(self, db: Path) -> None:
        """If --since and --until are ISO times, then they bound the records' times (UTC unless an offset says)."""
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(NOW - 3 * 3600))
        result = receiverctl("search", "--db", str(db), "--since", since, "--until", stamp(NOW - 3600), "", env=BARE_ENV)
        assert [line.split()[1] for line in result.stdout.splitlines()] == ["web-2"]

    def test_bad_time(self, db: Path) -> None:
        """If --since is neither an age nor a time, then exit 2 with one line saying what is accepted."""
        result = receiverctl("search", "--db", str(db), "--since", "yesterday", "", env=BARE_ENV)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            "receiverctl: --since 'yesterday' is neither an age (15m, 2h, 7d) nor an ISO time (2026-01-01T10:00:00+08:00)"
        ]
        assert receiverctl("search", "--db", str(db), "--until", "inf", "", env=BARE_ENV).returncode == 2


class TestWhere:
    def test_config_default_path(self, tmp_path: Path) -> None:
        """If -c names a configuration without a path, then the store in its state directory is searched."""
        make_store(tmp_path / "state" / "store")
        config = tmp_path / "receiver.toml"
        config.write_text('state_directory = "state"\n')
        result = receiverctl("search", "-c", str(config), "refused", cwd=Path("/"), env=BARE_ENV)
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("Connection refused by upstream\n")

    def test_config_sink_path(self, tmp_path: Path) -> None:
        """If the configuration's local sink names a path, then the store there is searched."""
        make_store(tmp_path / "custom")
        config = tmp_path / "receiver.toml"
        config.write_text('state_directory = "state"\n\n[[sinks]]\ntype = "local"\npath = "custom"\n')
        assert receiverctl("search", "-c", str(config), "task", env=BARE_ENV).returncode == 0

    def test_config_without_local_sink(self, tmp_path: Path) -> None:
        """If the configuration has no local sink, then exit 2 saying so."""
        config = tmp_path / "receiver.toml"
        config.write_text('[[sinks]]\ntype = "sls"\nendpoint = "http://127.0.0.1:9"\nproject = "p"\nlogstore = "l"\n')
        result = receiverctl("search", "-c", str(config), "x", env=BARE_ENV)
        assert result.returncode == 2
        assert 'has no local sink (type = "local")' in result.stderr

    def test_no_store_yet(self, tmp_path: Path) -> None:
        """If there is no store, then exit 2 with one line: nothing delivered there yet, and where it looked."""
        result = receiverctl("search", "refused", cwd=tmp_path, env=BARE_ENV)
        assert result.returncode == 2
        (line,) = result.stderr.splitlines()
        assert line.startswith("receiverctl: no local store in var/store: the receiver has not delivered anything there yet")
        assert "built-in defaults" in line
        assert not (tmp_path / "var").exists()

    def test_an_older_sqlite_store_is_named(self, tmp_path: Path) -> None:
        """If only an older release's local.db is there, then the message says it is imported at the next start."""
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "local.db").write_bytes(b"SQLite format 3\0")
        result = receiverctl("search", "x", cwd=tmp_path, env=BARE_ENV)
        assert result.returncode == 2 and "imported when the receiver next starts" in result.stderr


class TestErrors:
    def test_bad_filter(self, db: Path) -> None:
        """If the filter does not parse, then exit 2 with one line naming the problem and its column."""
        result = receiverctl("search", "--db", str(db), "app-name=", env=BARE_ENV)
        assert result.returncode == 2
        assert result.stderr.splitlines() == ['receiverctl: filter: expected a value after "=" at column 10']

    def test_negative_limit(self, db: Path) -> None:
        """If --limit is negative, then exit 2."""
        assert receiverctl("search", "--db", str(db), "--limit", "-1", "", env=BARE_ENV).returncode == 2


class TestBesideTheDaemon:
    def test_search_and_sql_ask_the_process_that_holds_the_store(self, tmp_path: Path) -> None:
        """If a process holds the store and serves it (as the delivery process does) while writing, then
        search and sql (found by -c) ask it, and each search sees whole batches."""
        config = tmp_path / "receiver.toml"
        config.write_text('state_directory = "state"\n')
        store = open_store(tmp_path / "state" / "store")
        server = StoreServer(store, tmp_path / "state" / "store.sock")
        stop = threading.Event()
        errors: list[BaseException] = []
        batches = 0

        def write() -> None:
            nonlocal batches
            try:
                while not stop.is_set() and batches < 100:  # bounded: searches do not chase a growing store
                    frames = [ali(NOW, "web-9", "user.info", "writer", f"batch{batches} row{n}") for n in range(200)]
                    insert(store, [PARSE(f, "10.0.0.9", NOW * 10**9) for f in frames], f"W-{batches}",
                           [("__receive_time__", str(NOW))])
                    batches += 1
            except BaseException as e:  # reported below
                errors.append(e)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(3):
                result = receiverctl("search", "-c", str(config), "--json", "--limit", "0", "app-name=writer", env=BARE_ENV)
                assert result.returncode in (0, 1), result.stderr
                seen = collections.Counter(json.loads(line)["fields"]["msg"].split()[0] for line in result.stdout.splitlines())
                assert set(seen.values()) <= {200}  # whole batches only
            result = receiverctl("sql", "-c", str(config), "SELECT count() AS n FROM receiver.records", env=BARE_ENV)
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines()[0].strip() == "n"
        finally:
            stop.set()
            writer.join()
            server.close()
            store.close()
        assert not errors, errors
        assert batches > 0


class TestSql:
    def test_table_and_json(self, db: Path) -> None:
        """If an aggregation is asked for, then it prints an aligned table, or one JSON object with --json."""
        query = "SELECT host, count() AS n FROM receiver.records GROUP BY host ORDER BY host"
        result = receiverctl("sql", "--db", str(db), query, env=BARE_ENV)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["host   n", "db-1   1", "web-1  1", "web-2  1"]
        result = receiverctl("sql", "--db", str(db), "--json", query, env=BARE_ENV)
        assert json.loads(result.stdout)["columns"] == ["host", "n"]

    def test_refused_query_exits_2(self, db: Path) -> None:
        """If the query would write or read files, then exit 2 with the reason."""
        result = receiverctl("sql", "--db", str(db), "DROP TABLE receiver.records", env=BARE_ENV)
        assert result.returncode == 2 and "read-only" in result.stderr


class TestMain:
    def test_main_in_process(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If main() is called with search arguments, then it prints and returns the status as the command does."""
        from receiver.cli.ctl import main

        assert main(["search", "--db", str(db), "--json", "_severity_<=warning"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["fields"]["hostname"] for line in lines] == ["db-1", "web-1"]
        assert main(["search", "--db", str(db), "nothing"]) == 1
