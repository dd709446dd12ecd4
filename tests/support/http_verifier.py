"""A collector for tests of the HTTP sink: verifies, decodes and keeps what it is sent.

It listens on 127.0.0.1 (port 0: the kernel picks one) in a thread and does
what docs/sinks/http.md tells a collector to do:

1. check ``Content-Digest`` (sha-256) against the body as received;
2. read ``Signature-Input``/``Signature``, insist that the signature covers
   what the collector relies on, look the key up by ``keyid``, check the
   ``alg`` and the ``created`` time, rebuild the signature base and check it
   with HMAC-SHA256 or Ed25519;
3. refuse with 401 on any mismatch (the reason is kept in ``refusals``);
4. undo gzip, decode the NDJSON (:func:`formats.ndjson.decode_ndjson`);
5. drop a batch whose ``Idempotency-Key`` it already has, answering 200 again
   (or ``repeat_status``), and counting it in ``repeats``.

Steps 1 and 2 are the ``http-message-signatures`` library's (its
``HTTPMessageVerifier`` and ``ContentDigest``), with the policy of step 2
(required components, one key, the ``created`` window on an injected clock)
set here, and ``@target-uri`` rebuilt from the request line and ``Host`` as
a collector sees them. Nothing comes from ``receiver.deliver.sinks``: the
sink's own parts (the normalised target URI, ``created``, the label, the
covered list) are checked by a collector that does not share them. The
library itself is held to RFC 9421's test vectors in
tests/receiver/test_http_sink.py, and the example in docs/sinks/http.md,
checked there byte for byte, can be checked with ``openssl`` alone.

Failures can be injected: ``fail_next(n, status, retry_after=...)`` answers
the next ``n`` well-signed requests so, ``delay_next(n, seconds)`` makes the
next ``n`` answers late (for timeouts).

    with HttpVerifier(hmac_secret=b"...") as collector:
        sink = HttpSink(HttpSinkConfig(name="c", url=collector.url, key_file=...))
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import json
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    InvalidSignature,
    MappingKeyResolver,
    VerifyResult,
)
from http_message_signatures.algorithms import ED25519, HMAC_SHA256

from formats.ndjson import decode_ndjson

__all__ = ["ClockedVerifier", "HttpVerifier", "ReceivedBatch", "ReceivedRequest", "VerifyFailure", "verify_signature"]

PATH = "/ingest"
REQUIRED_COMPONENTS = ("@method", "@target-uri", "content-digest", "content-type", "idempotency-key")
"""What this collector insists the signature covers; plus every X-Receiver-* and Content-Encoding sent."""


class VerifyFailure(Exception):
    """Why a request was refused (the text goes into ``refusals``)."""


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """One request as it arrived (any outcome)."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    status: int


@dataclasses.dataclass(frozen=True)
class ReceivedBatch:
    """One accepted batch."""

    pack_id: str
    destination: str | None
    source: str | None
    tags: dict[str, str]
    record_count: int
    records: list[dict[str, Any]] | None
    """None when the collector was told not to keep records (benchmarks)."""
    keyid: str | None
    alg: str | None


@dataclasses.dataclass
class _Scripted:
    count: int
    status: int
    retry_after: str | None
    body: bytes
    delay_seconds: float


class HttpVerifier:
    """The collector; a context manager that starts and stops its server thread."""

    def __init__(
        self,
        *,
        hmac_secret: bytes | None = None,
        ed25519_public_key: Ed25519PublicKey | None = None,
        key_id: str = "receiver",
        require_signature: bool = True,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        keep_records: bool = True,
        keep_requests: bool = True,
        repeat_status: int = 200,
    ) -> None:
        self.hmac_secret = hmac_secret
        self.ed25519_public_key = ed25519_public_key
        self.key_id = key_id
        self.require_signature = require_signature
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self.keep_records = keep_records
        self.keep_requests = keep_requests
        self.repeat_status = repeat_status
        self.batches: list[ReceivedBatch] = []
        self.requests: list[ReceivedRequest] = []
        self.refusals: list[str] = []
        self.repeats = 0
        self.accepted_records = 0
        self._seen: set[str] = set()
        self._script: list[_Scripted] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> HttpVerifier:
        verifier = self

        class Handler(_Handler):
            owner = verifier

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="http-verifier", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> HttpVerifier:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the verifier first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where to POST batches."""
        return f"http://127.0.0.1:{self.port}{PATH}"

    # --- scripting ---

    def fail_next(self, count: int, status: int, *, retry_after: str | None = None, body: bytes = b"") -> None:
        """Answer the next ``count`` well-signed requests with ``status`` (and Retry-After), keeping nothing."""
        with self._lock:
            self._script.append(_Scripted(count, status, retry_after, body, 0.0))

    def delay_next(self, count: int, seconds: float) -> None:
        """Sleep ``seconds`` before answering each of the next ``count`` requests (normally otherwise)."""
        with self._lock:
            self._script.append(_Scripted(count, 0, None, b"", seconds))

    def records(self) -> list[dict[str, Any]]:
        """Every record accepted, in order."""
        with self._lock:
            return [r for b in self.batches for r in (b.records or [])]

    # --- the checks, by the library ---

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str | None, str | None]:
        """Check digest and signature; return (keyid, alg); raise VerifyFailure."""
        if "content-digest" not in headers:
            raise VerifyFailure("no Content-Digest")
        try:
            ContentDigest.verify(headers["content-digest"], body)
        except InvalidSignature as e:
            raise VerifyFailure(f"content-digest: {e}") from None
        if "signature-input" not in headers or "signature" not in headers:
            if self.require_signature:
                raise VerifyFailure("no signature")
            return None, None
        key: bytes | Ed25519PublicKey | None = self.hmac_secret or self.ed25519_public_key
        if key is None:
            raise VerifyFailure("this collector holds no key")
        required = [*REQUIRED_COMPONENTS]
        required += [name for name in headers if name.startswith("x-receiver-") or name == "content-encoding"]
        try:
            result = verify_signature(
                f"http://{headers['host']}{path}", headers, key, key_id=self.key_id, method=method,
                clock=self.clock, max_age_seconds=self.max_age_seconds, required=required,
            )
        except InvalidSignature as e:
            if isinstance(e.__cause__, CryptographyInvalidSignature):
                raise VerifyFailure(f"signature mismatch ({_algorithm(key).algorithm_id})") from None
            raise VerifyFailure(str(e)) from None
        keyid, alg = result.parameters.get("keyid"), result.parameters.get("alg")
        return (None if keyid is None else str(keyid)), (None if alg is None else str(alg))


def verify_signature(
    url: str,
    headers: Mapping[str, str],
    key: bytes | Ed25519PublicKey,
    *,
    key_id: str = "receiver",
    method: str = "POST",
    clock: Callable[[], float] = time.time,
    max_age_seconds: float = 300.0,
    required: Sequence[str] = (),
) -> VerifyResult:
    """The library's check of the one signature of a request to ``url``; raise ``InvalidSignature``.

    ``key`` is the HMAC secret or the Ed25519 public key known as ``key_id``;
    ``url`` is the target URI the signer should have signed, as the collector
    rebuilds it; every name in ``required`` must be covered.
    """
    verifier = ClockedVerifier(
        signature_algorithm=_algorithm(key),
        key_resolver=MappingKeyResolver(public_keys={key_id: key}, private_keys={}),
        clock=clock, max_age_seconds=max_age_seconds,
    )
    [result] = verifier.verify(_Request(method, url, dict(headers)), max_age=None, require_components=required)
    return result


def _algorithm(key: bytes | Ed25519PublicKey) -> type[HTTPSignatureAlgorithm]:
    return HMAC_SHA256 if isinstance(key, bytes) else ED25519


@dataclasses.dataclass(frozen=True)
class _Request:
    """What the library reads of a request to verify it."""

    method: str
    url: str
    headers: dict[str, str]


class ClockedVerifier(HTTPMessageVerifier):
    """The library's verifier, with a collector's clock and window for ``created``.

    The library reads the wall clock and allows 5 s of skew; the tests fix the
    clock, and docs/sinks/http.md tells a collector to allow a minute ahead.
    """

    def __init__(self, *, clock: Callable[[], float], max_age_seconds: float, **options: Any) -> None:
        super().__init__(**options)
        self.clock = clock
        self.max_age_seconds = max_age_seconds

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        created = sig_input.params.get("created")
        if type(created) is not int:
            raise InvalidSignature("no created time")
        now = self.clock()
        if not now - self.max_age_seconds <= created <= now + 60:
            raise InvalidSignature(f"created {created} is too far from now {int(now)}")
        expires = sig_input.params.get("expires")
        if expires is not None and expires < now:
            raise InvalidSignature(f"expired at {expires}")


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: HttpVerifier
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK (~40 ms a request), which would measure the test server, not the sink.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests

    def _answer(self, status: int, body: bytes = b"", retry_after: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        owner = self.owner
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._answer(411, b'{"error":"Content-Length required"}')
            return
        body = self.rfile.read(int(length))
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        status, answer, retry_after = self._handle(headers, body)
        if owner.keep_requests:
            with owner._lock:
                owner.requests.append(ReceivedRequest("POST", self.path, headers, body, status))
        self._answer(status, answer, retry_after)

    def _handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str | None]:
        owner = self.owner
        if self.path != PATH:
            return 404, b'{"error":"no such endpoint"}', None
        try:
            keyid, alg = owner.check("POST", self.path, headers, body)
        except VerifyFailure as e:
            with owner._lock:
                owner.refusals.append(str(e))
            return 401, json.dumps({"error": str(e)}).encode(), None
        with owner._lock:
            step = owner._script[0] if owner._script else None
            if step is not None:
                step.count -= 1
                if step.count <= 0:
                    owner._script.pop(0)
        if step is not None and step.delay_seconds:
            time.sleep(step.delay_seconds)
        elif step is not None:
            return step.status, step.body, step.retry_after
        if headers.get("content-type") != "application/x-ndjson":
            return 415, b'{"error":"expected application/x-ndjson"}', None
        encoding = headers.get("content-encoding")
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                return 400, b'{"error":"bad gzip"}', None
        elif encoding is not None:
            return 415, b'{"error":"unknown content-encoding"}', None
        try:
            records = decode_ndjson(body)
        except ValueError as e:
            return 400, json.dumps({"error": f"bad NDJSON: {e}"}).encode(), None
        pack_id = headers.get("idempotency-key")
        if not pack_id:
            return 400, b'{"error":"Idempotency-Key required"}', None
        with owner._lock:
            if pack_id in owner._seen:
                owner.repeats += 1
                return owner.repeat_status, b'{"status":"already have it"}', None
            owner._seen.add(pack_id)
            owner.accepted_records += len(records)
            owner.batches.append(
                ReceivedBatch(
                    pack_id=pack_id,
                    destination=headers.get("x-receiver-destination"),
                    source=headers.get("x-receiver-source"),
                    tags=json.loads(headers.get("x-receiver-tags", "{}")),
                    record_count=len(records),
                    records=records if owner.keep_records else None,
                    keyid=keyid,
                    alg=alg,
                )
            )
        return 200, json.dumps({"accepted": len(records)}).encode(), None
