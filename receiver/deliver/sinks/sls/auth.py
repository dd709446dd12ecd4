"""SLS credentials and request signatures (v1: HMAC-SHA1, v4: HMAC-SHA256 region-scoped).

Credentials come from the environment or from a file of mode 0600. They are
held in one frozen object whose ``repr`` shows the AccessKey ID only, and no
error raised here ever contains the secret or the STS token: reasons end up in
logs, and logs leave the machine.

The signing functions are pure: they take the request's method, path, query
parameters and headers and return the ``Authorization`` value, so a test can
compare them with the official SDK's at a fixed time. The string formats are
those of sls.md (the SDK, the Go SDK and ilogtail agree on them).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from receiver.config.secrets import read_private_file

__all__ = [
    "ENV_ACCESS_KEY_ID",
    "ENV_ACCESS_KEY_SECRET",
    "ENV_SECURITY_TOKEN",
    "V4_ALGORITHM",
    "Credentials",
    "CredentialsError",
    "credentials_from_env",
    "credentials_from_file",
    "sign_v1",
    "sign_v4",
    "v1_string_to_sign",
    "v4_canonical_request",
    "v4_scope",
    "v4_string_to_sign",
]

# The variable names of Alibaba Cloud's own tools and of the SLS SDK documentation.
# (Neither sls.md nor the SDK names older ALIYUN_* spellings, so none are read.)
ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"

_MAX_FILE_BYTES = 64 * 1024
"""A credentials file is a few lines; anything larger is not one."""

V4_ALGORITHM = "SLS4-HMAC-SHA256"
_V4_SERVICE = "sls"
_V4_TERMINATOR = "aliyun_v4_request"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class CredentialsError(Exception):
    """Credentials are missing, unreadable or malformed; the message never holds a secret."""


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """An AccessKey pair, with the STS token when the pair is temporary.

    Values are checked at construction: each must be non-empty printable
    ASCII without spaces, because they end up in HTTP headers, where a stray
    newline (a file saved with CRLF, a pasted token) would otherwise either
    break every request with an obscure signature error or inject a header.
    """

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __post_init__(self) -> None:
        _check_value("access_key_id", self.access_key_id)
        _check_value("access_key_secret", self.access_key_secret)
        if self.security_token is not None:
            _check_value("security_token", self.security_token)

    def __repr__(self) -> str:
        token = "None" if self.security_token is None else "'<hidden>'"
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"access_key_secret='<hidden>', security_token={token})"
        )

    __str__ = __repr__


def _check_value(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise CredentialsError(f"SLS credentials: {field} is empty")
    if not all("!" <= c <= "~" for c in value):
        # Name the field, never show the value.
        raise CredentialsError(
            f"SLS credentials: {field} has spaces, control or non-ASCII characters"
        )


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials:
    """Credentials from ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``_SECRET`` (and ``_SECURITY_TOKEN`` for STS).

    ``environ`` defaults to ``os.environ`` (a parameter so tests need not touch
    the process environment). An empty variable counts as unset; the error
    names the variables that are missing.
    """
    env = os.environ if environ is None else environ
    key_id = env.get(ENV_ACCESS_KEY_ID, "").strip()
    secret = env.get(ENV_ACCESS_KEY_SECRET, "").strip()
    token = env.get(ENV_SECURITY_TOKEN, "").strip() or None
    missing = [name for name, value in ((ENV_ACCESS_KEY_ID, key_id), (ENV_ACCESS_KEY_SECRET, secret)) if not value]
    if missing:
        raise CredentialsError(
            f"SLS credentials: {' and '.join(missing)} not set in the environment "
            f"(set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET}, plus {ENV_SECURITY_TOKEN} for STS, "
            "or configure credentials_file)"
        )
    return Credentials(key_id, secret, token)


# File keys: the short names, or the environment names so that one file can also
# serve as a systemd EnvironmentFile.
_FILE_KEYS = {
    "access_key_id": "access_key_id",
    "access_key_secret": "access_key_secret",
    "security_token": "security_token",
    ENV_ACCESS_KEY_ID: "access_key_id",
    ENV_ACCESS_KEY_SECRET: "access_key_secret",
    ENV_SECURITY_TOKEN: "security_token",
}


_KEY_NAME = re.compile(r"[A-Za-z_]{1,40}")
"""What a mistyped key looks like: letters and underscores. Keys, secrets and tokens have digits."""


def credentials_from_file(path: Path | str) -> Credentials:
    """Credentials from a ``key = value`` file that only its owner may read.

    The format, one setting a line::

        # comments and blank lines are ignored
        access_key_id = LTAI...
        access_key_secret = ...
        security_token = ...        (optional: STS credentials)

    The upper-case environment names (``ALIBABA_CLOUD_ACCESS_KEY_ID=...``) are
    accepted as keys too, so the same file can be a systemd
    ``EnvironmentFile``. A value may be wrapped in single or double quotes.
    Unknown or repeated keys are errors, so a typo cannot silently drop the
    token.

    A file that group or others may access is refused (``chmod 600 PATH``):
    keys that any local user can read are as good as published. The mode is
    checked on the opened file, so a swap between check and read does not
    slip through. Errors name the file, the line number and the key, never a
    value: a line without ``=`` may be a pasted secret.

    Re-reading is cheap; the sink calls this again after an authentication
    error, which picks up rotated keys and renewed STS tokens.
    """
    path = Path(path)
    data = read_private_file(path, what="SLS credentials file", max_bytes=_MAX_FILE_BYTES, error=CredentialsError)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CredentialsError(f"SLS credentials file {path} is not UTF-8 text") from None
    return _parse_credentials(text, str(path))


def _parse_credentials(text: str, where: str) -> Credentials:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise CredentialsError(f"SLS credentials file {where}, line {number}: expected key = value")
        field = _FILE_KEYS.get(key)
        if field is None:
            known = ", ".join(k for k in _FILE_KEYS if k.islower())
            # A token or secret pasted on a line of its own splits at its base64 "=" padding into
            # a "key" that is most of the secret: show only what looks like a key name.
            shown = f"unknown key {key!r}" if _KEY_NAME.fullmatch(key) else "not a known key (not shown: it may be a secret)"
            raise CredentialsError(f"SLS credentials file {where}, line {number}: {shown} (known: {known})")
        if field in values:
            raise CredentialsError(f"SLS credentials file {where}, line {number}: {key} is given twice")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[field] = value
    missing = [k for k in ("access_key_id", "access_key_secret") if not values.get(k)]
    if missing:
        raise CredentialsError(f"SLS credentials file {where}: {' and '.join(missing)} missing")
    try:
        return Credentials(values["access_key_id"], values["access_key_secret"], values.get("security_token") or None)
    except CredentialsError as e:
        raise CredentialsError(f"{e} (in {where})") from None


# Signatures.


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _is_signed_extension(key: str) -> bool:
    """``x-log-*`` and ``x-acs-*`` headers are signed, except user metadata ``x-log-meta-*``."""
    return key.startswith("x-acs-") or (key.startswith("x-log-") and not key.startswith("x-log-meta-"))


def v1_string_to_sign(
    method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """The v1 string to sign (sls.md "Signature v1").

    Method, Content-MD5, Content-Type and Date (each an empty line when
    absent), one ``key:value`` line per signed extension header (lower-case
    keys, sorted, values untrimmed), then the path with the parameters sorted
    and *not* URL-encoded. Header names are matched case-insensitively.
    """
    lower = _lower_headers(headers)
    lines = [
        method,
        lower.get("content-md5", ""),
        lower.get("content-type", ""),
        lower.get("date", ""),
    ]
    lines.extend(f"{k}:{lower[k]}" for k in sorted(lower) if _is_signed_extension(k))
    resource = path
    if params:
        resource += "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    lines.append(resource)
    return "\n".join(lines)


def sign_v1(
    credentials: Credentials,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
) -> str:
    """The ``Authorization`` value of a v1-signed request: ``LOG <AccessKeyId>:<base64 HMAC-SHA1>``.

    ``headers`` must already hold everything signed: Content-MD5 (when there
    is a body), Content-Type, Date, ``x-log-signaturemethod`` and, for STS,
    ``x-acs-security-token``.
    """
    string = v1_string_to_sign(method, path, params, headers)
    digest = hmac.new(credentials.access_key_secret.encode(), string.encode(), hashlib.sha1).digest()
    return f"LOG {credentials.access_key_id}:{base64.b64encode(digest).decode('ascii')}"


def _v4_encode(value: str) -> str:
    # RFC 3986: everything but unreserved characters percent-encoded, as UTF-8.
    return quote(value, safe="~")


def v4_canonical_request(
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """The v4 canonical request and the signed header list (``a;b;c``).

    Signed headers are ``content-type``, ``host`` and the ``x-log-*`` /
    ``x-acs-*`` ones, lower-case, values stripped, sorted by name. The query is
    sorted by key with values encoded (``k`` alone when the value is empty).
    """
    lower = _lower_headers(headers)
    signed = sorted(k for k in lower if k in ("content-type", "host") or _is_signed_extension(k))
    query = "&".join(
        f"{k}={_v4_encode(v)}" if v else k for k, v in sorted(params.items())
    )
    canonical_headers = "".join(f"{k}:{lower[k].strip()}\n" for k in signed)
    signed_headers = ";".join(signed)
    request = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
    return request, signed_headers


def v4_scope(date_time: str, region: str) -> str:
    """``yyyymmdd/region/sls/aliyun_v4_request`` for an ``x-log-date`` (``%Y%m%dT%H%M%SZ``)."""
    return f"{date_time[:8]}/{region}/{_V4_SERVICE}/{_V4_TERMINATOR}"


def v4_string_to_sign(date_time: str, region: str, canonical_request: str) -> str:
    """``SLS4-HMAC-SHA256``, the request time, the scope and the canonical request's SHA-256, by lines."""
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{V4_ALGORITHM}\n{date_time}\n{v4_scope(date_time, region)}\n{digest}"


def _v4_signing_key(secret: str, day: str, region: str) -> bytes:
    key = ("aliyun_v4" + secret).encode()
    for part in (day, region, _V4_SERVICE, _V4_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign_v4(
    credentials: Credentials,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    region: str,
) -> str:
    """The ``Authorization`` value of a v4-signed request.

    ``headers`` must already hold ``x-log-date`` (``%Y%m%dT%H%M%SZ``, the
    signing time), ``x-log-content-sha256`` (hex SHA-256 of the body as sent),
    Host, Content-Type and, for STS, ``x-acs-security-token``. The key is the
    HMAC-SHA256 chain over ``"aliyun_v4" + secret``, the day, the region,
    ``sls`` and ``aliyun_v4_request``; the signature is hex.
    """
    lower = _lower_headers(headers)
    date_time = lower.get("x-log-date", "")
    if len(date_time) != 16 or not date_time.endswith("Z"):
        raise ValueError("sign_v4 needs an x-log-date header of the form YYYYMMDDTHHMMSSZ")
    if not region:
        raise ValueError("signature v4 needs a region (e.g. cn-hangzhou)")
    payload = lower.get("x-log-content-sha256", _EMPTY_SHA256)
    canonical, _signed = v4_canonical_request(method, path, params, headers, payload)
    string = v4_string_to_sign(date_time, region, canonical)
    key = _v4_signing_key(credentials.access_key_secret, date_time[:8], region)
    signature = hmac.new(key, string.encode(), hashlib.sha256).hexdigest()
    return f"{V4_ALGORITHM} Credential={credentials.access_key_id}/{v4_scope(date_time, region)},Signature={signature}"
