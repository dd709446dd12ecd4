"""Every captured byte stream in tests/fixtures/wire-samples, with the exact records expected.

The captures were made from rsyslog 8.2302, syslog-ng 3.38, util-linux logger
and loggen sending the same set of test messages (see the reference notes on
clients); each test below spells out every record the receiver must make of
one capture, parsed with auto framing and auto detection.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import pytest

from formats.framing import DatagramDeframer
from formats.parse import make_parser
from formats.streamlog import STREAMLOG_TAG, StreamlogFormat, format_table
from tests.helpers import deframe, wire_datagrams, wire_sample

PEER = "192.0.2.7"
RECEIVED = int(dt.datetime(2026, 11, 22, 5, 30, tzinfo=dt.UTC).timestamp()) * 10**9
LONG = "LONG " + "0123456789" * 1024 + " END"
SD_EXAMPLE = '{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"}}'
SD_TIME_QUALITY = '{"timeQuality":{"tzKnown":"1","isSynced":"0"}}'


def epoch(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp())


OCT_11 = epoch("2026-10-11T22:14:15+00:00")
# "Jan  2 03:04:05" received on 2026-11-22: the latest such date not in the future is 2026-01-02.
JAN_2 = epoch("2026-01-02T03:04:05+00:00")
# The captures were received on the day they were made, but their messages carry RFC 3164's
# example dates (Oct 11, Jan 2): the uncertain-year flag such old dates get is tested in
# test_rfc3164, not here.
A_YEAR_S = 365 * 86_400


def streamlog(
    host: str, pri: str, pv: str | None, app: str, procid: str, msgid: str, msg: str, time: int = 1795323666
) -> dict[str, object]:
    names = ["hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid", "msg"]
    values = [host, pri, pv, app, procid, msgid, msg]
    if pv is None:  # syslog-ng's ALI-like template has no protocol-version column
        del names[2], values[2]
    return {
        "time": time,
        "time_ns": 0,
        "fields": dict(zip(names, values, strict=True)),
        "source": PEER,
        "tags": {STREAMLOG_TAG: "sys_tag"},
        "flags": [],
    }


def syslog(
    program: str,
    pri: int,
    host: str,
    content: str,
    time: int,
    ns: int = 0,
    *,
    pid: str | None = None,
    msgid: str | None = None,
    sd: str | None = None,
) -> dict[str, object]:
    fields = {
        "_program_": program,
        "_priority_": str(pri),
        "_facility_": str(pri >> 3),
        "_severity_": str(pri & 7),
        "_unixtimestamp_": str(time * 10**9 + ns),
        "_hostname_": host,
        "_client_ip_": PEER,
        "_content_": content,
    }
    if sd is not None:
        fields["_structured_data_"] = sd
    if msgid is not None:
        fields["_message_id_"] = msgid
    if pid is not None:
        fields["_process_id_"] = pid
    return {"time": time, "time_ns": ns, "fields": fields, "source": PEER, "tags": {}, "flags": []}


def unparsed(content: str) -> dict[str, object]:
    """A continuation line split off by LF framing: kept whole, flagged."""
    record = syslog("", 0, PEER, content, RECEIVED // 10**9)
    fields = record["fields"]
    assert isinstance(fields, dict)
    fields.update({"_priority_": "-1", "_facility_": "-1", "_severity_": "-1"})
    record["flags"] = ["parse-error"]
    return record


def records_of(frames: list[bytes], **options: object) -> list[dict[str, object]]:
    options.setdefault("uncertain_year_age_s", A_YEAR_S)
    parse = make_parser(**options)  # type: ignore[arg-type]
    out = []
    for frame in frames:
        record = parse(frame, PEER, RECEIVED).to_dict()
        if "parse-error" in record["flags"]:  # type: ignore[operator]
            assert record.pop("error")
        out.append(record)
    return out


def stream(name: str, **options: object) -> list[dict[str, object]]:
    frames, deframer = deframe(wire_sample(name))
    assert deframer.truncated_frames == deframer.incomplete_frames == deframer.framing_errors == 0
    return records_of(frames, **options)


def datagrams(name: str) -> list[dict[str, object]]:
    deframer = DatagramDeframer()
    return records_of([frame for d in wire_datagrams(name) for frame in deframer.feed(d)])


RSYSLOG_ALI = [
    streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "plain message 1"),
    streamlog("myhost", "user.info", "0", "myapp", "-", "-", "  lead  inner   trail   "),
    streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "message with trailing LF"),
    streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "héllo wörld 日本語 😀"),
    streamlog("mymachine.example.com", "local4.notice", "1", "evntslog", "1234", "ID47", "\ufeffAn application event log entry"),
    streamlog("host2", "auth.crit", "1", "-", "-", "-", "nil fields msg"),
    streamlog("myhost", "user.notice", "0", "myapp", "123", "-", ""),
    streamlog("localhost", "user.notice", "0", "-", "-", "-", ""),
    streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "line one#012line two#011tabbed"),
    streamlog("myhost", "user.notice", "0", "myapp", "123", "-", LONG),
    streamlog("no", "user.notice", "0", "pri", "-", "-", "no header just text"),
]


class TestRsyslog:
    def test_ali_log_fmt_tcp(self) -> None:
        """If rsyslog sends ALI_LOG_FMT over TCP, then every line is a streamlog record with rsyslog's field names."""
        assert stream("rsyslog-ALI_LOG_FMT-tcp.bin") == RSYSLOG_ALI

    def test_ali_log_fmt_udp(self) -> None:
        """If rsyslog sends ALI_LOG_FMT over UDP, then the records equal the TCP ones."""
        assert datagrams("rsyslog-ALI_LOG_FMT-udp.records") == RSYSLOG_ALI

    def test_ali_without_control_escapes(self) -> None:
        """If rsyslog does not escape LF, then the line is split and the tail is kept, flagged."""
        origin = '[origin software="rsyslogd" swVersion="8.2302.0" x-pid="10150" x-info="https://www.rsyslog.com"]'
        assert stream("rsyslog-ALI-noescape-internalmsgs-tcp.bin") == [
            streamlog("vm", "syslog.info", "0", "rsyslogd", "-", "-", f"{origin} start", 1795323705),
            streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "plain message 1", 1795323707),
            streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "line one", 1795323707),
            unparsed("line two\ttabbed"),
            streamlog("myhost", "user.notice", "0", "myapp", "123", "-", "message with trailing LF", 1795323707),
            streamlog("vm", "syslog.info", "0", "rsyslogd", "-", "-", f"{origin} exiting on signal 15.", 1795323708),
        ]

    TRADITIONAL: ClassVar[list[dict[str, object]]] = [
        syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
        syslog("myapp", 14, "myhost", "  lead  inner   trail   ", OCT_11),
        syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", "héllo wörld 日本語 😀", OCT_11, pid="123"),
        syslog("evntslog", 165, "mymachine.example.com", "An application event log entry", OCT_11, pid="1234"),
        syslog("", 34, "host2", "nil fields msg", JAN_2),
        syslog("myapp", 13, "myhost", "", OCT_11, pid="123"),
        syslog("", 13, "localhost", " ", epoch("2026-11-22T05:01:06+00:00")),
        syslog("myapp", 13, "myhost", "line one#012line two#011tabbed", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
        syslog("", 13, "no", "pri no header just text", epoch("2026-11-22T05:01:06+00:00")),
    ]

    def test_omfwd_default_tcp(self) -> None:
        """If rsyslog forwards with its default TCP template, then RFC 3164 is read with host, program and pid."""
        assert stream("rsyslog-omfwd-default-tcp.bin") == self.TRADITIONAL

    def test_traditional_udp(self) -> None:
        """If rsyslog forwards over UDP, then the records equal the TCP ones."""
        assert datagrams("rsyslog-TraditionalForwardFormat-udp.records") == self.TRADITIONAL

    def test_forward_format(self) -> None:
        """If rsyslog sends RSYSLOG_ForwardFormat, then the ISO time with fraction and offset is kept."""
        assert stream("rsyslog-RSYSLOG_ForwardFormat-tcp.bin") == [
            syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
            syslog("myapp", 14, "myhost", "  lead  inner   trail   ", OCT_11),
            syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "héllo wörld 日本語 😀", OCT_11, pid="123"),
            syslog("evntslog", 165, "mymachine.example.com", "An application event log entry",
                   epoch("2003-10-11T22:14:15+00:00"), 3_000_000, pid="1234"),
            syslog("", 34, "host2", "nil fields msg", epoch("2024-01-01T19:04:05+00:00"), 678_000_000),
            syslog("myapp", 13, "myhost", "", OCT_11, pid="123"),
            syslog("", 13, "localhost", " ", epoch("2026-11-22T05:01:06+00:00"), 364_877_000),
            syslog("myapp", 13, "myhost", "line one#012line two#011tabbed", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
            syslog("", 13, "no", "pri no header just text", epoch("2026-11-22T05:01:06+00:00"), 516_008_000),
        ]

    # rsyslog renders an RFC 3164 message's MSG with its leading space; RFC
    # 5424 MSG is kept exactly, so the space stays in _content_.
    PROTOCOL_23: ClassVar[list[dict[str, object]]] = [
        syslog("myapp", 13, "myhost", " plain message 1", OCT_11, pid="123"),
        syslog("myapp", 14, "myhost", "   lead  inner   trail   ", OCT_11),
        syslog("myapp", 13, "myhost", " message with trailing LF", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", " héllo wörld 日本語 😀", OCT_11, pid="123"),
        syslog("evntslog", 165, "mymachine.example.com", "An application event log entry",
               epoch("2003-10-11T22:14:15+00:00"), 3_000_000, pid="1234", msgid="ID47", sd=SD_EXAMPLE),
        syslog("", 34, "host2", "nil fields msg", epoch("2024-01-01T19:04:05+00:00"), 678_000_000),
        syslog("myapp", 13, "myhost", "", OCT_11, pid="123"),
        syslog("", 13, "localhost", "", epoch("2026-11-22T05:01:06+00:00"), 364_877_000),
        syslog("myapp", 13, "myhost", " line one#012line two#011tabbed", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", " " + LONG, OCT_11, pid="123"),
        syslog("pri", 13, "no", " no header just text", epoch("2026-11-22T05:01:06+00:00"), 516_008_000),
    ]

    def test_syslog_protocol_23_lf(self) -> None:
        """If rsyslog sends RFC 5424 LF-framed, then SD, MSGID and PROCID are read."""
        assert stream("rsyslog-SyslogProtocol23-tcp-lf.bin") == self.PROTOCOL_23

    def test_syslog_protocol_23_octet_counted(self) -> None:
        """If rsyslog sends RFC 5424 octet-counted, then the records equal the LF-framed ones."""
        assert stream("rsyslog-SyslogProtocol23-tcp-octet-counted.bin") == self.PROTOCOL_23


SYSLOG_NG_TIME = epoch("2026-11-22T05:12:21+00:00")
SD_RELAYED = (
    '2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 '
    '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] \ufeffAn application event log entry'
)


class TestSyslogNg:
    NETWORK: ClassVar[list[dict[str, object]]] = [
        syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
        syslog("myapp", 14, "myhost", "  lead  inner   trail   ", OCT_11),
        syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", "héllo wörld 日本語 😀", OCT_11, pid="123"),
        syslog("evntslog", 165, "mymachine.example.com", "An application event log entry", OCT_11, pid="1234"),
        syslog("", 34, "host2", "nil fields msg", JAN_2),
        syslog("myapp", 13, "myhost", "", OCT_11, pid="123"),
        syslog("", 13, "127.0.0.1", "", SYSLOG_NG_TIME),
        syslog("myapp", 13, "myhost", "line one", OCT_11, pid="123"),
        unparsed("line two\ttabbed"),
        syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
        syslog("", 13, "127.0.0.1", "no pri no header just text", SYSLOG_NG_TIME),
        syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
        syslog("myapp", 13, "myhost", "line one", OCT_11, pid="123"),
        unparsed("line two\ttabbed"),
        syslog("", 165, "127.0.0.1", "1 " + SD_RELAYED, epoch("2026-11-22T05:12:33+00:00")),
        syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
    ]

    def test_network_tcp(self) -> None:
        """If syslog-ng's network() sends RFC 3164 + LF, then each line is read; split lines are kept flagged."""
        assert stream("syslog-ng-network-tcp.bin") == self.NETWORK

    def test_network_udp(self) -> None:
        """If syslog-ng's network() sends UDP, then the records equal the TCP ones."""
        assert datagrams("syslog-ng-network-udp.records") == self.NETWORK

    def test_network_syslog_protocol(self) -> None:
        """If syslog-ng's network() sends RFC 5424 + LF, then NIL app-name gives an empty program."""
        assert stream("syslog-ng-network-syslogprotocol-tcp.bin") == [
            syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
            syslog("myapp", 14, "myhost", "  lead  inner   trail   ", OCT_11),
            syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "héllo wörld 日本語 😀", OCT_11, pid="123"),
            syslog("evntslog", 165, "mymachine.example.com", "An application event log entry",
                   epoch("2003-10-11T22:14:15+00:00"), pid="1234", msgid="ID47", sd=SD_EXAMPLE),
            syslog("", 34, "host2", "nil fields msg", epoch("2024-01-01T19:04:05+00:00")),
            syslog("myapp", 13, "myhost", "", OCT_11, pid="123"),
            syslog("", 13, "127.0.0.1", "", SYSLOG_NG_TIME),
            syslog("myapp", 13, "myhost", "line one", OCT_11, pid="123"),
            unparsed("line two\ttabbed"),
            syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
            syslog("no", 13, "127.0.0.1", "pri no header just text", SYSLOG_NG_TIME),
            syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "line one", OCT_11, pid="123"),
            unparsed("line two\ttabbed"),
            syslog("1", 165, "127.0.0.1", SD_RELAYED, epoch("2026-11-22T05:12:33+00:00")),
            syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
        ]

    def test_syslog_octet(self) -> None:
        """If syslog-ng's syslog() sends octet-counted RFC 5424, then an embedded LF stays in one record."""
        assert stream("syslog-ng-syslog-tcp-octet.bin") == [
            syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
            syslog("myapp", 14, "myhost", "  lead  inner   trail   ", OCT_11),
            syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "héllo wörld 日本語 😀", OCT_11, pid="123"),
            syslog("evntslog", 165, "mymachine.example.com", "An application event log entry",
                   epoch("2003-10-11T22:14:15+00:00"), pid="1234", msgid="ID47", sd=SD_EXAMPLE),
            syslog("", 34, "host2", "nil fields msg", epoch("2024-01-01T19:04:05+00:00")),
            syslog("myapp", 13, "myhost", "", OCT_11, pid="123"),
            syslog("", 13, "127.0.0.1", "", SYSLOG_NG_TIME),
            syslog("myapp", 13, "myhost", "line one\nline two\ttabbed", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
            syslog("no", 13, "127.0.0.1", "pri no header just text", SYSLOG_NG_TIME),
            syslog("myapp", 13, "myhost", "plain message 1", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "message with trailing LF", OCT_11, pid="123"),
            syslog("myapp", 13, "myhost", "line one\nline two\ttabbed", OCT_11, pid="123"),
            syslog("1", 165, "127.0.0.1", SD_RELAYED, epoch("2026-11-22T05:12:33+00:00")),
            syslog("myapp", 13, "myhost", LONG, OCT_11, pid="123"),
        ]

    def test_ali_like_template_needs_its_own_layout(self) -> None:
        """If syslog-ng's ALI-like template (no protocol-version column) is declared, then its lines read right."""
        layout = format_table([StreamlogFormat("0.1", ("hostname", "pri-text", "app-name", "procid", "msgid"))])
        t1, t2, t3 = 1795324341, 1795324352, 1795324353
        assert stream("syslog-ng-ali-template-tcp.bin", streamlog_formats=layout) == [
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "plain message 1", t1),
            streamlog("myhost", "user.info", None, "myapp", "-", "-", "  lead  inner   trail   ", t1),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "message with trailing LF", t1),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "héllo wörld 日本語 😀", t1),
            streamlog("mymachine.example.com", "local4.notice", None, "evntslog", "1234", "ID47",
                      "An application event log entry", t1),
            streamlog("host2", "auth.crit", None, "", "-", "-", "nil fields msg", t1),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "", t1),
            streamlog("127.0.0.1", "user.notice", None, "", "-", "-", "", t1),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "line one", t1),
            unparsed("line two\ttabbed"),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", LONG, t1),
            streamlog("127.0.0.1", "user.notice", None, "no", "-", "-", "pri no header just text", t1),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "plain message 1", t2),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "message with trailing LF", t2),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", "line one", t3),
            unparsed("line two\ttabbed"),
            streamlog("127.0.0.1", "local4.notice", None, "1", "-", "-", SD_RELAYED, t3),
            streamlog("myhost", "user.notice", None, "myapp", "123", "-", LONG, t3),
        ]

    def test_ali_like_template_with_builtin_layout_shifts_columns(self) -> None:
        """If that template is read with the built-in 0.1 layout, then columns shift (documented pitfall)."""
        first = stream("syslog-ng-ali-template-tcp.bin")[0]
        assert first["fields"]["protocol-version"] == "myapp"  # type: ignore[index]


class TestLogger:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("logger-tcp-case1.bin", [syslog("myapp", 132, "vm", "rfc5424 octet-count tcp",
                                             epoch("2026-11-22T05:01:29+00:00"), 582_000_000, sd=SD_TIME_QUALITY)]),
            ("logger-tcp-case2.bin", [syslog("myapp", 13, "vm", "rfc5424 tcp no octet-count",
                                             epoch("2026-11-22T05:01:29+00:00"), 886_593_000, sd=SD_TIME_QUALITY)]),
            ("logger-tcp-case3.bin", [syslog("myapp", 13, "vm", "rfc3164 tcp", epoch("2026-11-22T05:01:30+00:00"))]),
            ("logger-tcp-case4.bin", [syslog(
                "myapp", 13, "vm", "with sd héllo 日本", epoch("2026-11-22T05:01:31+00:00"), 105_167_000,
                pid="9424", msgid="ID47",
                sd='{"timeQuality":{"tzKnown":"1","isSynced":"0"},"exampleSDID@32473":{"iut":"3","eventSource":"App"}}',
            )]),
            ("logger-tcp-case5.bin", [
                syslog("multi", 13, "vm", "line one", epoch("2026-11-22T05:01:31+00:00"), 409_627_000, sd=SD_TIME_QUALITY),
                syslog("multi", 13, "vm", "line two", epoch("2026-11-22T05:01:31+00:00"), 409_702_000, sd=SD_TIME_QUALITY),
                syslog("multi", 13, "vm", "", epoch("2026-11-22T05:01:31+00:00"), 409_712_000, sd=SD_TIME_QUALITY),
                syslog("multi", 13, "vm", "line four", epoch("2026-11-22T05:01:31+00:00"), 409_720_000, sd=SD_TIME_QUALITY),
            ]),
            ("logger-tcp-case6.bin", [
                syslog("multi", 13, "vm", "line one", epoch("2026-11-22T05:01:31+00:00")),
                syslog("multi", 13, "vm", "line two", epoch("2026-11-22T05:01:31+00:00")),
            ]),
            ("logger-tcp-case7.bin", [syslog("myapp", 13, PEER, "rfc5424 notq nohost",
                                             epoch("2026-11-22T05:01:32+00:00"), 18_286_000)]),
            ("logger-tcp-case9.bin", [
                syslog("myapp", 13, "vm", "embedded", epoch("2026-11-22T05:01:32+00:00"), 627_731_000, sd=SD_TIME_QUALITY),
                unparsed("newline in arg"),
            ]),
        ],
    )
    def test_logger(self, name: str, expected: list[dict[str, object]]) -> None:
        """If util-linux logger sends a capture's message(s), then each record is exactly as expected."""
        assert stream(name) == expected

    def test_logger_udp_from_event_log(self) -> None:
        """If logger sends over UDP (no LF), then the datagram is one record."""
        deframer = DatagramDeframer()
        frames = deframer.feed(b"<35>Nov 22 05:01:30 vm myapp: rfc3164 udp")
        assert records_of(frames) == [syslog("myapp", 35, "vm", "rfc3164 udp", epoch("2026-11-22T05:01:30+00:00"))]


class TestLoggen:
    @staticmethod
    def seq(n: int, stamp: str, length: int) -> str:
        """loggen's message text: a fixed prefix padded with PADD to ``length`` characters."""
        prefix = f"seq: {n:010d}, thread: 0000, runid: {epoch(stamp)}, stamp: {stamp[:19]} "
        return prefix + ("PADD" * 64)[: length - len(prefix)]

    def test_rfc3164_iso_without_zone(self) -> None:
        """If loggen sends its default lines, then the ISO time without zone is read as UTC."""
        stamp = "2026-11-22T05:15:13+00:00"
        assert stream("loggen-tcp-15688-001.bin") == [
            syslog("prg00000", 38, "localhost", self.seq(n, stamp, 149), epoch(stamp), pid="1234")
            for n in range(3)
        ]

    @pytest.mark.parametrize(
        ("name", "stamp", "length", "sd"),
        [
            ("loggen-tcp-15688-002.bin", "2026-11-22T05:15:13+00:00", 136, None),
            ("loggen-tcp-15688-003.bin", "2026-11-22T05:15:14+00:00", 136, None),
            ("loggen-tcp-15688-004.bin", "2026-11-22T05:15:15+00:00", 118, '{"test":{"name":"value"}}'),
        ],
    )
    def test_rfc5424(self, name: str, stamp: str, length: int, sd: str | None) -> None:
        """If loggen sends RFC 5424 (octet-counted or LF), then the BOM is dropped and SD read."""
        assert stream(name) == [
            syslog("prg00000", 38, "localhost", self.seq(n, stamp, length), epoch(stamp), pid="1234", sd=sd)
            for n in range(2)
        ]
