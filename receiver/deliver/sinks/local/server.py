"""The embedded store's query socket: how other processes read a store the delivery process holds.

The engine locks its directory, so while the receiver runs ``receiverctl
search`` and ``sql`` cannot open the store themselves: they ask the delivery
process, which serves HTTP and JSON on a UNIX socket beside the control
socket (``store.sock``, mode 0660: the same people who may administer the
receiver may read what it stored)::

    POST /search   {"filter", "since_ns", "until_ns", "limit", "newest_first"}
                   -> one JSON object a line: each record (StoredRecord.to_dict)
                      with its columns under "columns"; a last line {"done": true}
                      or {"error": "..."}
    POST /sql      {"query", "limit"} -> {"columns": [...], "rows": [[...]...]}
                   (read-only; see :func:`read_only_select`)
    GET  /stats    what the store holds

Each request runs on a thread of its own; a search streams its records as
the engine finds them, so a client reading slowly holds one thread, not the
delivery process.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import logging
import os
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from receiver.deliver.sinks.local.store import (
    EmbeddedStore,
    StoredRecord,
    StoreError,
    run_sql,
    search,
)
from receiver.runtime.unix_http import SocketPathTakenError, UnixHTTPConnection, remove_stale_socket

__all__ = ["StoreClient", "StoreServer", "StoreUnavailableError", "store_socket"]

log = logging.getLogger("receiver.deliver")

SOCKET_MODE = 0o660
_MAX_REQUEST_BYTES = 1 << 20
_TIMEOUT_SECONDS = 300.0


def store_socket(control_socket: Path) -> Path:
    """Where a receiver's store answers: beside its control socket."""
    return control_socket.with_name("store.sock")


class StoreUnavailableError(Exception):
    """No process answers on the store socket (the receiver is not running, or has no local sink)."""


def stored_line(stored: StoredRecord) -> dict[str, Any]:
    """A record as /search sends it: its dict, and its columns for the text form."""
    out = stored.to_dict()
    out["columns"] = {"host": stored.host, "app": stored.app, "severity": stored.severity, "message": stored.message}
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _UnixHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # receiverctl asks often; no access log

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body, ensure_ascii=False).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _request(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_REQUEST_BYTES:
            raise ValueError("request too large")
        value = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(value, dict):
            raise ValueError("the request must be a JSON object")
        return value

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/stats":
            try:
                self._json(200, self.server.store.stats())
            except StoreError as e:
                self._json(500, {"error": str(e)})
            return
        self._json(404, {"error": "no such endpoint; there are POST /search, POST /sql and GET /stats"})

    def do_POST(self) -> None:
        from receiver.filters.expression import FilterError

        path = self.path.rstrip("/")
        try:
            request = self._request()
        except ValueError as e:
            self._json(400, {"error": str(e)})
            return
        if path == "/sql":
            try:
                self._json(200, run_sql(self.server.store, str(request.get("query", "")), _limit(request)))
            except (StoreError, ValueError) as e:
                self._json(400, {"error": str(e)})
            return
        if path != "/search":
            self._json(404, {"error": "no such endpoint; there are POST /search, POST /sql and GET /stats"})
            return
        try:
            found = search(
                self.server.store, str(request.get("filter", "")),
                since_ns=_optional_int(request.get("since_ns")), until_ns=_optional_int(request.get("until_ns")),
                limit=_limit(request), newest_first=bool(request.get("newest_first", True)),
            )
        except (FilterError, ValueError) as e:
            self._json(400, {"error": str(e)})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in _lines(found):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader went away (receiverctl search | head)


def _lines(found: Iterator[StoredRecord]) -> Iterator[bytes]:
    try:
        for stored in found:
            yield json.dumps(stored_line(stored), ensure_ascii=False).encode() + b"\n"
    except StoreError as e:
        yield json.dumps({"error": str(e)}).encode() + b"\n"
        return
    yield b'{"done":true}\n'


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _limit(request: dict[str, Any]) -> int | None:
    limit = _optional_int(request.get("limit"))
    return limit or None


class _UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    store: EmbeddedStore


class StoreServer:
    """Serves one store on ``path`` from a thread of the delivery process; :meth:`close` stops it."""

    def __init__(self, store: EmbeddedStore, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        _remove_stale(path)
        self._server = _UnixHttpServer(str(path), _Handler)
        os.chmod(path, SOCKET_MODE)
        self._server.store = store
        self._thread = threading.Thread(target=self._server.serve_forever, name="store-queries", daemon=True)
        self._thread.start()
        log.info("local store: queries on %s", path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _remove_stale(path: Path) -> None:
    """Remove a socket left by a delivery process that did not stop cleanly (never any other file)."""
    try:
        remove_stale_socket(path)
    except SocketPathTakenError as e:
        if e.answering:
            raise StoreError(f"another process answers on {path}: two receivers must not share a state directory") from None
        raise StoreError(f"{path} exists and is not a socket: move it away (the store's queries answer there)") from None


# -- the client side (receiverctl) -------------------------------------------------


class StoreClient:
    """Asks the store served on ``path``; :class:`StoreUnavailableError` when nothing answers there."""

    def __init__(self, path: Path, *, timeout: float = _TIMEOUT_SECONDS) -> None:
        self.path = path
        self.timeout = timeout

    def _post(self, endpoint: str, body: dict[str, Any]) -> tuple[UnixHTTPConnection, http.client.HTTPResponse]:
        """The connection (the caller closes it) and the answer to ``POST endpoint``."""
        if not self.path.exists():
            raise StoreUnavailableError(f"no store answers on {self.path} (no such file)")
        connection = UnixHTTPConnection(self.path, self.timeout)
        try:
            data = json.dumps(body).encode()
            connection.request("POST", endpoint, body=data, headers={"Content-Type": "application/json"})
            return connection, connection.getresponse()
        except (ConnectionRefusedError, FileNotFoundError):
            connection.close()
            raise StoreUnavailableError(f"no store answers on {self.path} (connection refused)") from None
        except PermissionError:
            connection.close()
            raise StoreError(f"not allowed to use {self.path}: run as its owner or a member of its group") from None
        except BaseException:
            connection.close()
            raise

    def search(self, **request: Any) -> Iterator[dict[str, Any]]:
        """The lines of /search (records, each a dict with "columns"); StoreError for an error line."""
        connection, response = self._post("/search", request)
        try:
            if response.status != 200:
                raise StoreError(_error_of(response.read()))
            for raw in response:
                line = json.loads(raw)
                if "error" in line:
                    raise StoreError(str(line["error"]))
                if line.get("done"):
                    return
                yield line
            raise StoreError("the store stopped answering in the middle of a search (is the receiver stopping?)")
        finally:
            response.close()
            connection.close()

    def sql(self, query: str, limit: int | None) -> dict[str, Any]:
        connection, response = self._post("/sql", {"query": query, "limit": limit})
        try:
            body = response.read()
        finally:
            response.close()
            connection.close()
        if response.status != 200:
            raise StoreError(_error_of(body))
        value: dict[str, Any] = json.loads(body)
        return value


def _error_of(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip() or "the store refused the request"
