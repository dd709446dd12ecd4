"""``receiverctl tls selfsigned`` and ``receiverctl tls show``: TLS material for listeners.

    receiverctl tls selfsigned [--out DIR] [--name CN] [--days N] [--san NAME ...] [--force]
    receiverctl tls show FILE

``selfsigned`` makes an EC P-256 key (mode 0600) and a self-signed
certificate for it, for a first TLS listener or a test bed; senders then pin
the printed SHA-256 fingerprint, or trust the certificate file itself. The
certificate serves as a server's and as a sender's client certificate.
Files are replaced whole (written aside, then renamed), so a receiver that
reloads never reads half a file. ``show`` prints what a certificate file
holds: subject, names, issuer, validity and fingerprint.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import ipaddress
import os
import secrets
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from receiver.cli.usage import UsageError
from receiver.ingest.tls import certificate_fingerprint

__all__ = ["SelfSigned", "add_commands", "describe_certificates", "write_selfsigned"]

CERTIFICATE_NAME = "receiver.crt"
KEY_NAME = "receiver.key"
DEFAULT_DAYS = 825
_CLOCK_SKEW = _dt.timedelta(minutes=5)
"""The certificate is valid from a little before now: senders whose clocks lag still accept it."""


@dataclasses.dataclass(frozen=True)
class SelfSigned:
    """What ``write_selfsigned`` wrote."""

    certificate_file: Path
    key_file: Path
    fingerprint: str
    names: tuple[str, ...]
    not_after: _dt.datetime


class SelfSignedError(Exception):
    """The files cannot be written; the message says why and what to do."""


def default_names() -> list[str]:
    """This machine's host name (and FQDN when it differs), then the loopback names."""
    names = [socket.gethostname()]
    fqdn = socket.getfqdn()
    if fqdn and fqdn not in names and "." in fqdn:
        names.append(fqdn)
    return [*names, "localhost", "127.0.0.1", "::1"]


def write_selfsigned(
    out: Path,
    *,
    name: str | None = None,
    days: int = DEFAULT_DAYS,
    sans: Sequence[str] = (),
    force: bool = False,
    now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> SelfSigned:
    """Write ``receiver.key`` (0600) and ``receiver.crt`` (0644) into ``out``.

    The certificate's CN is ``name`` (default the host name); its SANs are
    ``name`` and ``sans`` (default ``default_names()``), DNS names or IP
    addresses. Raises ``SelfSignedError`` when a file exists and not
    ``force``, or when ``out`` cannot be written.
    """
    if days < 1:
        raise SelfSignedError(f"--days {days}: give a number of days of at least 1")
    common_name = name or socket.gethostname()
    names = list(dict.fromkeys([common_name, *(sans or default_names())]))
    certificate_file, key_file = out / CERTIFICATE_NAME, out / KEY_NAME
    if not force:
        for path in (key_file, certificate_file):
            if path.exists():
                raise SelfSignedError(
                    f"{path} exists: give --force to replace it (senders that pinned the old certificate's "
                    "fingerprint must then be given the new one), or --out another directory"
                )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SelfSignedError(f"cannot make directory {out}: {e.strerror}") from e
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _self_signed_certificate(key, common_name, names, days, now())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _replace_file(key_file, key_pem, 0o600)
    _replace_file(certificate_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return SelfSigned(
        certificate_file, key_file, certificate_fingerprint(certificate), tuple(names),
        certificate.not_valid_after_utc,
    )


def describe_certificates(path: Path) -> str:
    """What ``receiverctl tls show`` prints for the PEM certificates in ``path``."""
    certificates = x509.load_pem_x509_certificates(path.read_bytes())
    now = _dt.datetime.now(_dt.UTC)
    blocks = []
    for i, certificate in enumerate(certificates):
        lines = [f"{path}" + (f" (certificate {i + 1} of {len(certificates)})" if len(certificates) > 1 else "")]
        subject, issuer = certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string()
        lines.append(f"  subject      {subject or '(empty)'}")
        lines.append(f"  names (SAN)  {', '.join(_san_names(certificate)) or '(none)'}")
        lines.append(f"  issuer       {issuer or '(empty)'}" + ("  (self-signed)" if issuer == subject else ""))
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        if now > not_after:
            state = "EXPIRED"
        elif now < not_before:
            state = "not yet valid"
        else:
            state = f"valid, {(not_after - now).days} days left"
        lines.append(f"  valid        {not_before:%Y-%m-%d %H:%M} to {not_after:%Y-%m-%d %H:%M} UTC ({state})")
        lines.append(f"  key          {_key_description(certificate)}")
        lines.append(f"  SHA-256      {certificate_fingerprint(certificate)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def add_commands(commands: Any) -> None:
    """Add ``tls selfsigned`` and ``tls show`` to ``receiverctl``'s subparsers."""
    t = commands.add_parser("tls", help="TLS certificates for listeners (no daemon needed)")
    tc = t.add_subparsers(title="tls commands", required=True, metavar="COMMAND")
    c = tc.add_parser(
        "selfsigned",
        help="make a key and a self-signed certificate for a TLS listener",
        description=(
            f"Write {KEY_NAME} (EC P-256, mode 0600) and {CERTIFICATE_NAME} (self-signed, PEM) into DIR, "
            "then print their paths, the certificate's SHA-256 fingerprint (for senders to pin) and the "
            "lines to paste into the TLS listener's table of receiver.toml."
        ),
    )
    c.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="where to write them (default .)")
    c.add_argument("--name", metavar="CN", help="the certificate's common name (default this host's name)")
    c.add_argument("--days", type=int, default=DEFAULT_DAYS, metavar="N", help=f"valid for N days ({DEFAULT_DAYS})")
    c.add_argument(
        "--san", action="append", default=[], metavar="NAME",
        help="a DNS name or IP address senders connect to (repeat; default: host name, localhost, 127.0.0.1, ::1)",
    )
    c.add_argument("--force", action="store_true", help="replace existing files")
    c.set_defaults(run=_selfsigned)

    s = tc.add_parser("show", help="what a certificate file holds", description="Subject, names, issuer, validity, fingerprint.")
    s.add_argument("file", type=Path, metavar="FILE", help="a PEM certificate file")
    s.set_defaults(run=_show)


def _selfsigned(args: argparse.Namespace) -> int:
    try:
        made = write_selfsigned(args.out, name=args.name, days=args.days, sans=args.san, force=args.force)
    except SelfSignedError as e:
        raise UsageError(str(e)) from e
    certificate_file, key_file = made.certificate_file.resolve(), made.key_file.resolve()
    print(f"key          {key_file} (mode 0600)")
    print(f"certificate  {certificate_file}")
    print(f"names        {', '.join(made.names)}")
    print(f"valid until  {made.not_after:%Y-%m-%d} UTC")
    print(f"SHA-256      {made.fingerprint}")
    print()
    print("# In the [[listeners]] table of the TLS listener (receiver.toml):")
    print(f"tls.certificate_file = {_toml_string(str(certificate_file))}")
    print(f"tls.key_file = {_toml_string(str(key_file))}")
    print()
    print(f"# Senders trust {certificate_file} (copy it to them) or pin the SHA-256 fingerprint above.")
    if os.geteuid() == 0:
        # Written by root with mode 0600: the service (User=syslog-receiver) could not read it.
        print(f"receiverctl: the receiver's user must own the key: chown syslog-receiver {key_file}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(describe_certificates(args.file))
    except OSError as e:
        raise UsageError(f"cannot read {args.file}: {e.strerror}") from e
    except ValueError as e:
        raise UsageError(f"{args.file} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {e}") from e
    return 0


def _self_signed_certificate(
    key: ec.EllipticCurvePrivateKey, common_name: str, names: Sequence[str], days: int, now: _dt.datetime
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)  # positive, at most 127 bits
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` whole with ``mode`` (whatever the umask), replacing any file there in one rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise SelfSignedError(f"cannot write {path}: {e.strerror}") from e


def _san_names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def _key_description(certificate: x509.Certificate) -> str:
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    size = getattr(public_key, "key_size", None)
    kind = type(public_key).__name__.removesuffix("PublicKey").removeprefix("_")
    return f"{kind} {size} bits" if size else kind


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
