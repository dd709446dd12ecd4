"""RFC 3164 messages, as lenient as real devices need."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from formats.rfc3164 import Rfc3164Parser

PEER = "192.0.2.50"


def at(text: str) -> int:
    """Receive time (ns) of an ISO 8601 instant."""
    return int(dt.datetime.fromisoformat(text).timestamp()) * 10**9


def epoch(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


NOV_2026 = at("2026-11-22T05:00:00+00:00")


def parse(frame: bytes, received: int = NOV_2026, **options: object) -> dict[str, object]:
    return Rfc3164Parser(**options).parse(frame, PEER, received).to_dict()  # type: ignore[arg-type]


def fields(frame: bytes, received: int = NOV_2026, **options: object) -> dict[str, str]:
    return parse(frame, received, **options)["fields"]  # type: ignore[return-value]


class TestLogtailFacts:
    def test_hostname_program(self) -> None:
        """If Logtail's first test line is parsed, then host, program, PRI and content match."""
        r = parse(b"<60>Oct 09 14:36:47 hostname program: message")
        assert r["fields"] == {
            "_program_": "program",
            "_priority_": "60",
            "_facility_": "7",
            "_severity_": "4",
            "_unixtimestamp_": str(epoch("2026-10-09T14:36:47+00:00") * 10**9),
            "_hostname_": "hostname",
            "_client_ip_": PEER,
            "_content_": "message",
        }
        assert r["time"] == epoch("2026-10-09T14:36:47+00:00")

    def test_su(self) -> None:
        """If Logtail's su line is parsed, then pri 86 is facility 10 severity 6 and program su."""
        f = fields(b"<86>Jul 31 13:14:22 rs1e13316 su: pam_unix(su-l:session): session opened")
        assert (f["_priority_"], f["_facility_"], f["_severity_"]) == ("86", "10", "6")
        assert f["_program_"] == "su"
        assert f["_hostname_"] == "rs1e13316"
        assert f["_content_"] == "pam_unix(su-l:session): session opened"


class TestYearInference:
    def test_new_year_crossing(self) -> None:
        """If 'Dec 31 23:59:59' is received on 1 January, then it is dated the old year."""
        r = parse(b"<13>Dec 31 23:59:59 h app: m", at("2027-01-01T00:00:05+00:00"))
        assert r["time"] == epoch("2026-12-31T23:59:59+00:00")

    def test_early_january_seen_in_december(self) -> None:
        """If 'Jan  1 00:00:01' arrives on 31 December (sender clock ahead), then it is the new year."""
        r = parse(b"<13>Jan  1 00:00:01 h app: m", at("2026-12-31T23:59:58+00:00"))
        assert r["time"] == epoch("2027-01-01T00:00:01+00:00")

    def test_same_year(self) -> None:
        """If a recent date is received, then it is the receive year."""
        assert parse(b"<13>Nov 21 10:00:00 h a: m")["time"] == epoch("2026-11-21T10:00:00+00:00")

    def test_cache_does_not_leak_across_days(self) -> None:
        """If one parser sees the same text on different receive days, then each gets its own year."""
        p = Rfc3164Parser()
        frame = b"<13>Dec 31 23:59:59 h a: m"
        old = p.parse(frame, PEER, at("2027-01-01T00:00:05+00:00")).time
        new = p.parse(frame, PEER, at("2027-12-31T23:59:59+00:00")).time
        assert (old, new) == (epoch("2026-12-31T23:59:59+00:00"), epoch("2027-12-31T23:59:59+00:00"))

    def test_feb_29(self) -> None:
        """If 'Feb 29' is received in a non-leap year, then the nearest leap year is chosen."""
        r = parse(b"<13>Feb 29 12:00:00 h a: m", at("2029-01-10T00:00:00+00:00"))
        assert r["time"] == epoch("2028-02-29T12:00:00+00:00")


class TestTimestamps:
    def test_single_digit_day(self) -> None:
        """If the day is space-padded ('Jan  2'), then it reads as day 2."""
        assert parse(b"<34>Jan  2 03:04:05 host2 - nil fields msg", at("2026-01-10T00:00:00+00:00"))[
            "time"
        ] == epoch("2026-01-02T03:04:05+00:00")

    def test_year_after_day(self) -> None:
        """If a Cisco-style year follows the day, then it is used instead of inference."""
        r = parse(b"<189>Mar 01 2019 10:11:12: %LINK-3-UPDOWN: down")
        assert r["time"] == epoch("2019-03-01T10:11:12+00:00")
        f = r["fields"]
        assert (f["_hostname_"], f["_program_"], f["_content_"]) == (PEER, "%LINK-3-UPDOWN", "down")  # type: ignore[index]

    def test_cisco_asa_colon_after_hostname(self) -> None:
        """If an ASA puts ' : ' between hostname and TAG, then the TAG is still found."""
        f = fields(b"<166>Jan 01 2024 00:00:00 fw01 : %ASA-6-302013: Built inbound")
        assert (f["_hostname_"], f["_program_"], f["_content_"]) == ("fw01", "%ASA-6-302013", "Built inbound")

    def test_year_after_time(self) -> None:
        """If a year follows the time, then it is used."""
        r = parse(b"<13>Mar  1 10:11:12 2019 host app: m")
        assert r["time"] == epoch("2019-03-01T10:11:12+00:00")
        assert r["fields"]["_hostname_"] == "host"  # type: ignore[index]

    def test_fraction(self) -> None:
        """If the classic timestamp has milliseconds, then they are kept."""
        assert parse(b"<13>Mar  1 10:11:12.345 host app: m")["time_ns"] == 345_000_000

    def test_iso_without_zone_loggen(self) -> None:
        """If loggen sends ISO 8601 without a zone, then it is read in the default zone."""
        r = parse(b"<38>2026-11-22T05:15:13 localhost prg00000[1234]: seq: 1")
        assert r["time"] == epoch("2026-11-22T05:15:13+00:00")
        f = r["fields"]
        assert (f["_program_"], f["_process_id_"], f["_hostname_"]) == ("prg00000", "1234", "localhost")  # type: ignore[index]

    def test_iso_with_zone(self) -> None:
        """If RSYSLOG_ForwardFormat sends ISO 8601 with an offset, then the offset applies."""
        r = parse(b"<34>2024-01-02T03:04:05.678+08:00 host2 - nil fields msg")
        assert r["time"] == epoch("2024-01-01T19:04:05+00:00")
        assert r["time_ns"] == 678_000_000

    def test_default_zone(self) -> None:
        """If a default zone is set, then classic timestamps are wall time there."""
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        r = parse(b"<13>Nov 22 09:00:00 h a: m", default_tz=tokyo)
        assert r["time"] == epoch("2026-11-22T00:00:00+00:00")

    def test_impossible_date(self) -> None:
        """If the timestamp is not a date ('Feb 30'), then the record is timed at receipt and flagged."""
        r = parse(b"<13>Feb 30 10:00:00 h a: m")
        assert r["flags"] == ["bad-timestamp"]
        assert r["time"] == NOV_2026 // 10**9

    @pytest.mark.parametrize(
        ("stamp", "host"),
        [(b"Feb 30 10:00:00", "h"), (b"2026-02-30T10:00:00Z", "h"), (b"Jun 31 2019 10:11:12:", "h")],
    )
    def test_impossible_date_text_is_kept(self, stamp: bytes, host: str) -> None:
        """If the timestamp is not a date, then its text is kept in _raw_timestamp_ and the rest is read as usual."""
        r = parse(b"<13>" + stamp + b" h a[5]: m")
        assert r["flags"] == ["bad-timestamp"]
        f = r["fields"]
        assert list(f.items())[-1] == ("_raw_timestamp_", stamp.decode().rstrip(":"))  # type: ignore[attr-defined]
        assert (f["_hostname_"], f["_program_"], f["_process_id_"], f["_content_"]) == (host, "a", "5", "m")  # type: ignore[index]


class TestHeader:
    def test_no_pri(self) -> None:
        """If there is no PRI, then priority values are -1, never 0 (kernel emergency)."""
        f = fields(b"Oct 11 22:14:15 myhost myapp[123]: hi")
        assert (f["_priority_"], f["_facility_"], f["_severity_"]) == ("-1", "-1", "-1")
        assert (f["_program_"], f["_process_id_"], f["_content_"]) == ("myapp", "123", "hi")

    def test_tag_without_hostname(self) -> None:
        """If the word after the timestamp is a TAG, then there is no hostname and the peer stands in."""
        f = fields(b"<13>Nov 22 05:01:30 myapp: local message")
        assert (f["_hostname_"], f["_program_"], f["_content_"]) == (PEER, "myapp", "local message")

    def test_tag_with_pid_no_colon(self) -> None:
        """If the TAG is 'name[pid]' without colon, then it is still the TAG."""
        f = fields(b"<165>Oct 11 22:14:15 mymachine evntslog[1234] \xef\xbb\xbfAn event")
        assert (f["_program_"], f["_process_id_"], f["_content_"]) == ("evntslog", "1234", "An event")

    def test_word_without_colon_is_content(self) -> None:
        """If the word after the hostname has no colon or pid, then it is content, not a TAG."""
        f = fields(b"<34>Jan  2 03:04:05 host2 nil fields msg")
        assert (f["_program_"], f["_content_"]) == ("", "nil fields msg")

    def test_dash_tag(self) -> None:
        """If the TAG is '-' (rsyslog's absent APP-NAME), then the program is empty."""
        f = fields(b"<34>Jan  2 03:04:05 host2 - nil fields msg")
        assert (f["_program_"], f["_content_"]) == ("", "nil fields msg")

    def test_one_space_after_tag(self) -> None:
        """If content starts with spaces, then only the separator after the TAG is removed."""
        assert fields(b"<14>Oct 11 22:14:15 h myapp:   lead")["_content_"] == "  lead"

    def test_no_timestamp_no_hostname(self) -> None:
        """If there is no timestamp, then no hostname is looked for."""
        f = fields(b"<13>hello world")
        assert (f["_hostname_"], f["_program_"], f["_content_"]) == (PEER, "", "hello world")
        f = fields(b"<13>app: hello")
        assert (f["_program_"], f["_content_"]) == ("app", "hello")

    def test_bad_pri(self) -> None:
        """If the PRI is malformed, then the record is flagged and the text kept."""
        r = parse(b"<abc>Oct 11 22:14:15 h a: m")
        assert r["flags"] == ["bad-pri"]
        assert r["fields"]["_content_"] == "<abc>Oct 11 22:14:15 h a: m"  # type: ignore[index]

    @pytest.mark.parametrize("pri", [b"<192>", b"<999>"])
    def test_pri_out_of_range(self, pri: bytes) -> None:
        """If the PRI is over 191, then priority values are -1 and the record is flagged."""
        r = parse(pri + b"Oct 11 22:14:15 h a: m")
        assert r["flags"] == ["bad-pri"]
        assert r["fields"]["_program_"] == "a"  # type: ignore[index]
        assert list(r["fields"].items())[-1] == ("_raw_pri_", pri.decode()[1:-1])  # type: ignore[attr-defined]

    @pytest.mark.parametrize("end", [b"\0", b"\r", b"\r\0"])
    def test_frame_end_is_not_content(self, end: bytes) -> None:
        """If a frame ends with NUL, CR or CR NUL (Python's handler, CRLF senders), then _content_ does not hold them."""
        assert fields(b"<13>Oct 11 22:14:15 h a: m" + end)["_content_"] == "m"
        assert fields(b"<14>pyapp[7]: m" + end)["_content_"] == "m"
        assert fields(b"<14>Oct 11 22:14:15 h" + end)["_hostname_"] == "h"

    def test_ipv6_hostname(self) -> None:
        """If the hostname is an IPv6 address, then it is read whole."""
        assert fields(b"<13>Oct 11 22:14:15 2001:db8::1 app: m")["_hostname_"] == "2001:db8::1"
