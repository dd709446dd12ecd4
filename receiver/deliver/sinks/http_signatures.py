"""RFC 9421 signatures and RFC 9530 digests for the HTTP sink.

The signature base, ``Signature-Input`` and ``Signature`` are written here
(:func:`sign_request`), for the one shape the sink signs: the components it
names, in its order, with the parameters ``created``, ``keyid`` and ``alg``;
the keys sign with ``hmac-sha256`` or ``ed25519`` (``cryptography``). The
``http-message-signatures`` library did this before, and stays the oracle: it
verifies what this signs in the tests (tests/support/http_verifier.py), it
holds the keys to RFC 9421's test vectors, and docs/sinks/http.md shows
collectors how to verify with it. It was left out of the sending path for
its cost: 330 us of Python a request, as much as the rest of a request, and
a relay of thousands of hosts makes a request per host per batch.

Three things follow docs/sinks/http.md rather than a library's defaults:

* :func:`normalize_target_uri`: the sink requests a URL as requests spelled
  it, with its default port (``https://host:443/...``); our collectors
  rebuild ``@target-uri`` from the configured URL with scheme and host in
  lower case and no default port (RFC 9110 section 4.2.3), so the sink signs
  a :class:`SignedRequest` that carries the normalised URI, not the URL the
  request goes to.
* ``created`` from the sink's injected clock and the label ``sig1``: both are
  arguments of :func:`sign_request`.
* The keys: :class:`HmacSha256Key` and :class:`Ed25519SigningKey` hold one
  key each (and are the library's key resolvers, for the tests' oracle).
  Their ``repr`` and their errors never show the key.

There is no verifier here: the appliance only signs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from http_message_signatures import HTTPSignatureKeyResolver
from http_message_signatures.algorithms import ED25519, HMAC_SHA256

__all__ = [
    "Ed25519SigningKey",
    "HmacSha256Key",
    "SignatureKeyError",
    "SignedRequest",
    "SigningError",
    "SigningKey",
    "content_digest",
    "normalize_target_uri",
    "sign_request",
]


class SignatureKeyError(ValueError):
    """Key material could not be used (empty secret, not an Ed25519 PEM key). Never carries the key."""


class SigningError(ValueError):
    """A request cannot be signed as asked (a covered field it lacks, a value a signature base cannot
    hold). Names the component, never the key."""


class HmacSha256Key(HTTPSignatureKeyResolver):
    """A shared secret for ``hmac-sha256`` (RFC 9421 section 3.3.3), whatever ``keyid`` names it."""

    algorithm = HMAC_SHA256
    alg = "hmac-sha256"

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise SignatureKeyError("the HMAC secret is empty")
        self._secret = bytes(secret)

    def sign(self, base: bytes) -> bytes:
        return hmac.digest(self._secret, base, "sha256")

    def resolve_private_key(self, key_id: str) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        return "HmacSha256Key(<secret hidden>)"


class Ed25519SigningKey(HTTPSignatureKeyResolver):
    """An Ed25519 private key (RFC 9421 section 3.3.6), whatever ``keyid`` names it."""

    algorithm = ED25519
    alg = "ed25519"

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    def sign(self, base: bytes) -> bytes:
        return self._private.sign(base)

    @classmethod
    def from_pem(cls, data: bytes) -> Ed25519SigningKey:
        """From an unencrypted PKCS#8 ``PRIVATE KEY`` PEM block (``openssl genpkey -algorithm ed25519``)."""
        try:
            private = load_pem_private_key(data, password=None)
        except TypeError:
            raise SignatureKeyError("the private key is encrypted; store it unencrypted (mode 0600)") from None
        except ValueError:
            raise SignatureKeyError("not a PEM private key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise SignatureKeyError(f"a {type(private).__name__}, not an Ed25519 private key")
        return cls(private)

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        return self._private

    def __repr__(self) -> str:
        return "Ed25519SigningKey(<private key hidden>)"


SigningKey = HmacSha256Key | Ed25519SigningKey
"""A key the HTTP sink signs with; ``key.alg`` is its ``alg``."""


@dataclasses.dataclass(frozen=True)
class SignedRequest:
    """What :func:`sign_request` reads of a request to sign it; it adds the signature fields to ``headers``.

    ``url`` is the target URI as :func:`normalize_target_uri` gives it, which
    ``@target-uri`` signs: not necessarily the URL the request goes to.
    """

    method: str
    url: str
    headers: dict[str, str]


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_target_uri(url: str) -> str:
    """The target URI as RFC 9110 section 4.2.3 normalises it, which ``@target-uri`` signs.

    Scheme and host in lower case, the default port left out, an empty path as
    ``/``; no user information (RFC 9110 forbids sending it), no fragment.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    authority = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{authority}{path}{query}"


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` of ``body``: its sha-256, as a dictionary of one byte sequence."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode('ascii')}:"


_VALUE = re.compile(r"[\x20-\x7e\t]*")
"""What a component's value may hold in a signature base: visible ASCII, spaces and tabs (RFC 9421
section 2.5 refuses CR, LF and other controls; the sink's fields are ASCII by construction)."""
_KEYID = re.compile(r"[\x20-\x7e]*")
_LABEL = re.compile(r"[a-z*][a-z0-9_.*-]*")  # an RFC 8941 key


def _derived(name: str, url: str) -> str:
    """A derived component of the request to ``url`` (RFC 9421 section 2.2), but ``@method``."""
    parts = urlsplit(url)
    if name == "@target-uri":
        return url
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@authority":
        host = (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
        return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"
    path = parts.path or "/"
    if name == "@path":
        return path
    if name == "@query":
        return f"?{parts.query}"
    if name == "@request-target":
        return f"{path}?{parts.query}" if parts.query else path
    raise SigningError(f"the signature component {name} is not one this sink signs")


def sign_request(
    request: SignedRequest, key: SigningKey, *, components: Iterable[str], created: int, keyid: str, label: str
) -> None:
    """Sign ``request`` (RFC 9421): add ``Signature-Input`` and ``Signature`` to its headers.

    The signature base is each component (a lower-case header field name, or a derived component
    such as ``@method`` or ``@target-uri``) as ``"name": value`` on a line of its own, then the
    ``@signature-params`` line; the parameters are ``created``, ``keyid`` and ``alg``, in that order
    (no ``expires``, ``nonce`` or ``tag``). Raises :class:`SigningError` for a field the request
    lacks or a value a signature base cannot hold.
    """
    if not _LABEL.fullmatch(label):
        raise SigningError(f"{label!r} is not a signature label")
    if not _KEYID.fullmatch(keyid):
        raise SigningError("the key id must be visible ASCII (it is sent as a structured-field string)")
    fields = {name.lower(): value for name, value in request.headers.items()}
    lines: list[str] = []
    names: list[str] = []
    for name in components:
        if name != name.lower() or '"' in name or "\\" in name or name in names:
            raise SigningError(f"{name!r} is not a signature component name (lower case, once each)")
        if name == "@method":
            value = request.method
        elif name.startswith("@"):
            value = _derived(name, request.url)
        elif name in fields:
            value = fields[name].strip(" \t")  # a field's value, its leading and trailing spaces left out
        else:
            raise SigningError(f"the request has no {name} field to sign")
        if not _VALUE.fullmatch(value):
            raise SigningError(f"the value of {name} holds a character a signature base cannot (a control or non-ASCII)")
        lines.append(f'"{name}": {value}')
        names.append(name)
    quoted_keyid = keyid.replace("\\", "\\\\").replace('"', '\\"')
    params = '({});created={};keyid="{}";alg="{}"'.format(
        " ".join(f'"{name}"' for name in names), int(created), quoted_keyid, key.alg
    )
    lines.append(f'"@signature-params": {params}')
    signature = key.sign("\n".join(lines).encode("ascii"))
    request.headers["Signature-Input"] = f"{label}={params}"
    request.headers["Signature"] = f"{label}=:{base64.b64encode(signature).decode('ascii')}:"
