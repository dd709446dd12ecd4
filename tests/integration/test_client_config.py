"""receiverctl rsyslog-config with the real rsyslog (tcp, tls, relp), and receiverctl identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats.rsyslog_template import streamlog_formats_in
from receiver.cli.client_config import SenderTls, rsyslog_snippet
from receiver.cli.tls import SelfSigned, write_selfsigned
from tests.integration.conftest import MakeReceiver, MakeRsyslog
from tests.support.programs import LOOPBACK, Receiver, free_port
from tests.support.receiverctl import receiverctl

pytestmark = pytest.mark.integration


def test_rsyslog_config_forwards_long_messages_as_ali_lines(
    make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog
) -> None:
    """If rsyslog runs the snippet rsyslog-config prints, then a 20 KB message arrives whole, as one
    ALI_LOG_FMT line with the chosen tag (rsyslog's own 8 KiB limit would have cut it)."""
    rx = make_receiver()
    result = receiverctl("rsyslog-config", "-c", str(rx.config_path), "--host", "127.0.0.1", "--tag", "app_tag")
    assert result.returncode == 0, result.stderr
    assert f'port="{rx.port}"' in result.stdout
    rsyslog = make_rsyslog(result.stdout)
    body = "x" * 20_000
    assert rsyslog.send([f"<13>Oct 11 22:14:15 web-1 app[1]: long {body} end"]) == 1
    (frame,) = rx.wait_for_frames(1, timeout=30)
    assert frame.startswith(b"0.1 app_tag ") and frame.endswith(f"long {body} end".encode())


def tls_listener(port: int, server: SelfSigned, **listener: object) -> dict[str, object]:
    return {
        "address": LOOPBACK, "port": port, "tls.certificate_file": server.certificate_file,
        "tls.key_file": server.key_file, **listener,
    }


def forward_through(
    rx: Receiver, make_rsyslog: MakeRsyslog, transport: str, server: SelfSigned, *extra: str,
    sender: SelfSigned | None = None,
) -> list[bytes]:
    """Print the snippet for ``transport``, let rsyslog run it (the CA file pointed at the receiver's
    certificate), send three messages, return the frames that arrive."""
    result = receiverctl(
        "rsyslog-config", "-c", str(rx.config_path), "--transport", transport, "--host", LOOPBACK,
        "--ca-file", str(server.certificate_file), *extra,
    )
    assert result.returncode == 0, result.stderr
    assert f'port="{rx.port}"' in result.stdout
    snippet = result.stdout
    if sender is not None:
        snippet = snippet.replace("/etc/rsyslog.d/syslog-sender.crt", str(sender.certificate_file))
        snippet = snippet.replace("/etc/rsyslog.d/syslog-sender.key", str(sender.key_file))
    rsyslog = make_rsyslog(snippet)
    assert rsyslog.send([f"<13>Oct 11 22:14:15 web-1 app[1]: {transport} {i}" for i in range(3)]) == 3
    return rx.wait_for_frames(3, timeout=30)


def test_rsyslog_config_tls(make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, tmp_path: Path) -> None:
    """If rsyslog runs the --transport tls snippet (gtls, x509/name, octet-counted), then the messages
    arrive over the TLS listener as ALI_LOG_FMT lines without their LF."""
    server = write_selfsigned(tmp_path / "tls", name="localhost")
    port = free_port("tcp")
    rx = make_receiver(port=port, listeners=[tls_listener(port, server, transport="tcp", framing="octet")])
    frames = forward_through(rx, make_rsyslog, "tls", server, "--permitted-peer", "localhost")
    assert [f.rsplit(b" ", 2)[1:] for f in frames] == [[b"tls", str(i).encode()] for i in range(3)]
    assert all(f.startswith(b"0.1 sys_tag ") for f in frames)


def test_rsyslog_config_relp(make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, tmp_path: Path) -> None:
    """If rsyslog runs the --transport relp snippet, then the messages arrive through the RELP listener."""
    port = free_port("tcp")
    rx = make_receiver(port=port, listeners=[{"transport": "relp", "address": LOOPBACK, "port": port}])
    frames = forward_through(rx, make_rsyslog, "relp", write_selfsigned(tmp_path / "unused"))
    assert [f.rsplit(b" ", 2)[1:] for f in frames] == [[b"relp", str(i).encode()] for i in range(3)]
    assert all(f.startswith(b"0.1 sys_tag ") for f in frames)


def test_rsyslog_config_relp_over_tls(make_receiver: MakeReceiver, make_rsyslog: MakeRsyslog, tmp_path: Path) -> None:
    """If the RELP listener has TLS, then the relp snippet turns on omrelp's TLS, and the messages arrive."""
    server = write_selfsigned(tmp_path / "tls", name="localhost")
    port = free_port("tcp")
    rx = make_receiver(port=port, listeners=[tls_listener(port, server, transport="relp")])
    result = receiverctl("rsyslog-config", "-c", str(rx.config_path), "--transport", "relp", "--host", LOOPBACK)
    assert 'tls="on"' in result.stdout and 'tls.permittedPeer=["127.0.0.1"]' in result.stdout
    sender = write_selfsigned(tmp_path / "sender", name="sender-1")
    frames = forward_through(rx, make_rsyslog, "relp", server, "--permitted-peer", "localhost", sender=sender)
    assert [f.rsplit(b" ", 2)[1:] for f in frames] == [[b"relp", str(i).encode()] for i in range(3)]


@pytest.mark.parametrize("transport", ["tcp", "udp", "tls", "relp"])
@pytest.mark.parametrize("client_certificates", ["none", "required"])
def test_every_snippet_passes_rsyslogd_check(
    make_rsyslog: MakeRsyslog, tmp_path: Path, transport: str, client_certificates: str
) -> None:
    """If rsyslogd -N1 checks a snippet of any transport, with or without a client certificate, then it
    finds nothing wrong (the files it names exist here, as they would on the sender)."""
    pair = write_selfsigned(tmp_path / "tls")
    tls = SenderTls("localhost", str(pair.certificate_file), client_certificates) if transport != "tcp" else None
    snippet = rsyslog_snippet(host=LOOPBACK, port=6514, transport=transport, tag="sys_tag", tls=tls)
    snippet = snippet.replace("/etc/rsyslog.d/syslog-sender.crt", str(pair.certificate_file))
    snippet = snippet.replace("/etc/rsyslog.d/syslog-sender.key", str(pair.key_file))
    make_rsyslog(snippet, start=False).check()


def test_tls_snippet_with_client_certificate(tmp_path: Path) -> None:
    """If the TLS listener requires client certificates, then the snippet gives the sender a certificate and
    key, and names the receiver as --permitted-peer says; a name the certificate lacks gets a note."""
    server = write_selfsigned(tmp_path / "tls", name="logs.example.com", sans=["logs.example.com"])
    config = tmp_path / "receiver.toml"
    config.write_text(
        '[[listeners]]\ntransport = "tcp"\n[listeners.tls]\n'
        f'certificate_file = "{server.certificate_file}"\nkey_file = "{server.key_file}"\n'
        f'client_certificates = "required"\nca_file = "{server.certificate_file}"\n'
    )
    result = receiverctl("rsyslog-config", "--transport", "tls", "-c", str(config), "--host", "logs.example.com")
    assert result.returncode == 0, result.stderr
    assert 'port="6514"' in result.stdout
    assert 'StreamDriverPermittedPeers="logs.example.com"' in result.stdout
    assert 'DefaultNetstreamDriverCertFile="/etc/rsyslog.d/syslog-sender.crt"' in result.stdout
    assert result.stderr == ""
    other = receiverctl("rsyslog-config", "--transport", "tls", "-c", str(config), "--host", "10.0.0.5")
    assert other.returncode == 0
    assert "names logs.example.com, not 10.0.0.5: rsyslog will refuse it" in other.stderr


def test_the_snippet_reads_as_streamlog_0_1() -> None:
    """If the receiver's own template reader reads the snippet, then it finds the built-in 0.1 layout
    with the tag given."""
    snippet = rsyslog_snippet(host="h", port=11111, transport="tcp", tag="sys_tag")
    (fmt,), rejected = streamlog_formats_in(snippet)
    assert rejected == []
    assert (fmt.version, fmt.tag) == ("0.1", "sys_tag")
    assert fmt.fields == ("hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid")


def test_rsyslog_config_refuses_what_cannot_work(tmp_path: Path) -> None:
    """If the tag has a quote, a path a space, or the configuration no listener of the transport, then exit 2
    with the reason."""
    assert receiverctl("rsyslog-config", "--tag", 'a"b').returncode == 2
    config = tmp_path / "receiver.toml"
    config.write_text('[[listeners]]\ntransport = "tcp"\nport = 6000\n')
    result = receiverctl("rsyslog-config", "--transport", "udp", "-c", str(config))
    assert result.returncode == 2 and "has no udp listener" in result.stderr
    result = receiverctl("rsyslog-config", "--transport", "tls", "-c", str(config))
    assert result.returncode == 2 and "has no TCP listener with [listeners.tls]" in result.stderr
    result = receiverctl("rsyslog-config", "--transport", "tls", "--ca-file", "/etc/my ca.pem", "--port", "6514")
    assert result.returncode == 2 and "--ca-file" in result.stderr
    result = receiverctl("rsyslog-config", "--transport", "tcp", "--tls", "--port", "6514")
    assert result.returncode == 2 and "give --transport tls" in result.stderr
    result = receiverctl("rsyslog-config", "--transport", "relp", "--tls", "--port", "2514", "--host", "logs")
    assert result.returncode == 0 and 'tls="on"' in result.stdout and 'tls.permittedPeer=["logs"]' in result.stdout


def test_identity(tmp_path: Path) -> None:
    """If identities and machine groups are configured, then identity prints them and a sender's groups."""
    ids = tmp_path / "ids"
    ids.write_text("team-a\n\n  team-b \n")
    config = tmp_path / "receiver.toml"
    config.write_text(
        f'[identity]\nuser_defined_id_file = "{ids}"\n'
        '[[machine_groups]]\nname = "web"\nnetworks = ["10.0.1.0/24"]\nhostnames = ["web-*"]\n'
    )
    result = receiverctl("identity", "-c", str(config), "--sender", "192.168.0.9", "WEB-7")
    assert result.returncode == 0, result.stderr
    assert "identities (__user_defined_id__): team-a team-b" in result.stdout
    assert "  web: 10.0.1.0/24, hostname web-*" in result.stdout
    assert "sender 192.168.0.9 (WEB-7): web" in result.stdout
