"""One PutLogs request, compressed and signed, ready for any HTTP client.

Building is pure (time is a parameter) so that what goes on the wire can be
checked byte for byte against the official SDK and against the in-test
server, with no network. The sink owns the HTTP session and the clock.

Endpoint forms (sls.md "Request"): for a host name the project is the first
label of the URL's host (``https://{project}.{endpoint}``); for a raw IP
address (a proxy, a private link, the test server) the URL has the IP alone
and only the ``Host`` header names the project. ``Host`` never carries a
port, in either form, because it is part of the v4 signature and the server
signs what it sees.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import functools
import hashlib
import importlib
import ipaddress
import math
import re
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Literal
from urllib.parse import quote, urlsplit

import lz4.block

from receiver.deliver.sinks.sls.auth import Credentials, sign_v1, sign_v4

__all__ = [
    "API_VERSION",
    "Compression",
    "PreparedRequest",
    "SignatureVersion",
    "SlsEndpoint",
    "SlsRequestError",
    "build_put_logs",
    "check_put_logs_options",
    "hash_key_of",
    "http_date",
    "pack_log_group",
    "unpack_log_group",
    "v4_date",
]

API_VERSION = "0.6.0"
CONTENT_TYPE = "application/x-protobuf"

Compression = Literal["lz4", "zstd"]
SignatureVersion = Literal["v1", "v4"]

# Names go into the URL path and the host name: these patterns keep them from
# changing either (no '/', '?', '.', '%'), without restating SLS's naming policy,
# which the server enforces with its own clear errors.
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")
_LOGSTORE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class SlsRequestError(ValueError):
    """A PutLogs request cannot be built from these settings (endpoint, names, compression, signature).

    Always a configuration problem, never a transient one: retrying the same
    request cannot help.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class SlsEndpoint:
    """Where requests go: scheme, host (lower-case, no port), optional port, and whether host is an IP."""

    scheme: Literal["http", "https"]
    host: str
    port: int | None = None
    is_ip: bool = False

    @classmethod
    def parse(cls, text: str) -> SlsEndpoint:
        """``cn-hangzhou.log.aliyuncs.com``, ``https://cn-hangzhou.log.aliyuncs.com`` or ``http://IP:PORT``.

        Without a scheme, https. A path other than ``/``, a query, a fragment,
        user info or an IPv6 address is refused with a message saying which:
        none of them has a meaning for SLS, and silently dropping one would
        send logs somewhere the operator did not write.
        """
        raw = text.strip()
        if not raw:
            raise SlsRequestError("SLS endpoint is empty")
        url = raw if "://" in raw else f"https://{raw}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise SlsRequestError(f"SLS endpoint {raw!r}: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise SlsRequestError(f"SLS endpoint {raw!r}: scheme must be http or https")
        if parts.username is not None or parts.password is not None:
            raise SlsRequestError("SLS endpoint must not contain user info; use a credentials file")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SlsRequestError(f"SLS endpoint {raw!r}: only scheme, host and port are allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise SlsRequestError(f"SLS endpoint {raw!r} has no host")
        if ":" in host:
            raise SlsRequestError(f"SLS endpoint {raw!r}: IPv6 addresses are not supported")
        try:
            ipaddress.IPv4Address(host)
            is_ip = True
        except ValueError:
            is_ip = False
            if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
                raise SlsRequestError(f"SLS endpoint {raw!r}: {host!r} is not a valid host name") from None
        return cls("https" if scheme == "https" else "http", host, port, is_ip)

    def host_header(self, project: str) -> str:
        """``{project}.{host}``, without the port, in both forms."""
        return f"{project}.{self.host}"

    def url(self, project: str, path: str, query: str = "") -> str:
        """The request URL: the project leads the host name unless the endpoint is an IP address."""
        host = self.host if self.is_ip else f"{project}.{self.host}"
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{host}{port}{path}{'?' + query if query else ''}"

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


@dataclasses.dataclass(frozen=True, slots=True, repr=False, eq=False)
class PreparedRequest:
    """A signed PutLogs request: POST ``url`` with ``headers`` and ``body`` (compressed)."""

    url: str
    headers: dict[str, str]
    body: bytes
    raw_size: int
    """Bytes of the LogGroup before compression (``x-log-bodyrawsize``)."""
    method: str = "POST"

    def __repr__(self) -> str:
        # The STS token is a credential; the signature is derived from one. Neither is shown.
        return f"PreparedRequest({self.method} {self.url}, headers={sorted(self.headers)}, body={len(self.body)} bytes)"


def hash_key_of(key: str) -> str:
    """The shard route key for ``key``: its MD5 in lower-case hex.

    SLS shards own ranges of the 128-bit MD5 space, so a route key must be 32
    hex digits; hashing the sender's address spreads senders evenly and pins
    each to one shard (ordered per sender).
    """
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()


def http_date(when: _dt.datetime) -> str:
    """RFC 1123 in GMT, C locale whatever the process locale (``Mon, 03 Jan 2022 04:05:06 GMT``)."""
    return email.utils.format_datetime(when.astimezone(_dt.UTC).replace(microsecond=0), usegmt=True)


def v4_date(when: _dt.datetime) -> str:
    """The ``x-log-date`` form of signature v4: ``20220103T040506Z``."""
    return when.astimezone(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


@functools.cache
def _zstd_module() -> ModuleType | None:
    """Whichever zstd module is installed (3.14 stdlib, zstandard, zstd): each has compress and decompress."""
    for name in ("compression.zstd", "zstandard", "zstd"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if callable(getattr(module, "compress", None)) and callable(getattr(module, "decompress", None)):
            return module
    return None


def _zstd_compressor() -> Callable[[bytes], bytes] | None:
    """A zstd frame compressor, or None when no zstd module is installed."""
    module = _zstd_module()
    if module is None:
        return None
    return lambda data: bytes(module.compress(data, 1))  # level 1: the SDK's, fast


def _lz4(data: bytes) -> bytes:
    # A raw block: SLS learns the size from x-log-bodyrawsize, not from a prefix.
    return bytes(lz4.block.compress(data, store_size=False))


def _compressed(body: bytes, compress: Compression | None) -> bytes:
    if compress == "lz4":
        return _lz4(body)
    if compress == "zstd":
        zstd = _zstd_compressor()
        assert zstd is not None  # check_put_logs_options refuses zstd without a module
        return zstd(body)
    return bytes(body)


_RAW_SIZE = struct.Struct("<I")


def pack_log_group(log_group: bytes, compress: Compression | None) -> bytes:
    """``log_group`` as worker processes hand it to the sending thread: its size (4 bytes,
    little-endian), then the body as sent (compressed as ``compress`` says).

    Compressed where it is encoded, a LogGroup crosses between processes at a
    fifth of its size (lz4: copying it through the pipe cost both sides more
    than compressing it), and the sending threads, which share one GIL, have
    less to do: :func:`build_put_logs` with ``packed`` sends it as it is.
    """
    return _RAW_SIZE.pack(len(log_group)) + _compressed(log_group, compress)


def unpack_log_group(packed: bytes, compress: Compression | None) -> bytes:
    """The LogGroup of a :func:`pack_log_group` body (to merge it with others)."""
    (size,) = _RAW_SIZE.unpack_from(packed)
    sent = memoryview(packed)[_RAW_SIZE.size:]
    if compress == "lz4":
        return lz4.block.decompress(sent, uncompressed_size=size)
    if compress == "zstd":
        module = _zstd_module()
        assert module is not None  # it made the frame
        return bytes(module.decompress(bytes(sent)))  # the frame holds its size
    return bytes(sent)


def check_put_logs_options(
    *, compress: Compression | None, signature: SignatureVersion, region: str | None
) -> None:
    """Raise :class:`SlsRequestError` unless these options can build requests here.

    The sink calls this at construction, so that a configuration this host
    cannot serve (zstd without a zstd module, v4 without a region) fails at
    start instead of on every batch.
    """
    if compress not in ("lz4", "zstd", None):
        raise SlsRequestError(f"compress must be 'lz4', 'zstd' or None, not {compress!r}")
    if compress == "zstd" and _zstd_compressor() is None:
        raise SlsRequestError(
            "compress = 'zstd' needs a zstd module (Python 3.14's compression.zstd, or the "
            "'zstandard' package), and none is importable; install one or use lz4"
        )
    if signature not in ("v1", "v4"):
        raise SlsRequestError(f"signature must be 'v1' or 'v4', not {signature!r}")
    if signature == "v4" and not region:
        raise SlsRequestError("signature v4 needs the region (e.g. region = 'cn-hangzhou')")


def build_put_logs(
    endpoint: SlsEndpoint,
    project: str,
    logstore: str,
    body: bytes,
    credentials: Credentials,
    *,
    now: _dt.datetime,
    compress: Compression | None = "lz4",
    signature: SignatureVersion = "v1",
    region: str | None = None,
    hash_key: str | None = None,
    clock_offset_seconds: float = 0.0,
    packed: bool = False,
) -> PreparedRequest:
    """The PutLogs request carrying ``body`` (one encoded LogGroup; with ``packed``, what
    :func:`pack_log_group` made of one with the same ``compress``) to ``project``/``logstore``.

    ``now`` must be timezone-aware; the request time is ``now`` plus
    ``clock_offset_seconds`` (server time minus ours, learned from a
    ``RequestTimeExpired`` answer), so a host with a wrong clock still gets
    in. With ``hash_key`` the request goes to
    ``/shards/route?key=<md5 hex of hash_key>``, else to ``/shards/lb``.

    v1 sets Date, Content-MD5 (upper-case hex of the body as sent) and
    ``x-log-signaturemethod``; v4 sets ``x-log-date`` and
    ``x-log-content-sha256`` instead (sls.md). Raises
    :class:`SlsRequestError` for settings no retry can fix.
    """
    check_put_logs_options(compress=compress, signature=signature, region=region)
    if not _PROJECT.fullmatch(project):
        raise SlsRequestError(f"SLS project {project[:140]!r} is not a valid project name")
    if not _LOGSTORE.fullmatch(logstore):
        raise SlsRequestError(f"SLS logstore {logstore[:140]!r} is not a valid logstore name")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("build_put_logs needs a timezone-aware 'now'")
    if not math.isfinite(clock_offset_seconds):
        raise ValueError("clock_offset_seconds must be finite")
    when = now + _dt.timedelta(seconds=clock_offset_seconds)

    if packed:
        (raw_size,) = _RAW_SIZE.unpack_from(body)
        sent = body[_RAW_SIZE.size:]
    else:
        raw_size = len(body)
        sent = _compressed(body, compress)

    path = f"/logstores/{logstore}/shards/" + ("lb" if hash_key is None else "route")
    params = {} if hash_key is None else {"key": hash_key_of(hash_key)}

    headers: dict[str, str] = {
        "Host": endpoint.host_header(project),
        "Content-Type": CONTENT_TYPE,
        "Content-Length": str(len(sent)),
        "x-log-apiversion": API_VERSION,
        "x-log-bodyrawsize": str(raw_size),
    }
    if compress is not None:
        headers["x-log-compresstype"] = compress
    if credentials.security_token is not None:
        headers["x-acs-security-token"] = credentials.security_token

    if signature == "v1":
        headers["x-log-signaturemethod"] = "hmac-sha1"
        headers["Date"] = http_date(when)
        if sent:
            headers["Content-MD5"] = hashlib.md5(sent, usedforsecurity=False).hexdigest().upper()
        headers["Authorization"] = sign_v1(credentials, "POST", path, params, headers)
    else:
        assert region is not None  # checked above
        headers["x-log-date"] = v4_date(when)
        headers["x-log-content-sha256"] = hashlib.sha256(sent).hexdigest()
        headers["Authorization"] = sign_v4(credentials, "POST", path, params, headers, region=region)

    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(params.items()))
    return PreparedRequest(endpoint.url(project, path, query), headers, sent, raw_size)
