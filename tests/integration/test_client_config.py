"""receiverctl rsyslog-config with the real rsyslog, and receiverctl identity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from formats.rsyslog_template import streamlog_formats_in
from receiver.cli.client_config import rsyslog_snippet
from tests.integration.conftest import MakeReceiver, MakeRsyslog

pytestmark = pytest.mark.integration


def receiverctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli.ctl", *args], capture_output=True, text=True, timeout=60, check=False
    )


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


def test_the_snippet_reads_as_streamlog_0_1() -> None:
    """If the receiver's own template reader reads the snippet, then it finds the built-in 0.1 layout
    with the tag given."""
    snippet = rsyslog_snippet(host="h", port=11111, transport="tcp", tag="sys_tag")
    (fmt,), rejected = streamlog_formats_in(snippet)
    assert rejected == []
    assert (fmt.version, fmt.tag) == ("0.1", "sys_tag")
    assert fmt.fields == ("hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid")


def test_rsyslog_config_refuses_what_cannot_work(tmp_path: Path) -> None:
    """If the tag has a quote or the configuration no listener of the transport, then exit 2 with the reason."""
    assert receiverctl("rsyslog-config", "--tag", 'a"b').returncode == 2
    config = tmp_path / "receiver.toml"
    config.write_text('[[listeners]]\ntransport = "tcp"\nport = 6000\n')
    result = receiverctl("rsyslog-config", "--transport", "udp", "-c", str(config))
    assert result.returncode == 2 and "has no udp listener" in result.stderr


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
