"""Parse profiles: which settings read a frame, by listener, sender network and hostname."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.config.profiles import ParseProfile, ParseSettings
from receiver.deliver.parsing import ParserFactory, profiled_parser, streamlog_reads_as_columns

# 2026-07-01 12:00:00 UTC: summer, so Shanghai is UTC+8 and New York UTC-4.
RECEIVED = int(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC).timestamp()) * 10**9
LINE = b"<189>Jul  1 08:00:00 %s app: hello"
UTC_8AM = int(dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC).timestamp())
BASE = ParseSettings()


def factory() -> ParserFactory:
    return ParserFactory((), leading_space="strip-rfc3164", strict_rfc5424=False)


def hours_east(record_time: int) -> float:
    """How far east of UTC the zone that read 08:00 was."""
    return (UTC_8AM - record_time) / 3600


SHANGHAI = ParseProfile("sh", networks=("10.20.0.0/16",), timezone="Asia/Shanghai")
NEW_YORK_BY_NAME = ParseProfile("ny", hostnames=("nyc-*",), timezone="America/New_York")
UDP_ONLY = ParseProfile("udp", listeners=("udp",), timezone="Asia/Tokyo")


def parse(profiles: list[ParseProfile], peer: str, host: str = "h1", listener: str | None = "tcp") -> float:
    fn = profiled_parser(listener, "auto", BASE, profiles, factory())
    return hours_east(fn(LINE % host.encode(), peer, RECEIVED).time)


class TestChoice:
    def test_without_profiles_parse_settings_apply(self) -> None:
        assert parse([], "10.20.0.1") == 0

    def test_a_network_chooses_its_profile(self) -> None:
        """If a sender's address is in a profile's network, then its frames are read in that zone."""
        assert parse([SHANGHAI], "10.20.3.4") == 8
        assert parse([SHANGHAI], "10.21.3.4") == 0

    def test_a_hostname_chooses_its_profile(self) -> None:
        """If the hostname a record gives matches a profile's pattern, then the frame is read again with it."""
        assert parse([NEW_YORK_BY_NAME], "192.0.2.1", host="nyc-core1") == -4
        assert parse([NEW_YORK_BY_NAME], "192.0.2.1", host="NYC-core1") == -4  # patterns ignore case
        assert parse([NEW_YORK_BY_NAME], "192.0.2.1", host="sfo-core1") == 0

    def test_the_first_profile_in_order_wins(self) -> None:
        """If a sender is named by two profiles, then the earlier one reads it, by hostname too."""
        assert parse([NEW_YORK_BY_NAME, SHANGHAI], "10.20.3.4", host="nyc-core1") == -4
        assert parse([NEW_YORK_BY_NAME, SHANGHAI], "10.20.3.4", host="other") == 8
        assert parse([SHANGHAI, NEW_YORK_BY_NAME], "10.20.3.4", host="nyc-core1") == 8

    def test_a_listener_limits_a_profile(self) -> None:
        assert parse([UDP_ONLY], "10.0.0.1", listener="udp") == 9
        assert parse([UDP_ONLY], "10.0.0.1", listener="tcp") == 0
        assert parse([UDP_ONLY], "10.0.0.1", listener=None) == 0  # a listener since removed

    def test_a_profile_changes_only_what_it_gives(self) -> None:
        """If a profile sets the dialect only, then the zone stays [parse]'s."""
        base = ParseSettings(timezone="Asia/Shanghai", payload="kv")
        over = ParseProfile("p", dialect="none").over(base)
        assert (over.timezone, over.payload, over.dialect) == ("Asia/Shanghai", "kv", "none")


class TestColumns:
    def test_a_payload_anywhere_sends_streamlog_to_records(self) -> None:
        """If a payload grammar may apply to a listener's lines, then they are not read as columns."""
        kv = ParseProfile("fw", networks=("10.9.0.0/16",), payload="kv")
        assert streamlog_reads_as_columns("tcp", BASE, [SHANGHAI])
        assert not streamlog_reads_as_columns("tcp", BASE, [kv])
        assert streamlog_reads_as_columns("tcp", BASE, [ParseProfile("fw", listeners=("udp",), payload="kv")])
        assert not streamlog_reads_as_columns("tcp", ParseSettings(payload="cef"), [])


@given(
    peer=st.sampled_from(["10.20.0.9", "10.21.0.9", "192.0.2.1"]),
    host=st.sampled_from(["nyc-a", "NYC-b", "sfo-b", "rtr-sh-1"]),
    listener=st.sampled_from(["tcp", "udp", None]),
    order=st.permutations([SHANGHAI, NEW_YORK_BY_NAME, UDP_ONLY]),
)
def test_the_rule_as_written(peer: str, host: str, listener: str | None, order: list[ParseProfile]) -> None:
    """For any sender and order of profiles, the zone is the first profile's (in order) whose listeners
    and senders include the frame, else [parse]'s: the rule of receiver/config/profiles.py, spelled out."""
    from receiver.config.identity import SenderSet

    expected = 0.0
    for p in order:
        if p.listeners and listener not in p.listeners:
            continue
        if p.names_senders and not SenderSet(p.networks, p.hostnames).has(peer, host):
            continue
        expected = {"sh": 8.0, "ny": -4.0, "udp": 9.0}[p.name]
        break
    assert parse(order, peer, host=host, listener=listener) == expected


@pytest.mark.parametrize("host", ["nyc-core1", "sfo-core1"])
def test_hostname_profiles_cost_one_parse_when_they_do_not_match(host: str) -> None:
    """If no hostname profile matches, then the frame is read once (the first record is kept)."""
    calls: list[bytes] = []
    made = factory()
    real = made.make

    def counting(format, settings):  # type: ignore[no-untyped-def]
        fn = real(format, settings)

        def counted(frame: bytes, peer: str, t: int):  # type: ignore[no-untyped-def]
            calls.append(frame)
            return fn(frame, peer, t)

        return counted

    made.make = counting  # type: ignore[method-assign]
    fn = profiled_parser("tcp", "auto", BASE, [NEW_YORK_BY_NAME], made)
    fn(LINE % host.encode(), "192.0.2.1", RECEIVED)
    assert len(calls) == (2 if host.startswith("nyc") else 1)


class TestZonesAcrossDaylightSaving:
    """A sender's zone follows its own daylight-saving rules: New York moved from UTC-5 to UTC-4 on
    8 March 2026 at 02:00 local, and back on 1 November 2026 at 02:00 local."""

    NY = ParseProfile("ny", networks=("10.1.0.0/16",), timezone="America/New_York")

    def utc_hours_behind(self, line: bytes, received: dt.datetime, peer: str = "10.1.0.5") -> float:
        fn = profiled_parser("tcp", "auto", BASE, [self.NY], factory())
        record = fn(line, peer, int(received.timestamp()) * 10**9)
        wall = dt.datetime.strptime(line.split(b">")[1][:15].decode(), "%b %d %H:%M:%S").replace(
            year=received.year, tzinfo=dt.UTC
        )
        return (record.time - wall.timestamp()) / 3600

    def test_before_and_after_the_spring_change(self) -> None:
        received = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
        assert self.utc_hours_behind(b"<13>Mar  7 12:00:00 h a: x", received) == 5
        assert self.utc_hours_behind(b"<13>Mar  9 12:00:00 h a: x", received) == 4

    def test_before_and_after_the_autumn_change(self) -> None:
        received = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
        assert self.utc_hours_behind(b"<13>Oct 31 12:00:00 h a: x", received) == 4
        assert self.utc_hours_behind(b"<13>Nov  2 12:00:00 h a: x", received) == 5

    def test_another_sender_keeps_the_appliance_zone(self) -> None:
        received = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
        assert self.utc_hours_behind(b"<13>Mar  9 12:00:00 h a: x", received, peer="10.2.0.5") == 0
