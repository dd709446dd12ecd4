"""RFC 9421 HTTP Message Signatures and the RFC 9530 ``Content-Digest``, for requests.

Pure code: no I/O, no HTTP client. The HTTP sink (``http_sink.py``) uses it to
sign what it sends, and a collector written in Python can use it to verify.
Only what a request signer and verifier need is here:

* ``Content-Digest`` with ``sha-256`` (and ``sha-512`` when verifying);
* the signature base (RFC 9421 section 2.5) over HTTP fields and the derived
  components ``@method``, ``@target-uri``, ``@authority``, ``@scheme``,
  ``@request-target``, ``@path`` and ``@query`` (component parameters such as
  ``;sf`` or ``;req`` are refused, not silently ignored);
* ``Signature-Input`` and ``Signature`` as RFC 8941 structured-field
  dictionaries, both ways;
* the algorithms ``hmac-sha256`` and ``ed25519`` (via ``cryptography``).

Key objects never show their secret in ``repr`` or in an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

__all__ = [
    "ALGORITHMS",
    "Ed25519SigningKey",
    "Ed25519VerifyKey",
    "HmacSha256Key",
    "RequestView",
    "SignatureError",
    "SignatureKeyError",
    "SignatureParams",
    "SigningKey",
    "Token",
    "VerifyKey",
    "check_content_digest",
    "content_digest",
    "normalize_target_uri",
    "parse_dictionary",
    "serialize_dictionary",
    "sign_request",
    "signature_base",
    "verify_request",
]

ALGORITHMS = ("hmac-sha256", "ed25519")
"""The ``alg`` values this module signs and verifies."""


class SignatureError(ValueError):
    """A signature, digest or structured field is malformed, does not match, or is not acceptable."""


class SignatureKeyError(ValueError):
    """Key material could not be used (empty secret, not an Ed25519 PEM key). Never carries the key."""


# --- RFC 8941 structured fields: just enough for dictionaries -----------------------------------


class Token(str):
    """An RFC 8941 token (unquoted, such as ``gzip``), to tell it from a string on output."""

    __slots__ = ()


BareItem = bool | int | float | str | bytes
"""Boolean, integer, decimal, string (or :class:`Token`), byte sequence."""
Parameters = dict[str, BareItem]
Item = tuple[BareItem, Parameters]
InnerList = tuple[list[Item], Parameters]
Member = Item | InnerList
"""A dictionary member: an item, or an inner list (whose first element is a list)."""

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")


def _serialize_bare(value: BareItem) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > 999_999_999_999_999:
            raise SignatureError(f"integer {value} is out of the structured-field range")
        return str(value)
    if isinstance(value, float):
        text = f"{round(value, 3):.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, Token):
        if not _TOKEN.fullmatch(value):
            raise SignatureError(f"{value!r} is not a valid token")
        return str(value)
    if isinstance(value, str):
        if any(not " " <= c <= "~" for c in value):
            raise SignatureError("a structured-field string holds printable ASCII only")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ":" + base64.b64encode(value).decode() + ":"


def _serialize_params(params: Mapping[str, BareItem]) -> str:
    out = []
    for key, value in params.items():
        if not _KEY.fullmatch(key):
            raise SignatureError(f"{key!r} is not a valid structured-field key")
        out.append(f";{key}" if value is True else f";{key}={_serialize_bare(value)}")
    return "".join(out)


def _serialize_member(member: Member) -> str:
    value, params = member
    if isinstance(value, list):
        inner = " ".join(_serialize_bare(v) + _serialize_params(p) for v, p in value)
        return f"({inner}){_serialize_params(params)}"
    return _serialize_bare(value) + _serialize_params(params)


def serialize_dictionary(members: Mapping[str, Member]) -> str:
    """An RFC 8941 dictionary as header text (``a=1, b=("x");p``)."""
    out = []
    for key, member in members.items():
        if not _KEY.fullmatch(key):
            raise SignatureError(f"{key!r} is not a valid structured-field key")
        value, params = member
        if value is True and not isinstance(value, list):
            out.append(key + _serialize_params(params))
        else:
            out.append(f"{key}={_serialize_member(member)}")
    return ", ".join(out)


class _Parser:
    """RFC 8941 section 4.2, for dictionaries (the only top-level type signatures use)."""

    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise SignatureError("a structured field is ASCII text")
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> SignatureError:
        return SignatureError(f"structured field: {what} at character {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, Member]:
        self.skip(" ")
        out: dict[str, Member] = {}
        while self.pos < len(self.text):
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                out[key] = self.item_or_inner_list()
            else:
                out[key] = (True, self.parameters())
            self.skip(" \t")
            if self.pos >= len(self.text):
                return out
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            self.skip(" \t")
            if self.pos >= len(self.text):
                raise self.fail("trailing ','")
        return out

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a key")
        self.pos = match.end()
        return match.group()

    def item_or_inner_list(self) -> Member:
        if self.peek() != "(":
            return self.bare(), self.parameters()
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return items, self.parameters()
            items.append((self.bare(), self.parameters()))
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in an inner list")

    def parameters(self) -> Parameters:
        params: Parameters = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare()
            params[key] = value
        return params

    def bare(self) -> BareItem:
        c = self.peek()
        if c == '"':
            return self.string()
        if c == ":":
            end = self.text.find(":", self.pos + 1)
            data = self.text[self.pos + 1 : end]
            if end < 0 or not _BASE64.fullmatch(data):
                raise self.fail("bad byte sequence")
            self.pos = end + 1
            try:
                return base64.b64decode(data, validate=True)
            except binascii.Error:
                raise self.fail("bad base64 in a byte sequence") from None
        if c == "?":
            flag = self.text[self.pos + 1 : self.pos + 2]
            if flag not in ("0", "1"):
                raise self.fail("bad boolean")
            self.pos += 2
            return flag == "1"
        if c == "-" or c.isdigit():
            match = _NUMBER.match(self.text, self.pos)
            if match is None:
                raise self.fail("bad number")
            self.pos = match.end()
            whole, fraction = match.group(), match.group(1)
            if fraction is None:
                if len(whole.lstrip("-")) > 15:
                    raise self.fail("integer too long")
                return int(whole)
            if len(whole.lstrip("-")) - len(fraction) > 12 or len(fraction) > 4:
                raise self.fail("decimal too long")
            return float(whole)
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected an item")
        self.pos = match.end()
        return Token(match.group())

    def string(self) -> str:
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise self.fail("bad escape in a string")
                out.append(escaped)
                self.pos += 1
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                raise self.fail("control character in a string")
            else:
                out.append(c)
        raise self.fail("unterminated string")


def parse_dictionary(text: str) -> dict[str, Member]:
    """An RFC 8941 dictionary from header text; :class:`SignatureError` if malformed."""
    return _Parser(text).dictionary()


# --- RFC 9530 Content-Digest --------------------------------------------------------------------

_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value for ``body`` (the bytes as sent, after content coding)."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def check_content_digest(value: str, body: bytes) -> None:
    """Raise :class:`SignatureError` unless ``value`` holds a sha-256 or sha-512 digest of ``body``.

    Unknown algorithms are ignored (RFC 9530 section 2); every known one given must match.
    """
    known = 0
    for name, (digest, _params) in parse_dictionary(value).items():
        factory = _DIGESTS.get(name)
        if factory is None:
            continue
        if not isinstance(digest, bytes):
            raise SignatureError(f"Content-Digest {name} is not a byte sequence")
        if not hmac.compare_digest(digest, factory(body).digest()):
            raise SignatureError(f"Content-Digest {name} does not match the body")
        known += 1
    if not known:
        raise SignatureError("Content-Digest has no sha-256 or sha-512 member")


# --- The request and its signature base ---------------------------------------------------------

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


class RequestView:
    """What a signature can cover of a request: method, target URI and header fields.

    Field names are matched case-insensitively; a field sent on several lines
    is given as one value, the lines joined with ``", "`` (RFC 9110 section 5.3).
    """

    __slots__ = ("headers", "method", "target_uri")

    def __init__(self, method: str, target_uri: str, headers: Mapping[str, str]) -> None:
        self.method = method
        self.target_uri = target_uri
        self.headers = {name.lower(): value for name, value in headers.items()}

    def __repr__(self) -> str:
        return f"RequestView({self.method!r}, {self.target_uri!r}, <{len(self.headers)} headers>)"


def _derived(request: RequestView, name: str) -> str:
    if name == "@method":
        return request.method
    if name == "@target-uri":
        return request.target_uri
    parts = urlsplit(request.target_uri)
    path = parts.path or "/"
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@authority":
        return urlsplit(normalize_target_uri(request.target_uri)).netloc
    if name == "@path":
        return path
    if name == "@query":
        return f"?{parts.query}"
    if name == "@request-target":
        return f"{path}?{parts.query}" if parts.query else path
    raise SignatureError(f"derived component {name} is not supported for requests")


def _component_value(request: RequestView, name: str) -> str:
    if name.startswith("@"):
        value = _derived(request, name)
    else:
        if name != name.lower():
            raise SignatureError(f"covered field {name!r} must be written in lower case")
        found = request.headers.get(name)
        if found is None:
            raise SignatureError(f"covered field {name!r} is not in the request")
        value = found.strip(" \t")
    if "\r" in value or "\n" in value:
        raise SignatureError(f"component {name!r} holds a line break")
    return value


class SignatureParams:
    """The covered components and parameters of one signature (a ``Signature-Input`` member)."""

    __slots__ = ("alg", "components", "created", "expires", "keyid", "nonce", "tag")

    def __init__(
        self,
        components: Sequence[str],
        *,
        created: int | None = None,
        keyid: str | None = None,
        alg: str | None = None,
        expires: int | None = None,
        nonce: str | None = None,
        tag: str | None = None,
    ) -> None:
        if len(set(components)) != len(components):
            raise SignatureError("a component is covered twice")
        self.components = tuple(components)
        self.created = created
        self.keyid = keyid
        self.alg = alg
        self.expires = expires
        self.nonce = nonce
        self.tag = tag

    def member(self) -> InnerList:
        """The structured-field inner list (parameters in the order created, expires, nonce, keyid, alg, tag)."""
        params: Parameters = {}
        for key in ("created", "expires", "nonce", "keyid", "alg", "tag"):
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        return [(name, {}) for name in self.components], params

    def serialize(self) -> str:
        """The value of ``@signature-params`` and of the ``Signature-Input`` member."""
        return _serialize_member(self.member())

    @classmethod
    def from_member(cls, member: Member) -> SignatureParams:
        """Read a parsed ``Signature-Input`` member; :class:`SignatureError` if it is not one."""
        value, params = member
        if not isinstance(value, list):
            raise SignatureError("a Signature-Input member must be an inner list")
        components = []
        for name, component_params in value:
            if not isinstance(name, str) or isinstance(name, Token):
                raise SignatureError("covered components must be strings")
            if component_params:
                raise SignatureError(f"component parameters on {name!r} are not supported")
            components.append(name)
        kinds: dict[str, type] = {"created": int, "expires": int, "nonce": str, "keyid": str, "alg": str, "tag": str}
        found: dict[str, object] = {}
        for key, param in params.items():
            kind = kinds.get(key)
            if kind is None:
                raise SignatureError(f"unknown signature parameter {key!r}")
            if not isinstance(param, kind) or isinstance(param, bool | Token):
                raise SignatureError(f"signature parameter {key!r} has the wrong type")
            found[key] = param
        return cls(components, **found)  # type: ignore[arg-type]  # types checked just above

    def __repr__(self) -> str:
        return f"SignatureParams({self.serialize()})"


def signature_base(request: RequestView, params: SignatureParams) -> bytes:
    """The RFC 9421 signature base: one ``"name": value`` line per component, then ``@signature-params``."""
    if "@signature-params" in params.components:
        raise SignatureError("@signature-params cannot be covered")
    lines = [f'"{name}": {_component_value(request, name)}' for name in params.components]
    lines.append(f'"@signature-params": {params.serialize()}')
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError:
        raise SignatureError("a covered component is not ASCII") from None


# --- Keys ----------------------------------------------------------------------------------------


class SigningKey(Protocol):
    """A private or shared key that signs signature bases."""

    @property
    def alg(self) -> str: ...

    def sign(self, base: bytes) -> bytes: ...


class VerifyKey(Protocol):
    """A public or shared key that checks signatures."""

    @property
    def alg(self) -> str: ...

    def verify(self, base: bytes, signature: bytes) -> bool: ...


class HmacSha256Key:
    """A shared secret for ``hmac-sha256`` (RFC 9421 section 3.3.3); signs and verifies."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise SignatureKeyError("the HMAC secret is empty")
        self._secret = bytes(secret)

    @property
    def alg(self) -> str:
        return "hmac-sha256"

    def sign(self, base: bytes) -> bytes:
        return hmac.new(self._secret, base, hashlib.sha256).digest()

    def verify(self, base: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(base), signature)

    def __repr__(self) -> str:
        return "HmacSha256Key(<secret hidden>)"


class Ed25519VerifyKey:
    """An Ed25519 public key (RFC 9421 section 3.3.6)."""

    __slots__ = ("_public",)

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public

    @classmethod
    def from_pem(cls, data: bytes) -> Ed25519VerifyKey:
        """From a ``PUBLIC KEY`` PEM block; :class:`SignatureKeyError` if it is not an Ed25519 one."""
        try:
            public = load_pem_public_key(data)
        except (ValueError, TypeError):
            raise SignatureKeyError("not a PEM public key") from None
        if not isinstance(public, Ed25519PublicKey):
            raise SignatureKeyError(f"a {type(public).__name__}, not an Ed25519 public key")
        return cls(public)

    @property
    def alg(self) -> str:
        return "ed25519"

    def verify(self, base: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, base)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return "Ed25519VerifyKey(...)"


class Ed25519SigningKey:
    """An Ed25519 private key (RFC 9421 section 3.3.6); signs, and verifies with its public half."""

    __slots__ = ("_private",)

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

    @property
    def alg(self) -> str:
        return "ed25519"

    def sign(self, base: bytes) -> bytes:
        return self._private.sign(base)

    def verify_key(self) -> Ed25519VerifyKey:
        return Ed25519VerifyKey(self._private.public_key())

    def verify(self, base: bytes, signature: bytes) -> bool:
        return self.verify_key().verify(base, signature)

    def __repr__(self) -> str:
        return "Ed25519SigningKey(<private key hidden>)"


# --- Signing and verifying ----------------------------------------------------------------------


def sign_request(
    request: RequestView,
    key: SigningKey,
    *,
    components: Iterable[str],
    created: int,
    keyid: str,
    label: str = "sig1",
) -> tuple[str, str]:
    """The ``Signature-Input`` and ``Signature`` header values of one signature over ``request``."""
    if not _KEY.fullmatch(label):
        raise SignatureError(f"{label!r} is not a valid signature label")
    params = SignatureParams(tuple(components), created=created, keyid=keyid, alg=key.alg)
    signature = key.sign(signature_base(request, params))
    return (
        serialize_dictionary({label: params.member()}),
        serialize_dictionary({label: (signature, {})}),
    )


def verify_request(
    request: RequestView,
    signature_input: str,
    signature: str,
    keys: Mapping[str, VerifyKey],
    *,
    label: str | None = None,
    required_components: Iterable[str] = (),
    now: float | None = None,
    max_age_seconds: float | None = None,
    max_skew_seconds: float = 60.0,
) -> SignatureParams:
    """Check one signature of ``request``; return its parameters, or raise :class:`SignatureError`.

    The signature is the one named ``label``, or the only one present. Its
    ``keyid`` picks the key from ``keys``; an ``alg`` given must be that
    key's. Every name in ``required_components`` must be covered. With
    ``now``, a ``created`` more than ``max_skew_seconds`` ahead or more than
    ``max_age_seconds`` behind is refused, as is an ``expires`` in the past.
    """
    inputs = parse_dictionary(signature_input)
    signatures = parse_dictionary(signature)
    if label is None:
        if len(inputs) != 1:
            raise SignatureError(f"{len(inputs)} signatures in Signature-Input; name the label to check")
        label = next(iter(inputs))
    if label not in inputs or label not in signatures:
        raise SignatureError(f"no signature labelled {label!r}")
    params = SignatureParams.from_member(inputs[label])
    value, _ = signatures[label]
    if not isinstance(value, bytes):
        raise SignatureError(f"Signature {label} is not a byte sequence")
    missing = [name for name in required_components if name not in params.components]
    if missing:
        raise SignatureError(f"signature {label} does not cover {', '.join(missing)}")
    if params.keyid is None:
        raise SignatureError(f"signature {label} names no keyid")
    key = keys.get(params.keyid)
    if key is None:
        raise SignatureError(f"unknown keyid {params.keyid!r}")
    if params.alg is not None and params.alg != key.alg:
        raise SignatureError(f"alg {params.alg!r} does not match the key's {key.alg!r}")
    if now is not None:
        if params.created is not None and params.created > now + max_skew_seconds:
            raise SignatureError("signature created in the future (check both clocks)")
        if max_age_seconds is not None:
            if params.created is None:
                raise SignatureError("signature has no created time")
            if params.created < now - max_age_seconds:
                raise SignatureError(f"signature older than {max_age_seconds:g} s")
        if params.expires is not None and params.expires < now:
            raise SignatureError("signature expired")
    if not key.verify(signature_base(request, params), value):
        raise SignatureError(f"signature {label} does not match (wrong key, or the request was altered)")
    return params
