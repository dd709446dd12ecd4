"""Parse profiles: which settings read a frame, by listener, sender network and hostname."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.config.file import ConfigError, load_config
from receiver.config.model import Config
from receiver.config.profiles import ParseProfile, ParseSettings
from receiver.config.snapshot import config_from_json, config_to_json
from receiver.deliver.building import BatchBuilder
from receiver.deliver.parsing import ParserFactory, profiled_parser, streamlog_reads_as_columns
from receiver.spool.reader import SpoolEntry
from tests.support.receiverctl import receiverctl

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


class TestConfiguration:
    """[[parse.profiles]] in a configuration file, the snapshot, and delivery's batches."""

    FILE = """
        [[listeners]]
        name = "udp"
        transport = "udp"
        port = 11111

        [parse]
        timezone = "Europe/Paris"

        [[parse.profiles]]
        name = "fw"
        listeners = ["udp"]
        networks = ["10.9.0.0/16"]
        payload = "kv"

        [[parse.profiles]]
        name = "ny"
        hostnames = ["nyc-*"]
        timezone = "America/New_York"
        future_tolerance_hours = 12
        """

    def load(self, tmp_path: Path, text: str) -> Config:
        path = tmp_path / "receiver.toml"
        path.write_text(textwrap.dedent(text))
        return load_config(path).config

    def test_profiles_are_read_in_order(self, tmp_path: Path) -> None:
        config = self.load(tmp_path, self.FILE)
        assert config.parse.profiles == (
            ParseProfile("fw", listeners=("udp",), networks=("10.9.0.0/16",), payload="kv"),
            ParseProfile("ny", hostnames=("nyc-*",), timezone="America/New_York", future_tolerance_hours=12.0),
        )
        assert config.parse.settings.timezone == "Europe/Paris"

    @pytest.mark.parametrize(
        ("entry", "error"),
        [
            ('name = "x"\nlisteners = ["tcp"]', 'parse.profiles[0].listeners: "tcp" is no listener of this file'),
            ('networks = ["10.0.0.0/8"]', "parse.profiles[0].name: missing; a profile needs a name"),
            ('name = "x"\ntimezone = "Mars/Olympus"', "parse.profiles[0].timezone:"),
            ('name = "x"\nfuture_tolerance_hours = 1000', "parse.profiles[0].future_tolerance_hours:"),
        ],
    )
    def test_a_wrong_profile_is_named(self, tmp_path: Path, entry: str, error: str) -> None:
        head = '[[listeners]]\nname = "udp"\ntransport = "udp"\nport = 11111\n\n[[parse.profiles]]\n'
        with pytest.raises(ConfigError, match=re.escape(error)):
            self.load(tmp_path, head + entry + "\n")

    def test_two_profiles_of_one_name_are_refused(self, tmp_path: Path) -> None:
        text = '[[parse.profiles]]\nname = "a"\n\n[[parse.profiles]]\nname = "a"\n'
        with pytest.raises(ConfigError, match=r"parse\.profiles\[1\]\.name: \"a\" names another profile too"):
            self.load(tmp_path, text)

    def test_the_snapshot_keeps_them(self, tmp_path: Path) -> None:
        config = self.load(tmp_path, self.FILE)
        assert config_from_json(config_to_json(config)) == config

    def test_delivery_reads_a_profiles_senders_with_it(self, tmp_path: Path) -> None:
        """If a firewall's network has a key=value profile, then its records carry the fields and its
        streamlog lines are read one by one; another sender's lines are not touched."""
        config = dataclasses.replace(self.load(tmp_path, self.FILE), state_directory=tmp_path)
        builder = BatchBuilder(config)
        assert builder.streamlog_parsers["udp"] is None  # a payload may apply: no columns for this listener
        frames = [b"<13>Jul  1 08:00:00 fg-1 fw: srcip=10.0.0.1 action=deny"]
        entries = [
            SpoolEntry(1, RECEIVED, "10.9.0.7", 1, "udp", "udp", frames, {}),
            SpoolEntry(1, RECEIVED, "10.8.0.7", 1, "udp", "udp", frames, {}),
        ]
        parse = builder.parsers["udp"]
        fw, other = (parse(e.frames[0], e.peer, e.receive_time_ns) for e in entries)
        assert (fw.get("kv.srcip"), fw.get("kv.action")) == ("10.0.0.1", "deny")
        assert other.get("kv.srcip") is None
        assert hours_east(fw.time) == hours_east(other.time) == 2  # Paris in summer, [parse]'s zone


class TestReceiverctlParse:
    """``receiverctl parse -c FILE``: what delivery would make of given bytes, profiles included."""

    LINE = b"<13>Jul  1 08:00:00 nyc-1 fw: srcip=10.0.0.1 action=deny\n"

    def run(self, tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        path = tmp_path / "receiver.toml"
        path.write_text(textwrap.dedent(TestConfiguration.FILE))
        argv = [a.replace("FILE", str(path)) for a in args]
        done = receiverctl("parse", *argv, "--receive-time", "2026-07-01T12:00:00Z", stdin=self.LINE)
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr.decode()

    def test_the_profile_of_the_peer_reads_it(self, tmp_path: Path) -> None:
        status, (record,), _ = self.run(tmp_path, "-c", "FILE", "--listener", "udp", "--peer", "10.9.1.1")
        assert status == 0
        assert record["fields"]["kv.action"] == "deny"
        assert hours_east(record["time"]) == 2  # [parse]'s Paris: the fw profile sets no zone

    def test_the_profile_of_the_hostname_reads_it(self, tmp_path: Path) -> None:
        _, (record,), _ = self.run(tmp_path, "-c", "FILE", "--peer", "10.8.1.1")
        assert "kv.action" not in record["fields"]
        assert hours_east(record["time"]) == -4  # New York, by the hostname nyc-1

    def test_a_named_profile_and_an_option_over_it(self, tmp_path: Path) -> None:
        _, (record,), _ = self.run(tmp_path, "-c", "FILE", "--profile", "fw", "--timezone", "Asia/Tokyo")
        assert record["fields"]["kv.srcip"] == "10.0.0.1"
        assert hours_east(record["time"]) == 9

    def test_an_option_holds_for_every_sender(self, tmp_path: Path) -> None:
        """If --timezone is given, then no profile changes it back (nyc-1 is read in UTC here)."""
        _, (record,), _ = self.run(tmp_path, "-c", "FILE", "--peer", "10.8.1.1", "--timezone", "UTC")
        assert hours_east(record["time"]) == 0

    @pytest.mark.parametrize(
        ("args", "error"),
        [
            (("--profile", "fw"), "receiverctl: --profile needs -c: the configuration that names it"),
            (("-c", "FILE", "--profile", "nope"), "has no such profile (it has: fw, ny)"),
            (("-c", "FILE", "--listener", "tcp"), "has no such listener (it has: udp)"),
        ],
    )
    def test_wrong_names_are_said(
        self, tmp_path: Path, args: tuple[str, ...], error: str
    ) -> None:
        status, records, err = self.run(tmp_path, *args)
        assert (status, records) == (2, [])
        assert error in err
