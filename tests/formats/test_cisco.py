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
- Huawei VRP's offset after the time and its log counter: Huawei's "Log
  Format" page (``<Int_16>TIMESTAMP HOSTNAME %%ddAAA/B/CCC(l)[Count]:...``,
  example ``Jan 8 2013 03:58:15+07:00 HUAWEI ... HWCM/5/EXIT(l)[1]: exit from
  configure mode``; mirrored at a10.tagan.ru/huawei/dc/dc_cbb_log_format_s.html);
  that a log sent to a log host carries "time zone or DST information" unless
  ``without-timezone``: the ``info-center timestamp`` command reference. Where
  ``DST`` stands is in neither page: the samples put it after the time, and
  after the offset when both are sent, the only places this parser reads it.
- Relayed IOS lines: rsyslog's traditional forwarding format
  (``<%PRI%>%TIMESTAMP% %HOSTNAME% %syslogtag:1:32%%msg%``) applied to an IOS
  line, whose counter rsyslog reads as the TAG; a line so relayed, with
  origin-id and a daylight-saving zone name, is quoted in elastic/beats issue
  19383 (``Jun 23 10:20:17 <host> 44124: <origin>: Jun 23 10:20:16.775
  PSTDST: %LINEPROTO-5-UPDOWN: Line protocol on Interface
  GigabitEthernet2/0/10, changed state to down``).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from formats.cisco import read_code, read_header, zone_of
from formats.framing import message_bytes
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


class TestRelayed:
    """IOS lines forwarded by rsyslog: the relay's header, then the counter where a TAG would be, then IOS's header."""

    DIRECT = b"<189>1234: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0"
    RELAYED = b"<189>Dec  6 10:00:00 relay01 1234: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0"

    def test_reads_as_the_direct_line(self) -> None:
        """If an IOS line comes through a relay, then its time, code, text and device fields are the direct line's."""
        direct, relayed = parse(self.DIRECT), parse(self.RELAYED)
        assert (relayed["time"], relayed["time_ns"], relayed["flags"]) == (direct["time"], direct["time_ns"], direct["flags"])
        f, d = relayed["fields"], direct["fields"]
        assert isinstance(f, dict) and isinstance(d, dict)
        assert (f["_program_"], f["_content_"], f["_priority_"]) == (d["_program_"], d["_content_"], d["_priority_"])
        assert device_fields(relayed) == device_fields(direct) == {
            "_device_sequence_": "1234", "_device_clock_mark_": "*",
            "_device_facility_": "SYS", "_device_severity_": "5", "_device_mnemonic_": "CONFIG_I",
        }

    def test_hostname_and_relay_fields(self) -> None:
        """If a relay forwards a line, then its HOSTNAME is the record's and both parts of its header are kept as sent."""
        f = parse(self.RELAYED)["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_client_ip_"]) == ("relay01", PEER)
        assert (f["_relay_timestamp_"], f["_relay_hostname_"]) == ("Dec  6 10:00:00", "relay01")
        assert list(f)[-2:] == ["_relay_timestamp_", "_relay_hostname_"]

    def test_device_stamp_times_the_record(self) -> None:
        """If the device stamped a date and zone, then that is the record's time, not the relay's."""
        r = parse(b"<189>Dec  6 10:00:00 10.1.2.3 3255: Dec  6 09:59:59.123 UTC: %LINK-3-UPDOWN: "
                  b"Interface Gi0/1, changed state to down", int(dt.datetime(2026, 12, 6, 10, tzinfo=dt.UTC).timestamp()) * 10**9,
                  default_tz=zoneinfo.ZoneInfo("Asia/Tokyo"))
        assert (r["time"], r["time_ns"], r["flags"]) == (utc("2026-12-06T09:59:59"), 123_000_000, [])
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_program_"], f["_content_"]) == ("10.1.2.3", "%LINK-3-UPDOWN", "Interface Gi0/1, changed state to down")
        assert device_fields(r)["_device_timezone_"] == "UTC"

    def test_origin_wins_over_the_relays_hostname(self) -> None:
        """If IOS names itself (logging origin-id), then that is the hostname, as on a direct line; the relay's is kept."""
        r = parse(b"<189>Jun 23 10:20:17 sw-gw.example.net 44124: sw01: Jun 23 10:20:16.775 PSTDST: "
                  b"%LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet2/0/10, changed state to down",
                  int(dt.datetime(2026, 6, 23, 17, 20, 17, tzinfo=dt.UTC).timestamp()) * 10**9,
                  default_tz=zoneinfo.ZoneInfo("America/Los_Angeles"))
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_relay_hostname_"]) == ("sw01", "sw-gw.example.net")
        assert r["time"] == utc("2026-06-23T17:20:16")  # PSTDST is no zone we can know: the default zone's wall time
        assert device_fields(r)["_device_timezone_"] == "PSTDST"
        assert device_fields(r)["_device_sequence_"] == "44124"

    def test_uptime_takes_the_relays_time(self) -> None:
        """If the device stamped its uptime, then the relay's time stands in where a direct line has the receive time."""
        r = parse(b"<187>Mar  2 11:59:00 10.1.2.3 12: 00:00:46: %LINK-3-UPDOWN: Interface Port-channel1, changed state to up")
        assert (r["time"], r["time_ns"], r["flags"]) == (utc("2026-03-02T11:59:00"), 0, [])
        assert device_fields(r)["_device_uptime_"] == "00:00:46"

    def test_iso_relay_header(self) -> None:
        """If the relay forwards with RSYSLOG_ForwardFormat (an RFC 3339 time), then the line is read the same way."""
        r = parse(b"<187>2026-03-02T12:59:00.250+01:00 10.1.2.3 12: 1d02h: %LINK-3-UPDOWN: Interface Port-channel1, "
                  b"changed state to up")
        assert (r["time"], r["time_ns"]) == (utc("2026-03-02T11:59:00"), 250_000_000)
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_relay_timestamp_"], f["_program_"]) == ("2026-03-02T12:59:00.250+01:00", "%LINK-3-UPDOWN")

    def test_unreadable_device_date(self) -> None:
        """If the device's date is not a date, then the relay's time stands in and the device's stamp is kept as sent."""
        r = parse(b"<189>Mar  2 11:59:00 10.1.2.3 1: Feb 30 10:00:00: %SYS-5-CONFIG_I: x")
        assert (r["time"], r["flags"]) == (utc("2026-03-02T11:59:00"), ["bad-timestamp"])
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_raw_timestamp_"], f["_relay_timestamp_"]) == ("Feb 30 10:00:00", "Mar  2 11:59:00")

    def test_unreadable_relay_date_under_a_device_date(self) -> None:
        """If only the relay's date is unreadable, then the device's times the record, unflagged."""
        r = parse(b"<189>Feb 30 11:59:00 10.1.2.3 1: Mar  1 2026 10:00:00 UTC: %SYS-5-CONFIG_I: x")
        assert (r["time"], r["flags"]) == (utc("2026-03-01T10:00:00"), [])
        assert "_raw_timestamp_" not in r["fields"]  # type: ignore[operator]

    def test_none_reads_plain_rfc3164(self) -> None:
        """If the dialect is none, then a relayed line reads as RFC 3164: the counter is the program."""
        r = parse(self.RELAYED, dialect="none")
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_program_"], f["_hostname_"], f["_content_"]) == (
            "1234", "relay01", "*Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0",
        )
        assert r["time"] == utc("2025-12-06T10:00:00")  # the relay's, by the year rule (received in March 2026)
        assert device_fields(r) == {}

    def test_cisco_reads_it_too(self) -> None:
        """If the dialect is cisco, then a relayed line is read as with auto."""
        assert parse(self.RELAYED, dialect="cisco") == parse(self.RELAYED)

    @pytest.mark.parametrize(
        "frame",
        [b"<13>Dec  6 10:00:00 host 1234: hello", b"<13>Dec  6 10:00:00 host 1234[5]: 00:00:46: x",
         b"<13>Dec  6 10:00:00 host 12ab: 00:00:46: x", b"<13>1234: hello", b"<13>Dec  6 10:00:00 host 7: Mar  1 x",
         # not read (see formats.md): an IOS line without its counter, relayed, has its origin-id as the TAG
         b"<189>Dec  6 10:00:00 10.1.2.3 router1: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console",
         b"<189>2026-12-06T10:00:00Z 10.1.2.3 router1: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console"],
    )
    def test_only_a_counter_then_an_ios_header_is_a_relay(self, frame: bytes) -> None:
        """If a TAG is not a counter followed by an IOS header, then auto reads the line exactly as none does."""
        assert parse(frame) == parse(frame, dialect="none")


class TestHuaweiZones:
    """Huawei VRP's offset ("10:00:00+08:00") and daylight saving mark ("10:00:00 DST") after its time."""

    CMD = b"%%01SHELL/5/CMDRECORD(s)[0]:Recorded command information. (Task=VT0, Ip=10.0.0.1, User=admin)"

    def test_offset_applies(self) -> None:
        """If VRP writes an offset after its time, then the time is read at that offset and the offset kept as sent."""
        r = parse(b"<187>Dec  6 2025 10:00:00+08:00 HUAWEI " + self.CMD, default_tz=zoneinfo.ZoneInfo("Europe/Paris"))
        assert (r["time"], r["flags"]) == (utc("2025-12-06T02:00:00"), [])
        f = r["fields"]
        assert isinstance(f, dict)
        assert (f["_hostname_"], f["_program_"]) == ("HUAWEI", "%%01SHELL/5/CMDRECORD(s)")
        assert f["_content_"] == "Recorded command information. (Task=VT0, Ip=10.0.0.1, User=admin)"
        assert device_fields(r) == {
            "_device_timezone_": "+08:00", "_device_facility_": "SHELL", "_device_severity_": "5",
            "_device_mnemonic_": "CMDRECORD", "_device_sequence_": "0",
        }

    def test_documented_sample(self) -> None:
        """If the line is Huawei's documented one (offset +07:00, counter [1]), then the offset applies as RFC 3339 reads it."""
        r = parse(b"<189>Jan  8 2013 03:58:15+07:00 HUAWEI %%01HWCM/5/EXIT(l)[1]: exit from configure mode")
        assert r["time"] == utc("2013-01-07T20:58:15")
        assert device_fields(r) == {
            "_device_timezone_": "+07:00", "_device_facility_": "HWCM", "_device_severity_": "5",
            "_device_mnemonic_": "EXIT", "_device_sequence_": "1",
        }

    def test_negative_offset_without_year(self) -> None:
        """If the time has no year (short-date) and a negative offset, then the year rule runs in that offset."""
        r = parse(b"<187>Mar  1 22:00:00-05:00 sw-core %%01SHELL/5/CMDRECORD(s):x")
        assert (r["time"], r["flags"]) == (utc("2026-03-02T03:00:00"), [])

    def test_dst_is_not_guessed(self) -> None:
        """If VRP marks daylight saving time, then the time stays in the default zone and the mark is kept."""
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        r = parse(b"<187>Dec  6 2025 10:00:00 DST HUAWEI " + self.CMD, default_tz=tokyo)
        assert r["time"] == utc("2025-12-06T01:00:00")
        assert r["fields"]["_hostname_"] == "HUAWEI"  # type: ignore[index]
        assert device_fields(r)["_device_timezone_"] == "DST"

    def test_offset_with_dst_is_not_applied(self) -> None:
        """If an offset comes with DST (whether it holds the DST shift is not documented), then it is kept, not applied."""
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        r = parse(b"<187>Dec  6 2025 10:00:00+08:00 DST HUAWEI " + self.CMD, default_tz=tokyo)
        assert r["time"] == utc("2025-12-06T01:00:00")
        assert device_fields(r)["_device_timezone_"] == "+08:00 DST"

    def test_fraction_and_offset(self) -> None:
        """If VRP writes milliseconds (precision-time millisecond) and an offset, then both are read."""
        r = parse(b"<187>Dec  6 2025 10:00:00.250+08:00 HUAWEI " + self.CMD)
        assert (r["time"], r["time_ns"]) == (utc("2025-12-06T02:00:00"), 250_000_000)

    @pytest.mark.parametrize(
        "frame",
        [b"<13>Dec  6 2025 10:00:00+08:00 host app: x", b"<13>Dec  6 2025 10:00:00 DST app: x",
         b"<13>Dec  6 10:00:00 DST host app: x", b"<13>Dec  6 2025 10:00:00+08:00 HUAWEI %not a code",
         b"<13>Dec  6 2025 10:00:00+0800 HUAWEI %%01SHELL/5/CMDRECORD(s):x"],
    )
    def test_without_a_code_nothing_changes(self, frame: bytes) -> None:
        """If no device code follows the zone and hostname, then auto reads the line exactly as none does."""
        assert parse(frame) == parse(frame, dialect="none")

    def test_dst_as_a_hostname(self) -> None:
        """If a code follows 'DST' directly, then 'DST' is the hostname, as before (VRP always sends its name)."""
        r = parse(b"<187>Dec  6 2025 10:00:00 DST %%01SHELL/5/CMDRECORD(s):x")
        assert r["fields"]["_hostname_"] == "DST"  # type: ignore[index]
        assert "_device_timezone_" not in device_fields(r)

    def test_none_unchanged(self) -> None:
        """If the dialect is none, then the offset stays in the text, as before."""
        r = parse(b"<187>Dec  6 2025 10:00:00+08:00 HUAWEI " + self.CMD, dialect="none")
        assert r["fields"]["_content_"] == "+08:00 HUAWEI " + self.CMD.decode()  # type: ignore[index]
        assert r["time"] == utc("2025-12-06T10:00:00")


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
            ("%%01SHELL/5/CMDRECORD(s)[42]:x", ("%%01SHELL/5/CMDRECORD(s)", "SHELL", "5", "CMDRECORD")),
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
        head=st.sampled_from([
            "<189>", "<189>12: ", "<190>sw1: ", "<189>: 2026 ", "<166>Jan 05 2026 10:00:00 fw : ", "",
            # relayed IOS lines and Huawei's zone suffixes
            "<189>Dec  6 10:00:00 relay01 1234: ", "<189>Dec  6 10:00:00 12: ", "<189>2026-12-06T10:00:00Z 10.1.2.3 7: ",
            "<189>Feb 30 10:00:00 r 1: ", "<189>Dec  6 10:00:00 12: *Mar  1 18:46:11.123: ",
            "<189>2026-12-06T10:00:00Z 10.1.2.3 7: 1d02h: ", "<189>Dec  6 10:00:00 r 9: Feb 30 10:00:00: ",
            "<187>Dec  6 2026 10:00:00", "<187>Dec  6 10:00:00+08:00 ", "<187>Dec  6 10:00:00 DST ",
            "<187>Dec  6 2026 10:00:00+08:00 HUAWEI %%01SHELL/5/CMDRECORD(s)", "<187>Dec  6 10:00:00 DST H %%01",
        ]),
        rest=st.text(alphabet=st.sampled_from(list("%*.: -+/()[]0123456789ABCSYJanMrDSTHUW\u00e9\t")), max_size=80),
        dialect=st.sampled_from(["auto", "cisco", "none"]),
    )
    def test_never_raises(self, head: str, rest: str, dialect: str) -> None:
        """If any mix of Cisco's and Huawei's characters follows a plausible head, then every dialect returns a record."""
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


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_classic_stamps = st.builds(
    lambda mon, day, h, mi, sec: f"{mon} {day:>2} {h:02d}:{mi:02d}:{sec:02d}",
    st.sampled_from(_MONTHS), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
)
_ios_times = st.one_of(
    st.builds(  # service timestamps log datetime [msec] [year]
        lambda stamp, year, msec: stamp[:6] + (f" {year}" if year else "") + stamp[6:] + (f".{msec:03d}" if msec is not None else ""),
        _classic_stamps, st.none() | st.integers(1990, 2100), st.none() | st.integers(0, 999),
    ),
    st.sampled_from(["00:00:46", "1d02h", "3w2d", "12:34:56"]),  # service timestamps log uptime
)
_hosts = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9.-]{0,20}\Z", fullmatch=True),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
)
_received = st.integers(min_value=int(dt.datetime(1990, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9,
                        max_value=int(dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9)


@st.composite
def ios_lines(draw: st.DrawFn) -> tuple[str, str | None, bool]:
    """An IOS console line as IOS sends it after the PRI, always with its counter; its origin; whether it has a date."""
    counter = str(draw(st.integers(0, 10**10 - 1)))
    origin = draw(st.none() | _hosts)
    sequence = draw(st.none() | st.integers(0, 999999).map(lambda n: f"{n:06d}"))
    mark = draw(st.sampled_from(["", "*", "."]))
    time = draw(_ios_times)
    zone = draw(st.sampled_from(["", " UTC", " +0100", " -0530", " CET", " PSTDST"]))
    code = draw(st.sampled_from(["%SYS-5-CONFIG_I: ", "%LINK-3-UPDOWN: ", "%PKT_INFRA-LINK-3-UPDOWN : ", ""]))
    text = draw(st.text(max_size=40))
    parts = [counter, *([origin] if origin else []), *([sequence] if sequence else [])]
    line = ": ".join(parts) + f": {mark}{time}{zone}: {code}{text}"
    return line, origin, time[:3] in _MONTHS


class TestRelayedProperties:
    @PROFILE
    @given(
        pri=st.integers(0, 191), ios=ios_lines(), relay_stamp=st.one_of(_classic_stamps, st.just("2026-12-06T10:00:00.5+01:00")),
        relay_host=_hosts, received=_received, dialect=st.sampled_from(["auto", "cisco"]),
    )
    def test_relayed_reads_as_direct(
        self, pri: int, ios: tuple[str, str | None, bool], relay_stamp: str, relay_host: str, received: int, dialect: str,
    ) -> None:
        """If rsyslog relays an IOS line (its header, then the line whose counter it took for a TAG), then the record
        has the direct line's device fields, code and text; its time is the device's date, else the relay's time."""
        line, origin, dated = ios
        parser = Rfc3164Parser(dialect=dialect)  # type: ignore[arg-type]
        direct = parser.parse(f"<{pri}>{line}".encode(), PEER, received).to_dict()
        relayed = parser.parse(f"<{pri}>{relay_stamp} {relay_host} {line}".encode(), PEER, received).to_dict()
        f, d = relayed["fields"], direct["fields"]
        assert isinstance(f, dict) and isinstance(d, dict)
        assert device_fields(relayed) == device_fields(direct) != {}
        assert [f[k] for k in ("_program_", "_priority_", "_content_")] == [d[k] for k in ("_program_", "_priority_", "_content_")]
        assert (f["_hostname_"], f["_relay_hostname_"], f["_relay_timestamp_"]) == (origin or relay_host, relay_host, relay_stamp)
        if dated and "bad-timestamp" not in direct["flags"]:  # type: ignore[operator]
            assert (relayed["time"], relayed["time_ns"], relayed["flags"]) == (direct["time"], direct["time_ns"], direct["flags"])
        else:  # an uptime or an unreadable date: the relay's time, where a direct line has the receive time
            header_only = parser.parse(f"<{pri}>{relay_stamp} {relay_host} app: x".encode(), PEER, received)
            assert (relayed["time"], relayed["time_ns"]) == (header_only.time, header_only.time_ns)

    @PROFILE
    @given(
        pri=st.integers(0, 191), ios=ios_lines(), relay_stamp=st.one_of(_classic_stamps, st.just("2026-12-06T10:00:00.5+01:00")),
        relay_host=_hosts, received=_received,
    )
    def test_none_reads_relayed_lines_as_rfc3164(
        self, pri: int, ios: tuple[str, str | None, bool], relay_stamp: str, relay_host: str, received: int,
    ) -> None:
        """If the dialect is none, then a relayed IOS line is plain RFC 3164: the counter is the program, the rest the text."""
        line = ios[0]
        record = Rfc3164Parser(dialect="none").parse(f"<{pri}>{relay_stamp} {relay_host} {line}".encode(), PEER, received)
        counter, _, rest = message_bytes(line.encode()).decode().partition(": ")  # a final CR or NUL ends the frame
        plain = Rfc3164Parser(dialect="none").parse(f"<{pri}>{relay_stamp} {relay_host} app: x".encode(), PEER, received)
        assert (record.get("_program_"), record.get("_hostname_"), record.get("_content_")) == (counter, relay_host, rest)
        assert (record.time, record.time_ns, record.flags) == (plain.time, plain.time_ns, plain.flags)
        assert not any(key.startswith(("_device_", "_relay_")) for key in record.keys)

    @PROFILE
    @given(
        pri=st.integers(0, 191),
        host=st.from_regex(r"\A[a-z][a-z0-9.-]{0,20}\Z", fullmatch=True),
        tag=st.from_regex(r"\A[0-9!-/][A-Za-z0-9_.-]{0,10}\Z", fullmatch=True),
        pid=st.none() | st.integers(0, 99999),
        message=st.text(max_size=60),
        received=_received,
    )
    def test_plain_lines_with_numeric_tags(
        self, pri: int, host: str, tag: str, pid: int | None, message: str, received: int,
    ) -> None:
        """If a plain line's TAG starts with a digit or punctuation (now read by the general path under auto), then auto
        makes the record none makes, unless the TAG is a counter and an IOS header follows it."""
        tail = f"{tag}: {message}" if pid is None else f"{tag}[{pid}]: {message}"
        assume(not (pid is None and tag.isdecimal() and read_header(tail, 0) is not None))
        assume(not message.startswith("%"))
        frame = f"<{pri}>Mar  1 18:46:11 {host} {tail}".encode()
        assert parse(frame, received) == parse(frame, received, dialect="none")


class TestHuaweiZoneProperties:
    @PROFILE
    @given(
        when=st.datetimes(min_value=dt.datetime(1971, 1, 2), max_value=dt.datetime(2105, 12, 30)),
        sign=st.sampled_from("+-"), hours=st.integers(0, 23), minutes=st.integers(0, 59),
        dst=st.booleans(), received=_received,
    )
    def test_offset_means_what_rfc3339_says(
        self, when: dt.datetime, sign: str, hours: int, minutes: int, dst: bool, received: int,
    ) -> None:
        """If VRP writes an offset after its date, then the time is the RFC 3339 time of that date and offset;
        with DST after it, the default zone's wall time. The zone is kept as sent either way."""
        offset = f"{sign}{hours:02d}:{minutes:02d}"
        suffix = f"{offset} DST" if dst else offset
        tail = " HUAWEI %%01SHELL/5/CMDRECORD(s)[3]:x"
        parser = Rfc3164Parser(default_tz=zoneinfo.ZoneInfo("Asia/Shanghai"))
        vrp = parser.parse(f"<189>{when:%b} {when.day:>2} {when:%Y %H:%M:%S}{suffix}{tail}".encode(), PEER, received)
        iso = f"{when:%Y-%m-%dT%H:%M:%S}" + ("" if dst else offset)  # without an offset: the default zone, as DST is read
        expected = parser.parse(f"<189>{iso}{tail}".encode(), PEER, received)
        assert (vrp.time, vrp.time_ns, vrp.flags) == (expected.time, expected.time_ns, expected.flags)
        assert (vrp.get("_device_timezone_"), vrp.get("_device_sequence_"), vrp.get("_hostname_")) == (suffix, "3", "HUAWEI")
