"""The HTTP sink: any collector, one signed NDJSON POST per group.

Each group becomes one request (docs/sinks/http.md shows one whole)::

    POST <url>
    Content-Type: application/x-ndjson
    Content-Encoding: gzip                      (when gzip = true)
    Content-Digest: sha-256=:<base64>:          (RFC 9530, over the body as sent)
    Idempotency-Key: <__pack_id__>
    X-Receiver-Destination / X-Receiver-Source  (percent-encoded UTF-8)
    X-Receiver-Tags: {"__client_ip__":"...",...} (the group tags, JSON, ASCII-escaped)
    Signature-Input: sig1=("@method" "@target-uri" "content-digest" ...);created=...;keyid="...";alg="..."
    Signature: sig1=:<base64>:                  (RFC 9421)

The group tags travel in a header, not as a first body line, so that every
body line is a record: a collector can hand the body as is to ``jq``, to
ClickHouse ``JSONEachRow`` or to any NDJSON reader, and still read the tags
(signed, like the body) from one JSON header.

The body is rebuilt on every attempt: the signature's ``created`` time is
then always fresh, and gzip with a zero mtime gives the same bytes (and the
same digest) for the same group, so a resent batch is byte-identical apart
from its signature.

Requests go over a pool of kept-alive connections, one pool per sink
(receiver/deliver/sinks/connections.py: urllib3, proxies from the
environment, no redirects followed, no retries of its own). The configured
url is spelled once, at start, as it is requested (:func:`request_url`: IDNA
host, scheme and host in lower case, an empty path as ``/``, percent-encoding
made consistent), and ``@target-uri`` signs that spelling, normalised: the
URI signed is the one requested. User information in the url (``user:password@``)
becomes an ``Authorization: Basic`` header; it is never sent in the request line.
"""

from __future__ import annotations

import base64
import datetime as _dt
import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
from isal import igzip
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as UpstreamTimeout
from urllib3.util import parse_url

from formats.ndjson import encode_ndjson
from receiver import __version__
from receiver.config.model import HttpSinkConfig
from receiver.config.secrets import read_private_file, redact_url
from receiver.deliver.batches import Group, merged_group
from receiver.deliver.outcomes import SendOutcome
from receiver.deliver.sinks.connections import UpstreamError, connection_pool, timeout_of
from receiver.deliver.sinks.http_signatures import (
    Ed25519SigningKey,
    HmacSha256Key,
    SignatureKeyError,
    SignedRequest,
    SigningKey,
    content_digest,
    normalize_target_uri,
    sign_request,
)

if TYPE_CHECKING:  # (Arrow is loaded only by the processes that build from columns)
    from formats.streamlog_columns import StreamlogColumns
    from receiver.deliver.column_groups import BatchColumns, Part, RecordRows

__all__ = [
    "COVERED_COMPONENTS",
    "SIGNATURE_LABEL",
    "HttpRequest",
    "HttpSink",
    "HttpSinkError",
    "classify_response",
    "load_signing_key",
    "parse_retry_after",
    "request_url",
]

log = logging.getLogger("receiver.deliver")

SIGNATURE_LABEL = "sig1"
COVERED_COMPONENTS = (
    "@method",
    "@target-uri",
    "content-digest",
    "content-type",
    "content-encoding",
    "idempotency-key",
    "x-receiver-destination",
    "x-receiver-source",
    "x-receiver-tags",
)
"""What the signature covers, in this order; header fields a request lacks are left out."""

CONTENT_TYPE = "application/x-ndjson"
MAX_RETRY_AFTER_SECONDS = 3600.0
"""A longer Retry-After is cut to this: a bogus date must not stall a sink for days."""
_GZIP_LEVEL = 1
"""ISA-L's fastest. On the bench's NDJSON (416 lines, 154 kB): 120 us and 8.3x smaller, where zlib's
level 6 (its default) took 1,664 us for 10.1x and zlib's level 1 522 us for 7.9x."""
_EXCERPT_CHARS = 200
_USER_AGENT = f"syslog-receiver/{__version__}"
_TRANSPORT_HEADERS = {"User-Agent": _USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
"""Sent first, unsigned, as requests sent them before the sink used urllib3 directly (docs/sinks/http.md names them)."""


_MAX_KEY_FILE_BYTES = 64 * 1024
"""A shared secret or a PEM key is far smaller; anything larger is the wrong file."""


class HttpSinkError(ValueError):
    """The HTTP sink cannot start as configured (bad url, missing or unusable key file)."""


def load_signing_key(signature: str, key_file: Path | None) -> SigningKey | None:
    """The key named by ``signature`` and ``key_file``; None for ``signature = "none"``.

    The file must be a regular file that only its owner can read (mode 0600
    or 0400): it holds a signing secret. For ``hmac-sha256`` the secret is the
    file's bytes, less one trailing newline (LF or CRLF), so ``echo`` and
    editors do not change it; for ``ed25519``, an unencrypted PKCS#8 PEM
    private key. Errors name the file and the fix, never the key.
    """
    if signature == "none":
        return None
    if signature not in ("hmac-sha256", "ed25519"):
        raise HttpSinkError(f'signature {signature!r} is not supported: use "hmac-sha256", "ed25519" or "none"')
    if key_file is None:
        raise HttpSinkError(f'signature = "{signature}" needs key_file (or set signature = "none")')
    if not key_file.exists():
        raise HttpSinkError(f"{key_file}: no such key file; create it as docs/sinks/http.md shows")
    data = read_private_file(key_file, what="HTTP sink key file", max_bytes=_MAX_KEY_FILE_BYTES, error=HttpSinkError)
    try:
        if signature == "hmac-sha256":
            if data.endswith(b"\r\n"):
                data = data[:-2]
            elif data.endswith(b"\n"):
                data = data[:-1]
            if not data:
                raise HttpSinkError(f"{key_file}: the HMAC key file is empty; put the shared secret in it")
            if len(data) < 32:
                log.warning("%s: the HMAC secret is shorter than 32 bytes; use a longer one (openssl rand -hex 32)", key_file)
            return HmacSha256Key(data)
        return Ed25519SigningKey.from_pem(data)
    except SignatureKeyError as e:
        raise HttpSinkError(
            f"{key_file}: {e}; make one with: openssl genpkey -algorithm ed25519 -out {key_file}"
        ) from None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), capped; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)  # HTTP-dates are GMT
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_SECONDS)


def _excerpt(body: bytes) -> str:
    text = body[: _EXCERPT_CHARS * 4].decode("utf-8", "replace")
    return re.sub(r"[\x00-\x20\x7f]+", " ", text).strip()[:_EXCERPT_CHARS]


def classify_response(
    status: int, reason: str, headers: dict[str, str], body: bytes, *, now: float, pack_id: str, sink: str
) -> SendOutcome:
    """The outcome of one HTTP answer (docs/sinks/http.md has the table). ``headers`` keys are lower case."""
    said = f"{status} {reason}".strip()
    excerpt = _excerpt(body)
    if excerpt:
        said += f": {excerpt}"
    wait = parse_retry_after(headers.get("retry-after"), now)
    if 200 <= status < 300:
        return SendOutcome("ok")
    if status == 409:
        # Our Idempotency-Key is the pack id: a conflict on it means the collector already holds this batch.
        return SendOutcome("ok", f"{said} (the collector already has pack {pack_id})")
    if 300 <= status < 400:
        location = redact_url(headers.get("location", "")) if headers.get("location") else "elsewhere"
        return SendOutcome(
            "not-deliverable",
            f"{said}; redirected to {location}: set url of sink {sink} to the final address "
            "(redirects are not followed: the signature covers the target URI)",
        )
    if status in (401, 403):
        return SendOutcome(
            "auth",
            f"{said}; the collector refused our signature: check that it has the key of sink {sink} "
            "under the same key_id, and that both clocks are right",
        )
    if status in (404, 410):
        return SendOutcome("not-deliverable", f"{said}; check url of sink {sink}")
    if status == 429:
        return SendOutcome("quota", said, wait)
    if status in (408, 425) or status >= 500:
        return SendOutcome("retry", said, wait)
    if status == 413:
        return SendOutcome(
            "permanent", f"{said}; the batch is too large for the collector: lower max_bytes of sink {sink} "
            "(or raise the collector's limit) and replay the dead letter"
        )
    if 400 <= status < 500:
        return SendOutcome("permanent", said)
    return SendOutcome("retry", f"unexpected answer {said}", wait)


def request_url(url: str) -> str:
    """``url`` as it is requested: as requests spells a url (scheme and host in lower case, a non-ASCII
    host in IDNA, an empty path as ``/``, characters a URL cannot carry percent-encoded, escapes of
    letters, digits and ``-._~`` undone; user information and fragment kept), then as urllib3 sends
    it, which removes dot segments (``/a/%2E%2E/b`` is requested as ``/b``), so that what is signed
    is what is requested. Raises ValueError for a url that cannot be spelled so.
    """
    prepared = requests.models.PreparedRequest()
    prepared.prepare_url(url, None)  # its errors (InvalidURL, MissingSchema...) are ValueErrors
    assert prepared.url is not None
    return str(parse_url(prepared.url).url)


def _basic_authorization(url: str) -> dict[str, str]:
    """The ``Authorization`` header of the url's user information, as requests made it; none without ``user:password@``."""
    parts = urlsplit(url)
    if parts.password is None or not (parts.username or parts.password):
        return {}
    credentials = f"{unquote(parts.username or '')}:{unquote(parts.password)}".encode("latin-1")
    return {"Authorization": f"Basic {base64.b64encode(credentials).decode('ascii')}"}


class HttpRequest:
    """One request ready to send: where, which headers, which body bytes."""

    __slots__ = ("body", "headers", "url")

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.url = url
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"HttpRequest({redact_url(self.url)!r}, <{len(self.headers)} headers>, <{len(self.body)} bytes>)"


def http_payload(config: HttpSinkConfig, group: Group) -> bytes:
    """The body of ``group``'s request: NDJSON, gzipped when configured (what worker processes make)."""
    return _body(config, encode_ndjson(group.records))


def _body(config: HttpSinkConfig, ndjson: bytes) -> bytes:
    # mtime=0: a resent batch has the same bytes, so the same Content-Digest.
    return igzip.compress(ndjson, compresslevel=_GZIP_LEVEL, mtime=0) if config.gzip else ndjson


def http_lines(chunks: Sequence[StreamlogColumns | RecordRows]) -> BatchColumns | None:
    """Every row's NDJSON line (formats/ndjson_columns.py), for groups to take their rows from; None when
    some row's line must be written from its record."""
    # Arrow: loaded only where batches are built from columns.
    import pyarrow as pa

    from formats.ndjson_columns import encode_lines
    from receiver.deliver.column_groups import BatchColumns, RecordRows

    def lines_of(chunk: Part) -> dict[str, pa.Array] | None:
        if isinstance(chunk, RecordRows):
            return {"lines": pa.array([encode_ndjson([record]) for record in chunk.records], pa.binary())}
        text = encode_lines(chunk.time, chunk.keys, chunk.values, chunk.source, chunk.tag, chunk.time_ns)
        return None if text is None else {"lines": text.cast(pa.binary())}

    return BatchColumns.of(chunks, lines_of)


def http_payload_of_rows(config: HttpSinkConfig, group: Group, lines: BatchColumns) -> bytes:
    """:func:`http_payload` of a group built from columns, given :func:`http_lines` of its batch."""
    from formats.sls_pb_columns import joined  # (a binary column's rows as one run of bytes)

    return _body(config, joined(lines.rows_of(group)["lines"]))


class HttpSink:
    """Delivers groups to any HTTP collector: NDJSON, gzip, RFC 9421 signatures, RFC 9530 digests."""

    segments_per_batch = 16
    """Twice the default, as SLS's: a relay's batch makes a request per host it relays, so larger
    batches mean half the requests (a relay's million lines: 54-56k -> 60-64k msgs/s)."""

    def __init__(self, config: HttpSinkConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.name = config.name
        self.max_records = config.max_records
        self.max_bytes = config.max_bytes
        self._config = config
        self._clock = clock
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpSinkError(f"sink {config.name}: url must be an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise HttpSinkError(f"sink {config.name}: the port in url is not a number from 1 to 65535") from None
        try:
            self._url = request_url(config.url)  # IDNA host, percent-encoded path; user information and fragment kept
        except ValueError as e:
            raise HttpSinkError(f"sink {config.name}: url {redact_url(config.url)} is not valid ({type(e).__name__})") from None
        self._target_uri = normalize_target_uri(self._url)
        self._shown_url = redact_url(self._url)
        sent = urlsplit(self._url)
        # What the request line carries (and a proxy sees): no user information, no fragment.
        self._send_url = urlunsplit((sent.scheme, sent.netloc.rpartition("@")[2], sent.path, sent.query, ""))
        try:
            self._authorization = _basic_authorization(self._url)
        except UnicodeEncodeError:
            raise HttpSinkError(
                f"sink {config.name}: the user information in url must be Latin-1 (an HTTP Basic credential)"
            ) from None
        self._key = load_signing_key(config.signature, config.key_file)
        self._pool = connection_pool(sent.scheme, sent.hostname or "", concurrency=config.concurrency)
        self._timeout = timeout_of(config.timeout_seconds)

    @property
    def url(self) -> str:
        """The url, as fit for logs (no user information, no query)."""
        return self._shown_url

    def __repr__(self) -> str:
        return (
            f"HttpSink(name={self.name!r}, url={self._shown_url!r}, signature={self._config.signature!r}, "
            f"key_id={self._config.key_id!r}, gzip={self._config.gzip})"
        )

    def merge(self, groups: Sequence[Group]) -> Group | None:
        """One stream's consecutive groups as one request (:func:`receiver.deliver.batches.merged_group`):
        their NDJSON lines one after the other, gzipped again as one body.

        A fleet behind a relay makes a request per host per batch; merging the batches built
        meanwhile makes a few. The key stays a promise: the worker records the batches it merges
        before sending, and a restart merges the same ones, so a merged request's
        ``Idempotency-Key`` (:func:`~receiver.deliver.batches.merged_pack_id`) always names the
        same records.
        """
        config = self._config

        def join(tags: list[tuple[str, str]]) -> bytes:
            bodies = [g.payload or b"" for g in groups]
            return _body(config, b"".join(igzip.decompress(body) for body in bodies) if config.gzip else b"".join(bodies))

        return merged_group(groups, join)

    def build_request(self, group: Group) -> HttpRequest:
        """The signed request for ``group``, signed at the clock's current time."""
        config = self._config
        body = group.payload if group.payload is not None else http_payload(config, group)
        headers = {"Content-Type": CONTENT_TYPE}
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Digest"] = content_digest(body)
        headers["Idempotency-Key"] = group.pack_id
        if group.destination:
            headers["X-Receiver-Destination"] = quote(group.destination, safe=":")
        if group.source:
            headers["X-Receiver-Source"] = quote(group.source, safe=":")
        headers["X-Receiver-Tags"] = json.dumps(dict(group.tags), separators=(",", ":"), ensure_ascii=True)
        headers["User-Agent"] = _USER_AGENT
        if self._key is not None:
            sent = {name.lower() for name in headers}
            covered = [c for c in COVERED_COMPONENTS if c.startswith("@") or c in sent]
            sign_request(
                SignedRequest("POST", self._target_uri, headers), self._key, components=covered,
                created=int(self._clock()), keyid=config.key_id, label=SIGNATURE_LABEL,
            )
        return HttpRequest(self._url, headers, body)

    def send(self, group: Group) -> SendOutcome:
        request = self.build_request(group)
        # In the order requests sent them: its own headers first, ours, the length, then the url's credentials.
        headers = {**_TRANSPORT_HEADERS, **request.headers, "Content-Length": str(len(request.body)), **self._authorization}
        try:
            response = self._pool.request(
                "POST", self._send_url, body=request.body, headers=headers, timeout=self._timeout,
                redirect=False,  # the signature covers the target URI: it must not travel to another one
                retries=False,  # the worker retries, from the spool
            )
        except NewConnectionError as e:  # refused, unreachable, no such host: urllib3 counts these as timeouts too
            return SendOutcome("retry", f"{self._shown_url}: {self._describe(e)}")
        except UpstreamTimeout:  # connecting, or waiting between bytes of the answer
            return SendOutcome("retry", f"{self._shown_url}: no answer within {self._config.timeout_seconds:g} s")
        except UpstreamError as e:
            return SendOutcome("retry", f"{self._shown_url}: {self._describe(e)}")
        # A field the answer repeats is read joined by ", ", as requests read it.
        outcome = classify_response(
            response.status, response.reason or "", {name.lower(): response.headers[name] for name in response.headers},
            response.data, now=self._clock(), pack_id=group.pack_id, sink=self.name,
        )
        if outcome.kind == "auth":
            outcome = self._reload_key(outcome)
        return outcome

    def _reload_key(self, outcome: SendOutcome) -> SendOutcome:
        """After a refusal, read the key file again: the key may have been rotated on both ends."""
        try:
            self._key = load_signing_key(self._config.signature, self._config.key_file)
        except HttpSinkError as e:
            return SendOutcome(outcome.kind, f"{outcome.reason}; reloading the key failed: {e}", outcome.retry_after_seconds)
        return outcome

    def _describe(self, error: BaseException) -> str:
        """The error in a line, with the url's query and user information taken out."""
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        parts = urlsplit(self._url)
        for secret in (parts.query, parts.password, parts.username):
            if secret:
                text = text.replace(secret, "...")
        return f"{type(error).__name__}: {text[:300]}"

    def close(self) -> None:
        self._pool.clear()
