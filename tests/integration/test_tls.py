"""TLS listeners (RFC 5425) with the real senders: rsyslog's gtls driver, syslog-ng, Python's ssl.

Every receiver here has one TLS listener on 127.0.0.1 with a certificate from
``receiver.cli.tls.write_selfsigned`` (what ``receiverctl tls selfsigned``
writes); the senders trust that certificate as their CA. Refusals are read
back from ``receiverctl stats --json``, as an operator would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from receiver.cli.tls import SelfSigned, write_selfsigned
from receiver.ingest.tls import certificate_fingerprint
from tests.integration.conftest import MakeReceiver, MakeRsyslog, MakeSyslogNg
from tests.receiver.test_tls import Pair, issue, make_ca
from tests.support.programs import LOOPBACK, Receiver, free_port, wait_until
from tests.support.receiverctl import receiverctl

pytestmark = pytest.mark.integration

MESSAGES = 2000
TIMEOUT_SECONDS = 30.0


def tls_receiver(make_receiver: MakeReceiver, server: SelfSigned, **tls: object) -> Receiver:
    """A receiver whose one listener, ``tls``, is TCP with TLS (framing auto) on a free loopback port."""
    port = free_port("tcp")
    listener: dict[str, object] = {
        "name": "tls", "transport": "tcp", "address": LOOPBACK, "port": port,
        "tls.certificate_file": server.certificate_file, "tls.key_file": server.key_file,
        **{f"tls.{key}": value for key, value in tls.items()},
    }
    return make_receiver(port=port, listeners=[listener])


def refusals(rx: Receiver) -> dict[str, int]:
    """receiver_connections_refused_total by reason, from `receiverctl stats --json`."""
    result = receiverctl("stats", "--json", "-c", str(rx.config_path))
    assert result.returncode == 0, result.stderr
    counters = json.loads(result.stdout)["counters"]
    return {
        c["labels"]["reason"]: c["value"] for c in counters
        if c["name"] == "receiver_connections_refused_total" and c["labels"].get("listener") == "tls"
    }


def numbered(prefix: str, n: int = MESSAGES) -> list[str]:
    return [f"<13>Oct 11 22:14:15 web-1 app[1]: {prefix} {i:05d}" for i in range(n)]


def assert_all_arrived(rx: Receiver, prefix: str, n: int = MESSAGES) -> None:
    """Every message ``prefix NNNNN`` is in the spool once (a reconnecting sender may add none here)."""
    frames = rx.wait_for_frames(n, timeout=TIMEOUT_SECONDS)
    seen = sorted(int(f.rsplit(b" ", 1)[1]) for f in frames if f" {prefix} ".encode() in f)
    assert seen == list(range(n))


def client_context(certificate: Pair | SelfSigned | None = None) -> ssl.SSLContext:
    """A sender's TLS client that accepts any server certificate (the tests look at its fingerprint)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if certificate is not None:
        context.load_cert_chain(certificate.certificate_file, certificate.key_file)
    return context


def send_tls(port: int, context: ssl.SSLContext, data: bytes) -> str:
    """Connect, send ``data``, close (``close_notify``); returns the server's fingerprint ("" if none was seen).

    Failures are not raised: with TLS 1.3 a client learns that the server
    refused its certificate only after its own handshake ended, if at all.
    What the receiver stored and counted is what the tests check.
    """
    fingerprint = ""
    try:
        with (
            socket.create_connection((LOOPBACK, port), timeout=TIMEOUT_SECONDS) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            fingerprint = certificate_fingerprint(x509.load_der_x509_certificate(der)) if der else ""
            tls.sendall(data)
            tls.unwrap()
    except (ssl.SSLError, OSError):
        pass
    return fingerprint


@pytest.fixture
def server(tmp_path: Path) -> SelfSigned:
    return write_selfsigned(tmp_path / "server-tls", name="localhost")


def test_rsyslog_gtls_octet_counted(make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, server: SelfSigned) -> None:
    """If rsyslog forwards over its gtls driver (x509/name, the receiver's certificate as CA, octet-counted
    framing), then every message arrives."""
    rx = tls_receiver(make_receiver, server)
    rsyslog = make_rsyslog(
        f'global(DefaultNetstreamDriverCAFile="{server.certificate_file}")\n'
        f'*.* action(type="omfwd" target="{LOOPBACK}" port="{rx.port}" protocol="tcp" '
        'TCP_Framing="octet-counted" StreamDriver="gtls" StreamDriverMode="1" '
        'StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost" '
        'queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")\n'
    )
    assert rsyslog.send(numbered("gtls")) == MESSAGES
    assert_all_arrived(rx, "gtls")
    assert refusals(rx) == {}
    status = receiverctl("status", "-c", str(rx.config_path))
    assert f"tcp+tls 127.0.0.1:{rx.port}" in status.stdout, status.stdout


def test_syslog_ng_tls(make_receiver: MakeReceiver, make_syslog_ng: MakeSyslogNg, server: SelfSigned) -> None:
    """If syslog-ng sends with transport("tls") and peer-verify(required-trusted) against the receiver's
    certificate, then every message arrives."""
    rx = tls_receiver(make_receiver, server)
    syslog_ng = make_syslog_ng(
        f'destination d_tls {{ network("{LOOPBACK}" port({rx.port}) transport("tls") '
        f'tls(ca-file("{server.certificate_file}") peer-verify(required-trusted))); }};\n'
        "log { source(s_inject); destination(d_tls); };\n"
    )
    assert syslog_ng.send(numbered("sng")) == MESSAGES
    assert_all_arrived(rx, "sng")
    assert refusals(rx) == {}


def test_client_certificate_required(make_receiver: MakeReceiver, server: SelfSigned, tmp_path: Path) -> None:
    """If client certificates are required, then a client of another CA and one without a certificate are
    refused at the handshake, counted as tls_handshake_failed with OpenSSL's reason in the log, and a client of
    the CA gets its message in."""
    ca, ca_key = make_ca(tmp_path / "ca", "clients-ca")
    other_ca, other_key = make_ca(tmp_path / "other-ca", "other-ca")
    member = issue(ca, ca_key, tmp_path / "clients", "web-1.example.com")
    stranger = issue(other_ca, other_key, tmp_path / "strangers", "web-1.example.com")
    rx = tls_receiver(make_receiver, server, client_certificates="required", ca_file=ca.certificate_file)

    send_tls(rx.port, client_context(stranger), b"15 <13>stranger")
    send_tls(rx.port, client_context(), b"13 <13>nobody")
    counted = wait_until(lambda: sum(refusals(rx).values()) >= 2 and refusals(rx), TIMEOUT_SECONDS)
    assert send_tls(rx.port, client_context(member), b"13 <13>member") == server.fingerprint
    assert rx.wait_for_frames(1, timeout=TIMEOUT_SECONDS) == [b"<13>member"]
    assert counted == {"tls_handshake_failed": 2}, counted
    failures = [line for line in rx.current_log.splitlines() if "from 127.0.0.1: TLS handshake failed: " in line]
    assert any("certificate" in line for line in failures), failures


def test_allowlist_refusal(make_receiver: MakeReceiver, server: SelfSigned, tmp_path: Path) -> None:
    """If only web-1.example.com is allowlisted, then db-1 (same CA) is cut off after the handshake, nothing of
    it is stored, the refusal is counted and its log line names the certificate; web-1 gets in."""
    ca, ca_key = make_ca(tmp_path / "ca", "clients-ca")
    web_1 = issue(ca, ca_key, tmp_path / "clients", "web-1.example.com")
    db_1 = issue(ca, ca_key, tmp_path / "clients", "db-1.example.com")
    rx = tls_receiver(
        make_receiver, server, client_certificates="required", ca_file=ca.certificate_file,
        allowed_subjects=["web-1.example.com"],
    )
    send_tls(rx.port, client_context(db_1), b"9 <13>db-1")
    assert wait_until(lambda: refusals(rx), TIMEOUT_SECONDS) == {"tls_peer_not_allowed": 1}
    assert send_tls(rx.port, client_context(web_1), b"10 <13>web-1") == server.fingerprint
    assert rx.wait_for_frames(1, timeout=TIMEOUT_SECONDS) == [b"<13>web-1"]
    wait_until(lambda: "db-1.example.com" in rx.current_log, TIMEOUT_SECONDS, message="the refusal's log line")
    assert db_1.fingerprint in rx.current_log


def test_handshake_timeout(make_receiver: MakeReceiver, server: SelfSigned) -> None:
    """If a client connects and never starts the handshake, then it is closed at the deadline and counted."""
    rx = tls_receiver(make_receiver, server, handshake_timeout_seconds=0.5)
    with (
        socket.create_connection((LOOPBACK, rx.port), timeout=TIMEOUT_SECONDS) as silent,
        contextlib.suppress(ConnectionResetError),  # aborted: closed all the same
    ):
        assert silent.recv(100) == b""
    assert wait_until(lambda: refusals(rx), TIMEOUT_SECONDS) == {"tls_handshake_timeout": 1}


@pytest.mark.parametrize("how", ["receiverctl", "SIGHUP"])
def test_reload_renewed_certificate(make_receiver: MakeReceiver, tmp_path: Path, how: str) -> None:
    """If the certificate files are renewed and the receiver reloaded (receiverctl reload or SIGHUP), then a
    new connection sees the new fingerprint, and a connection opened before goes on with the old one."""
    directory = tmp_path / "tls"
    first = write_selfsigned(directory, name="localhost")
    rx = tls_receiver(make_receiver, first)
    assert send_tls(rx.port, client_context(), b"8 <13>one") == first.fingerprint

    with (
        socket.create_connection((LOOPBACK, rx.port), timeout=TIMEOUT_SECONDS) as raw,
        client_context().wrap_socket(raw, server_hostname="localhost") as before,
    ):
        second = write_selfsigned(directory, name="localhost", force=True)
        if how == "receiverctl":
            result = receiverctl("reload", "-c", str(rx.config_path))
            assert result.returncode == 0, result.stderr
            assert second.fingerprint in result.stdout
        else:
            assert rx.pid is not None
            os.kill(rx.pid, signal.SIGHUP)
            wait_until(lambda: second.fingerprint in rx.current_log, TIMEOUT_SECONDS, message="the reload's log")
        assert send_tls(rx.port, client_context(), b"8 <13>two") == second.fingerprint
        assert certificate_fingerprint(x509.load_der_x509_certificate(before.getpeercert(binary_form=True) or b""))\
            == first.fingerprint
        before.sendall(b"10 <13>three")
        before.unwrap()
    frames = rx.wait_for_frames(3, timeout=TIMEOUT_SECONDS)
    assert sorted(frames) == [b"<13>one", b"<13>three", b"<13>two"]


@pytest.mark.parametrize("sender_closes", [True, False], ids=["sender-closes", "sender-stays"])
def test_shutdown_reads_what_tls_senders_still_send(
    make_receiver: MakeReceiver, server: SelfSigned, sender_closes: bool
) -> None:
    """If the receiver stops while a TLS sender keeps its connection open, then the sender gets close_notify
    (not a bare FIN), what it sent before and while the receiver stopped is committed, and the receiver exits,
    whether the sender closes in answer or stays until the drain time ends."""
    rx = tls_receiver(make_receiver, server)
    with (
        socket.create_connection((LOOPBACK, rx.port), timeout=TIMEOUT_SECONDS) as raw,
        # A bare FIN (no close_notify) would raise SSLEOFError here instead of reading as the end.
        client_context().wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as tls,
    ):
        tls.sendall(b"".join(f"{len(m)} {m}".encode() for m in numbered("open", 500)))
        rx.wait_for_frames(500, timeout=TIMEOUT_SECONDS)
        assert rx.pid is not None
        os.kill(rx.pid, signal.SIGTERM)
        # Sent while the receiver stops, before this sender has seen its close: committed too.
        tls.sendall(b"".join(f"{len(m)} {m}".encode() for m in numbered("late", 200)))
        if sender_closes:
            # The receiver's close_notify reads as a clean end of the TLS stream (no "EOF occurred in violation").
            assert tls.recv(100) == b""
        else:
            # Silent until the receiver gives up after drain_seconds (2 s) and closes the socket itself.
            assert rx.terminate(TIMEOUT_SECONDS) == 0
    assert rx.terminate(TIMEOUT_SECONDS) == 0
    assert_all_arrived(rx, "open", 500)
    assert_all_arrived(rx, "late", 200)
