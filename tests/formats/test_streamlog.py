"""Streamlog (ALI_LOG_FMT) lines."""

from __future__ import annotations

import pytest

from formats.errors import FormatDefinitionError
from formats.streamlog import (
    BUILTIN_FORMATS,
    STREAMLOG_TAG,
    StreamlogFormat,
    StreamlogParser,
    format_table,
)

PEER = "10.9.8.7"
RECEIVED = 1_800_000_000_123_456_789


def parse(line: bytes, **options: object) -> dict[str, object]:
    formats = options.pop("formats", None)
    parser = StreamlogParser(formats, **options)  # type: ignore[arg-type]
    return parser.parse(line, PEER, RECEIVED).to_dict()


class TestBuiltinLayout:
    def test_alibaba_line(self) -> None:
        """If rsyslog sends an ALI_LOG_FMT line, then the fields carry rsyslog's property names."""
        r = parse(b"0.1 sys_tag 1795323666 10.0.0.7 web-1 user.notice 0 todo-list 705 - Create a new task")
        assert r == {
            "time": 1795323666,
            "time_ns": 0,
            "fields": {
                "hostname": "web-1",
                "pri-text": "user.notice",
                "protocol-version": "0",
                "app-name": "todo-list",
                "procid": "705",
                "msgid": "-",
                "msg": "Create a new task",
            },
            "source": "10.0.0.7",
            "tags": {STREAMLOG_TAG: "sys_tag"},
            "flags": [],
        }

    def test_field_order(self) -> None:
        """If a line is parsed, then fields keep the layout's order with msg last."""
        parser = StreamlogParser()
        r = parser.parse(b"0.1 t 1 1.2.3.4 h p 1 a - - m", PEER, RECEIVED)
        assert [k for k, _ in r.fields] == [*BUILTIN_FORMATS[0].fields, "msg"]

    @pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
    def test_loopback_ip_is_the_peer(self, ip: str) -> None:
        """If the ip column is loopback (rsyslog's local input), then the source is the TCP peer."""
        r = parse(f"0.1 t 1 {ip} h p 1 a - - m".encode())
        assert r["source"] == PEER

    def test_loopback_without_peer(self) -> None:
        """If no peer is known, then a loopback ip is kept rather than emptied."""
        r = StreamlogParser().parse(b"0.1 t 1 127.0.0.1 h p 1 a - - m", "", RECEIVED)
        assert r.source == "127.0.0.1"

    def test_rfc3164_leading_space_stripped_once(self) -> None:
        """If protocol-version is 0, then exactly one of rsyslog's leading spaces is removed from msg."""
        r = parse(b"0.1 t 1 1.1.1.1 h user.info 0 myapp - -    lead  inner   trail   ")
        assert r["fields"]["msg"] == "  lead  inner   trail   "  # type: ignore[index]

    def test_rfc5424_msg_untouched(self) -> None:
        """If protocol-version is 1, then msg is kept exactly."""
        r = parse(b"0.1 t 1 1.1.1.1 h user.info 1 myapp - -  two spaces")
        assert r["fields"]["msg"] == " two spaces"  # type: ignore[index]

    def test_keep_leading_space(self) -> None:
        """If leading_space is keep, then msg is byte-exact as Logtail stores it."""
        r = parse(b"0.1 t 1 1.1.1.1 h user.info 0 myapp - -  m", leading_space="keep")
        assert r["fields"]["msg"] == " m"  # type: ignore[index]

    def test_msg_may_be_empty_or_absent(self) -> None:
        """If a line ends after the msgid (with or without the separator), then msg is empty."""
        assert parse(b"0.1 t 1 1.1.1.1 h p 0 a - - ")["fields"]["msg"] == ""  # type: ignore[index]
        assert parse(b"0.1 t 1 1.1.1.1 h p 0 a - -")["fields"]["msg"] == ""  # type: ignore[index]

    def test_empty_columns(self) -> None:
        """If a column is empty (two spaces), then its field is an empty string."""
        r = parse(b"0.1 t 1 1.1.1.1 host2 auth.crit  - - - m")
        assert r["fields"]["protocol-version"] == ""  # type: ignore[index]
        assert r["fields"]["msgid"] == "-"  # type: ignore[index]
        assert r["fields"]["msg"] == "m"  # type: ignore[index]


class TestUserFormats:
    def test_logtail_documented_example(self) -> None:
        """If version 2.1 has fields level and method, then Logtail's documented line reads as documented."""
        table = format_table([StreamlogFormat.from_logtail({"version": "2.1", "fields": ["level", "method"]})])
        r = parse(
            b"2.1 streamlog_tag 1455776661 10.101.166.127 ERROR "
            b"com.alibaba.streamlog.App.main(App.java:17) connection refused, retry",
            formats=table,
        )
        assert r["source"] == "10.101.166.127"
        assert r["time"] == 1455776661
        assert r["fields"] == {
            "level": "ERROR",
            "method": "com.alibaba.streamlog.App.main(App.java:17)",
            "msg": "connection refused, retry",
        }
        assert r["tags"] == {STREAMLOG_TAG: "streamlog_tag"}

    def test_no_middle_fields(self) -> None:
        """If a format has no middle fields, then everything after the ip is msg."""
        r = parse(b"3.0 t 5 1.1.1.1 all of it", formats=format_table([StreamlogFormat("3.0", ())]))
        assert r["fields"] == {"msg": "all of it"}

    def test_round_trip_to_logtail(self) -> None:
        """If a format is written back, then it is the ilogtail_config.json entry."""
        f = StreamlogFormat("2.1", ("level",), tag="t")
        assert f.to_logtail() == {"version": "2.1", "fields": ["level"], "tag": "t"}

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ({"version": 2.1, "fields": []}, "'version' must be a string"),
            ({"version": "2.1", "fields": "level"}, "'fields' must be a list"),
            ({"version": "2 1", "fields": []}, "without spaces"),
            ({"version": "2.1", "fields": ["a b"]}, "field name 'a b'"),
            ({"version": "2.1", "fields": ["level", "level"]}, "appears twice"),
            ({"version": "2.1", "fields": ["msg"]}, "appears twice"),
        ],
    )
    def test_bad_definitions(self, entry: dict[str, object], message: str) -> None:
        """If a streamlog_formats entry is malformed, then the error names the problem."""
        with pytest.raises(FormatDefinitionError, match=message):
            StreamlogFormat.from_logtail(entry)


class TestBadLines:
    def test_unknown_version(self) -> None:
        """If the version is unknown, then the whole line is kept as _content_ and flagged."""
        r = parse(b"9.9 t 1 1.1.1.1 x")
        assert r["flags"] == ["parse-error"]
        assert r["fields"]["_content_"] == "9.9 t 1 1.1.1.1 x"  # type: ignore[index]
        assert "unknown streamlog version '9.9'" in r["error"]  # type: ignore[operator]

    def test_too_few_columns(self) -> None:
        """If a line lacks columns, then it is kept whole and flagged."""
        r = parse(b"0.1 t 1 1.1.1.1 h")
        assert r["flags"] == ["parse-error"]
        assert r["time"] == RECEIVED // 10**9
        assert r["time_ns"] == RECEIVED % 10**9

    def test_bad_timestamp(self) -> None:
        """If the timestamp column is not a number, then the fields are kept, timed at receipt, flagged."""
        r = parse(b"0.1 t yesterday 1.1.1.1 h p 0 a - - m")
        assert r["flags"] == ["bad-timestamp"]
        assert r["time"] == RECEIVED // 10**9
        assert r["fields"]["msg"] == "m"  # type: ignore[index]

    @pytest.mark.parametrize("ts", ["yesterday", "99999999999", "-5", ""])
    def test_bad_timestamp_text_is_kept(self, ts: str) -> None:
        """If the timestamp column cannot be read, then its text is kept in _raw_timestamp_, after msg."""
        r = parse(f"0.1 t {ts} 1.1.1.1 h p 0 a - - m".encode())
        assert r["flags"] == ["bad-timestamp"]
        assert list(r["fields"].items())[-2:] == [("msg", "m"), ("_raw_timestamp_", ts)]  # type: ignore[attr-defined]

    def test_raw_timestamp_keys_are_shared(self) -> None:
        """If several lines of one layout have bad timestamps, then their records share one keys tuple."""
        parser = StreamlogParser()
        a = parser.parse(b"0.1 t x 1.1.1.1 h p 0 a - - m", PEER, RECEIVED)
        b = parser.parse(b"0.1 t y 1.1.1.1 h p 0 a - - n", PEER, RECEIVED)
        assert a.keys is b.keys

    @pytest.mark.parametrize("end", [b"\0", b"\r", b"\r\0"])
    def test_frame_end_is_not_msg(self, end: bytes) -> None:
        """If a line ends with NUL, CR or CR NUL, then msg does not hold them."""
        r = parse(b"0.1 t 1 1.1.1.1 h p 1 a - - m" + end)
        assert r["fields"]["msg"] == "m"  # type: ignore[index]
        assert r["flags"] == []

    def test_invalid_utf8(self) -> None:
        """If the line is not UTF-8, then bad bytes become U+FFFD and the record is flagged."""
        r = parse(b"0.1 t 1 1.1.1.1 h p 0 a - - caf\xe9")
        assert r["flags"] == ["invalid-utf8"]
        assert r["fields"]["msg"] == "caf\ufffd"  # type: ignore[index]

    def test_bad_option(self) -> None:
        """If leading_space is not a known choice, then construction says so."""
        with pytest.raises(FormatDefinitionError, match="leading_space"):
            StreamlogParser(leading_space="trim")  # type: ignore[arg-type]
