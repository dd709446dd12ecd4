"""receiverctl parse and format from-rsyslog, run as an operator runs them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import WIRE_SAMPLES
from tests.support.receiverctl import receiverctl

ALI_TEMPLATE = (
    '$template ALI_LOG_FMT,"0.1 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% '
    "%pri-text% %protocol-version% %app-name% %procid% %msgid% %msg:::drop-last-lf%\\n\"\n"
)


def lines(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


class TestParse:
    def test_stdin_streamlog(self) -> None:
        """If an ALI line comes on stdin, then one JSON object with the documented keys comes out."""
        result = receiverctl(
            "parse", "--peer", "10.0.0.7",
            stdin=b"0.1 sys_tag 1795323666 127.0.0.1 web-1 user.notice 0 todo-list 705 - Create a new task\n",
        )
        assert result.returncode == 0, result.stderr
        (record,) = lines(result)
        assert list(record) == ["time", "time_ns", "fields", "source", "tags", "flags"]
        assert record["source"] == "10.0.0.7"
        assert record["fields"]["app-name"] == "todo-list"  # type: ignore[index]
        assert b"1 records; 0 parse errors" in result.stderr

    def test_capture_file(self) -> None:
        """If a capture file is named, then every frame in it becomes a record."""
        result = receiverctl("parse", str(WIRE_SAMPLES / "rsyslog-SyslogProtocol23-tcp-octet-counted.bin"), stdin=b"")
        assert result.returncode == 0
        assert len(lines(result)) == 11

    def test_datagram_framing(self) -> None:
        """If --framing datagram is given, then the input is one datagram of LF-separated records."""
        result = receiverctl("parse", "--framing", "datagram", stdin=b"<13>a: one\n<13>a: two\n")
        assert [r["fields"]["_content_"] for r in lines(result)] == ["one", "two"]  # type: ignore[index]

    def test_receive_time_and_timezone(self) -> None:
        """If receive time and zone are given, then RFC 3164 years and offsets follow them."""
        result = receiverctl(
            "parse", "--receive-time", "2027-01-01T00:00:05+00:00", "--timezone", "Asia/Shanghai",
            stdin=b"<13>Dec 31 23:59:59 h app: m\n",
        )
        (record,) = lines(result)
        shanghai_new_year_eve = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        assert record["time"] == int(shanghai_new_year_eve.timestamp())

    def test_truncation_is_reported(self) -> None:
        """If a frame is over --max-frame-bytes, then it is flagged and the summary counts it."""
        result = receiverctl("parse", "--max-frame-bytes", "10", stdin=b"<13>" + b"x" * 20 + b"\n")
        (record,) = lines(result)
        assert record["flags"] == ["truncated:24"]
        assert b"1 truncated" in result.stderr

    def test_streamlog_formats_file(self, tmp_path: Path) -> None:
        """If --streamlog-formats names an ilogtail_config.json, then its versions are parsed."""
        config = tmp_path / "ilogtail_config.json"
        config.write_text(json.dumps({"streamlog_formats": [{"version": "2.1", "fields": ["level", "method"]}]}))
        result = receiverctl(
            "parse", "--streamlog-formats", str(config),
            stdin=b"2.1 streamlog_tag 1455776661 10.101.166.127 ERROR m.main(App.java:17) connection refused\n",
        )
        (record,) = lines(result)
        assert record["fields"] == {"level": "ERROR", "method": "m.main(App.java:17)", "msg": "connection refused"}

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--timezone", "Mars/Olympus"], b"not a known time zone"),
            (["--receive-time", "soon"], b"neither epoch seconds nor ISO 8601"),
            (["/nonexistent/file"], b"cannot read /nonexistent/file"),
        ],
    )
    def test_errors_name_the_problem(self, args: list[str], message: bytes) -> None:
        """If an option is wrong, then receiverctl exits 2 with one line naming it."""
        result = receiverctl("parse", *args, stdin=b"")
        assert result.returncode == 2
        assert message in result.stderr
        assert len(result.stderr.splitlines()) == 1


class TestFormatFromRsyslog:
    def test_alibaba_template(self, tmp_path: Path) -> None:
        """If rsyslog.conf holds Alibaba's template, then the built-in 0.1 layout is printed with its tag."""
        conf = tmp_path / "rsyslog.conf"
        conf.write_text("module(load=\"imuxsock\")\n" + ALI_TEMPLATE + "*.* @@127.0.0.1:11111;ALI_LOG_FMT\n")
        result = receiverctl("format", "from-rsyslog", str(conf), stdin=b"")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "streamlog_formats": [
                {
                    "version": "0.1",
                    "fields": ["hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid"],
                    "tag": "sys_tag",
                }
            ]
        }

    def test_no_streamlog_template(self, tmp_path: Path) -> None:
        """If no template writes streamlog lines, then the command fails and says what it looked for."""
        conf = tmp_path / "rsyslog.conf"
        conf.write_text('$template Plain,"%msg%\\n"\n')
        result = receiverctl("format", "from-rsyslog", str(conf), stdin=b"")
        assert result.returncode == 2
        assert b"no streamlog format found" in result.stderr
