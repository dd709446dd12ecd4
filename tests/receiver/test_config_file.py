"""Configuration files: loading, validation messages, the shipped examples and their documentation."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import pytest

from formats.streamlog import StreamlogFormat
from receiver.cli.check_config import check_config
from receiver.config.file import ConfigError, LoadedConfig, load_config
from receiver.config.identity import MachineGroup
from receiver.config.model import (
    DEFAULT_LISTENERS,
    ClickHouseSinkConfig,
    Config,
    ControlConfig,
    DeliverConfig,
    HttpSinkConfig,
    IdentityConfig,
    LimitsConfig,
    ListenerConfig,
    LocalSinkConfig,
    LoggingConfig,
    MetricsConfig,
    ParseConfig,
    RouteConfig,
    ShutdownConfig,
    SlsSinkConfig,
    SpoolConfig,
    TlsConfig,
    default_config,
    default_state_directory,
)
from receiver.config.profiles import ParseProfile

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
RECEIVER_TOML = CONF / "receiver.toml"
CONFIGURATION_MD = ROOT / "docs" / "configuration.md"

SECTIONS: dict[str, type] = {
    "listeners": ListenerConfig,
    "spool": SpoolConfig,
    "shutdown": ShutdownConfig,
    "logging": LoggingConfig,
    "parse": ParseConfig,
    "identity": IdentityConfig,
    "deliver": DeliverConfig,
    "metrics": MetricsConfig,
    "control": ControlConfig,
    "limits": LimitsConfig,
    "sinks": LocalSinkConfig,
}
EXAMPLE_SECTIONS: dict[str, type] = {
    "sinks": SlsSinkConfig,
    "sinks ": ClickHouseSinkConfig,
    "sinks  ": HttpSinkConfig,
    "routes": RouteConfig,
    "machine_groups": MachineGroup,
    "listeners.tls": TlsConfig,
    "parse.profiles": ParseProfile,
}
"""Tables receiver.toml shows as examples ("# key = value"): uncommented, they would change the defaults."""
FILE_ONLY_KEYS = ("streamlog_formats_file",)
"""Keys of the file that are not dataclass fields."""
NOT_KEYS = ("source",)
"""Config fields that are not settings: ``source`` says where the configuration came from."""


def every_key() -> list[str]:
    """Every key a configuration file may hold (the dataclasses' fields, plus file-only keys)."""
    keys = [f.name for f in dataclasses.fields(Config) if f.name not in NOT_KEYS]
    for cls in (*SECTIONS.values(), *EXAMPLE_SECTIONS.values()):
        keys.extend(f.name for f in dataclasses.fields(cls) if f.name not in keys)
    return [*keys, *FILE_ONLY_KEYS]


def example_only_keys() -> set[str]:
    """Keys receiver.toml shows only in examples, because no default table has them."""
    default_keys = {f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)}
    example_keys = {f.name for cls in EXAMPLE_SECTIONS.values() for f in dataclasses.fields(cls)}
    return (example_keys - default_keys) | {"routes", "machine_groups", "tls", "profiles"}


def write(directory: Path, text: str, name: str = "receiver.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_with(path: Path, snippet: str, occurrence: int = 1) -> int:
    """The 1-based number of the line holding ``snippet`` (its n-th occurrence)."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if snippet in line]
    return found[occurrence - 1]


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.errors)
    return list(info.value.errors)


def the_error(path: Path) -> str:
    errors = errors_of(path)
    assert len(errors) == 1, errors
    return errors[0]


def uncommented(text: str) -> str:
    """receiver.toml with every ``#key = value`` and ``#[table]`` line made a setting."""
    return re.sub(r"(?m)^#(?=\[|[a-z0-9_]+ = )", "", text)


def without_paths(config: Config) -> Config:
    return dataclasses.replace(
        config,
        state_directory=Path("-"),
        source="-",
        spool=dataclasses.replace(config.spool, directory=None),
        control=dataclasses.replace(config.control, socket=None),
        sinks=tuple(
            dataclasses.replace(s, path=None) if isinstance(s, LocalSinkConfig) else s for s in config.sinks
        ),
    )


class TestShippedFiles:
    """The files of conf/ load, equal the defaults, and document every key."""

    @pytest.mark.parametrize(
        "path",
        sorted([*CONF.glob("*.toml"), *CONF.glob("*.json")]),
        ids=lambda p: p.name,
    )
    def test_every_conf_file_loads(self, path: Path) -> None:
        """If a configuration in conf/ is loaded, then it loads without errors or warnings."""
        loaded = load_config(path)
        assert loaded.warnings == ()
        assert loaded.config.source == str(path)

    def test_conf_holds_configurations(self) -> None:
        """If conf/ is listed, then it holds both the TOML and the Logtail example."""
        names = {p.name for p in CONF.iterdir()}
        assert {"receiver.toml", "ilogtail_config.json"} <= names

    def test_receiver_toml_as_shipped_is_the_defaults(self) -> None:
        """If receiver.toml is loaded untouched, then it configures exactly the defaults."""
        config = load_config(RECEIVER_TOML).config
        assert config == dataclasses.replace(default_config(), source=str(RECEIVER_TOML))

    def test_receiver_toml_settings_are_the_defaults(self, tmp_path: Path) -> None:
        """If every commented setting of receiver.toml is uncommented, then each equals its default."""
        path = write(tmp_path, uncommented(RECEIVER_TOML.read_text()))
        loaded = load_config(path)
        assert loaded.warnings == ()
        config, default = loaded.config, default_config()
        assert config.listeners == DEFAULT_LISTENERS
        for section in ("spool", "shutdown", "logging", "parse", "identity", "deliver", "metrics", "control", "limits"):
            got, want = getattr(config, section), getattr(default, section)
            for field in dataclasses.fields(got):
                if field.name in ("directory", "socket"):
                    continue  # a path: the file shows an example, the default depends on the state directory
                assert getattr(got, field.name) == getattr(want, field.name), f"{section}.{field.name}"
        assert without_paths(config) == without_paths(default)

    def test_receiver_toml_uncommented_sets_every_key(self) -> None:
        """If receiver.toml is uncommented, then every listener and section key is set in it."""
        text = uncommented(RECEIVER_TOML.read_text())
        for key in every_key():
            if key in FILE_ONLY_KEYS or key in example_only_keys():
                continue
            pattern = rf"(?m)^({re.escape(key)} = |\[{key}\]$|\[\[{key}\]\]$)"
            assert re.search(pattern, text), f"{key} is not a setting in conf/receiver.toml"

    @pytest.mark.parametrize("key", every_key())
    def test_every_key_is_in_receiver_toml(self, key: str) -> None:
        """If a dataclass has a field, then receiver.toml shows it."""
        pattern = rf"(?m)^#?\s*(\[*)(listeners\.|parse\.)?{re.escape(key)}(\]*$| = )"
        assert re.search(pattern, RECEIVER_TOML.read_text()), key

    @pytest.mark.parametrize("key", every_key())
    def test_every_key_is_in_configuration_md(self, key: str) -> None:
        """If a dataclass has a field, then docs/configuration.md documents it (a table by its header)."""
        text = CONFIGURATION_MD.read_text()
        forms = (key, f"[{key}]", f"[[{key}]]", f"[listeners.{key}]", f"[[parse.{key}]]")
        assert any(f"`{form}`" in text for form in forms), key

    def test_ilogtail_example(self) -> None:
        """If conf/ilogtail_config.json is loaded, then it gives the streamlog listener and its format."""
        config = load_config(CONF / "ilogtail_config.json").config
        assert config.listeners == (ListenerConfig(name="streamlog", transport="tcp", port=11111, address="::"),)
        assert config.parse.streamlog_formats == (StreamlogFormat("2.1", ("level", "method")),)


class TestLoadConfig:
    """What a valid file configures."""

    def test_empty_file_is_the_defaults(self, tmp_path: Path) -> None:
        """If the file is empty, then the configuration is the defaults, from that file."""
        path = write(tmp_path, "")
        loaded = load_config(path)
        assert loaded == LoadedConfig(dataclasses.replace(default_config(), source=str(path)), ())
        assert loaded.config.state_directory == default_state_directory()

    def test_listeners(self, tmp_path: Path) -> None:
        """If listeners are given, then only they exist, with defaults for what they omit."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            port = 514
            framing = "octet"

            [[listeners]]
            name = "udp.local"
            transport = "udp"
            address = "127.0.0.1"
            receive_buffer_bytes = 1_048_576
        """)
        assert load_config(path).config.listeners == (
            ListenerConfig(name="tcp-514", transport="tcp", port=514, framing="octet"),
            ListenerConfig(name="udp.local", transport="udp", address="127.0.0.1", receive_buffer_bytes=1 << 20),
        )

    def test_integer_where_a_number_is_expected(self, tmp_path: Path) -> None:
        """If an integer is given for a float setting, then it is taken as that float."""
        path = write(tmp_path, "[shutdown]\ndrain_seconds = 7\n[spool]\nhigh_watermark_percent = 95\n")
        config = load_config(path).config
        assert config.shutdown.drain_seconds == 7.0
        assert isinstance(config.shutdown.drain_seconds, float)
        assert config.spool.high_watermark_percent == 95.0

    def test_sections(self, tmp_path: Path) -> None:
        """If sections set keys, then those keys change and the others keep their defaults."""
        path = write(tmp_path, """
            [spool]
            sync = "full"
            when_full = "drop-oldest"
            [logging]
            level = "debug"
            [parse]
            timezone = "Asia/Shanghai"
            rfc5424_strict = true
            streamlog_leading_space = "keep"
        """)
        config = load_config(path).config
        assert config.spool == SpoolConfig(sync="full", when_full="drop-oldest")
        assert config.logging == LoggingConfig(level="debug")
        assert config.parse == ParseConfig(timezone="Asia/Shanghai", rfc5424_strict=True, streamlog_leading_space="keep")

    def test_relative_paths_resolve_against_the_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If paths are relative, then they are relative to the file's directory, whatever the working directory."""
        write(tmp_path, '[{"version": "3.0", "fields": ["user"]}]', name="etc/formats.json")
        path = write(tmp_path, """
            state_directory = "state"
            [spool]
            directory = "../spool"
            [parse]
            streamlog_formats_file = "formats.json"
        """, name="etc/receiver.toml")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        config = load_config(Path("../etc/receiver.toml")).config
        assert config.state_directory == path.parent / "state"
        assert config.spool_directory.resolve() == tmp_path / "spool"
        assert config.parse.streamlog_formats == (StreamlogFormat("3.0", ("user",)),)

    def test_absolute_paths_stay(self, tmp_path: Path) -> None:
        """If paths are absolute, then they are taken as they are."""
        path = write(tmp_path, f'state_directory = "{tmp_path / "s"}"\n')
        assert load_config(path).config.spool_directory == tmp_path / "s" / "spool"

    def test_streamlog_formats_inline_and_from_file(self, tmp_path: Path) -> None:
        """If formats come from a file and inline, then the file's come first and all are kept."""
        write(tmp_path, (
            '$template T,"5.0 app %timegenerated:::date-unixtimestamp% %fromhost-ip% %app-name% %msg%\\n"\n'
        ), name="ali.conf")
        path = write(tmp_path, """
            [parse]
            streamlog_formats_file = "ali.conf"
            streamlog_formats = [
                {version = "2.1", fields = ["level", "method"]},
                {version = "2.2", fields = [], tag = "t"},
            ]
        """)
        assert load_config(path).config.parse.streamlog_formats == (
            StreamlogFormat("5.0", ("app-name",), tag="app"),
            StreamlogFormat("2.1", ("level", "method")),
            StreamlogFormat("2.2", (), tag="t"),
        )

    def test_same_format_twice_is_harmless(self, tmp_path: Path) -> None:
        """If a version is defined twice with the same fields, then it is kept once."""
        path = write(tmp_path, """
            [parse]
            streamlog_formats = [{version = "2.1", fields = ["a"]}, {version = "2.1", fields = ["a"], tag = "x"}]
        """)
        assert load_config(path).config.parse.streamlog_formats == (StreamlogFormat("2.1", ("a",)),)

    def test_port_zero_twice(self, tmp_path: Path) -> None:
        """If two listeners ask for port 0, then both are allowed (each gets its own free port)."""
        path = write(tmp_path, """
            [[listeners]]
            name = "a"
            transport = "tcp"
            port = 0
            [[listeners]]
            name = "b"
            transport = "tcp"
            port = 0
        """)
        assert [listener.port for listener in load_config(path).config.listeners] == [0, 0]

    def test_tcp_and_udp_share_a_port(self, tmp_path: Path) -> None:
        """If a TCP and a UDP listener use one port, then that is allowed."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            [[listeners]]
            transport = "udp"
        """)
        assert load_config(path).config.listeners == DEFAULT_LISTENERS

    def test_distinct_addresses_share_a_port(self, tmp_path: Path) -> None:
        """If two TCP listeners use one port on distinct specific addresses, then that is allowed."""
        path = write(tmp_path, """
            [[listeners]]
            name = "a"
            transport = "tcp"
            address = "127.0.0.1"
            [[listeners]]
            name = "b"
            transport = "tcp"
            address = "::1"
        """)
        assert len(load_config(path).config.listeners) == 2


class TestErrors:
    """Each kind of mistake is reported with the file, the line, the key path and what is allowed."""

    def test_unknown_key_suggests_the_closest(self, tmp_path: Path) -> None:
        """If a key is misspelt, then the error names it and suggests the known key."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            adress = "::"
        """)
        assert the_error(path) == f'{path}:3: listeners[0].adress: unknown key; did you mean "address"?'

    def test_key_in_the_wrong_table(self, tmp_path: Path) -> None:
        """If a key is in the wrong table, then the error says which table it belongs in."""
        path = write(tmp_path, 'timezone = "UTC"\n[spool]\nlevel = "info"\n')
        assert errors_of(path) == [
            f"{path}:1: timezone: unknown key; timezone belongs in [parse]",
            f"{path}:3: spool.level: unknown key; level belongs in [logging]",
        ]

    def test_unknown_key_lists_the_known_ones(self, tmp_path: Path) -> None:
        """If a key is nothing like a known one, then the error lists the table's keys."""
        path = write(tmp_path, "[shutdown]\nzzz = 1\n")
        assert the_error(path) == f"{path}:2: shutdown.zzz: unknown key; the keys of [shutdown] are drain_seconds"

    @pytest.mark.parametrize(
        ("setting", "key_path", "message"),
        [
            ('port = "11111"', "listeners[0].port", '"11111" is a string, not an integer from 0 to 65535'),
            ("max_connections = 1.5", "listeners[0].max_connections", "1.5 is a float, not an integer"),
            ("max_connections = true", "listeners[0].max_connections", "true is a boolean, not an integer"),
            ("idle_timeout_seconds = false", "listeners[0].idle_timeout_seconds", "false is a boolean, not a number"),
            ("format = 5", "listeners[0].format", "5 is an integer, not one of auto, streamlog, rfc5424, rfc3164"),
            ("address = 0", "listeners[0].address", "0 is an integer, not an IP address"),
        ],
    )
    def test_wrong_type(self, tmp_path: Path, setting: str, key_path: str, message: str) -> None:
        """If a value has the wrong type, then the error says its type and the type allowed."""
        path = write(tmp_path, f'[[listeners]]\ntransport = "tcp"\n{setting}\n')
        error = the_error(path)
        assert error.startswith(f"{path}:3: {key_path}: {message}"), error

    def test_wrong_type_of_table(self, tmp_path: Path) -> None:
        """If a table is given as a value, or listeners as one table, then the error says what is expected."""
        path = write(tmp_path, 'spool = "big"\n[listeners]\ntransport = "tcp"\n')
        assert errors_of(path) == [
            f'{path}:1: spool: "big" is a string, not a table ([spool])',
            f'{path}:2: listeners: {{transport = "tcp"}} is a table, not an array of tables ([[listeners]])',
        ]

    def test_bad_choice(self, tmp_path: Path) -> None:
        """If a value is not one of the choices, then the error lists them."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"

            [[listeners]]
            transport = "udp"
            port = 514
            framing = "crlf"
        """)
        assert errors_of(path) == [
            f'{path}:7: listeners[1].framing: "crlf" is not one of auto, lf, octet (did you mean "lf"?)'
        ]

    @pytest.mark.parametrize(
        ("table", "setting", "message"),
        [
            ("spool", 'sync = "fsync"', 'spool.sync: "fsync" is not one of normal, full'),
            ("spool", 'when_full = "drop"', 'spool.when_full: "drop" is not one of backpressure, drop-oldest'),
            ("logging", 'level = "INFO"', 'logging.level: "INFO" is not one of debug, info, warning, error (did you mean "info"?)'),
            ("parse", 'streamlog_leading_space = "strip"', 'parse.streamlog_leading_space: "strip" is not one of strip-rfc3164, keep'),
        ],
    )
    def test_every_enumeration(self, tmp_path: Path, table: str, setting: str, message: str) -> None:
        """If an enumerated setting has another value, then the error lists the values allowed."""
        path = write(tmp_path, f"[{table}]\n{setting}\n")
        assert the_error(path).startswith(f"{path}:2: {message}")

    @pytest.mark.parametrize(
        ("table", "setting", "message"),
        [
            ("[[listeners]]", "port = 70000", "listeners[0].port: 70000 is not an integer from 0 to 65535 (0: any free port)"),
            ("[[listeners]]", "port = -1", "listeners[0].port: -1 is not an integer from 0 to 65535"),
            ("[[listeners]]", "max_frame_bytes = 16_777_217", "listeners[0].max_frame_bytes: 16777217 is not an integer from 1 to 16777216 (16 MiB at most)"),
            ("[[listeners]]", "max_frame_bytes = 0", "listeners[0].max_frame_bytes: 0 is not an integer from 1"),
            ("[[listeners]]", "max_connections_per_source = 0", "listeners[0].max_connections_per_source: 0 is not an integer of at least 1"),
            ("[[listeners]]", "idle_timeout_seconds = -1", "listeners[0].idle_timeout_seconds: -1 is not a number of at least 0"),
            ("[[listeners]]", "idle_timeout_seconds = inf", "listeners[0].idle_timeout_seconds: inf is not a number"),
            ("[[listeners]]", "keepalive_seconds = 40000", "listeners[0].keepalive_seconds: 40000 is not an integer from 0 to 32767"),
            ("[spool]", "segment_max_bytes = 1024", "spool.segment_max_bytes: 1024 is not an integer from 4096 to 67108864 (4 KiB to 64 MiB)"),
            ("[spool]", "segment_max_delay_ms = 0.05", "spool.segment_max_delay_ms: 0.05 is not a number from 0.1 to 10000"),
            ("[spool]", "high_watermark_percent = 101", "spool.high_watermark_percent: 101 is not a number from 0 to 100"),
            ("[spool]", "max_age_hours = 0", "spool.max_age_hours: 0 is not a number greater than 0"),
            ("[shutdown]", "drain_seconds = nan", "shutdown.drain_seconds: nan is not a number of at least 0"),
            ("[logging]", "repeat_interval_seconds = -0.5", "logging.repeat_interval_seconds: -0.5 is not a number of at least 0"),
        ],
    )
    def test_out_of_range(self, tmp_path: Path, table: str, setting: str, message: str) -> None:
        """If a number is out of range, then the error gives the range."""
        transport = 'transport = "tcp"\n' if table == "[[listeners]]" else ""
        path = write(tmp_path, f"{table}\n{transport}{setting}\n")
        assert the_error(path).startswith(f"{path}:{line_with(path, setting)}: {message}")

    @pytest.mark.parametrize(
        ("setting", "message"),
        [
            ('name = ""', '"" is not a non-empty name of letters, digits, "-", "_" and "."'),
            ('name = "tcp 514"', '"tcp 514" is not a non-empty name'),
            ('address = "0.0.0.O"', '"0.0.0.O" is not an IP address: "::" for every IPv6 and IPv4 address'),
            ('address = ""', '"" is not an IP address'),
        ],
    )
    def test_bad_name_or_address(self, tmp_path: Path, setting: str, message: str) -> None:
        """If a listener's name or address is malformed, then the error says what is allowed."""
        path = write(tmp_path, f'[[listeners]]\ntransport = "tcp"\n{setting}\n')
        assert message in the_error(path)
        assert the_error(path).startswith(f"{path}:3: listeners[0].")

    def test_missing_transport(self, tmp_path: Path) -> None:
        """If a listener has no transport, then the error points at its table header."""
        path = write(tmp_path, '[[listeners]]\ntransport = "tcp"\n\n[[listeners]]\nport = 514\n')
        assert the_error(path) == f"{path}:4: listeners[1].transport: missing; every listener needs one: one of tcp, udp, relp"

    def test_no_listeners(self, tmp_path: Path) -> None:
        """If listeners is an empty array, then the error says there is nothing to listen on."""
        path = write(tmp_path, "listeners = []\n")
        assert the_error(path).startswith(f"{path}:1: listeners: no listeners: the receiver would have nothing to listen on")

    def test_duplicate_listener_name(self, tmp_path: Path) -> None:
        """If two listeners share a name, then the second one's error names the first and its line."""
        path = write(tmp_path, """
            [[listeners]]
            name = "syslog"
            transport = "tcp"

            [[listeners]]
            name = "syslog"
            transport = "udp"
        """)
        assert the_error(path) == (
            f'{path}:6: listeners[1].name: "syslog" is already the name of listeners[0] (line 1); '
            "each listener needs its own name"
        )

    def test_duplicate_default_name(self, tmp_path: Path) -> None:
        """If two unnamed listeners get the same default name, then the error explains the default."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            address = "127.0.0.1"
            [[listeners]]
            transport = "tcp"
            address = "127.0.0.2"
        """)
        error = the_error(path)
        assert error.startswith(f'{path}:4: listeners[1].name: "tcp-11111" is already the name of listeners[0] (line 1)')
        assert "a listener without a name is named TRANSPORT-PORT" in error

    def test_same_port_twice(self, tmp_path: Path) -> None:
        """If two TCP listeners use one address and port, then the error names both."""
        path = write(tmp_path, """
            [[listeners]]
            name = "a"
            transport = "tcp"
            port = 514

            [[listeners]]
            name = "b"
            transport = "tcp"
            port = 514
        """)
        assert the_error(path) == (
            f'{path}:9: listeners[1].port: tcp [::]:514 is also tcp [::]:514 of listeners[0] (line 1, "a"); '
            "two tcp listeners cannot share a port on the same address"
        )

    def test_overlapping_addresses(self, tmp_path: Path) -> None:
        """If a listener on 0.0.0.0 shares a port with one on :: (dual stack), then that is an error."""
        path = write(tmp_path, """
            [[listeners]]
            name = "all"
            transport = "udp"
            [[listeners]]
            name = "v4"
            transport = "udp"
            address = "0.0.0.0"
        """)
        assert "listeners[1].port: udp 0.0.0.0:11111 overlaps udp [::]:11111 of listeners[0]" in the_error(path)

    def test_bad_timezone(self, tmp_path: Path) -> None:
        """If the time zone is unknown, then the error suggests the closest known one."""
        path = write(tmp_path, '[parse]\n\ntimezone = "Asia/Shangai"\n')
        assert the_error(path) == (
            f'{path}:3: parse.timezone: "Asia/Shangai" is not a known time zone (did you mean "Asia/Shanghai"?); '
            'use an IANA time zone name such as "UTC" or "Asia/Shanghai"'
        )

    def test_bad_streamlog_format(self, tmp_path: Path) -> None:
        """If a streamlog format is invalid, then the error names its entry and line."""
        path = write(tmp_path, """
            [parse]
            streamlog_formats = [
                {version = "2.1", fields = ["level", "method"]},
                {version = "2.2", fields = ["level", "msg"]},
                {version = "2.3"},
                {version = 2.4, fields = ["a"], tga = "x"},
                "2.5",
            ]
        """)
        assert errors_of(path) == [
            f"{path}:4: parse.streamlog_formats[1]: streamlog version 2.2: field 'msg' appears twice "
            "(msg is always the last field and is implicit)",
            f'{path}:5: parse.streamlog_formats[2].fields: missing; a format needs its field names, like ["level", "method"]',
            f'{path}:6: parse.streamlog_formats[3].tga: unknown key; did you mean "tag"?',
            f'{path}:6: parse.streamlog_formats[3].version: 2.4 is a float, not a version string like "2.1"',
            f'{path}:7: parse.streamlog_formats[4]: "2.5" is a string, not a format like '
            '{version = "2.1", fields = ["level", "method"]}',
        ]

    def test_one_layout_per_version(self, tmp_path: Path) -> None:
        """If a version is defined twice with different fields, then the error names the first definition."""
        path = write(tmp_path, """
            [parse]
            streamlog_formats = [
                {version = "2.1", fields = ["level"]},
                {version = "2.1", fields = ["method"]},
            ]
        """)
        assert the_error(path) == (
            f"{path}:4: parse.streamlog_formats[1]: streamlog version 2.1 is already defined by "
            "parse.streamlog_formats[0] (line 3) with other fields (level); a version has one layout"
        )

    def test_streamlog_formats_file_unreadable(self, tmp_path: Path) -> None:
        """If the streamlog formats file cannot be read, then the error names the key and the file."""
        path = write(tmp_path, '[parse]\nstreamlog_formats_file = "missing.json"\n')
        error = the_error(path)
        assert error.startswith(f"{path}:2: parse.streamlog_formats_file: {tmp_path / 'missing.json'}: cannot read")

    def test_toml_syntax_error(self, tmp_path: Path) -> None:
        """If the file is not valid TOML, then the error gives tomllib's line and column."""
        path = write(tmp_path, '[spool]\nsync = "full"\nmax_bytes = 10 GiB\n')
        assert the_error(path) == f"{path}:3:16: not valid TOML: Expected newline or end of document after a statement"

    def test_toml_syntax_error_at_the_end(self, tmp_path: Path) -> None:
        """If the file ends inside a value, then the error gives the last line."""
        path = write(tmp_path, '[parse]\nstreamlog_formats = [\n  {version = "2.1", fields = []},\n')
        assert the_error(path).startswith(f"{path}:3: not valid TOML: ")

    @pytest.mark.parametrize(
        ("settings", "key", "message"),
        [
            ("low_watermark_percent = 95", "low_watermark_percent",
             "95 must be below spool.high_watermark_percent (90.0)"),
            ("high_watermark_percent = 80", "high_watermark_percent",
             "80 must be above spool.low_watermark_percent (80.0)"),
            ("high_watermark_percent = 50\nlow_watermark_percent = 50", "low_watermark_percent",
             "50 must be below spool.high_watermark_percent (50)"),
            ("memory_low_watermark_bytes = 67_108_864", "memory_low_watermark_bytes",
             "67108864 must be below spool.memory_high_watermark_bytes (67108864)"),
            ("memory_high_watermark_bytes = 1000", "memory_high_watermark_bytes",
             "1000 must be above spool.memory_low_watermark_bytes (16777216)"),
            ("max_bytes = 4096", "max_bytes",
             "4096 must be at least spool.segment_max_bytes (524288); the spool must hold at least one segment"),
        ],
    )
    def test_low_not_below_high(self, tmp_path: Path, settings: str, key: str, message: str) -> None:
        """If a low watermark is not below its high one, then the error names both and their values."""
        path = write(tmp_path, f"[spool]\n{settings}\n")
        error = the_error(path)
        assert error.startswith(f"{path}:{line_with(path, key + ' =')}: spool.{key}: {message}"), error

    def test_several_errors_are_all_reported(self, tmp_path: Path) -> None:
        """If a file has many mistakes, then every one is reported, in file order."""
        path = write(tmp_path, """
            state_directory = ""
            [[listeners]]
            transport = "sctp"
            port = 99999
            [spool]
            sync = "always"
            low_watermark_percent = 95
            [logging]
            levl = "info"
            [parse]
            timezone = "Mars/Olympus"
        """)
        errors = errors_of(path)
        assert [(e.split(":")[1], e.split(": ")[1]) for e in errors] == [
            ("1", "state_directory"),
            ("3", "listeners[0].transport"),
            ("4", "listeners[0].port"),
            ("6", "spool.sync"),
            ("7", "spool.low_watermark_percent"),
            ("9", "logging.levl"),
            ("11", "parse.timezone"),
        ]
        assert all(e.startswith(f"{path}:") for e in errors)

    def test_missing_file(self, tmp_path: Path) -> None:
        """If the file does not exist, then the error names it."""
        assert the_error(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: cannot read the configuration: No such file or directory"

    def test_not_utf8(self, tmp_path: Path) -> None:
        """If the file is not UTF-8, then the error gives the line of the bad byte."""
        path = tmp_path / "r.toml"
        path.write_bytes(b'[parse]\ntimezone = "\xff"\n')
        assert the_error(path).startswith(f"{path}:2: not UTF-8 text")


class TestLocator:
    """The line of a key path is found whatever the TOML around it looks like."""

    def test_dotted_keys(self, tmp_path: Path) -> None:
        """If a key is written as a dotted key, then its own line is reported."""
        path = write(tmp_path, '# comment\nspool.sync = "x"\nlogging.level = "y"\n')
        assert [e.split(": ")[0] for e in errors_of(path)] == [f"{path}:2", f"{path}:3"]

    def test_quoted_keys_and_tables(self, tmp_path: Path) -> None:
        """If keys and table names are quoted, then they are found all the same."""
        path = write(tmp_path, '["parse"]\n"timezone" = "Nowhere"\n')
        assert the_error(path).startswith(f"{path}:2: parse.timezone:")

    def test_multiline_strings_and_arrays_before_the_key(self, tmp_path: Path) -> None:
        """If multi-line strings and arrays come first, then later lines are still counted right."""
        path = write(tmp_path, '''
            [[listeners]]
            transport = "tcp"
            name = """x
            [spool]
            sync = 1
            """
        ''')
        # The multi-line string makes the name invalid; "sync = 1" inside it is not a key.
        assert the_error(path).startswith(f"{path}:3: listeners[0].name:")

    def test_elements_of_a_multiline_array(self, tmp_path: Path) -> None:
        """If an array of inline tables spans lines, then each element's own line is reported."""
        path = write(tmp_path, """
            [parse]
            streamlog_formats = [
                # first
                {version = "2.1", fields = ["a"]},

                {version = "2.2", fields = ["b", "b"]},   # second
                {version = "2.3", fields = [
                    "c",
                ], bad = 1},
            ]
        """)
        assert errors_of(path) == [
            f"{path}:6: parse.streamlog_formats[1]: streamlog version 2.2: field 'b' appears twice "
            "(msg is always the last field and is implicit)",
            f"{path}:9: parse.streamlog_formats[2].bad: unknown key; the keys of a streamlog format are version, fields, tag",
        ]

    def test_third_listener_and_tables_between(self, tmp_path: Path) -> None:
        """If [[listeners]] tables are interleaved with other tables, then indices still count them."""
        path = write(tmp_path, """
            [[listeners]]
            name = "a"
            transport = "tcp"
            port = 1
            [spool]
            sync = "full"
            [[listeners]]
            name = "b"
            transport = "tcp"
            port = 2
            [logging]
            level = "info"
            [[listeners]]
            name = "c"
            transport = "tcp"
            port = 3
            bogus = true
        """)
        assert the_error(path).startswith(f"{path}:17: listeners[2].bogus:")

    def test_inline_listeners(self, tmp_path: Path) -> None:
        """If listeners are written as an inline array, then each key's line is found."""
        path = write(tmp_path, """
            listeners = [
                {transport = "tcp"},
                {transport = "udp", port = "x"},
            ]
        """)
        assert the_error(path).startswith(f"{path}:3: listeners[1].port:")


class TestWarnings:
    """Settings that work but are probably not meant give warnings, not errors."""

    def test_builtin_version_redefined(self, tmp_path: Path) -> None:
        """If the built-in 0.1 is redefined, then it is used and a warning says how 0.1 lines are read."""
        path = write(tmp_path, """
            [parse]
            streamlog_formats = [{version = "0.1", fields = ["hostname", "pri-text", "app-name", "procid", "msgid"]}]
        """)
        loaded = load_config(path)
        assert loaded.config.parse.streamlog_formats[0].fields == ("hostname", "pri-text", "app-name", "procid", "msgid")
        assert loaded.warnings == (
            f"{path}:2: parse.streamlog_formats[0]: redefines the built-in streamlog version 0.1 "
            "(fields hostname pri-text protocol-version app-name procid msgid msg): its lines will be read as "
            "hostname pri-text app-name procid msgid msg instead",
        )

    def test_builtin_version_restated(self, tmp_path: Path) -> None:
        """If 0.1 is given with its built-in fields, then there is no warning."""
        path = write(tmp_path, """
            [parse]
            streamlog_formats = [{version = "0.1", fields = ["hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid"]}]
        """)
        assert load_config(path).warnings == ()

    def test_tcp_keys_on_udp(self, tmp_path: Path) -> None:
        """If TCP-only keys are set on a UDP listener (or UDP-only on TCP), then each gives a warning."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "udp"
            framing = "lf"
            keepalive_seconds = 10
            [[listeners]]
            transport = "tcp"
            receive_buffer_bytes = 4096
        """)
        assert load_config(path).warnings == (
            f"{path}:3: listeners[0].framing: has no effect on a udp listener (it applies to TCP listeners only)",
            f"{path}:4: listeners[0].keepalive_seconds: has no effect on a udp listener "
            "(it applies to TCP and RELP listeners only)",
            f"{path}:7: listeners[1].receive_buffer_bytes: has no effect on a tcp listener (it applies to UDP listeners only)",
        )

    def test_rejected_templates_in_formats_file(self, tmp_path: Path) -> None:
        """If the formats file has templates that are not streamlog, then each gives a warning."""
        write(tmp_path, (
            '$template A,"3.0 sys_tag %timegenerated:::date-unixtimestamp% %fromhost-ip% %hostname% %msg%\\n"\n'
            '$template B,"%msg%\\n"\n'
        ), name="rsyslog.conf")
        path = write(tmp_path, '[parse]\nstreamlog_formats_file = "rsyslog.conf"\n')
        (warning,) = load_config(path).warnings
        assert warning.startswith(f"{path}:2: parse.streamlog_formats_file: {tmp_path / 'rsyslog.conf'}:2: template B")


class TestLogtailJson:
    """Logtail's ilogtail_config.json gives one TCP streamlog listener."""

    def write_json(self, tmp_path: Path, data: object, name: str = "ilogtail_config.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data, indent=4) + "\n")
        return path

    def test_streamlog_keys(self, tmp_path: Path) -> None:
        """If streamlog is open, then the listener takes Logtail's address and port."""
        path = self.write_json(tmp_path, {
            "streamlog_open": True, "streamlog_tcp_addr": "10.0.0.1", "streamlog_tcp_port": 5140,
        })
        loaded = load_config(path)
        assert loaded.config.listeners == (
            ListenerConfig(name="streamlog", transport="tcp", port=5140, address="10.0.0.1", format="auto"),
        )
        assert loaded.config.source == str(path)
        assert loaded.config.state_directory == default_state_directory()
        assert loaded.warnings == ()

    def test_defaults(self, tmp_path: Path) -> None:
        """If only streamlog_open is set, then the listener is every address, port 11111."""
        path = self.write_json(tmp_path, {"streamlog_open": True})
        assert load_config(path).config.listeners == (ListenerConfig(name="streamlog", transport="tcp"),)

    def test_formats_as_a_json_string(self, tmp_path: Path) -> None:
        """If streamlog_formats is a JSON string, then it is read as the list it holds."""
        path = self.write_json(tmp_path, {
            "streamlog_open": True,
            "streamlog_formats": json.dumps([{"version": "2.1", "fields": ["level", "method"]}]),
        })
        assert load_config(path).config.parse.streamlog_formats == (StreamlogFormat("2.1", ("level", "method")),)

    def test_streamlog_closed(self, tmp_path: Path) -> None:
        """If streamlog_open is false, then the error says there would be nothing to listen on."""
        path = self.write_json(tmp_path, {"cpu_usage_limit": 0.4, "streamlog_open": False})
        assert the_error(path) == (
            f"{path}:3: streamlog_open: is false: Logtail's streamlog input is off in this file, so the "
            'receiver would have nothing to listen on; set "streamlog_open": true'
        )

    def test_streamlog_open_missing(self, tmp_path: Path) -> None:
        """If streamlog_open is missing, then the error says Logtail's default is false."""
        path = self.write_json(tmp_path, {"streamlog_tcp_port": 11111})
        assert the_error(path).startswith(f"{path}:1: streamlog_open: is missing (Logtail's default is false)")

    def test_other_keys_are_warnings(self, tmp_path: Path) -> None:
        """If the file has other Logtail keys, then each is ignored with a warning naming it."""
        path = self.write_json(tmp_path, {
            "config_server_address": "http://logtail.cn-hangzhou-intranet.log.aliyuncs.com",
            "streamlog_open": True,
            "streamlog_tcp_prot": 5140,
        })
        assert load_config(path).warnings == (
            f"{path}:2: config_server_address: ignored: a Logtail setting this receiver does not use",
            f"{path}:4: streamlog_tcp_prot: ignored: a Logtail setting this receiver does not use "
            '(did you mean "streamlog_tcp_port"?)',
        )

    def test_every_error(self, tmp_path: Path) -> None:
        """If several streamlog keys are wrong, then each is reported with its line."""
        path = self.write_json(tmp_path, {
            "streamlog_open": "yes",
            "streamlog_tcp_addr": "any",
            "streamlog_tcp_port": 65536,
            "streamlog_formats": [{"version": "2.1", "fields": ["level", "msg"]}],
        })
        errors = errors_of(path)
        assert [e.split(": ")[0:2] for e in errors] == [
            [f"{path}:2", "streamlog_open"],
            [f"{path}:3", "streamlog_tcp_addr"],
            [f"{path}:4", "streamlog_tcp_port"],
            [f"{path}:6", "streamlog_formats[0]"],
        ]
        assert errors[1].endswith('(or "" for every address)')

    def test_json_syntax_error(self, tmp_path: Path) -> None:
        """If the file is not valid JSON, then the error gives the line and column."""
        path = tmp_path / "ilogtail_config.json"
        path.write_text('{\n    "streamlog_open": true,\n}\n')
        assert the_error(path) == f"{path}:3:1: not valid JSON: Expecting property name enclosed in double quotes"

    def test_not_an_object(self, tmp_path: Path) -> None:
        """If the JSON is not an object, then the error says what the file should hold."""
        path = self.write_json(tmp_path, [1])
        assert "a JSON object of Logtail settings" in the_error(path)


class TestCheckConfig:
    """``receiver check-config``: a summary line and exit 0, or every error and exit 2."""

    def test_ok(self, capsys: pytest.CaptureFixture[str]) -> None:
        """If the file is good, then one OK line names it, its listeners and the spool."""
        assert check_config(RECEIVER_TOML) == 0
        out, err = capsys.readouterr()
        spool = default_state_directory() / "spool"
        assert out == (
            f"OK: {RECEIVER_TOML}: 2 listeners (tcp [::]:11111 tcp-11111, udp [::]:11111 udp-11111), spool {spool}, sink local (local)\n"
        )
        assert err == ""

    def test_tls_files_are_loaded(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If a TLS listener's key does not match its certificate, then check-config says so (exit 2), as the
        daemon would at start; with a good pair it prints the listener as tcp+tls."""
        from receiver.cli.tls import write_selfsigned

        good = write_selfsigned(tmp_path / "good", name="logs.example.com")
        other = write_selfsigned(tmp_path / "other", name="other.example.com")
        text = """
            state_directory = "st"
            [[listeners]]
            name = "tls"
            transport = "tcp"
            address = "127.0.0.1"
            [listeners.tls]
            certificate_file = "{cert}"
            key_file = "{key}"
        """
        path = write(tmp_path, text.format(cert=good.certificate_file, key=good.key_file))
        assert check_config(path) == 0
        assert "tcp+tls 127.0.0.1:6514 tls" in capsys.readouterr().out
        path = write(tmp_path, text.format(cert=good.certificate_file, key=other.key_file))
        assert check_config(path) == 2
        err = capsys.readouterr().err
        assert "listener 'tls' cannot start: " in err and str(other.key_file) in err

    def test_defaults(self, capsys: pytest.CaptureFixture[str]) -> None:
        """If no file is given, then the built-in defaults are checked."""
        assert check_config(None) == 0
        assert capsys.readouterr().out.startswith("OK: built-in defaults: 2 listeners (tcp [::]:11111 tcp-11111, ")

    def test_one_listener_and_warnings(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If the file gives warnings, then they follow the OK line on stderr."""
        path = write(tmp_path, """
            state_directory = "st"
            [[listeners]]
            name = "lo"
            transport = "udp"
            address = "127.0.0.1"
            port = 514
            framing = "lf"
        """)
        assert check_config(path) == 0
        out, err = capsys.readouterr()
        assert out == f"OK: {path}: 1 listener (udp 127.0.0.1:514 lo), spool {tmp_path / 'st' / 'spool'}, sink local (local)\n"
        assert err == (
            f"warning: {path}:7: listeners[0].framing: has no effect on a udp listener "
            "(it applies to TCP listeners only)\n"
        )

    def test_sink_that_cannot_start(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If an upstream sink's key file is readable by others, then check-config says so and exits 2,
        rather than delivery finding out later."""
        key = tmp_path / "collector.key"
        key.write_text("secret-key-material")
        key.chmod(0o644)
        path = write(tmp_path, f"""
            [[sinks]]
            type = "http"
            url = "https://collector.example.com/logs"
            key_file = "{key}"
        """)
        assert check_config(path) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith(f"{path}: sink 'http' (http) cannot start: ") and "chmod 600" in err
        assert "secret-key-material" not in err

    def test_sls_keys_from_the_environment_are_a_note(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If SLS keys come from the environment and this shell has none, then check-config says it could
        not check them (a warning), not that the file is bad: the daemon's environment may have them."""
        for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        path = write(tmp_path, """
            [[sinks]]
            type = "sls"
            endpoint = "cn-hangzhou.log.aliyuncs.com"
            project = "p"
            logstore = "syslog"
        """)
        assert check_config(path) == 0
        out, err = capsys.readouterr()
        assert out.startswith("OK: ") and "sink sls (sls)" in out
        assert err.startswith(f"warning: {path}: sink 'sls' (sls): not checked here: ") and "ALIBABA_CLOUD_ACCESS_KEY_ID" in err

    def test_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If the file has errors, then each is one line on stderr and the status is 2."""
        path = write(tmp_path, '[spool]\nsync = "x"\n[logging]\nlevel = "y"\n')
        assert check_config(path) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.splitlines() == [
            f'{path}:2: spool.sync: "x" is not one of normal, full',
            f'{path}:4: logging.level: "y" is not one of debug, info, warning, error',
        ]

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """If the file does not exist, then the status is 2 and stderr says so."""
        assert check_config(tmp_path / "none.toml") == 2
        assert "cannot read the configuration" in capsys.readouterr().err


class TestDeliverySections:
    """[[sinks]], [[routes]], [[machine_groups]], [identity] and [deliver]."""

    def test_every_sink_type(self, tmp_path: Path) -> None:
        """If each sink type is configured, then each becomes its dataclass with the values given."""
        path = write(tmp_path, """
            [[sinks]]
            type = "local"
            max_age_hours = 2
            [[sinks]]
            type = "sls"
            endpoint = "http://127.0.0.1:8080"
            project = "p"
            logstore = "syslog"
            signature = "v4"
            region = "cn-hangzhou"
            credentials_file = "sls.keys"
            [[sinks]]
            type = "clickhouse"
            name = "ch"
            table = "logs"
            [[sinks]]
            type = "http"
            name = "collector"
            url = "https://collector.example.com/v1/logs"
            signature = "none"
            [deliver]
            default_sink = "ch"
            segments_per_batch = 4
        """)
        config = load_config(path).config
        assert config.sinks == (
            LocalSinkConfig(max_age_hours=2.0),
            SlsSinkConfig(
                name="sls", endpoint="http://127.0.0.1:8080", project="p", logstore="syslog",
                signature="v4", region="cn-hangzhou", credentials_file=tmp_path / "sls.keys",
            ),
            ClickHouseSinkConfig(name="ch", table="logs"),
            HttpSinkConfig(name="collector", url="https://collector.example.com/v1/logs", signature="none"),
        )
        assert config.deliver == DeliverConfig(default_sink="ch", segments_per_batch=4)

    def test_one_sink_is_the_default_sink(self, tmp_path: Path) -> None:
        """If one sink is configured and no default_sink, then it is the default sink."""
        path = write(tmp_path, """
            [[sinks]]
            type = "clickhouse"
            name = "ch"
        """)
        assert load_config(path).config.deliver.default_sink == "ch"

    def test_routes_and_groups(self, tmp_path: Path) -> None:
        """If routes, machine groups and the identity file are given, then they load as written."""
        path = write(tmp_path, """
            [identity]
            user_defined_id_file = "ids"
            [[machine_groups]]
            name = "web"
            networks = ["10.0.1.0/24"]
            hostnames = ["web-*"]
            [[routes]]
            sink = "local"
            tag = "sys_tag"
            filter = "app-name=todo-list and _severity_<=4"
            destination = "todo"
        """)
        config = load_config(path).config
        assert config.identity == IdentityConfig(user_defined_id_file=tmp_path / "ids")
        assert config.machine_groups == (MachineGroup("web", ("10.0.1.0/24",), ("web-*",)),)
        assert config.routes == (
            RouteConfig(sink="local", tag="sys_tag", filter="app-name=todo-list and _severity_<=4", destination="todo"),
        )

    def test_dropping_route(self, tmp_path: Path) -> None:
        """If a route says drop = true with a filter, then it loads as a route to no sink."""
        path = write(tmp_path, '[[routes]]\nname = "no-debug"\ndrop = true\nfilter = "_severity_=debug"\n')
        assert load_config(path).config.routes == (RouteConfig(name="no-debug", drop=True, filter="_severity_=debug"),)

    @pytest.mark.parametrize(
        ("text", "key_path", "message"),
        [
            ('[[sinks]]\nname = "x"', "sinks[0].type", "missing; every sink needs one: one of local, sls, clickhouse, http"),
            ('[[sinks]]\ntype = "clickhous"', "sinks[0].type", '"clickhous" is not a sink type: one of local, sls, clickhouse, http (did you mean "clickhouse"?)'),
            ('[[sinks]]\ntype = "sls"\nname = "s"\nproject = "p"\nlogstore = "l"', "sinks[0].endpoint", "missing; a sink of type \"sls\" needs endpoint"),
            ('[[sinks]]\ntype = "http"\nname = "h"\nurl = "https://x.example/"', "sinks[0].key_file", "missing; a signing HTTP sink needs its key"),
            ('[[sinks]]\ntype = "http"\nname = "h"\nurl = "ftp://x"\nsignature = "none"', "sinks[0].url", '"ftp://x" is not an http:// or https:// URL'),
            # A URL that is not one is still shown without its password.
            ('[[sinks]]\ntype = "http"\nname = "h"\nurl = "ftp://u:s3cret@x/?password=s3cret"\nsignature = "none"',
             "sinks[0].url", '"ftp://x/?..." is not an http:// or https:// URL'),
            ('[[sinks]]\ntype = "sls"\nname = "s"\nendpoint = "e"\nproject = "p"\nlogstore = "l"\nsignature = "v4"', "sinks[0].region", "missing; signature v4 needs the region"),
            ('[[sinks]]\ntype = "local"\ntable = "t"', "sinks[0].table", 'unknown key; the keys of a [[sinks]] table of type "local" are'),
            ('[[sinks]]\ntype = "clickhouse"\ntable = "sys-log"', "sinks[0].table", '"sys-log" is not a plain ClickHouse name'),
            ('[[routes]]\nsink = "nowhere"', "routes[0].sink", '"nowhere" is not a sink; the sinks are local'),
            ('[[routes]]\ndrop = true\nsink = "local"\nfilter = "x"', "routes[0].sink", "a route with drop = true sends its records nowhere: remove sink"),
            ('[[routes]]\ndrop = true', "routes[0].drop", "this route would drop every record: give it a tag or a filter"),
            ('[[sinks]]\ntype = "clickhouse"\n[[routes]]\nsink = "clickhouse"\ndestination = "a.b"', "routes[0].destination", '"a.b" is not a plain ClickHouse name'),
            ('[[routes]]\ntag = "t"', "routes[0].sink", "missing; a route needs the sink its records go to: one of local"),
            ('[[routes]]\nsink = "local"\nfilter = "app-name="', "routes[0].filter", "filter"),
            ('[[machine_groups]]\nname = "g"\nnetworks = ["10.0.0.300/8"]', "machine_groups[0].networks", '"10.0.0.300/8" is not a network'),
            ('[[machine_groups]]\nname = "g"', "machine_groups[0]", "needs networks, hostnames or both"),
            ('[deliver]\ndefault_sink = "sls"', "deliver.default_sink", '"sls" is not a sink; the sinks are local'),
            ('[deliver]\nsegments_per_batch = 1025', "deliver.segments_per_batch", "1025 is not an integer from 0 to 1024"),
        ],
    )
    def test_mistakes(self, tmp_path: Path, text: str, key_path: str, message: str) -> None:
        """If a delivery setting is wrong, then the one error names its line, key path and the fix."""
        path = write(tmp_path, text)
        error = the_error(path)
        assert error.startswith(f"{path}:"), error
        assert f": {key_path}: " in error, error
        assert message in error, error

    def test_several_sinks_need_a_default(self, tmp_path: Path) -> None:
        """If several sinks and none named local are configured, then default_sink is required."""
        path = write(tmp_path, """
            [[sinks]]
            type = "clickhouse"
            name = "a"
            [[sinks]]
            type = "clickhouse"
            name = "b"
        """)
        assert "deliver.default_sink: missing; with several sinks" in the_error(path)

    def test_duplicate_sink_name(self, tmp_path: Path) -> None:
        """If two sinks share a name, then the second is an error naming the first."""
        path = write(tmp_path, """
            [[sinks]]
            type = "local"
            [[sinks]]
            type = "local"
        """)
        assert 'sinks[1].name: "local" is already the name of sinks[0] (line 1)' in the_error(path)


def example_block(heading: str) -> str:
    """The commented [[listeners]] example that follows the comment line ``heading`` in receiver.toml,
    uncommented ("# " removed)."""
    lines = RECEIVER_TOML.read_text().splitlines()
    start = lines.index("# [[listeners]]", lines.index(heading))
    block: list[str] = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    return "\n".join(block) + "\n"


class TestOneLocalSink:
    def test_a_second_local_sink_is_refused(self, tmp_path: Path) -> None:
        """If two local sinks are configured, then the second is an error that says why there is one."""
        path = write(tmp_path, '[[sinks]]\ntype = "local"\n\n[[sinks]]\ntype = "local"\nname = "other"\npath = "x"\n')
        error = the_error(path)
        assert "sinks[1].type" in error and "one process runs one embedded store" in error


class TestLowPorts:
    """``check-config`` on a port below 1024: the capability the unit grants only by a drop-in."""

    def test_needs_the_capability(self, tmp_path: Path) -> None:
        """If a listener is on port 514 and the process has no CAP_NET_BIND_SERVICE, then the problem is
        named with the fix; with the capability, or with no low port, there is none."""
        from receiver.cli.check_config import port_problems

        config = load_config(write(tmp_path, '[[listeners]]\ntransport = "udp"\nport = 514\n')).config
        start = tmp_path / "start"
        start.write_text("1024\n")
        without, with_it = tmp_path / "without", tmp_path / "with"
        without.write_text("CapInh:\t0000000000000000\nCapEff:\t0000000000000000\n")
        with_it.write_text("CapEff:\t0000000000000400\n")
        (problem,) = port_problems(config, status=without, unprivileged_start=start)
        assert "port 514 needs CAP_NET_BIND_SERVICE" in problem and "docs/systemd.md" in problem
        assert port_problems(config, status=with_it, unprivileged_start=start) == []
        start.write_text("0\n")  # net.ipv4.ip_unprivileged_port_start = 0: any port
        assert port_problems(config, status=without, unprivileged_start=start) == []


class TestSystemdCredentials:
    """Paths under ``${CREDENTIALS_DIRECTORY}``: keys handed to the unit by LoadCredential=."""

    TEXT = """
        [[sinks]]
        type = "sls"
        name = "sls"
        endpoint = "cn-hangzhou.log.aliyuncs.com"
        project = "p"
        logstore = "l"
        credentials_file = "${CREDENTIALS_DIRECTORY}/sls-keys"
    """

    def test_expanded_under_systemd(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If CREDENTIALS_DIRECTORY is set (systemd with LoadCredential=), then the path is the credential's."""
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/syslog-receiver.service")
        sls = load_config(write(tmp_path, self.TEXT)).config.sinks[0]
        assert sls.credentials_file == Path("/run/credentials/syslog-receiver.service/sls-keys")  # type: ignore[union-attr]

    def test_refused_without_systemd(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If CREDENTIALS_DIRECTORY is not set, then the path is an error that says where such paths work."""
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
        error = the_error(write(tmp_path, self.TEXT))
        assert "sinks[0].credentials_file" in error and "LoadCredential=" in error


class TestTlsAndRelpListeners:
    """[listeners.tls] and transport = "relp": defaults, the shipped examples, and each mistake's message."""

    def test_tls_table(self, tmp_path: Path) -> None:
        """If a TCP listener has a [listeners.tls] table, then it gets TlsConfig, port 6514 and name tcp-tls-6514."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            [listeners.tls]
            certificate_file = "tls/receiver.crt"
            key_file = "tls/receiver.key"
            ca_file = "tls/ca.crt"
            client_certificates = "required"
            allowed_subjects = ["*.example.com"]
            min_version = "1.3"
            handshake_timeout_seconds = 5
        """)
        (listener,) = load_config(path).config.listeners
        assert (listener.name, listener.port) == ("tcp-tls-6514", 6514)
        assert listener.tls == TlsConfig(
            tmp_path / "tls/receiver.crt", tmp_path / "tls/receiver.key", ca_file=tmp_path / "tls/ca.crt",
            client_certificates="required", allowed_subjects=("*.example.com",), min_version="1.3",
            handshake_timeout_seconds=5.0,
        )

    def test_dotted_keys_and_given_port(self, tmp_path: Path) -> None:
        """If tls keys are written inside [[listeners]] as tls.KEY and a port is given, then the same TLS applies
        on that port."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            port = 7000
            tls.certificate_file = "/etc/r.crt"
            tls.key_file = "/etc/r.key"
        """)
        (listener,) = load_config(path).config.listeners
        assert (listener.name, listener.port) == ("tcp-tls-7000", 7000)
        assert listener.tls == TlsConfig(Path("/etc/r.crt"), Path("/etc/r.key"))

    def test_relp_defaults(self, tmp_path: Path) -> None:
        """If a listener is relp, then its port is 2514 and its name relp-2514 (relp-tls-2514 with TLS)."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "relp"
            [[listeners]]
            transport = "relp"
            address = "127.0.0.1"
            port = 2515
            [listeners.tls]
            certificate_file = "/etc/r.crt"
            key_file = "/etc/r.key"
        """)
        plain, tls = load_config(path).config.listeners
        assert (plain.name, plain.transport, plain.port, plain.tls) == ("relp-2514", "relp", 2514, None)
        assert (tls.name, tls.port, tls.tls) == ("relp-tls-2515", 2515, TlsConfig(Path("/etc/r.crt"), Path("/etc/r.key")))

    def test_shipped_tls_example_loads(self, tmp_path: Path) -> None:
        """If receiver.toml's TLS example is uncommented, then it is an octet TLS listener with every TLS key at
        its default but the paths."""
        path = write(tmp_path, example_block("# TLS (RFC 5425, syslog over TLS; docs/tls.md). A [listeners.tls] table"))
        loaded = load_config(path)
        assert loaded.warnings == ()
        (listener,) = loaded.config.listeners
        assert (listener.name, listener.port, listener.framing) == ("tcp-tls-6514", 6514, "octet")
        assert listener.tls is not None
        assert dataclasses.replace(listener.tls, ca_file=None) == TlsConfig(
            Path("/etc/syslog-receiver/tls/receiver.crt"), Path("/etc/syslog-receiver/tls/receiver.key")
        )

    def test_shipped_relp_example_loads(self, tmp_path: Path) -> None:
        """If receiver.toml's RELP example is uncommented, then it is a plain RELP listener on 2514."""
        path = write(tmp_path, example_block("# RELP (rsyslog's omrelp; docs/relp.md): each message is acknowledged to"))
        loaded = load_config(path)
        assert loaded.warnings == ()
        assert loaded.config.listeners == (ListenerConfig(name="relp-2514", transport="relp", port=2514),)

    def test_missing_key_file(self, tmp_path: Path) -> None:
        """If the tls table has no key_file, then the error names it and how to make a pair."""
        path = write(tmp_path, '[[listeners]]\ntransport = "tcp"\n[listeners.tls]\ncertificate_file = "r.crt"\n')
        assert the_error(path) == (
            f"{path}:3: listeners[0].tls.key_file: missing; TLS needs a certificate and its key "
            "(`receiverctl tls selfsigned --out DIR` makes a pair)"
        )

    def test_unknown_key_in_tls(self, tmp_path: Path) -> None:
        """If the tls table has an unknown key, then the error names its line and suggests the closest key."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            tls.certificate_file = "r.crt"
            tls.key_file = "r.key"
            tls.client_certificate = "required"
        """)
        assert the_error(path) == (
            f'{path}:5: listeners[0].tls.client_certificate: unknown key; did you mean "client_certificates"?'
        )

    def test_allowlist_without_client_certificates(self, tmp_path: Path) -> None:
        """If an allowlist is given without client certificates, then the error says which setting to add."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            [listeners.tls]
            certificate_file = "r.crt"
            key_file = "r.key"
            allowed_fingerprints = ["%s"]
        """ % ("AB:" * 31 + "AB"))
        assert the_error(path) == (
            f"{path}:3: listeners[0].tls: allowed_subjects/allowed_fingerprints need client certificates: "
            'set client_certificates = "required" (or "optional"), or remove the allowlist'
        )

    def test_client_certificates_without_ca(self, tmp_path: Path) -> None:
        """If client certificates are required with neither ca_file nor fingerprints, then the error says so."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "relp"
            [listeners.tls]
            certificate_file = "r.crt"
            key_file = "r.key"
            client_certificates = "required"
        """)
        assert 'client_certificates = "required" needs ca_file' in the_error(path)

    def test_bad_tls_values(self, tmp_path: Path) -> None:
        """If tls values have the wrong choice or type, then each is an error with the allowed values."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            [listeners.tls]
            certificate_file = "r.crt"
            key_file = "r.key"
            min_version = "1.1"
            client_certificates = "yes"
            handshake_timeout_seconds = 0
        """)
        errors = errors_of(path)
        assert [e.split(": ")[1] for e in errors] == [
            "listeners[0].tls.min_version", "listeners[0].tls.client_certificates",
            "listeners[0].tls.handshake_timeout_seconds",
        ]

    def test_tls_not_a_table(self, tmp_path: Path) -> None:
        """If tls is a value instead of a table, then the error says it must be a table."""
        path = write(tmp_path, '[[listeners]]\ntransport = "tcp"\ntls = true\n')
        assert "listeners[0].tls: true is a boolean, not a table ([listeners.tls])" in the_error(path)

    def test_tls_on_udp_warns(self, tmp_path: Path) -> None:
        """If a UDP listener has a tls table, then it warns that it has no effect and the listener stays plain."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "udp"
            port = 514
            [listeners.tls]
            certificate_file = "r.crt"
            key_file = "r.key"
        """)
        loaded = load_config(path)
        assert loaded.warnings == (
            f"{path}:4: listeners[0].tls: has no effect on a udp listener (it applies to TCP and RELP listeners only)",
        )
        assert loaded.config.listeners[0].tls is None

    def test_framing_on_relp_warns(self, tmp_path: Path) -> None:
        """If a RELP listener sets framing, then it warns that framing does not apply."""
        path = write(tmp_path, '[[listeners]]\ntransport = "relp"\nframing = "lf"\n')
        (warning,) = load_config(path).warnings
        assert warning.startswith(f"{path}:3: listeners[0].framing: has no effect on a relp listener")


class TestNulEndsFrame:
    """The listener key ``nul_ends_frame`` (Python's SysLogHandler ends messages with NUL)."""

    def test_default_and_off(self, tmp_path: Path) -> None:
        """If a TCP listener sets nul_ends_frame = false, then it is off there; other listeners keep the default, on."""
        path = write(tmp_path, """
            [[listeners]]
            transport = "tcp"
            nul_ends_frame = false
            [[listeners]]
            transport = "tcp"
            port = 514
        """)
        loaded = load_config(path)
        assert loaded.warnings == ()
        assert [listener.nul_ends_frame for listener in loaded.config.listeners] == [False, True]

    def test_not_a_boolean(self, tmp_path: Path) -> None:
        """If nul_ends_frame is not a boolean, then the error names the key and says what it takes."""
        path = write(tmp_path, '[[listeners]]\ntransport = "tcp"\nnul_ends_frame = "yes"\n')
        assert the_error(path).startswith(f'{path}:3: listeners[0].nul_ends_frame: "yes" is a string, not true or false')

    @pytest.mark.parametrize("transport", ["udp", "relp"])
    def test_only_for_tcp(self, tmp_path: Path, transport: str) -> None:
        """If a UDP or RELP listener sets nul_ends_frame, then it warns that the key has no effect there."""
        path = write(tmp_path, f'[[listeners]]\ntransport = "{transport}"\nnul_ends_frame = false\n')
        assert load_config(path).warnings == (
            f"{path}:3: listeners[0].nul_ends_frame: has no effect on a {transport} listener "
            "(it applies to TCP listeners only)",
        )
