"""An SLS PutLogs server for tests: a strict stand-in for Alibaba's, on 127.0.0.1.

Written from sls.md alone, not from the SDK and not from our client code, so
that a shared misreading cannot hide: it checks what the real service checks
(signature v1 or v4 with one known key pair and optional STS token, request
time within 15 minutes, Content-MD5 or the v4 body hash, content type,
``x-log-bodyrawsize`` against the decompressed size, body size limits) and
keeps every LogGroup it accepts, decoded with
:func:`formats.sls_pb.decode_log_group`, with its project and logstore. It
dedupes nothing: a resent batch is recorded twice, which is what the tests
of at-least-once delivery need to see.

Failures can be injected: ``fail_next(n, status, code)`` answers the next
``n`` requests with that error (optionally with Retry-After), ``fail_all``
answers every request so until ``clear_failures``. ``skew_seconds`` moves
the server's clock (and its ``Date`` header), to provoke
``RequestTimeExpired``.

Use it as a context manager, or as a fixture::

    @pytest.fixture
    def sls_server() -> Iterator[SlsTestServer]:
        with SlsTestServer() as server:
            yield server

The error codes for a body that does not match its Content-MD5 or
``x-log-content-sha256`` are this server's choice (``PostBodyInvalid``);
the rest are those of sls.md's error table.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import email.utils
import hashlib
import hmac
import http.server
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import lz4.block

from formats.errors import SlsDecodeError
from formats.sls_pb import DecodedLogGroup, decode_log_group

__all__ = ["ReceivedGroup", "Refusal", "SlsTestServer"]

DEFAULT_ACCESS_KEY_ID = "test-access-key-id"
DEFAULT_ACCESS_KEY_SECRET = "test-access-key-secret"
DEFAULT_REGION = "cn-test"

_PATH = re.compile(r"/logstores/([^/?]+)/shards/(lb|route)")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_V4_AUTH = re.compile(
    r"SLS4-HMAC-SHA256 Credential=(?P<akid>[^/,]+)/(?P<day>\d{8})/(?P<region>[^/,]+)/sls/aliyun_v4_request,"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclasses.dataclass(frozen=True)
class ReceivedGroup:
    """One accepted PutLogs request: where it went, how it came, and the LogGroup it carried."""

    project: str
    logstore: str
    route_key: str | None
    """The ``key`` of ``/shards/route``; None for ``/shards/lb``."""
    signature: str
    """``v1`` or ``v4``."""
    compress: str | None
    raw_size: int
    group: DecodedLogGroup
    headers: Mapping[str, str]
    """Request headers, lower-case names."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """One refused request: the answer the server gave."""

    status: int
    code: str
    message: str
    injected: bool = False


@dataclasses.dataclass
class _Failure:
    status: int
    code: str
    message: str
    retry_after: str | None
    remaining: int | None  # None: until cleared


class _Refuse(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SlsTestServer:
    """A PutLogs endpoint at ``http://127.0.0.1:{port}`` (see the module docstring)."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
        security_token: str | None = None,
        region: str = DEFAULT_REGION,
        projects: set[str] | None = None,
        logstores: set[str] | None = None,
        max_body_bytes: int = 10 * 1024 * 1024,
        max_raw_bytes: int = 10 * 1024 * 1024,
        max_skew_seconds: float = 15 * 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``projects``/``logstores``: the ones that exist (None: any name exists)."""
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.region = region
        self.projects = projects
        self.logstores = logstores
        self.max_body_bytes = max_body_bytes
        self.max_raw_bytes = max_raw_bytes
        self.max_skew_seconds = max_skew_seconds
        self.skew_seconds = 0.0
        """Added to ``clock()``: the server's idea of now, and its Date header."""
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: list[ReceivedGroup] = []
        self._refusals: list[Refusal] = []
        self._failures: list[_Failure] = []
        self._request_count = 0
        self._request_ids = itertools.count(1)
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> SlsTestServer:
        if self._httpd is not None:
            return self
        httpd = _HttpServer((self.host, 0), _Handler)
        httpd.sls = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(5)

    def __enter__(self) -> SlsTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        """What a client configures: ``http://127.0.0.1:{port}`` (an IP endpoint)."""
        return f"http://{self.host}:{self.port}"

    # What arrived.

    @property
    def groups(self) -> list[ReceivedGroup]:
        """Accepted groups in arrival order (a copy)."""
        with self._lock:
            return list(self._groups)

    @property
    def refusals(self) -> list[Refusal]:
        """Refused requests in arrival order (a copy), injected ones included."""
        with self._lock:
            return list(self._refusals)

    @property
    def request_count(self) -> int:
        """Requests received, whatever the answer."""
        with self._lock:
            return self._request_count

    # Behaviour.

    def fail_next(
        self, count: int, status: int, code: str, message: str = "", *, retry_after: str | float | None = None
    ) -> None:
        """Answer the next ``count`` requests with this error (after any failures already queued)."""
        with self._lock:
            self._failures.append(_Failure(status, code, message or code, _text(retry_after), count))

    def fail_all(self, status: int, code: str, message: str = "", *, retry_after: str | float | None = None) -> None:
        """Answer every request with this error until :meth:`clear_failures`."""
        with self._lock:
            self._failures = [_Failure(status, code, message or code, _text(retry_after), None)]

    def clear_failures(self) -> None:
        with self._lock:
            self._failures = []

    def set_credentials(self, access_key_id: str, access_key_secret: str, security_token: str | None = None) -> None:
        """Rotate the key pair the server accepts (requests signed with the old one now fail)."""
        with self._lock:
            self.access_key_id = access_key_id
            self.access_key_secret = access_key_secret
            self.security_token = security_token

    def now(self) -> float:
        """The server's clock, in seconds since the epoch."""
        return self._clock() + self.skew_seconds

    # Internals, called from the handler threads.

    def _begin(self, *, consume: bool = True) -> _Failure | None:
        """Count a request; the injected failure it gets, if any."""
        with self._lock:
            self._request_count += 1
            if not consume:
                return None
            while self._failures:
                failure = self._failures[0]
                if failure.remaining is None:
                    return failure
                if failure.remaining > 0:
                    failure.remaining -= 1
                    return failure
                self._failures.pop(0)
            return None

    def _record(self, item: ReceivedGroup | Refusal) -> None:
        with self._lock:
            if isinstance(item, ReceivedGroup):
                self._groups.append(item)
            else:
                self._refusals.append(item)

    def _request_id(self) -> str:
        return f"TEST{next(self._request_ids):020X}"

    def _verify(self, target: str, headers: Mapping[str, str], body: bytes) -> ReceivedGroup:
        """Check one POST as SLS would; the accepted group, or :class:`_Refuse`."""
        with self._lock:
            akid, secret, token = self.access_key_id, self.access_key_secret, self.security_token
        url = urlsplit(target)
        match = _PATH.fullmatch(url.path)
        if match is None:
            raise _Refuse(404, "InvalidPath", f"no such resource: {url.path}")
        logstore, mode = match.groups()
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        route_key = None
        if mode == "route":
            route_key = params.get("key", "")
            if not _HEX32.fullmatch(route_key):
                raise _Refuse(400, "ParameterInvalid", "route key must be 32 hex digits")

        host = re.sub(r":\d+$", "", headers.get("host", ""))
        suffix = "." + self.host
        if not host.endswith(suffix) or len(host) == len(suffix):
            raise _Refuse(400, "InvalidHost", f"Host {host!r} does not name a project")
        project = host[: -len(suffix)]

        if headers.get("content-type") != "application/x-protobuf":
            raise _Refuse(400, "InvalidContentType", "Content-Type must be application/x-protobuf")
        if headers.get("x-log-apiversion") != "0.6.0":
            raise _Refuse(400, "ParameterInvalid", "x-log-apiversion must be 0.6.0")

        authorization = headers.get("authorization", "")
        if authorization.startswith("LOG "):
            signature = "v1"
            request_time = self._check_v1(authorization, url.path, params, headers, akid, secret)
        elif authorization.startswith("SLS4-HMAC-SHA256 "):
            signature = "v4"
            request_time = self._check_v4(authorization, url.path, params, headers, akid, secret)
        else:
            raise _Refuse(401, "Unauthorized", "missing or unknown Authorization scheme")
        if token is not None and headers.get("x-acs-security-token") != token:
            raise _Refuse(401, "SecurityTokenExpired", "the security token is missing, wrong or expired")

        if abs(request_time - self.now()) > self.max_skew_seconds:
            raise _Refuse(400, "RequestTimeExpired", "request time is too far from server time")

        if signature == "v1":
            md5 = headers.get("content-md5")
            if (body or md5 is not None) and md5 != hashlib.md5(body).hexdigest().upper():
                raise _Refuse(400, "PostBodyInvalid", "Content-MD5 does not match the body")
        elif headers.get("x-log-content-sha256") != hashlib.sha256(body).hexdigest():
            raise _Refuse(400, "PostBodyInvalid", "x-log-content-sha256 does not match the body")

        if self.projects is not None and project not in self.projects:
            raise _Refuse(404, "ProjectNotExist", f"project {project} does not exist")
        if self.logstores is not None and logstore not in self.logstores:
            raise _Refuse(404, "LogStoreNotExist", f"logstore {logstore} does not exist")

        raw_size_text = headers.get("x-log-bodyrawsize", "")
        if not raw_size_text.isdigit():
            raise _Refuse(400, "ParameterInvalid", "x-log-bodyrawsize is missing or not a number")
        raw_size = int(raw_size_text)
        if raw_size > self.max_raw_bytes:
            raise _Refuse(400, "PostBodyTooLarge", f"raw body of {raw_size} bytes exceeds {self.max_raw_bytes}")
        compress = headers.get("x-log-compresstype")
        raw = _decompress(compress, body, raw_size)
        if len(raw) != raw_size:
            raise _Refuse(
                400, "PostBodyUncompressError", f"body is {len(raw)} bytes, x-log-bodyrawsize says {raw_size}"
            )
        try:
            group = decode_log_group(raw)
        except SlsDecodeError as e:
            raise _Refuse(400, "PostBodyInvalid", f"not a LogGroup: {e}") from None
        return ReceivedGroup(project, logstore, route_key, signature, compress, raw_size, group, dict(headers))

    def _check_v1(
        self, authorization: str, path: str, params: Mapping[str, str], headers: Mapping[str, str], akid: str, secret: str
    ) -> float:
        key_id, sep, given = authorization[len("LOG ") :].rpartition(":")
        if not sep:
            raise _Refuse(401, "Unauthorized", "malformed Authorization")
        if key_id != akid:
            raise _Refuse(401, "InvalidAccessKeyId", "unknown AccessKeyId")
        if headers.get("x-log-signaturemethod") != "hmac-sha1":
            raise _Refuse(400, "ParameterInvalid", "x-log-signaturemethod must be hmac-sha1")
        # sls.md: method, Content-MD5, Content-Type, Date, sorted x-log-*/x-acs-* (not x-log-meta-*,
        # and not the x-log-date copy some clients add after signing), then the resource.
        lines = ["POST", headers.get("content-md5", ""), headers.get("content-type", ""), headers.get("date", "")]
        lines += [
            f"{k}:{headers[k]}"
            for k in sorted(headers)
            if k != "x-log-date" and _signed_extension(k)
        ]
        lines.append(path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else ""))
        expected = base64.b64encode(hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha1).digest())
        if not hmac.compare_digest(expected.decode(), given):
            raise _Refuse(401, "SignatureNotMatch", "the signature does not match")
        when = _http_time(headers.get("date", ""))
        if when is None:
            raise _Refuse(400, "InvalidRequestTime", "Date is missing or malformed")
        return when

    def _check_v4(
        self, authorization: str, path: str, params: Mapping[str, str], headers: Mapping[str, str], akid: str, secret: str
    ) -> float:
        match = _V4_AUTH.fullmatch(authorization)
        if match is None:
            raise _Refuse(401, "Unauthorized", "malformed Authorization")
        if match["akid"] != akid:
            raise _Refuse(401, "InvalidAccessKeyId", "unknown AccessKeyId")
        stamp = headers.get("x-log-date", "")
        try:
            when = _dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.UTC).timestamp()
        except ValueError:
            raise _Refuse(400, "InvalidRequestTime", "x-log-date is missing or malformed") from None
        if match["day"] != stamp[:8] or match["region"] != self.region:
            raise _Refuse(401, "SignatureNotMatch", "credential scope does not match the date or region")
        # sls.md: canonical request over content-type, host, x-log-*/x-acs-*; HMAC-SHA256 key chain.
        signed = sorted(k for k in headers if k in ("content-type", "host") or _signed_extension(k))
        query = "&".join(f"{k}={quote(v, safe='~')}" if v else k for k, v in sorted(params.items()))
        canonical = "\n".join([
            "POST",
            path,
            query,
            "".join(f"{k}:{headers[k].strip()}\n" for k in signed),
            ";".join(signed),
            headers.get("x-log-content-sha256", _EMPTY_SHA256),
        ])
        scope = f"{stamp[:8]}/{self.region}/sls/aliyun_v4_request"
        to_sign = f"SLS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = ("aliyun_v4" + secret).encode()
        for part in (stamp[:8], self.region, "sls", "aliyun_v4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["sig"]):
            raise _Refuse(401, "SignatureNotMatch", "the signature does not match")
        return when


def _text(value: str | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _signed_extension(key: str) -> bool:
    return key.startswith("x-acs-") or (key.startswith("x-log-") and not key.startswith("x-log-meta-"))


def _http_time(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed.timestamp()


def _decompress(compress: str | None, body: bytes, raw_size: int) -> bytes:
    if compress is None:
        return body
    if compress == "lz4":
        try:
            return bytes(lz4.block.decompress(body, uncompressed_size=raw_size))
        except Exception as e:  # lz4.block.LZ4BlockError, or a size it cannot allocate
            raise _Refuse(400, "PostBodyUncompressError", f"lz4: {e}") from None
    if compress == "zstd":
        import importlib

        for name in ("compression.zstd", "zstandard", "zstd"):
            try:
                module: Any = importlib.import_module(name)
            except ImportError:
                continue
            try:
                return bytes(module.decompress(body))
            except Exception as e:
                raise _Refuse(400, "PostBodyUncompressError", f"zstd: {e}") from None
        raise _Refuse(400, "PostBodyUncompressError", "this test server has no zstd module")
    raise _Refuse(400, "ParameterInvalid", f"unknown x-log-compresstype {compress!r}")


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    sls: SlsTestServer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real service and requests' Session use it
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not access logs

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header on every answer is the server's (possibly skewed) clock.
        return email.utils.formatdate(self.server.sls.now() if timestamp is None else timestamp, usegmt=True)

    def do_POST(self) -> None:
        sls = self.server.sls
        failure = sls._begin()
        headers = {k.lower(): v for k, v in self.headers.items()}
        length_text = headers.get("content-length", "")
        if not length_text.isdigit():
            self._answer_error(sls, 411, "MissingContentLength", "Content-Length is required", close=True)
            return
        length = int(length_text)
        if length > sls.max_body_bytes:
            # Not read: answer and drop the connection, as a server guarding its memory does.
            self._answer_error(sls, 400, "PostBodyTooLarge", f"body of {length} bytes exceeds {sls.max_body_bytes}", close=True)
            return
        body = self.rfile.read(length)
        if failure is not None:
            self._answer_error(sls, failure.status, failure.code, failure.message, retry_after=failure.retry_after, injected=True)
            return
        try:
            group = sls._verify(self.path, headers, body)
        except _Refuse as e:
            self._answer_error(sls, e.status, e.code, e.message)
            return
        sls._record(group)
        self.send_response(200)
        self.send_header("x-log-requestid", sls._request_id())
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.server.sls._begin(consume=False)
        self._answer_error(self.server.sls, 405, "MethodNotAllowed", "only PutLogs (POST) is served", close=True)

    do_PUT = do_DELETE = do_GET

    def _answer_error(
        self,
        sls: SlsTestServer,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: str | None = None,
        injected: bool = False,
        close: bool = False,
    ) -> None:
        sls._record(Refusal(status, code, message, injected))
        payload = json.dumps({"errorCode": code, "errorMessage": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-log-requestid", sls._request_id())
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
