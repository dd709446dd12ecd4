"""TLS for stream listeners: settings, the server's OpenSSL context, peer allowlists.

``TlsServerContext`` reads a certificate and its key (and, for client
certificates, a CA file), checks them with messages that name the file and
the fix, and builds one OpenSSL context: TLS 1.2 or newer, forward-secret
AEAD ciphers in the server's order, no compression, no renegotiation. It is
what Twisted's ``TLSMemoryBIOFactory`` (or ``listenSSL``) takes as its
context factory; each new connection gets the context current at accept, so
``reload()`` changes the certificate for new connections while open ones
keep theirs, and a reload from bad files raises and changes nothing.

What the handshake cannot decide, which verified peer is admitted, is
``peer_refusal``: the listener's protocol calls it when the handshake
completes (``IHandshakeListener.handshakeCompleted``) and aborts the
connection, before any frame is read, when it returns a reason.

An expired (or not yet valid) certificate is loaded with a warning, not
refused: the appliance keeps receiving from senders that do not check it,
instead of stopping all ingest over a date, and the warning says to renew.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
)
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from formats.text import escape_unprintable
from receiver.config.model import TlsConfig, TlsConfigError, normal_fingerprint

__all__ = [
    "TlsServerContext",
    "arm_handshake_timeout",
    "certificate_fingerprint",
    "certificate_names",
    "peer_refusal",
    "tls_server_factory",
]

log = logging.getLogger(__name__)

_MIN_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}

# TLS 1.2 suites: ephemeral ECDH (forward secrecy) with an AEAD cipher only,
# ECDSA or RSA certificates. TLS 1.3 suites are all AEAD and stay OpenSSL's.
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!SHA1:!SHA256:!SHA384"
_EXPIRY_WARNING_DAYS = 14
_MAX_NAMES_SHOWN = 5  # a refused peer's certificate may list hundreds of names: the log line stays short
_MAX_NAME_SHOWN = 100
_SELFSIGNED_HINT = "or make a self-signed pair with `receiverctl tls selfsigned --out DIR`"


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, as ``AB:CD:...`` (the form ``openssl x509 -fingerprint`` prints)."""
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def certificate_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The names a subject allowlist matches: the subject's CNs, then the SAN's DNS names."""
    names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        names.extend(san.get_values_for_type(x509.DNSName))
    return tuple(names)


def peer_refusal(settings: TlsConfig, certificate: x509.Certificate | None) -> str | None:
    """Why the peer with ``certificate`` is refused by the allowlists, or None when it is admitted.

    With ``ca_file`` the handshake has already verified the certificate's
    chain; this only decides which of the verified peers may send. Names
    (``allowed_subjects``) are trusted only then: without a CA any
    certificate passes the handshake, and only its fingerprint can be
    trusted (the configuration refuses subjects without a CA; this checks
    again). The reason quotes the certificate's names escaped, as they are
    the peer's text.
    """
    if not settings.allowed_subjects and not settings.allowed_fingerprints:
        return None
    if certificate is None:
        return "the peer sent no client certificate, and only allowlisted certificates are admitted"
    fingerprint = certificate_fingerprint(certificate)
    if normal_fingerprint(fingerprint) in {normal_fingerprint(f) for f in settings.allowed_fingerprints}:
        return None
    names = certificate_names(certificate)
    if settings.ca_file is not None:
        for pattern in settings.allowed_subjects:
            if any(_subject_matches(pattern, name) for name in names):
                return None
    shown = ", ".join(escape_unprintable(name[:_MAX_NAME_SHOWN]) for name in names[:_MAX_NAMES_SHOWN])
    if len(names) > _MAX_NAMES_SHOWN:
        shown += f" and {len(names) - _MAX_NAMES_SHOWN} more"
    return (
        f"client certificate ({shown or 'no CN or DNS name'}; SHA-256 {fingerprint}) matches no entry of "
        "allowed_subjects or allowed_fingerprints"
    )


def arm_handshake_timeout(clock: IReactorTime, seconds: float, abort: Callable[[], object]) -> IDelayedCall:
    """Call ``abort`` (the transport's ``abortConnection``) unless cancelled within ``seconds``.

    Started in ``connectionMade``, cancelled in ``handshakeCompleted``: a peer
    that opens a connection and never finishes the handshake holds a socket
    and memory, and no data of it can be lost by closing it.
    """
    return clock.callLater(seconds, abort)


class _TlsServerFactory(TLSMemoryBIOFactory):
    """Twisted's TLS wrapper, except that a connection the wrapped factory refuses is closed at accept.

    Twisted's would wrap the refusal (``None``) and go on to the handshake.
    """

    def buildProtocol(self, addr: IAddress | None) -> TLSMemoryBIOProtocol | None:  # type: ignore[override]
        protocol = self.wrappedFactory.buildProtocol(addr)
        return None if protocol is None else self.protocol(self, protocol)


def tls_server_factory(context: TlsServerContext, wrapped: Factory, clock: IReactorTime) -> TLSMemoryBIOFactory:
    """``wrapped``'s connections over TLS: what ``listenTCP`` (or a TCP server endpoint) takes."""
    return _TlsServerFactory(context, False, wrapped, clock=clock)


@dataclasses.dataclass(frozen=True)
class _Loaded:
    """One generation of TLS material: what a reload replaces as a whole."""

    settings: TlsConfig
    context: SSL.Context
    certificate: x509.Certificate
    fingerprint: str
    warnings: tuple[str, ...]


@implementer(IOpenSSLServerConnectionCreator)
class TlsServerContext:
    """The server side of a TLS listener: an OpenSSL context made from ``TlsConfig``, reloadable.

    Raises ``TlsConfigError`` when the files cannot be used (a key file
    others may read included). ``warnings`` holds what is usable but needs
    the operator (an expired certificate); each is also logged at WARNING.
    """

    def __init__(
        self, settings: TlsConfig, *, now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC)
    ) -> None:
        self._now = now
        self._loaded = self._load(settings)

    @property
    def settings(self) -> TlsConfig:
        return self._loaded.settings

    @property
    def context(self) -> SSL.Context:
        """The context new connections get (open ones keep the one they started with)."""
        return self._loaded.context

    @property
    def certificate(self) -> x509.Certificate:
        """The server's certificate (the first of the certificate file)."""
        return self._loaded.certificate

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the server's certificate, ``AB:CD:...``: what senders pin."""
        return self._loaded.fingerprint

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._loaded.warnings

    def reload(self, settings: TlsConfig | None = None) -> tuple[str, ...]:
        """Read the files again (of ``settings``, if given) and use them for new connections.

        Returns the new warnings. Raises ``TlsConfigError`` and keeps the
        current context when the new files cannot be used.
        """
        loaded = self._load(settings if settings is not None else self._loaded.settings)
        self._loaded = loaded
        log.info(
            "TLS certificate reloaded from %s (SHA-256 %s); new connections use it",
            loaded.settings.certificate_file, loaded.fingerprint,
        )
        return loaded.warnings

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """A connection on the current context (``IOpenSSLServerConnectionCreator``)."""
        return SSL.Connection(self._loaded.context, None)

    def peer_refusal(self, transport: object) -> str | None:
        """``peer_refusal`` for a connection's TLS transport (its ``getPeerCertificate()``)."""
        get_peer_certificate = getattr(transport, "getPeerCertificate", None)
        if get_peer_certificate is None:
            return "the connection is not a TLS connection"
        peer = get_peer_certificate()
        return peer_refusal(self._loaded.settings, peer.to_cryptography() if peer is not None else None)

    def _load(self, settings: TlsConfig) -> _Loaded:
        chain = _read_certificates(settings.certificate_file, "certificate file")
        key = _read_private_key(settings.key_file)
        certificate = chain[0]
        if _public_der(certificate.public_key()) != _public_der(key.public_key()):
            raise TlsConfigError(
                f"key file {settings.key_file} does not belong to the certificate in {settings.certificate_file} "
                f"(their public keys differ): give the key made with that certificate, {_SELFSIGNED_HINT}"
            )
        authorities = _read_certificates(settings.ca_file, "CA file") if settings.ca_file is not None else []
        try:
            context = _build_context(settings, chain, key, authorities)
        except SSL.Error as e:
            raise TlsConfigError(
                f"OpenSSL refused the certificate {settings.certificate_file} or key {settings.key_file}: {e}; "
                f"check that they are a PEM certificate and its key, {_SELFSIGNED_HINT}"
            ) from e
        warnings = tuple(_certificate_warnings(settings.certificate_file, certificate, self._now()))
        for warning in warnings:
            log.warning("%s", warning)
        return _Loaded(settings, context, certificate, certificate_fingerprint(certificate), warnings)


def _build_context(
    settings: TlsConfig,
    chain: list[x509.Certificate],
    key: PrivateKeyTypes,
    authorities: list[x509.Certificate],
) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(_MIN_VERSIONS[settings.min_version])
    options = (
        SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1
        | SSL.OP_NO_COMPRESSION  # CRIME
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_SINGLE_ECDH_USE
    )
    # Renegotiation is a DoS lever and never needed by syslog senders.
    options |= getattr(SSL, "OP_NO_RENEGOTIATION", 0)
    context.set_options(options)
    context.set_cipher_list(_TLS12_CIPHERS)
    context.use_certificate(chain[0])
    for intermediate in chain[1:]:
        context.add_extra_chain_cert(intermediate)
    context.use_privatekey(key)  # type: ignore[arg-type]  # any key type a certificate can hold
    context.check_privatekey()
    # Resumed sessions must belong to this listener's verification settings;
    # OpenSSL refuses resumption with client verification without an id.
    context.set_session_id(hashlib.sha256(repr(settings).encode()).digest()[:32])
    if settings.client_certificates == "none":
        context.set_verify(SSL.VERIFY_NONE)
        return context
    mode = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
    if settings.client_certificates == "required":
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    if settings.ca_file is not None:
        context.load_verify_locations(os.fsencode(settings.ca_file))
        for authority in authorities:
            context.add_client_ca(authority)
        context.set_verify(mode)
    else:
        # No CA: client certificates are pinned by fingerprint after the
        # handshake (peer_refusal), so any certificate may be presented.
        context.set_verify(mode, _accept_any_certificate)
    return context


def _accept_any_certificate(connection: SSL.Connection, certificate: object, error: int, depth: int, ok: int) -> bool:
    return True


def _read_bytes(path: Path, what: str, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"{what} {path} does not exist: {hint}") from None
    except PermissionError:
        raise TlsConfigError(
            f"{what} {path} cannot be read (permission denied): make it readable by the user the receiver "
            f"runs as (chgrp that user's group {path}; chmod g+r {path})"
        ) from None
    except OSError as e:
        raise TlsConfigError(f"{what} {path} cannot be read ({e.strerror}): {hint}") from None


def _read_certificates(path: Path, what: str) -> list[x509.Certificate]:
    hint = (
        f"give the path of a PEM certificate, {_SELFSIGNED_HINT}" if what == "certificate file"
        else "give the path of the PEM certificate(s) of the CA that issues client certificates"
    )
    data = _read_bytes(path, what, hint)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        der_hint = f"; if it is DER, convert it: openssl x509 -inform der -in {path} -out {path}.pem"
        raise TlsConfigError(
            f"{what} {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {hint}{der_hint}"
        ) from None
    return certificates


def _read_private_key(path: Path) -> PrivateKeyTypes:
    data = _read_bytes(path, "key file", f"give the path of the certificate's PEM private key, {_SELFSIGNED_HINT}")
    _check_key_file_mode(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsConfigError(
            f"key file {path} is encrypted, and the receiver cannot ask for its passphrase: write an unencrypted "
            f"copy (openssl pkey -in {path} -out {path}.plain; chmod 600 {path}.plain) and give that"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TlsConfigError(
            f"key file {path} holds no usable PEM private key (-----BEGIN PRIVATE KEY-----: {e}): give the "
            f"certificate's key, {_SELFSIGNED_HINT}"
        ) from None


def _certificate_warnings(path: Path, certificate: x509.Certificate, now: _dt.datetime) -> list[str]:
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    renew = "renew it (or `receiverctl tls selfsigned --force`) and reload the receiver"
    if now > not_after:
        return [
            f"certificate {path} expired on {not_after:%Y-%m-%d %H:%M} UTC: senders that check it refuse to "
            f"connect; {renew}"
        ]
    if now < not_before:
        return [
            f"certificate {path} is not valid before {not_before:%Y-%m-%d %H:%M} UTC (is the clock right?): "
            "senders that check it refuse to connect until then"
        ]
    days_left = (not_after - now).days
    if days_left < _EXPIRY_WARNING_DAYS:
        return [f"certificate {path} expires in {days_left} days ({not_after:%Y-%m-%d} UTC): {renew}"]
    return []


def _check_key_file_mode(path: Path) -> None:
    """Refuse a key file that others may read, or that its group may change, as every secret is refused.

    Group read stays allowed: the usual way to give the receiver a key that
    root manages is ``root:<receiver's group>`` with mode 0640.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # read just now; a race with a rename is not this check's to judge
    if mode & (stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP):
        raise TlsConfigError(
            f"key file {path} can be read or changed by other users (mode {stat.S_IMODE(mode):04o}), so the "
            f"key is as good as published: chmod 600 {path} (or 640 with the receiver's group), and if others "
            "could read it, make a new key and certificate"
        )


def _public_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _subject_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower(), name.lower().rstrip(".")
    if pattern.startswith("*."):
        first, _, rest = name.partition(".")
        return bool(first) and first != "*" and rest == pattern[2:]
    return name == pattern
