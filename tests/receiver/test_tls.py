"""TLS building blocks: settings, the server context, peer allowlists, reload, ``receiverctl tls``.

Handshakes are real: a Twisted reactor of the tests' own (not the global
one) runs in a thread and listens on 127.0.0.1, and Python's ``ssl`` module
is the client, as a sender's TLS library would be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import re
import socket
import ssl
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.internet.pollreactor import PollReactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.threads import blockingCallFromThread
from twisted.python.failure import Failure
from zope.interface import implementer

from receiver.cli.ctl import main as receiverctl
from receiver.cli.tls import SelfSigned, SelfSignedError, write_selfsigned
from receiver.config.model import TlsConfig, TlsConfigError
from receiver.ingest.tls import (
    TlsServerContext,
    arm_handshake_timeout,
    certificate_fingerprint,
    peer_refusal,
    tls_server_factory,
)

TIMEOUT_SECONDS = 5.0


# -- certificates ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pair:
    """A certificate file and its key file."""

    certificate_file: Path
    key_file: Path

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_file.read_bytes())

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pair(directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    directory.mkdir(parents=True, exist_ok=True)
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pair.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pair.key_file.chmod(0o600)
    return pair


def make_ca(directory: Path, common_name: str) -> tuple[Pair, ec.EllipticCurvePrivateKey]:
    """A CA certificate and key (files), and the key to issue with."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write_pair(directory, common_name, certificate, key), key


def issue(ca: Pair, ca_key: ec.EllipticCurvePrivateKey, directory: Path, common_name: str, *dns: str) -> Pair:
    """A client certificate for ``common_name`` (and DNS SANs ``dns``) signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
    return _write_pair(directory, common_name, builder.sign(ca_key, hashes.SHA256()), key)


@dataclasses.dataclass(frozen=True)
class Pki:
    server: SelfSigned
    other_server: SelfSigned
    ca: Pair
    web_1: Pair
    """Issued by ``ca``; CN web-1, SAN web-1.example.com."""
    db_1: Pair
    """Issued by ``ca``; CN db-1.example.com."""
    stranger: Pair
    """Issued by another CA; CN web-1.example.com."""
    pinned: SelfSigned
    """A sender's self-signed certificate, for fingerprint pinning."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, ca_key = make_ca(base / "ca", "clients-ca")
    other_ca, other_key = make_ca(base / "other-ca", "other-ca")
    return Pki(
        server=write_selfsigned(base / "server", name="localhost"),
        other_server=write_selfsigned(base / "server-2", name="localhost"),
        ca=ca,
        web_1=issue(ca, ca_key, base / "clients", "web-1", "web-1.example.com"),
        db_1=issue(ca, ca_key, base / "clients", "db-1.example.com"),
        stranger=issue(other_ca, other_key, base / "strangers", "web-1.example.com"),
        pinned=write_selfsigned(base / "pinned", name="sender-7", sans=["sender-7.example.com"]),
    )


def server_settings(pki: Pki, **changes: Any) -> TlsConfig:
    return TlsConfig(pki.server.certificate_file, pki.server.key_file, **changes)


# -- a real listener ------------------------------------------------------------


@pytest.fixture(scope="module")
def reactor() -> Iterator[PollReactor]:
    """A reactor of the tests' own, running in a thread until the module's tests end.

    poll, not select: earlier tests in the same process leave descriptors open (chDB keeps a few
    per thread it ran), and select() refuses any numbered 1024 or more.
    """
    own = PollReactor()
    thread = threading.Thread(target=own.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    yield own
    own.callFromThread(own.stop)
    thread.join(TIMEOUT_SECONDS)


@implementer(IHandshakeListener)
class CheckingReceiver(Protocol):
    """What a listener's protocol does with TLS: a handshake deadline, then the allowlist, then data."""

    factory: CheckingFactory

    def __init__(self, factory: CheckingFactory) -> None:
        self.factory = factory
        self.deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        settings = self.factory.context.settings
        self.deadline = arm_handshake_timeout(
            self.factory.reactor, settings.handshake_timeout_seconds, self.transport.abortConnection  # type: ignore[union-attr]
        )

    def handshakeCompleted(self) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        refusal = self.factory.context.peer_refusal(self.transport)
        if refusal is not None:
            self.factory.refusals.append(refusal)
            self.transport.abortConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"ok:" + data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()


class CheckingFactory(Factory):
    def __init__(self, context: TlsServerContext, reactor: PollReactor) -> None:
        self.context = context
        self.reactor = reactor
        self.refusals: list[str] = []

    def buildProtocol(self, addr: object) -> CheckingReceiver:  # type: ignore[override]
        return CheckingReceiver(self)


@pytest.fixture
def listen(reactor: PollReactor) -> Iterator[Any]:
    """``listen(context)``: a TLS listener on 127.0.0.1; returns its port and its factory."""
    ports: list[Any] = []

    def start(context: TlsServerContext) -> tuple[int, CheckingFactory]:
        factory = CheckingFactory(context, reactor)
        port = blockingCallFromThread(
            reactor, reactor.listenTCP, 0, tls_server_factory(context, factory, reactor), interface="127.0.0.1"
        )
        ports.append(port)
        return port.getHost().port, factory

    yield start
    for port in ports:
        blockingCallFromThread(reactor, port.stopListening)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one client connection went."""

    reply: bytes | None
    """What the server answered to ``hello`` (None: the connection failed)."""
    error: str = ""
    server_fingerprint: str = ""
    version: str = ""

    @property
    def accepted(self) -> bool:
        return self.reply == b"ok:hello"


def client_context(
    *,
    certificate: Pair | SelfSigned | None = None,
    version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A sender's TLS client; it trusts any server (the tests look at the fingerprint instead)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
            context.minimum_version = version if version != ssl.TLSVersion.TLSv1_1 else ssl.TLSVersion.TLSv1
            context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer it; the server must say no
    if certificate is not None:
        context.load_cert_chain(certificate.certificate_file, certificate.key_file)
    return context


def exchange(port: int, context: ssl.SSLContext) -> Outcome:
    """Connect, send ``hello``, read the answer."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            fingerprint = certificate_fingerprint(x509.load_der_x509_certificate(der)) if der else ""
            tls.sendall(b"hello")
            reply = tls.recv(100)
            return Outcome(reply, server_fingerprint=fingerprint, version=tls.version() or "")
    except (ssl.SSLError, OSError) as e:
        return Outcome(None, error=str(e))


# -- settings -------------------------------------------------------------------


class TestTlsConfig:
    def test_unknown_client_certificates_value(self, pki: Pki) -> None:
        """If client_certificates is not none/optional/required, then TlsConfigError names the setting."""
        with pytest.raises(TlsConfigError, match="client_certificates 'maybe'"):
            server_settings(pki, client_certificates="maybe")

    def test_old_min_version(self, pki: Pki) -> None:
        """If min_version asks for TLS 1.1, then it is refused."""
        with pytest.raises(TlsConfigError, match=re.escape("min_version '1.1'")):
            server_settings(pki, min_version="1.1")

    def test_allowlist_without_client_certificates(self, pki: Pki) -> None:
        """If an allowlist is given but client certificates are not asked for, then the fix is named."""
        with pytest.raises(TlsConfigError, match='client_certificates = "required"'):
            server_settings(pki, allowed_subjects=("web-1",))

    def test_subjects_need_a_ca(self, pki: Pki) -> None:
        """If subjects are allowlisted without ca_file (beside pinned fingerprints or not), then the
        configuration is refused and says why: without a CA anyone can make a certificate with any name."""
        for pins in ((), (pki.pinned.fingerprint,)):
            with pytest.raises(TlsConfigError, match="allowed_subjects needs ca_file") as caught:
                server_settings(pki, client_certificates="required", allowed_subjects=("web-1.example.com",),
                                allowed_fingerprints=pins)
            assert "anyone can make a certificate" in str(caught.value)

    def test_client_certificates_without_ca_or_pins(self, pki: Pki) -> None:
        """If client certificates are required with neither a CA nor pinned fingerprints, then it is refused."""
        with pytest.raises(TlsConfigError, match="needs ca_file"):
            server_settings(pki, client_certificates="required")

    @pytest.mark.parametrize("fingerprint", ["abc", "zz" * 32, "AB:CD"])
    def test_bad_fingerprint(self, pki: Pki, fingerprint: str) -> None:
        """If an allowed fingerprint is not 64 hex digits, then it is refused with the way to get one."""
        with pytest.raises(TlsConfigError, match="receiverctl tls show"):
            server_settings(pki, client_certificates="required", allowed_fingerprints=(fingerprint,))

    @pytest.mark.parametrize("subject", ["*.com", "*", "web-*.example.com", "a..b", ""])
    def test_bad_subject_pattern(self, pki: Pki, subject: str) -> None:
        """If an allowed subject is no name or a wildcard other than one leftmost label, then it is refused."""
        with pytest.raises(TlsConfigError, match="allowed_subjects entry"):
            server_settings(pki, client_certificates="required", ca_file=pki.ca.certificate_file,
                            allowed_subjects=(subject,))

    def test_bad_handshake_timeout(self, pki: Pki) -> None:
        """If the handshake timeout is not positive, then it is refused."""
        with pytest.raises(TlsConfigError, match="handshake_timeout_seconds"):
            server_settings(pki, handshake_timeout_seconds=0)


# -- loading --------------------------------------------------------------------


class TestLoading:
    def test_self_signed_pair_loads(self, pki: Pki) -> None:
        """If the pair comes from `receiverctl tls selfsigned`, then the context loads it without warnings."""
        context = TlsServerContext(server_settings(pki))
        assert context.fingerprint == pki.server.fingerprint
        assert context.warnings == ()

    def test_a_connection_the_listener_refuses_gets_no_handshake(self, pki: Pki) -> None:
        """If the wrapped factory refuses a connection (a connection limit), then the TLS factory refuses it
        too, at accept, instead of wrapping the refusal and starting a handshake."""

        class Refusing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        factory = tls_server_factory(TlsServerContext(server_settings(pki)), Refusing(), Clock())
        assert factory.buildProtocol(None) is None

    def test_context_options(self, pki: Pki) -> None:
        """If a context is built, then it has no compression, the server's cipher order and no renegotiation."""
        options = TlsServerContext(server_settings(pki)).context.set_options(0)  # returns the options set
        for option in (SSL.OP_NO_COMPRESSION, SSL.OP_CIPHER_SERVER_PREFERENCE, SSL.OP_NO_RENEGOTIATION,
                       SSL.OP_NO_SSLv3, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1):
            assert options & option == option

    def test_mismatched_key(self, pki: Pki) -> None:
        """If the key belongs to another certificate, then the error names the key file and the fix."""
        settings = TlsConfig(pki.server.certificate_file, pki.other_server.key_file)
        with pytest.raises(TlsConfigError) as raised:
            TlsServerContext(settings)
        message = str(raised.value)
        assert str(pki.other_server.key_file) in message
        assert "does not belong to the certificate" in message
        assert "receiverctl tls selfsigned" in message

    def test_missing_certificate_file(self, pki: Pki, tmp_path: Path) -> None:
        """If the certificate file is missing, then the error names it and how to make one."""
        missing = tmp_path / "nope.crt"
        with pytest.raises(TlsConfigError, match=rf"certificate file {re.escape(str(missing))} does not exist: .*selfsigned"):
            TlsServerContext(TlsConfig(missing, pki.server.key_file))

    def test_unreadable_key_file(self, pki: Pki, tmp_path: Path) -> None:
        """If the key file is a directory (cannot be read), then the error names it."""
        with pytest.raises(TlsConfigError, match=rf"key file {re.escape(str(tmp_path))} cannot be read"):
            TlsServerContext(TlsConfig(pki.server.certificate_file, tmp_path))

    def test_not_pem(self, pki: Pki, tmp_path: Path) -> None:
        """If the certificate file holds DER, then the error names the file and how to convert it."""
        der = tmp_path / "server.der"
        certificate = x509.load_pem_x509_certificate(pki.server.certificate_file.read_bytes())
        der.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
        with pytest.raises(TlsConfigError, match=rf"{re.escape(str(der))} holds no PEM certificate.*openssl x509 -inform der"):
            TlsServerContext(TlsConfig(der, pki.server.key_file))

    def test_encrypted_key(self, pki: Pki, tmp_path: Path) -> None:
        """If the key is encrypted, then the error says to write an unencrypted copy."""
        key = serialization.load_pem_private_key(pki.server.key_file.read_bytes(), password=None)
        encrypted = tmp_path / "encrypted.key"
        encrypted.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ))
        encrypted.chmod(0o600)
        with pytest.raises(TlsConfigError, match=rf"key file {re.escape(str(encrypted))} is encrypted.*openssl pkey"):
            TlsServerContext(TlsConfig(pki.server.certificate_file, encrypted))

    def test_expired_certificate_is_a_warning(self, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
        """If the certificate has expired, then it still loads, with a logged warning that says to renew."""
        later = _dt.datetime.now(_dt.UTC) + _dt.timedelta(days=3650)
        context = TlsServerContext(server_settings(pki), now=lambda: later)
        assert len(context.warnings) == 1
        assert "expired" in context.warnings[0] and "renew" in context.warnings[0]
        assert context.warnings[0] in caplog.text

    @pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o606])
    def test_key_others_may_read_is_refused(self, pki: Pki, tmp_path: Path, mode: int) -> None:
        """If others can read the key file (or its group change it), then loading refuses it, as every
        secret is refused, with the chmod that fixes it."""
        key = tmp_path / "open.key"
        key.write_bytes(pki.server.key_file.read_bytes())
        key.chmod(mode)
        with pytest.raises(TlsConfigError, match=re.escape(f"(mode {mode:04o})")) as caught:
            TlsServerContext(TlsConfig(pki.server.certificate_file, key))
        assert f"chmod 600 {key}" in str(caught.value)

    def test_key_its_group_may_read_is_loaded(self, pki: Pki, tmp_path: Path) -> None:
        """If only the key's owner and group can read it (root:receiver 0640), then it loads without warning."""
        key = tmp_path / "group.key"
        key.write_bytes(pki.server.key_file.read_bytes())
        key.chmod(0o640)
        assert TlsServerContext(TlsConfig(pki.server.certificate_file, key)).warnings == ()


# -- allowlists (no network) ----------------------------------------------------


class TestPeerRefusal:
    def settings(self, pki: Pki, subjects: tuple[str, ...] = (), fingerprints: tuple[str, ...] = ()) -> TlsConfig:
        return server_settings(pki, client_certificates="required", ca_file=pki.ca.certificate_file,
                               allowed_subjects=subjects, allowed_fingerprints=fingerprints)

    def test_no_allowlist_admits_all(self, pki: Pki) -> None:
        """If no allowlist is set, then every verified peer, with or without a certificate, is admitted."""
        settings = server_settings(pki, client_certificates="optional", ca_file=pki.ca.certificate_file)
        assert peer_refusal(settings, None) is None
        assert peer_refusal(settings, pki.web_1.certificate) is None

    @pytest.mark.parametrize(
        ("pattern", "admitted"),
        [
            ("web-1", True),  # the CN
            ("WEB-1.example.COM", True),  # a SAN, any case
            ("*.example.com", True),
            ("web-2", False),
            ("*.other.com", False),
        ],
    )
    def test_subjects(self, pki: Pki, pattern: str, admitted: bool) -> None:
        """If a subject pattern matches the CN or a DNS SAN, then the peer is admitted, else refused with a reason."""
        refusal = peer_refusal(self.settings(pki, subjects=(pattern,)), pki.web_1.certificate)
        if admitted:
            assert refusal is None
        else:
            assert refusal is not None
            assert "web-1, web-1.example.com" in refusal and pki.web_1.fingerprint in refusal

    def test_wildcard_is_one_label(self, pki: Pki, tmp_path: Path) -> None:
        """If the wildcard is *.example.com, then a.b.example.com and example.com itself are refused."""
        ca, key = make_ca(tmp_path, "ca")
        settings = self.settings(pki, subjects=("*.example.com",))
        for name, admitted in (("a.example.com", True), ("a.b.example.com", False), ("example.com", False)):
            certificate = issue(ca, key, tmp_path, name).certificate
            assert (peer_refusal(settings, certificate) is None) is admitted, name

    @pytest.mark.parametrize("form", [str.upper, str.lower, lambda f: f.replace(":", "").lower()])
    def test_fingerprints(self, pki: Pki, form: Any) -> None:
        """If the fingerprint is given in any case, with or without colons, then that certificate is admitted."""
        settings = self.settings(pki, fingerprints=(form(pki.db_1.fingerprint),))
        assert peer_refusal(settings, pki.db_1.certificate) is None
        assert peer_refusal(settings, pki.web_1.certificate) is not None

    def test_names_in_the_reason_are_escaped(self, pki: Pki, tmp_path: Path) -> None:
        """If a refused certificate's names hold line breaks or escape sequences, then the reason (which is
        logged) shows them escaped: a peer cannot forge log lines or drive the operator's terminal."""
        ca, key = make_ca(tmp_path, "ca")
        forged = issue(ca, key, tmp_path, "evil\n2026-12-06T00:00:00Z INFO all good\x1b[2J\u202ex")
        refusal = peer_refusal(self.settings(pki, subjects=("web-1",)), forged.certificate) or ""
        assert "\n" not in refusal and "\x1b" not in refusal and "\u202e" not in refusal
        assert "evil\\n2026" in refusal and "\\x1b[2J\\u202ex" in refusal

    def test_no_certificate_with_allowlist(self, pki: Pki) -> None:
        """If an allowlist is set and the peer sent no certificate, then it is refused."""
        assert "no client certificate" in (peer_refusal(self.settings(pki, subjects=("web-1",)), None) or "")


# -- handshakes on a real listener ----------------------------------------------


class TestHandshake:
    def test_tls_1_1_refused(self, pki: Pki, listen: Any) -> None:
        """If a client offers at most TLS 1.1, then the server refuses with a protocol-version alert."""
        port, _ = listen(TlsServerContext(server_settings(pki)))
        outcome = exchange(port, client_context(version=ssl.TLSVersion.TLSv1_1))
        assert outcome.reply is None
        assert "alert protocol version" in outcome.error

    @pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
    def test_tls_1_2_and_1_3_accepted(self, pki: Pki, listen: Any, version: ssl.TLSVersion) -> None:
        """If a client speaks TLS 1.2 or 1.3, then it connects and sees the server's certificate."""
        port, _ = listen(TlsServerContext(server_settings(pki)))
        outcome = exchange(port, client_context(version=version))
        assert outcome.accepted, outcome
        assert outcome.version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert outcome.server_fingerprint == pki.server.fingerprint

    def test_min_version_1_3(self, pki: Pki, listen: Any) -> None:
        """If min_version is 1.3, then a TLS 1.2 client is refused and a 1.3 one accepted."""
        port, _ = listen(TlsServerContext(server_settings(pki, min_version="1.3")))
        assert not exchange(port, client_context(version=ssl.TLSVersion.TLSv1_2)).accepted
        assert exchange(port, client_context(version=ssl.TLSVersion.TLSv1_3)).accepted

    def test_client_certificate_required(self, pki: Pki, listen: Any) -> None:
        """If client certificates are required, then only a certificate from the CA gets in."""
        settings = server_settings(pki, client_certificates="required", ca_file=pki.ca.certificate_file)
        port, _ = listen(TlsServerContext(settings))
        assert exchange(port, client_context(certificate=pki.web_1)).accepted
        without = exchange(port, client_context())
        assert without.reply is None and "certificate required" in without.error
        stranger = exchange(port, client_context(certificate=pki.stranger))
        assert stranger.reply is None and "unknown ca" in stranger.error

    def test_client_certificate_optional(self, pki: Pki, listen: Any) -> None:
        """If client certificates are optional, then a client without one gets in, one from another CA not."""
        settings = server_settings(pki, client_certificates="optional", ca_file=pki.ca.certificate_file)
        port, _ = listen(TlsServerContext(settings))
        assert exchange(port, client_context()).accepted
        assert exchange(port, client_context(certificate=pki.web_1)).accepted
        assert not exchange(port, client_context(certificate=pki.stranger)).accepted

    @pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
    def test_subject_allowlist(self, pki: Pki, listen: Any, version: ssl.TLSVersion) -> None:
        """If subjects are allowlisted, then an allowed certificate gets in and another of the same CA is cut off."""
        settings = server_settings(pki, client_certificates="required", ca_file=pki.ca.certificate_file,
                                   allowed_subjects=("*.example.com",))
        port, factory = listen(TlsServerContext(settings))
        assert exchange(port, client_context(certificate=pki.web_1, version=version)).accepted
        # CN db-1.example.com matches too; pick a pattern that excludes it to see a refusal.
        settings = dataclasses.replace(settings, allowed_subjects=("web-1.example.com",))
        port, factory = listen(TlsServerContext(settings))
        assert exchange(port, client_context(certificate=pki.web_1, version=version)).accepted
        refused = exchange(port, client_context(certificate=pki.db_1, version=version))
        assert not refused.accepted
        assert refused.reply in (None, b"")  # cut off before any answer
        assert len(factory.refusals) == 1 and "db-1.example.com" in factory.refusals[0]

    def test_fingerprint_allowlist_without_ca(self, pki: Pki, listen: Any) -> None:
        """If a self-signed client certificate is pinned, then it gets in, and any other certificate does not."""
        settings = server_settings(pki, client_certificates="required", allowed_fingerprints=(pki.pinned.fingerprint,))
        port, factory = listen(TlsServerContext(settings))
        assert exchange(port, client_context(certificate=pki.pinned)).accepted
        assert not exchange(port, client_context(certificate=pki.other_server)).accepted
        assert not exchange(port, client_context(certificate=pki.web_1)).accepted
        assert len(factory.refusals) == 2

    def test_a_forged_name_never_gets_in_without_a_ca(self, pki: Pki, listen: Any) -> None:
        """If a listener without ca_file somehow had allowed_subjects (the configuration refuses it), then a
        certificate made by anyone with an allowed name is still refused: without a verified chain only
        pinned fingerprints are trusted."""
        settings = server_settings(pki, client_certificates="required", allowed_fingerprints=(pki.pinned.fingerprint,))
        object.__setattr__(settings, "allowed_subjects", ("web-1.example.com",))  # past the check, on purpose
        port, factory = listen(TlsServerContext(settings))
        forged = exchange(port, client_context(certificate=pki.stranger))  # CN web-1.example.com, another CA
        assert not forged.accepted
        assert len(factory.refusals) == 1 and "web-1.example.com" in factory.refusals[0]
        assert exchange(port, client_context(certificate=pki.pinned)).accepted

    def test_handshake_timeout(self, pki: Pki, listen: Any) -> None:
        """If a client connects and never starts the handshake, then the server closes it after the timeout."""
        port, _ = listen(TlsServerContext(server_settings(pki, handshake_timeout_seconds=0.2)))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as raw:
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError):  # aborted: closed too
                assert raw.recv(100) == b""
            assert time.monotonic() - started < 2


class TestReload:
    def test_reload_swaps_certificate(self, pki: Pki, listen: Any, tmp_path: Path) -> None:
        """If the files change and reload() is called, then new connections see the new certificate and open ones go on."""
        directory = tmp_path / "tls"
        first = write_selfsigned(directory, name="localhost")
        context = TlsServerContext(TlsConfig(first.certificate_file, first.key_file))
        port, _ = listen(context)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as raw,
            client_context().wrap_socket(raw, server_hostname="localhost") as open_connection,
        ):
            open_connection.sendall(b"hello")
            assert open_connection.recv(100) == b"ok:hello"
            second = write_selfsigned(directory, name="localhost", force=True)
            assert context.reload() == ()
            assert context.fingerprint == second.fingerprint != first.fingerprint
            assert exchange(port, client_context()).server_fingerprint == second.fingerprint
            open_connection.sendall(b"again")
            assert open_connection.recv(100) == b"ok:again"

    def test_bad_reload_keeps_old(self, pki: Pki, listen: Any, tmp_path: Path) -> None:
        """If reload() finds a key that does not match, then it raises naming the file and the old certificate stays."""
        directory = tmp_path / "tls"
        first = write_selfsigned(directory, name="localhost")
        context = TlsServerContext(TlsConfig(first.certificate_file, first.key_file))
        port, _ = listen(context)
        first.key_file.write_bytes(pki.other_server.key_file.read_bytes())  # a half-done renewal
        with pytest.raises(TlsConfigError, match=re.escape(str(first.key_file))):
            context.reload()
        assert context.fingerprint == first.fingerprint
        assert exchange(port, client_context()).server_fingerprint == first.fingerprint

    def test_reload_with_new_settings(self, pki: Pki, listen: Any) -> None:
        """If reload() is given new settings, then new connections get their client-certificate rules."""
        context = TlsServerContext(server_settings(pki))
        port, _ = listen(context)
        assert exchange(port, client_context()).accepted
        context.reload(server_settings(pki, client_certificates="required", ca_file=pki.ca.certificate_file))
        assert not exchange(port, client_context()).accepted
        assert exchange(port, client_context(certificate=pki.web_1)).accepted


def test_arm_handshake_timeout() -> None:
    """If the deadline passes before it is cancelled, then abort is called, and not when it is cancelled."""
    clock = Clock()
    aborted: list[str] = []
    arm_handshake_timeout(clock, 10, lambda: aborted.append("late"))
    arm_handshake_timeout(clock, 10, lambda: aborted.append("cancelled")).cancel()
    clock.advance(9.9)
    assert aborted == []
    clock.advance(0.2)
    assert aborted == ["late"]


# -- receiverctl tls ------------------------------------------------------------


class TestSelfSignedCommand:
    def test_files_and_modes(self, tmp_path: Path) -> None:
        """If selfsigned writes a pair, then the key is 0600, the certificate 0644, and the SANs are the defaults."""
        made = write_selfsigned(tmp_path / "tls", name="receiver-1")
        assert stat.S_IMODE(made.key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(made.certificate_file.stat().st_mode) == 0o644
        certificate = x509.load_pem_x509_certificate(made.certificate_file.read_bytes())
        assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"receiver-1", socket.gethostname(), "localhost"} <= set(san.get_values_for_type(x509.DNSName))
        assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
        assert made.fingerprint == certificate_fingerprint(certificate)
        assert sorted(p.name for p in tmp_path.joinpath("tls").iterdir()) == ["receiver.crt", "receiver.key"]

    def test_given_sans(self, tmp_path: Path) -> None:
        """If --san names are given, then they replace the defaults (the CN stays among them)."""
        made = write_selfsigned(tmp_path, name="logs", sans=["logs.example.com", "10.0.0.5"])
        assert made.names == ("logs", "logs.example.com", "10.0.0.5")

    def test_refuses_to_overwrite(self, tmp_path: Path) -> None:
        """If the files exist, then selfsigned refuses without force and replaces them with it."""
        first = write_selfsigned(tmp_path)
        with pytest.raises(SelfSignedError, match="--force"):
            write_selfsigned(tmp_path)
        assert certificate_fingerprint(Pair(first.certificate_file, first.key_file).certificate) == first.fingerprint
        second = write_selfsigned(tmp_path, force=True)
        assert second.fingerprint != first.fingerprint
        assert stat.S_IMODE(second.key_file.stat().st_mode) == 0o600

    def test_umask_does_not_matter(self, tmp_path: Path) -> None:
        """If the umask is permissive, then the key is still written 0600."""
        old = os.umask(0)
        try:
            made = write_selfsigned(tmp_path)
        finally:
            os.umask(old)
        assert stat.S_IMODE(made.key_file.stat().st_mode) == 0o600

    def test_command_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If `receiverctl tls selfsigned` runs twice, then it prints paths, fingerprint and TOML, then refuses."""
        out = tmp_path / "tls"
        assert receiverctl(["tls", "selfsigned", "--out", str(out), "--name", "logs", "--san", "logs.example.com"]) == 0
        printed = capsys.readouterr().out
        fingerprint = certificate_fingerprint(Pair(out / "receiver.crt", out / "receiver.key").certificate)
        assert f"SHA-256      {fingerprint}" in printed
        assert f'tls.certificate_file = "{out.resolve() / "receiver.crt"}"' in printed
        assert f'tls.key_file = "{out.resolve() / "receiver.key"}"' in printed
        assert receiverctl(["tls", "selfsigned", "--out", str(out)]) == 2
        assert "exists: give --force" in capsys.readouterr().err

    def test_show(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If `receiverctl tls show` reads a certificate, then it prints its subject, names, validity and fingerprint."""
        made = write_selfsigned(tmp_path, name="logs", sans=["logs.example.com", "::1"])
        assert receiverctl(["tls", "show", str(made.certificate_file)]) == 0
        printed = capsys.readouterr().out
        assert "subject      CN=logs" in printed
        assert "names (SAN)  logs, logs.example.com, ::1" in printed
        assert "(self-signed)" in printed and "days left" in printed
        assert made.fingerprint in printed

    def test_show_not_a_certificate(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If `receiverctl tls show` is given a key, then it says the file holds no certificate."""
        made = write_selfsigned(tmp_path)
        assert receiverctl(["tls", "show", str(made.key_file)]) == 2
        assert "holds no PEM certificate" in capsys.readouterr().err
