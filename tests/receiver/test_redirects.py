"""No sink follows a redirect: its credentials would travel with the request to wherever it points.

Each network sink (ClickHouse, SLS, HTTP) is pointed at a loopback server
that answers every request with ``302 Found`` to a second loopback server,
which records whatever reaches it. The second must see nothing, and the
outcome must be ``not-deliverable`` with a reason the operator can act on,
naming where the redirect pointed without its query (which may hold a token).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from formats.record import Record
from receiver.config.model import ClickHouseSinkConfig, HttpSinkConfig, SlsSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.sinks.clickhouse import ClickHouseSink
from receiver.deliver.sinks.http import HttpSink
from receiver.deliver.sinks.sls.sink import SlsSink

TOKEN = "redirect-query-token"


class _Servers:
    """A redirecting server and the target it redirects to (which records the headers it gets)."""

    def __init__(self) -> None:
        self.reached: list[dict[str, str]] = []
        servers = self

        class Target(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                servers.reached.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.target = ThreadingHTTPServer(("127.0.0.1", 0), Target)
        location = f"http://127.0.0.1:{self.target.server_address[1]}/stolen?token={TOKEN}"

        class Redirect(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        self.url = f"http://127.0.0.1:{self.redirect.server_address[1]}"
        for server in (self.target, self.redirect):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.target, self.redirect):
            server.shutdown()
            server.server_close()


@pytest.fixture
def servers() -> Iterator[_Servers]:
    pair = _Servers()
    yield pair
    pair.close()


def _group() -> Group:
    record = Record(1_700_000_000, 0, ("_content_",), ["hello"], "10.0.0.9", {})
    return Group("logs", "10.0.0.9", "10.0.0.9", [record], [("__pack_id__", "ABCDEF0123456789-1")], "ABCDEF0123456789-1")


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _sinks(url: str, tmp_path: Path) -> list[Any]:
    return [
        ClickHouseSink(ClickHouseSinkConfig(
            name="ch", url=url, create_table=False, password_file=_private(tmp_path / "ch-password", "pw\n"),
            timeout_seconds=5.0,
        )),
        SlsSink(SlsSinkConfig(
            name="sls", endpoint=url, project="proj", logstore="store", timeout_seconds=5.0,
            credentials_file=_private(
                tmp_path / "sls-keys",
                "access_key_id = LTAIexample\naccess_key_secret = secret\nsecurity_token = sts-token\n",
            ),
        )),
        HttpSink(HttpSinkConfig(
            name="http", url=url, key_file=_private(tmp_path / "http-key", "k" * 32), timeout_seconds=5.0,
        )),
    ]


def test_no_sink_follows_a_redirect(servers: _Servers, tmp_path: Path) -> None:
    """If the upstream answers 302 to another address, then no sink sends anything there, and the outcome
    is not-deliverable, naming the address without its query."""
    for sink in _sinks(servers.url, tmp_path):
        try:
            outcome = sink.send(_group())
        finally:
            sink.close()
        assert outcome.kind == "not-deliverable", (sink.name, outcome)
        assert "redirect" in outcome.reason and "/stolen" in outcome.reason, (sink.name, outcome.reason)
        assert TOKEN not in outcome.reason, sink.name
    assert servers.reached == []
