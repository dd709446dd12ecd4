"""Network devices' dialects inside RFC 3164: Cisco IOS, NX-OS and ASA, Huawei and H3C.

Where the samples come from (texts copied from the vendors' documentation,
framed as the devices send them over syslog):

- IOS: the "Configuring System Message Logging" chapter of the Cisco Catalyst
  and Aironet software configuration guides, whose examples are
  ``*Mar 1 18:46:11: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)``,
  ``*Mar 1 18:48:50.483 UTC: %SYS-5-CONFIG_I: ...`` and
  ``00:00:46: %LINK-3-UPDOWN: Interface Port-channel1, changed state to up``;
  the message texts of %LINK-3-UPDOWN and %SEC-6-IPACCESSLOGP as the Cisco
  IOS System Message Guide gives them.
- NX-OS: the capture in the napalm-logs documentation (syslog/nxos),
  ``<190>sw01.pdx01: 2017 Jul 28 14:42:46 UTC: %AUTHPRIV-6-SYSTEM_MSG: ...``.
- ASA: the Cisco ASA Series Syslog Messages guide, message 302013 (Built
  outbound TCP connection) and 106023 (Deny ... by access-group), the header
  as ``logging timestamp`` and ``logging device-id hostname`` make it.
- Huawei VRP: the log reference's SHELL/5/CMDRECORD; H3C Comware: the system
  log messages reference's SHELL/6/SHELL_CMD.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.cisco import read_code, zone_of
from formats.parse import make_parser
from formats.rfc3164 import Rfc3164Parser

PEER = "192.0.2.1"
RECEIVED = int(dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC).timestamp()) * 10**9
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


def parse(frame: bytes, received: int = RECEIVED, **options: object) -> dict[str, object]:
    return Rfc3164Parser(**options).parse(frame, PEER, received).to_dict()  # type: ignore[arg-type]


def device_fields(record: dict[str, object]) -> dict[str, str]:
    fields = record["fields"]
    assert isinstance(fields, dict)
    return {k: v for k, v in fields.items() if k.startswith("_device_")}


class TestIos:
    def test_counter_mark_and_milliseconds(self) -> None:
        """If IOS sends its counter, an unsynced mark and msec, then the time, code and text are each their own field."""
        r = parse(b"<189>1234: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)")
        assert (r["time"], r["time_ns"], r["flags"]) == (utc("2026-03-01T18:46:11"), 123_000_000, [])
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_program_"], f["_hostname_"], f["_content_"], f["_priority_"]) == (
            "%SYS-5-CONFIG_I", PEER, "Configured from console by vty2 (10.34.195.36)", "189",
        )
        assert device_fields(r) == {
            "_device_sequence_": "1234", "_device_clock_mark_": "*",
            "_device_facility_": "SYS", "_device_severity_": "5", "_device_mnemonic_": "CONFIG_I",
        }

    def test_origin_sequence_year_and_utc(self) -> None:
        """If IOS adds origin-id, service sequence-numbers, the year and a UTC zone, then all are read and UTC applies."""
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        r = parse(
            b"<187>29: router1: 000028: Mar  1 2026 18:48:50.483 UTC: %LINK-3-UPDOWN: "
            b"Interface GigabitEthernet0/1, changed state to down",
            default_tz=tokyo,
        )
        assert (r["time"], r["time_ns"]) == (utc("2026-03-01T18:48:50"), 483_000_000)
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_content_"]) == ("router1", "Interface GigabitEthernet0/1, changed state to down")
        assert device_fields(r) == {
            "_device_sequence_": "29 000028", "_device_timezone_": "UTC",
            "_device_facility_": "LINK", "_device_severity_": "3", "_device_mnemonic_": "UPDOWN",
        }

    def test_zone_that_could_mean_several_is_kept_not_applied(self) -> None:
        """If the zone name is not one that means one thing ('CET' is whatever clock timezone says), then the default zone applies."""
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        r = parse(b"<189>5: .Mar  1 18:46:11 CET: %SEC-6-IPACCESSLOGP: list 101 denied tcp 10.0.0.1(1234) -> "
                  b"10.0.0.2(80), 1 packet", default_tz=tokyo)
        assert r["time"] == utc("2026-03-01T09:46:11")
        assert device_fields(r)["_device_timezone_"] == "CET"
        assert device_fields(r)["_device_clock_mark_"] == "."

    def test_numeric_offset(self) -> None:
        """If the zone is a numeric offset, then it applies."""
        assert parse(b"<189>7: Mar  1 18:46:11 +0100: %SYS-5-CONFIG_I: x")["time"] == utc("2026-03-01T17:46:11")

    @pytest.mark.parametrize("uptime", [b"00:00:46", b"1d02h", b"3w2d"])
    def test_uptime(self, uptime: bytes) -> None:
        """If IOS stamps its uptime, then the record has the receive time and the uptime in a field, unflagged."""
        r = parse(b"<187>12: " + uptime + b": %LINK-3-UPDOWN: Interface Port-channel1, changed state to up")
        assert (r["time"], r["flags"]) == (RECEIVED // 10**9, [])
        assert device_fields(r)["_device_uptime_"] == uptime.decode()
        assert r["fields"]["_content_"] == "Interface Port-channel1, changed state to up"  # type: ignore[index]

    def test_no_counter_with_code(self) -> None:
        """If IOS sends no counter (no logging message-counter syslog), then the code alone marks the dialect."""
        r = parse(b"<189>Mar  1 18:46:11.5 UTC: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)")
        assert (r["time"], r["time_ns"]) == (utc("2026-03-01T18:46:11"), 500_000_000)
        assert device_fields(r)["_device_mnemonic_"] == "CONFIG_I"

    def test_unsynced_clock_far_back_is_flagged(self) -> None:
        """If an unset clock (its boot default, '*Mar  1') reaches us in December, then the year is flagged uncertain."""
        r = parse(b"<189>1: *Mar  1 00:00:11.123: %SYS-5-RESTART: System restarted --",
                  int(dt.datetime(2026, 12, 6, tzinfo=dt.UTC).timestamp()) * 10**9)
        assert (r["time"], r["flags"]) == (utc("2026-03-01T00:00:11"), ["uncertain-year"])

    def test_bad_date_is_kept(self) -> None:
        """If the date is not a date, then the record has the receive time and the stamp as sent."""
        r = parse(b"<189>1: Feb 30 10:00:00: %SYS-5-CONFIG_I: x")
        assert r["flags"] == ["bad-timestamp"]
        assert r["fields"]["_raw_timestamp_"] == "Feb 30 10:00:00"  # type: ignore[index]


class TestNxos:
    def test_with_origin(self) -> None:
        """If NX-OS sends its host and a year-first time in UTC, then both are read."""
        r = parse(b"<190>sw01.pdx01: 2017 Jul 28 14:42:46 UTC: %AUTHPRIV-6-SYSTEM_MSG: pam_unix(dcos_sshd:session): "
                  b"session opened for user luke by (uid=0) - dcos_sshd[12977]")
        f = r["fields"]
        assert isinstance(f, dict)
        assert r["time"] == utc("2017-07-28T14:42:46")
        assert (f["_hostname_"], f["_program_"]) == ("sw01.pdx01", "%AUTHPRIV-6-SYSTEM_MSG")
        assert f["_content_"].startswith("pam_unix(dcos_sshd:session): session opened")

    def test_without_origin(self) -> None:
        """If NX-OS sends no host (': ' right after the PRI), then the peer stands in."""
        r = parse(b"<189>: 2026 Jan 17 15:02:41 UTC: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up in mode access")
        assert r["time"] == utc("2026-01-17T15:02:41")
        assert r["fields"]["_hostname_"] == PEER  # type: ignore[index]
        assert device_fields(r)["_device_facility_"] == "ETHPORT"


class TestAsa:
    ASA_302013 = (b"%ASA-6-302013: Built outbound TCP connection 1234 for outside:198.51.100.7/443 "
                  b"(198.51.100.7/443) to inside:10.0.0.7/51234 (203.0.113.2/51234)")

    @pytest.mark.parametrize(
        ("header", "host"),
        [(b"<166>Jan 05 2026 10:00:00 fw01 : ", "fw01"), (b"<166>Jan 05 2026 10:00:00: ", PEER), (b"<166>", PEER)],
    )
    def test_headers(self, header: bytes, host: str) -> None:
        """If an ASA sends with or without device-id and timestamp, then the code is split and the text follows it."""
        r = parse(header + self.ASA_302013)
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_program_"]) == (host, "%ASA-6-302013")
        assert f["_content_"].startswith("Built outbound TCP connection 1234 for outside:")
        assert device_fields(r) == {"_device_facility_": "ASA", "_device_severity_": "6", "_device_mnemonic_": "302013"}
        if header != b"<166>":
            assert r["time"] == utc("2026-01-05T10:00:00")

    def test_deny(self) -> None:
        """If an ASA logs an access-group deny, then its severity 4 is the device severity, the PRI's stays the PRI's."""
        r = parse(b'<164>Jan 05 2026 10:00:01 fw01 : %ASA-4-106023: Deny tcp src outside:203.0.113.9/4123 '
                  b'dst inside:10.0.0.5/22 by access-group "outside_in" [0x0, 0x0]')
        assert device_fields(r)["_device_severity_"] == "4"
        assert r["fields"]["_severity_"] == "4"  # type: ignore[index]


class TestHuaweiH3c:
    def test_huawei_vrp(self) -> None:
        """If Huawei VRP sends %%01SHELL/5/CMDRECORD(s): with the text right after the colon, then it is split."""
        r = parse(b'<189>Jan  5 2026 10:00:00 HUAWEI %%01SHELL/5/CMDRECORD(s):CID=0x80cb2717;Recorded command '
                  b'information. (Task=VT0, Ip=10.0.0.1, VpnName=, User=admin, AuthenticationMethod="Local-user", '
                  b'Command="display version", Result=Success)')
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_program_"]) == ("HUAWEI", "%%01SHELL/5/CMDRECORD(s)")
        assert f["_content_"].startswith("CID=0x80cb2717;Recorded command information.")
        assert device_fields(r) == {"_device_facility_": "SHELL", "_device_severity_": "5", "_device_mnemonic_": "CMDRECORD"}

    def test_h3c_comware(self) -> None:
        """If H3C Comware sends its year after the time and %%10SHELL/6/SHELL_CMD:, then both are read."""
        r = parse(b"<190>Jan  5 10:00:00 2026 H3C %%10SHELL/6/SHELL_CMD: -Line=vty0-IPAddr=192.168.1.1-User=admin; "
                  b"Command is display version")
        assert r["time"] == utc("2026-01-05T10:00:00")
        assert r["fields"]["_content_"] == "-Line=vty0-IPAddr=192.168.1.1-User=admin; Command is display version"  # type: ignore[index]
        assert device_fields(r)["_device_mnemonic_"] == "SHELL_CMD"


class TestDialectSetting:
    IOS = b"<189>1234: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)"

    def test_none_reads_plain_rfc3164(self) -> None:
        """If the dialect is none, then an IOS line reads as before dialects: the counter is the program."""
        r = parse(self.IOS, dialect="none")
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_program_"], f["_content_"]) == ("1234", "*Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)")
        assert r["time"] == RECEIVED // 10**9

    @pytest.mark.parametrize(
        "frame",
        [b"<13>Oct 11 22:14:15 ABC: text", b"<13>Oct 11 22:14:15 su: text", b"<14>app: hello", b"<13>12:30:00: x",
         b"<13>Oct 11 22:14:15 host app: %not a code"],
    )
    def test_auto_leaves_other_lines_alone(self, frame: bytes) -> None:
        """If a line has nothing of Cisco's own, then auto reads it exactly as none does."""
        assert parse(frame, dialect="auto") == parse(frame, dialect="none")

    def test_cisco_forced(self) -> None:
        """If the dialect is forced to cisco, then an IOS-shaped header is taken even without a mark of Cisco's own."""
        r = parse(b"<13>Mar  1 18:46:11 ABC: text", dialect="cisco")
        assert device_fields(r) == {"_device_timezone_": "ABC"}
        assert r["fields"]["_content_"] == "text"  # type: ignore[index]

    def test_unknown_dialect_refused(self) -> None:
        """If the dialect is not one of auto, cisco, none, then the parser is refused."""
        with pytest.raises(ValueError, match="dialect"):
            Rfc3164Parser(dialect="junos")  # type: ignore[arg-type]

    def test_one_keys_tuple_per_shape(self) -> None:
        """If two lines have the same fields, then their records share one keys tuple (the SLS encoder's layout cache)."""
        p = make_parser()
        a = p(self.IOS, PEER, RECEIVED)
        b = p(self.IOS.replace(b"1234", b"1235"), PEER, RECEIVED)
        assert a.keys is b.keys


class TestPieces:
    @pytest.mark.parametrize(
        ("text", "parts"),
        [
            ("%LINK-3-UPDOWN: x", ("%LINK-3-UPDOWN", "LINK", "3", "UPDOWN")),
            ("%PKT_INFRA-LINK-3-UPDOWN : x", ("%PKT_INFRA-LINK-3-UPDOWN", "PKT_INFRA-LINK", "3", "UPDOWN")),
            ("%%01SHELL/5/CMDRECORD(s):x", ("%%01SHELL/5/CMDRECORD(s)", "SHELL", "5", "CMDRECORD")),
        ],
    )
    def test_codes(self, text: str, parts: tuple[str, str, str, str]) -> None:
        """If a code is read, then its parts are the facility, severity and mnemonic."""
        code = read_code(text, 0)
        assert code is not None and tuple(code)[:4] == parts and text[code.end :] == "x"

    @pytest.mark.parametrize("text", ["%LINK-9-UPDOWN: x", "%link: x", "%LINK-3-UPDOWN x", "%%1SHELL/5/X: x"])
    def test_not_codes(self, text: str) -> None:
        """If the text only resembles a code, then it is not one."""
        assert read_code(text, 0) is None

    def test_zones(self) -> None:
        """If a zone name is UTC-like or an offset, then it resolves; other names do not."""
        assert zone_of("GMT") is dt.UTC
        assert zone_of("-0530") == dt.timezone(-dt.timedelta(hours=5, minutes=30))
        assert zone_of("CET") is None and zone_of("+2500") is None

    @PROFILE
    @given(
        head=st.sampled_from(["<189>", "<189>12: ", "<190>sw1: ", "<189>: 2026 ", "<166>Jan 05 2026 10:00:00 fw : ", ""]),
        rest=st.text(alphabet=st.sampled_from(list("%*.: -/()0123456789ABCSYJanMr\u00e9\t")), max_size=80),
        dialect=st.sampled_from(["auto", "cisco", "none"]),
    )
    def test_never_raises(self, head: str, rest: str, dialect: str) -> None:
        """If any mix of Cisco's characters follows a plausible head, then every dialect returns a record."""
        record = Rfc3164Parser(dialect=dialect).parse((head + rest).encode(), PEER, RECEIVED)  # type: ignore[arg-type]
        assert all(isinstance(v, str) for v in record.values) and 0 <= record.time_ns < 10**9

    @PROFILE
    @given(
        pri=st.integers(min_value=0, max_value=191),
        host=st.from_regex(r"\A[a-z][a-z0-9.-]{0,20}\Z", fullmatch=True),
        program=st.from_regex(r"\A[a-z][a-z0-9_-]{0,15}\Z", fullmatch=True),
        message=st.text(max_size=60),
        received=st.integers(min_value=0, max_value=(2**32 - 1) * 10**9),
    )
    def test_auto_changes_no_plain_line(self, pri: int, host: str, program: str, message: str, received: int) -> None:
        """If an ordinary RFC 3164 line (no device code) arrives, then auto makes the record none makes."""
        frame = f"<{pri}>Mar  1 18:46:11 {host} {program}: {message}".encode()
        auto = Rfc3164Parser(dialect="auto").parse(frame, PEER, received)
        assert auto == Rfc3164Parser(dialect="none").parse(frame, PEER, received) or message.startswith("%")
