"""A private clickhouse-server for tests: its own directory, configuration, ports and users.

    with ClickHouseServer(tmp_path / "ch", users={"default": ClickHouseUser("secret")}) as server:
        server.query("CREATE TABLE t (x UInt8) ENGINE = Memory")
        server.query("INSERT INTO t FORMAT JSONEachRow", data=b'{"x": 1}\\n')
        assert server.rows("SELECT x FROM t") == [{"x": 1}]

The server is ``clickhouse-server --config-file=<directory>/config.xml``
with everything it writes (data, temporary files, logs) under
``directory``, HTTP and native TCP on free 127.0.0.1 ports, time zone UTC
(so ``DateTime`` prints the same everywhere) and the users given (each with
its own settings profile). ``start()`` waits until ``GET /ping`` answers
``Ok.``; ``stop()`` sends SIGTERM to the PID it started, then SIGKILL after
``stop_timeout``. Nothing else on the machine is touched: the Debian
package's service and /var/lib/clickhouse stay as they are.

The configuration is written for clickhouse-server 18.16 (Debian 12's, the
one tested) with keys current releases still read: the ``<yandex>`` root
element, ``listen_host``, ``http_port``, ``tcp_port``, ``path``,
``users_config``, ``query_log`` (with ``log_queries`` in every profile, so
``system.query_log`` shows who ran what).

A missing clickhouse-server raises
:class:`~tests.support.programs.ProgramMissingError` telling to run
``tests/install-programs.sh``: tests that need it fail, they never skip.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from xml.sax.saxutils import escape

import requests

from tests.support.programs import (
    LOOPBACK,
    HarnessError,
    ProgramFailedError,
    free_port,
    require_program,
)

__all__ = ["ClickHouseQueryError", "ClickHouseServer", "ClickHouseUser", "clickhouse_binary"]


class ClickHouseQueryError(HarnessError):
    """The server answered a helper query with an error; ``status`` and ``body`` are its answer."""

    def __init__(self, sql: str, status: int, body: str) -> None:
        super().__init__(f"ClickHouse answered {status} to {sql[:200]!r}: {body.strip()[:2000]}")
        self.status = status
        self.body = body


@dataclasses.dataclass(frozen=True)
class ClickHouseUser:
    """A user of the private server: its password (plain text: a test server) and profile settings."""

    password: str = ""
    settings: Mapping[str, str | int] = dataclasses.field(default_factory=dict)
    """Profile settings, e.g. ``{"max_memory_usage": 1_000_000}`` to provoke a memory error."""


def clickhouse_binary() -> str:
    """The clickhouse-server path, or ProgramMissingError saying to run tests/install-programs.sh."""
    return require_program("clickhouse-server")


class ClickHouseServer:
    """One private clickhouse-server process; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, ClickHouseUser] | None = None,
        admin: str = "default",
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.binary = clickhouse_binary()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.users = dict(users) if users is not None else {"default": ClickHouseUser(secrets.token_hex(8))}
        if admin not in self.users:
            raise ValueError(f"admin user {admin!r} is not among the users {sorted(self.users)}")
        self.admin = admin
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.http_port = free_port("tcp")
        self.tcp_port = free_port("tcp")
        while self.tcp_port == self.http_port:
            self.tcp_port = free_port("tcp")
        self.config_path = self.directory / "config.xml"
        self.users_path = self.directory / "users.xml"
        self.output_path = self.directory / "stdout-stderr.log"
        self.log_path = self.directory / "log" / "clickhouse-server.log"
        self.error_log_path = self.directory / "log" / "clickhouse-server.err.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._write_config()

    # -- configuration -------------------------------------------------------

    def _write_config(self) -> None:
        d = self.directory
        for sub in ("data", "tmp", "user_files", "log", "format_schemas"):
            (d / sub).mkdir(exist_ok=True)
        self.config_path.write_text(
            f"""<?xml version="1.0"?>
<!-- private test instance written by tests/support/clickhouse.py -->
<yandex>
    <logger>
        <level>information</level>
        <log>{self.log_path}</log>
        <errorlog>{self.error_log_path}</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>{LOOPBACK}</listen_host>
    <http_port>{self.http_port}</http_port>
    <tcp_port>{self.tcp_port}</tcp_port>
    <path>{d / "data"}/</path>
    <tmp_path>{d / "tmp"}/</tmp_path>
    <user_files_path>{d / "user_files"}/</user_files_path>
    <format_schema_path>{d / "format_schemas"}/</format_schema_path>
    <users_config>{self.users_path}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <mlock_executable>false</mlock_executable>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds>
    </query_log>
</yandex>
"""
        )
        # log_queries: system.query_log shows who ran what (18.16 logs nothing by default).
        profiles = ["        <default><log_queries>1</log_queries></default>"]
        users = []
        for name, user in self.users.items():
            settings = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in {"log_queries": 1, **user.settings}.items())
            profiles.append(f"        <p_{name}>{settings}</p_{name}>")
            users.append(
                f"""        <{name}>
            <password>{escape(user.password)}</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>p_{name}</profile>
            <quota>default</quota>
        </{name}>"""
            )
        self.users_path.write_text(
            '<?xml version="1.0"?>\n<yandex>\n    <profiles>\n' + "\n".join(profiles) + "\n    </profiles>\n"
            "    <users>\n" + "\n".join(users) + "\n    </users>\n"
            "    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>"
            "<result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>"
            "</interval></default></quotas>\n</yandex>\n"
        )
        os.chmod(self.users_path, 0o600)

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Start the server and wait (at most ``start_timeout`` s) until ``GET /ping`` says ``Ok.``."""
        if self.running:
            raise HarnessError(f"clickhouse-server is already running (pid {self.pid})")
        with self.output_path.open("ab") as output:
            output.write(f"---- start {time.strftime('%H:%M:%S')} ----\n".encode())
            output.flush()
            self._process = subprocess.Popen(
                [self.binary, f"--config-file={self.config_path}"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,  # Ctrl-C on pytest must not reach it first: teardown stops it
            )
        self.returncode = None
        deadline = time.monotonic() + self.start_timeout
        while not self.ping():
            if not self.running:
                assert self._process is not None
                self.returncode = self._process.wait()
                raise ProgramFailedError(
                    f"clickhouse-server exited (status {self.returncode}) at start; config {self.config_path}\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ProgramFailedError(
                    f"clickhouse-server did not answer GET /ping on {self.url} within {self.start_timeout:g} s "
                    f"(killed)\n{self.log_tail()}"
                )
            time.sleep(0.1)
        return self

    def ping(self) -> bool:
        """Whether ``GET /ping`` answers ``Ok.`` now."""
        try:
            response = requests.get(f"{self.url}/ping", timeout=2.0)
        except requests.RequestException:
            return False
        # 18.16 sends no Content-Type, so requests' ``.text`` would guess a charset: compare bytes.
        return response.status_code == 200 and response.content.strip() == b"Ok."

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM to the server's PID, SIGKILL if it has not exited within ``timeout``; its exit status."""
        process = self._process
        if process is None:
            raise HarnessError("clickhouse-server was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(30.0)
        self.returncode = process.returncode
        return self.returncode

    def kill(self) -> int:
        """SIGKILL and wait; its exit status."""
        process = self._process
        if process is None:
            raise HarnessError("clickhouse-server was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(30.0)
        self.returncode = process.returncode
        return self.returncode

    def close(self) -> None:
        """Stop it if it runs (SIGTERM, then SIGKILL)."""
        if self.running:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of its stdout/stderr and of its error log, for failure messages."""
        parts = []
        for path in (self.output_path, self.error_log_path):
            try:
                text = path.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                continue
            parts.append(f"== {path} ==\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) or "(no output)"

    # -- queries -------------------------------------------------------------

    def query(
        self,
        sql: str,
        *,
        data: bytes | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Run ``sql`` (with ``data`` as its input, e.g. for INSERT) as ``user`` (default: the admin); the answer text.

        ``database`` is the default database of the query (unqualified table names).

        Credentials go as the ``user``/``password`` URL parameters, which every
        release reads, so this helper does not depend on what the sink under
        test does with headers. Raises ClickHouseQueryError with the server's answer.
        """
        name = self.admin if user is None else user
        params = {"user": name, "password": self.users[name].password if password is None else password}
        if database is not None:
            params["database"] = database
        # A new connection each time: a pooled one may meet the server's keep-alive timeout.
        if data is None:
            response = requests.post(self.url + "/", params=params, data=sql.encode(), timeout=timeout)
        else:
            response = requests.post(self.url + "/", params={**params, "query": sql}, data=data, timeout=timeout)
        text = response.content.decode("utf-8", "replace")  # never requests' charset guess
        if response.status_code != 200:
            raise ClickHouseQueryError(sql, response.status_code, text)
        return text

    def rows(self, sql: str, **options: Any) -> list[dict[str, Any]]:
        """``sql`` (a SELECT without FORMAT) as a list of dicts, via ``FORMAT JSONEachRow``."""
        text = self.query(f"{sql} FORMAT JSONEachRow", **options)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def scalar(self, sql: str, **options: Any) -> str:
        """The single value ``sql`` returns, as text."""
        return self.query(sql, **options).strip()

    def version(self) -> str:
        return self.scalar("SELECT version()")
