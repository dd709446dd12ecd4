"""RFC 9421 signatures for the HTTP sink, made by the ``http-message-signatures`` library.

The library builds the signature base, writes ``Signature-Input`` and
``Signature`` (RFC 8941 dictionaries, through ``http_sf``), signs with
``hmac-sha256`` or ``ed25519`` and makes the RFC 9530 ``Content-Digest``
(``ContentDigest.create``). Only three things stay here, each because the
library does not do it the way docs/sinks/http.md promises:

* :func:`normalize_target_uri`: the library signs ``@target-uri`` exactly as
  the URL it is given is spelled, and the sink requests a URL as requests
  spelled it, with its default port (``https://host:443/...``); our collectors rebuild ``@target-uri`` from
  the configured URL with scheme and host in lower case and no default port
  (RFC 9110 section 4.2.3), so the sink signs a :class:`SignedRequest` that
  carries the normalised URI, not the URL the request goes to.
* ``created`` from the sink's injected clock (the library reads the wall
  clock unless given a time) and the label ``sig1`` (the library's default is
  ``pyhms``): both are arguments of :func:`sign_request`.
* The keys: :class:`HmacSha256Key` and :class:`Ed25519SigningKey` are the
  library's key resolvers for the one key each holds. Their ``repr`` and
  their errors never show the key, and the library gets the key material only
  while it signs; nothing else of it is kept where a ``repr`` could show it.

There is no verifier here: the appliance only signs. A collector verifies
with the library (docs/sinks/http.md shows how; tests/support/http_verifier.py
does it).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver
from http_message_signatures.algorithms import ED25519, HMAC_SHA256

__all__ = [
    "Ed25519SigningKey",
    "HmacSha256Key",
    "SignatureKeyError",
    "SignedRequest",
    "SigningKey",
    "normalize_target_uri",
    "sign_request",
]


class SignatureKeyError(ValueError):
    """Key material could not be used (empty secret, not an Ed25519 PEM key). Never carries the key."""


class HmacSha256Key(HTTPSignatureKeyResolver):
    """A shared secret for ``hmac-sha256`` (RFC 9421 section 3.3.3), whatever ``keyid`` names it."""

    algorithm = HMAC_SHA256

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise SignatureKeyError("the HMAC secret is empty")
        self._secret = bytes(secret)

    def resolve_private_key(self, key_id: str) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        return "HmacSha256Key(<secret hidden>)"


class Ed25519SigningKey(HTTPSignatureKeyResolver):
    """An Ed25519 private key (RFC 9421 section 3.3.6), whatever ``keyid`` names it."""

    algorithm = ED25519

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

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
"""A key the HTTP sink signs with; ``key.algorithm.algorithm_id`` is its ``alg``."""


@dataclasses.dataclass(frozen=True)
class SignedRequest:
    """What the library reads of a request to sign it; it adds the signature fields to ``headers``.

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


def sign_request(
    request: SignedRequest, key: SigningKey, *, components: Iterable[str], created: int, keyid: str, label: str
) -> None:
    """Sign ``request`` (RFC 9421): add ``Signature-Input`` and ``Signature`` to its headers.

    The parameters are ``created``, ``keyid`` and ``alg``, in that order; no
    ``expires``, ``nonce`` or ``tag``.
    """
    signer = HTTPMessageSigner(signature_algorithm=key.algorithm, key_resolver=key)
    signer.sign(
        request,
        key_id=keyid,
        created=_dt.datetime.fromtimestamp(created, _dt.UTC),
        label=label,
        covered_component_ids=tuple(components),
        use_existing_digest=True,  # the sink's own Content-Digest (ContentDigest.create), sent unsigned too
    )
