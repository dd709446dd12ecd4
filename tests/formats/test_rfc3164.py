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


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAY_S = 86_400


def stamp_of(when: dt.datetime) -> bytes:
    """``Mmm dd hh:mm:ss`` of a wall time, day space-padded, as BSD syslog writes it."""
    return f"{MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}".encode()


def dated(stamp: bytes, received: str, **options: object) -> tuple[str, list[str]]:
    """(the record time as ISO 8601 in UTC, flags) of ``<13>stamp h a: m`` received at ``received``."""
    r = parse(b"<13>" + stamp + b" h a: m", at(received), **options)
    return dt.datetime.fromtimestamp(r["time"], dt.UTC).isoformat(), r["flags"]  # type: ignore[arg-type, return-value]


class TestYearRule:
    """The latest year that puts the time at most the tolerance (default 2 days) after the receive time."""

    def test_new_year_crossing(self) -> None:
        """If 'Dec 31 23:59:59' is received on 1 January, then it is dated the old year."""
        assert dated(b"Dec 31 23:59:59", "2027-01-01T00:00:10+00:00") == ("2026-12-31T23:59:59+00:00", [])

    def test_early_january_seen_in_december(self) -> None:
        """If 'Jan  1 00:00:05' arrives on 31 December 23:59:58 (7 s ahead, within tolerance), then it is the new year."""
        assert dated(b"Jan  1 00:00:05", "2026-12-31T23:59:58+00:00") == ("2027-01-01T00:00:05+00:00", [])

    def test_never_next_may(self) -> None:
        """If 'May  1' is received on 6 December, then it is this year's May (flagged: 7 months old), never next May."""
        assert dated(b"May  1 12:00:01", "2026-12-06T10:00:00+00:00") == ("2026-05-01T12:00:01+00:00", ["uncertain-year"])

    def test_clock_reset_to_january(self) -> None:
        """If a device whose clock was reset sends 'Jan  1 00:00:05' in December, then it is this January, flagged."""
        assert dated(b"Jan  1 00:00:05", "2026-12-06T10:00:00+00:00") == ("2026-01-01T00:00:05+00:00", ["uncertain-year"])

    def test_same_year(self) -> None:
        """If a recent date is received, then it is the receive year and not flagged."""
        assert parse(b"<13>Nov 21 10:00:00 h a: m")["time"] == epoch("2026-11-21T10:00:00+00:00")
        assert parse(b"<13>Nov 21 10:00:00 h a: m")["flags"] == []

    @pytest.mark.parametrize("month", range(1, 13))
    def test_every_month_boundary(self, month: int) -> None:
        """If a stamp is a few seconds either side of a month's end, then it keeps its month's year;
        a stamp more than the tolerance ahead goes a year back."""
        year = 2026
        next_month = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=dt.UTC)
        last_second = next_month - dt.timedelta(seconds=1)
        after = (next_month + dt.timedelta(seconds=10)).isoformat()
        before = (next_month - dt.timedelta(seconds=2)).isoformat()
        # Received just after the boundary: the month that ended is not in the future.
        assert dated(stamp_of(last_second), after) == (last_second.isoformat(), [])
        # Received just before it: the next month's first seconds are within the tolerance.
        first = next_month + dt.timedelta(seconds=5)
        assert dated(stamp_of(first), before) == (first.isoformat(), [])
        # Three days ahead of the clock is past the tolerance: the year before.
        ahead = next_month + dt.timedelta(days=3)
        assert dated(stamp_of(ahead), before) == (ahead.replace(year=ahead.year - 1).isoformat(), ["uncertain-year"])

    @pytest.mark.parametrize("month", range(1, 13))
    def test_clock_at_1_january(self, month: int) -> None:
        """If the clock reads 1 January 00:00:30, then every date of the year gone is last year's,
        and the first two days of January this year's."""
        received = "2027-01-01T00:00:30+00:00"
        assert dated(f"{MONTHS[month - 1]} 15 08:00:00".encode(), received)[0] == f"2026-{month:02d}-15T08:00:00+00:00"
        assert dated(b"Jan  2 23:00:00", received)[0] == "2027-01-02T23:00:00+00:00"
        assert dated(b"Jan  3 00:00:31", received)[0] == "2026-01-03T00:00:31+00:00"

    @pytest.mark.parametrize("month", range(1, 13))
    def test_clock_at_31_december(self, month: int) -> None:
        """If the clock reads 31 December 23:59:30, then every date of the year is this year's,
        and the first day of January next year's."""
        received = "2026-12-31T23:59:30+00:00"
        assert dated(f"{MONTHS[month - 1]} 15 08:00:00".encode(), received)[0] == f"2026-{month:02d}-15T08:00:00+00:00"
        assert dated(b"Dec 31 23:59:59", received)[0] == "2026-12-31T23:59:59+00:00"
        assert dated(b"Jan  1 00:00:00", received)[0] == "2027-01-01T00:00:00+00:00"
        assert dated(b"Jan  2 23:59:30", received)[0] == "2027-01-02T23:59:30+00:00"
        assert dated(b"Jan  2 23:59:31", received)[0] == "2026-01-02T23:59:31+00:00"

    @pytest.mark.parametrize(
        ("received", "want"),
        [
            ("2028-03-01T00:00:00+00:00", "2028-02-29T12:00:00+00:00"),  # just past: this year's
            ("2028-02-28T13:00:00+00:00", "2028-02-29T12:00:00+00:00"),  # 23 hours ahead: within tolerance
            ("2028-02-26T12:00:00+00:00", "2024-02-29T12:00:00+00:00"),  # 3 days ahead: the leap year before
            ("2029-01-10T00:00:00+00:00", "2028-02-29T12:00:00+00:00"),
            ("2027-03-01T00:00:00+00:00", "2024-02-29T12:00:00+00:00"),
            ("2104-01-10T00:00:00+00:00", "2096-02-29T12:00:00+00:00"),  # 2100 is not a leap year
        ],
    )
    def test_feb_29(self, received: str, want: str) -> None:
        """If 'Feb 29' has no year, then it is the latest leap year that fits the rule."""
        assert dated(b"Feb 29 12:00:00", received)[0] == want

    def test_default_zone(self) -> None:
        """If the default zone is Tokyo, then the New Year that counts is Tokyo's."""
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        # 2026-12-31T15:00:10Z is 1 January 00:00:10 in Tokyo: Tokyo's Dec 31 is the old year.
        assert dated(b"Dec 31 23:59:59", "2026-12-31T15:00:10+00:00", default_tz=tokyo)[0] == "2026-12-31T14:59:59+00:00"
        # 2026-12-31T14:59:58Z is 31 December 23:59:58 in Tokyo: Tokyo's Jan 1 is 7 s ahead.
        assert dated(b"Jan  1 00:00:05", "2026-12-31T14:59:58+00:00", default_tz=tokyo)[0] == "2026-12-31T15:00:05+00:00"

    def test_zone_decides_the_year(self) -> None:
        """If the same stamp and clock are read in two zones, then the tolerance counts in real time, not wall time."""
        los_angeles = zoneinfo.ZoneInfo("America/Los_Angeles")
        # Jan  1 20:00 is 44 h after 2026-12-31T00:00Z in UTC (within 2 days), 52 h after in Los Angeles (past it).
        assert dated(b"Jan  1 20:00:00", "2026-12-31T00:00:00+00:00")[0] == "2027-01-01T20:00:00+00:00"
        assert dated(b"Jan  1 20:00:00", "2026-12-31T00:00:00+00:00", default_tz=los_angeles)[0] == "2026-01-02T04:00:00+00:00"

    def test_dst_fall_back(self) -> None:
        """If a stamp falls in the hour that repeats when clocks go back, then its first reading is used."""
        new_york = zoneinfo.ZoneInfo("America/New_York")
        assert dated(b"Nov  1 01:30:00", "2026-11-02T12:00:00+00:00", default_tz=new_york)[0] == "2026-11-01T05:30:00+00:00"

    def test_tolerance_parameter(self) -> None:
        """If the tolerance is 0, then a stamp 7 s ahead goes a year back; if 10 days, then 9 days ahead stays."""
        assert dated(b"Jan  1 00:00:05", "2026-12-31T23:59:58+00:00", future_tolerance_s=0)[0] == "2026-01-01T00:00:05+00:00"
        assert dated(b"Jan  9 00:00:00", "2026-12-31T00:00:00+00:00", future_tolerance_s=10 * DAY_S)[0] == (
            "2027-01-09T00:00:00+00:00"
        )

    def test_uncertain_year_threshold(self) -> None:
        """If the chosen time is more than the age threshold (default 30 days) old, then uncertain-year is set."""
        assert dated(b"Oct 23 05:00:00", "2026-11-22T05:00:00+00:00")[1] == []  # exactly 30 days
        assert dated(b"Oct 23 04:59:59", "2026-11-22T05:00:00+00:00")[1] == ["uncertain-year"]
        assert dated(b"Nov 21 05:00:00", "2026-11-22T05:00:00+00:00", uncertain_year_age_s=3600)[1] == ["uncertain-year"]

    def test_year_sent_is_never_uncertain(self) -> None:
        """If the stamp carries its year, then it is used as sent and never flagged, however old."""
        assert dated(b"Mar  1 2019 10:11:12", "2026-11-22T05:00:00+00:00") == ("2019-03-01T10:11:12+00:00", [])

    def test_flag_on_the_general_path(self) -> None:
        """If an old yearless stamp comes in a line the fast path does not read, then it is flagged all the same."""
        r = parse(b"Jan  5 10:00:00.25 h a: m", at("2026-12-06T10:00:00+00:00"))
        assert r["flags"] == ["uncertain-year"]
        assert (r["time"], r["time_ns"]) == (epoch("2026-01-05T10:00:00+00:00"), 250_000_000)

    def test_cache_holds_only_while_the_answer_does(self) -> None:
        """If one parser sees the same text at receive times on both sides of a year change, in any order,
        then each gets the year a fresh parser gives."""
        p = Rfc3164Parser()
        frame = b"<13>Jan  1 00:00:05 h a: m"
        times = ["2026-12-29T23:59:00+00:00", "2026-12-30T00:00:06+00:00", "2026-12-30T00:00:04+00:00",
                 "2027-01-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00", "2027-12-30T00:00:05+00:00"]
        for received in times + times[::-1]:
            assert p.parse(frame, PEER, at(received)) == Rfc3164Parser().parse(frame, PEER, at(received)), received

    def test_unrepresentable_year(self) -> None:
        """If the rule's year is before 1970 (a clock at the epoch), then the stamp is unreadable, kept as sent."""
        r = parse(b"<13>Nov 14 22:13:20 h a: m", 0)
        assert r["flags"] == ["bad-timestamp"] and r["time"] == 0
        assert r["fields"]["_raw_timestamp_"] == "Nov 14 22:13:20"  # type: ignore[index]

    @pytest.mark.parametrize("bad", [-1, 300 * DAY_S])
    def test_settings_checked(self, bad: int) -> None:
        """If the tolerance is negative or 300 days or more, then the parser is refused at construction."""
        with pytest.raises(ValueError, match="future_tolerance_s"):
            Rfc3164Parser(future_tolerance_s=bad)


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
        r = parse(pri + b"Nov 21 22:14:15 h a: m")
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
