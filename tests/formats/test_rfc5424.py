"""RFC 5424 messages: the RFC's own examples, Logtail's test facts, and the edges."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest

from formats.rfc5424 import Rfc5424Parser, parse_structured_data

PEER = "2001:db8::7"
RECEIVED = 1_800_000_000_000_000_000


def epoch(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


def parse(frame: bytes, **options: object) -> dict[str, object]:
    return Rfc5424Parser(**options).parse(frame, PEER, RECEIVED).to_dict()  # type: ignore[arg-type]


def fields(frame: bytes, **options: object) -> dict[str, str]:
    return parse(frame, **options)["fields"]  # type: ignore[return-value]


class TestRfcExamples:
    """RFC 5424 section 6.5."""

    def test_example_1_no_structured_data(self) -> None:
        """If PROCID and SD are NIL and MSG has a BOM, then they are absent and the BOM is gone."""
        r = parse(
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
            b"\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"
        )
        assert r["time"] == epoch("2003-10-11T22:14:15+00:00")
        assert r["time_ns"] == 3_000_000
        assert r["fields"] == {
            "_program_": "su",
            "_priority_": "34",
            "_facility_": "4",
            "_severity_": "2",
            "_unixtimestamp_": str(epoch("2003-10-11T22:14:15+00:00") * 10**9 + 3_000_000),
            "_hostname_": "mymachine.example.com",
            "_client_ip_": PEER,
            "_content_": "'su root' failed for lonvick on /dev/pts/8",
            "_message_id_": "ID47",
        }
        assert r["source"] == PEER
        assert r["flags"] == []

    def test_example_2_offset_and_microseconds(self) -> None:
        """If the time has an offset and microseconds, then both are kept to the nanosecond."""
        r = parse(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
            b"%% It's time to make the do-nuts."
        )
        assert r["time"] == epoch("2003-08-24T12:14:15+00:00")
        assert r["time_ns"] == 3000
        f = r["fields"]
        assert f["_process_id_"] == "8710"  # type: ignore[index]
        assert "_message_id_" not in f  # type: ignore[operator]
        assert f["_content_"] == "%% It's time to make the do-nuts."  # type: ignore[index]
        assert f["_facility_"] == "20" and f["_severity_"] == "5"  # type: ignore[index]

    def test_example_3_structured_data(self) -> None:
        """If SD has one element with three params, then it is JSON in the sender's order."""
        f = fields(
            b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
            b"\xef\xbb\xbfAn application event log entry..."
        )
        assert f["_structured_data_"] == (
            '{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"}}'
        )
        assert f["_content_"] == "An application event log entry..."

    def test_example_4_two_elements_no_msg(self) -> None:
        """If SD has two elements and there is no MSG, then both elements are kept and content is empty."""
        f = fields(
            b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            b'[examplePriority@32473 class="high"]'
        )
        assert json.loads(f["_structured_data_"]) == {
            "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
            "examplePriority@32473": {"class": "high"},
        }
        assert f["_content_"] == ""


class TestLogtailFacts:
    """plugins/input/syslog/parser_test.go of ilogtail."""

    def test_origin_and_meta(self) -> None:
        """If SD has an empty element and a second one, then both appear, and PROCID/MSGID are kept."""
        f = fields(
            b'<29>1 2016-02-21T04:32:57+00:00 web1 someservice 2341 2 [origin][meta sequence="14125553" '
            b'service="someservice"] "GET /v1/ok HTTP/1.1" 200 145 "-" "hacheck 0.9.0" 24306 127.0.0.1:40124 575'
        )
        assert f["_process_id_"] == "2341"
        assert f["_message_id_"] == "2"
        assert json.loads(f["_structured_data_"]) == {
            "origin": {},
            "meta": {"sequence": "14125553", "service": "someservice"},
        }
        assert (f["_priority_"], f["_facility_"], f["_severity_"]) == ("29", "3", "5")
        assert f["_content_"].startswith('"GET /v1/ok')

    def test_procid_absent(self) -> None:
        """If PROCID is NIL, then _process_id_ is absent and MSGID is ID47."""
        f = fields(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed")
        assert "_process_id_" not in f
        assert f["_message_id_"] == "ID47"


class TestStructuredData:
    def test_escapes(self) -> None:
        r"""If PARAM-VALUEs escape '"', '\' and ']', then the JSON holds the plain characters."""
        f = fields(b'<13>1 - h a - - [x@1 q="say \\"hi\\"" b="back\\\\slash" r="close\\]"] m')
        assert json.loads(f["_structured_data_"]) == {
            "x@1": {"q": 'say "hi"', "b": "back\\slash", "r": "close]"}
        }
        assert f["_content_"] == "m"

    def test_other_backslashes_kept(self) -> None:
        r"""If a backslash precedes another character, then both are kept (RFC 5424 6.3.3)."""
        assert json.loads(parse_structured_data('[a b="c:\\d"]')) == {"a": {"b": "c:\\d"}}

    def test_bracket_inside_value(self) -> None:
        """If a value holds an unescaped ']', then the lenient parser still reads the element."""
        f = fields(b'<13>1 - h a - - [a b="x]y"] m')
        assert json.loads(f["_structured_data_"]) == {"a": {"b": "x]y"}}

    def test_repeated_param(self) -> None:
        """If a PARAM-NAME repeats in one element, then its values become a list."""
        assert json.loads(parse_structured_data('[origin ip="10.0.0.1" ip="10.0.0.2"]')) == {
            "origin": {"ip": ["10.0.0.1", "10.0.0.2"]}
        }

    def test_unicode_value(self) -> None:
        """If a value is UTF-8, then the JSON keeps it unescaped."""
        f = fields('<13>1 - h a - - [a b="héllo 日本"] m'.encode())
        assert f["_structured_data_"] == '{"a":{"b":"héllo 日本"}}'

    def test_malformed_is_kept_and_flagged(self) -> None:
        """If SD is malformed, then it stays in _content_ and the record is flagged."""
        r = parse(b'<13>1 - h a - - [a b="unterminated] m')
        assert r["flags"] == ["bad-structured-data"]
        assert r["fields"]["_content_"] == '[a b="unterminated] m'  # type: ignore[index]
        assert "_structured_data_" not in r["fields"]  # type: ignore[operator]

    def test_sd_cache_returns_same_json(self) -> None:
        """If the same SD repeats (logger, loggen), then every record gets the same JSON."""
        p = Rfc5424Parser()
        frame = b'<13>1 - h a - - [timeQuality tzKnown="1" isSynced="0"] m'
        a = p.parse(frame, PEER, RECEIVED).get("_structured_data_")
        b = p.parse(frame, PEER, RECEIVED).get("_structured_data_")
        assert a == b == '{"timeQuality":{"tzKnown":"1","isSynced":"0"}}'


class TestNilValuesAndLeniency:
    def test_all_nil(self) -> None:
        """If every header field is NIL, then time is receipt, host is the peer, program empty."""
        r = parse(b"<13>1 - - - - - - hello")
        assert r["time"] == RECEIVED // 10**9
        f = r["fields"]
        assert f["_hostname_"] == PEER and f["_program_"] == ""  # type: ignore[index]
        assert f["_content_"] == "hello"  # type: ignore[index]
        assert "_structured_data_" not in f  # type: ignore[operator]

    def test_ipv6_peer_is_whole(self) -> None:
        """If the peer is IPv6, then _client_ip_ holds the whole address (Logtail cut it at ':')."""
        assert fields(b"<13>1 - - - - - - m")["_client_ip_"] == PEER

    def test_short_header(self) -> None:
        """If the header stops early, then the lenient parser fills NILs."""
        r = parse(b"<13>1 2026-10-11T22:14:15Z host")
        assert r["fields"]["_hostname_"] == "host"  # type: ignore[index]
        assert r["flags"] == []

    def test_msg_without_sd(self) -> None:
        """If a sender omits STRUCTURED-DATA, then lenient reads the rest as MSG."""
        assert fields(b"<13>1 - h a - - just text")["_content_"] == "just text"
        assert fields(b"<13>1 - h a - id just text")["_content_"] == "just text"

    def test_nine_fraction_digits(self) -> None:
        """If the fraction has nine digits, then lenient keeps the nanoseconds."""
        assert parse(b"<13>1 2026-01-01T00:00:00.123456789Z h a - - - m")["time_ns"] == 123456789

    def test_time_without_offset_in_default_zone(self) -> None:
        """If a timestamp lacks an offset, then it is read in the configured zone."""
        shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
        r = parse(b"<13>1 2026-01-01T08:00:00 h a - - - m", default_tz=shanghai)
        assert r["time"] == epoch("2026-01-01T00:00:00+00:00")

    def test_bad_timestamp(self) -> None:
        """If the timestamp is not a time, then the record is kept at receipt time and flagged."""
        r = parse(b"<13>1 2026-13-45T99:00:00Z h a - - - m")
        assert r["flags"] == ["bad-timestamp"]
        assert r["time"] == RECEIVED // 10**9

    def test_bad_timestamp_text_is_kept(self) -> None:
        """If the timestamp cannot be read, then its text is kept in _raw_timestamp_, the last field."""
        r = parse(b"<13>1 2026-13-45T99:00:00Z h a 12 ID [x@1 k=\"v\"] m")
        assert list(r["fields"].items())[-1] == ("_raw_timestamp_", "2026-13-45T99:00:00Z")  # type: ignore[attr-defined]
        assert r["fields"]["_process_id_"] == "12"  # type: ignore[index]

    def test_pri_out_of_range(self) -> None:
        """If PRI is over 191, then priority values are -1 and the record is flagged."""
        r = parse(b"<200>1 - h a - - - m")
        assert r["flags"] == ["bad-pri"]
        assert r["fields"]["_priority_"] == "-1"  # type: ignore[index]

    def test_pri_out_of_range_text_is_kept(self) -> None:
        """If PRI is over 191, then the number as sent is kept in _raw_pri_, before a kept timestamp."""
        r = parse(b"<200>1 yesterday h a - - - m")
        assert r["flags"] == ["bad-pri", "bad-timestamp"]
        assert list(r["fields"].items())[-2:] == [("_raw_pri_", "200"), ("_raw_timestamp_", "yesterday")]  # type: ignore[attr-defined]

    def test_raw_keys_are_shared(self) -> None:
        """If several records have bad timestamps, then they share one keys tuple (encoders reuse layouts by it)."""
        p = Rfc5424Parser()
        a = p.parse(b"<13>1 x h a - - - m", PEER, RECEIVED)
        b = p.parse(b"<13>1 y h a - - - n", PEER, RECEIVED)
        assert a.keys is b.keys

    @pytest.mark.parametrize("end", [b"\0", b"\r", b"\r\0"])
    def test_frame_end_is_not_content(self, end: bytes) -> None:
        """If a frame ends with NUL, CR or CR NUL (Python's handler, CRLF senders), then _content_ does not hold them."""
        assert fields(b"<13>1 - h a - - - m" + end)["_content_"] == "m"
        assert fields(b'<13>1 - h a - - [x@1 k="v"]' + end)["_structured_data_"] == '{"x@1":{"k":"v"}}'

    def test_not_5424_at_all(self) -> None:
        """If the frame has no PRI, then it is kept whole as _content_ with parse-error."""
        r = parse(b"hello")
        assert r["flags"] == ["parse-error"]
        assert r["fields"]["_content_"] == "hello"  # type: ignore[index]
        assert r["fields"]["_priority_"] == "-1"  # type: ignore[index]


class TestStrict:
    @pytest.mark.parametrize(
        ("frame", "reason"),
        [
            (b"<013>1 - h a - - - m", "leading zeros"),
            (b"<13>2 - h a - - - m", "VERSION"),
            (b"<13>1 2026-01-01T00:00:00 h a - - - m", "TIMESTAMP"),
            (b"<13>1 2026-01-01T00:00:00.1234567Z h a - - - m", "TIMESTAMP"),
            (b"<13>1 - h " + b"a" * 49 + b" - - - m", "APP-NAME"),
            (b"<13>1 - h a - " + b"m" * 33 + b" - m", "MSGID"),
            (b"<13>1 - h a - - [a  b=\"c\"] m", "STRUCTURED-DATA"),
            (b"<13>1 - h a - - just text", "STRUCTURED-DATA"),
            (b"<13>1 - h a - -", "seven fields"),
            (b"<13>1 - h a - - -m", "NILVALUE"),
        ],
    )
    def test_violations_are_parse_errors(self, frame: bytes, reason: str) -> None:
        """If strict mode meets a violation of the grammar, then the record is a parse error naming it."""
        r = parse(frame, strict=True)
        assert r["flags"] == ["parse-error"]
        assert reason in r["error"]  # type: ignore[operator]

    def test_valid_message_passes(self) -> None:
        """If a message follows the RFC, then strict mode reads it like lenient mode."""
        frame = b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [a@1 b="c"] m'
        assert parse(frame, strict=True) == parse(frame)
