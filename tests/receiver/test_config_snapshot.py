"""The configuration the daemon runs, written for the delivery process: receiver/config/snapshot.py."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from formats.streamlog import StreamlogFormat
from receiver.config.identity import MachineGroup
from receiver.config.model import (
    ClickHouseSinkConfig,
    Config,
    HttpSinkConfig,
    ListenerConfig,
    LocalSinkConfig,
    ParseConfig,
    RouteConfig,
    SlsSinkConfig,
    TlsConfig,
    default_config,
)
from receiver.config.snapshot import (
    SnapshotError,
    config_from_json,
    config_to_json,
    read_snapshot,
    write_snapshot,
)


def everything(tmp_path: Path) -> Config:
    """A configuration using every kind of value: TLS, every sink type, routes, groups, streamlog formats."""
    tls = TlsConfig(tmp_path / "r.crt", tmp_path / "r.key", ca_file=tmp_path / "ca.crt",
                    client_certificates="required", allowed_subjects=("*.example.com",),
                    allowed_fingerprints=("ab" * 32,), min_version="1.3", handshake_timeout_seconds=2.5)
    return dataclasses.replace(
        default_config(),
        state_directory=tmp_path / "state",
        listeners=(
            ListenerConfig(name="tls", transport="tcp", port=6514, tls=tls, allowed_networks=("10.0.0.0/8",)),
            ListenerConfig(name="udp", transport="udp", rate_limit_records_per_second=10.5),
            ListenerConfig(name="relp", transport="relp", port=2514, format="rfc5424"),
        ),
        sinks=(
            LocalSinkConfig(path=tmp_path / "local.db"),
            SlsSinkConfig(name="sls", endpoint="cn-hangzhou.log.aliyuncs.com", project="p", logstore="l",
                          credentials_file=tmp_path / "keys", signature="v4", region="cn-hangzhou"),
            ClickHouseSinkConfig(name="ch", password_file=None),
            HttpSinkConfig(name="http", url="https://collector.example.com/x", key_file=tmp_path / "k"),
        ),
        routes=(RouteConfig(sink="sls", tag="sys_tag", filter="_severity_<=3", destination="errors", name="e"),
                RouteConfig(drop=True, filter="app-name=noisy")),
        machine_groups=(MachineGroup("web", networks=("10.1.0.0/16",), hostnames=("web-*",)),),
        parse=ParseConfig(timezone="Asia/Shanghai", streamlog_formats=(StreamlogFormat("2.1", ("level", "method")),)),
        source="/etc/syslog-receiver/receiver.toml",
    )


class TestSnapshot:
    def test_round_trip(self, tmp_path: Path) -> None:
        """If a configuration is written and read back, then it is equal, field for field and type for type."""
        config = everything(tmp_path)
        again = config_from_json(config_to_json(config))
        assert again == config
        assert isinstance(again.sinks[1], SlsSinkConfig) and isinstance(again.listeners[0].tls, TlsConfig)
        assert isinstance(again.state_directory, Path) and isinstance(again.routes, tuple)
        assert config_from_json(config_to_json(default_config())) == default_config()

    def test_file_is_written_atomically_and_not_world_readable(self, tmp_path: Path) -> None:
        """If the daemon writes its snapshot, then it is one file of mode 0640 in the state directory, and
        a reader gets the configuration back."""
        config = everything(tmp_path)
        path = write_snapshot(config, tmp_path / "state")
        assert path == tmp_path / "state" / "running-config.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert [p.name for p in path.parent.iterdir()] == ["running-config.json"]
        assert read_snapshot(path) == config

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            (lambda d: d["config"]["listeners"][0].update(port="6514"), "config.listeners[0].port"),
            (lambda d: d["config"]["sinks"][1].update(type="kafka"), "config.sinks[1]"),
            (lambda d: d["config"]["spool"].update(sync="fsync"), "config.spool.sync"),
            (lambda d: d["config"].update(extra=1), "unknown fields"),
            (lambda d: d["config"]["listeners"][0]["tls"].update(min_version="1.1"), "min_version"),
            (lambda d: d.update(format=99), "format"),
        ],
    )
    def test_damage_is_refused_naming_the_field(self, tmp_path: Path, change: object, field: str) -> None:
        """If the snapshot was damaged or edited into something that is not a configuration, then reading it
        fails with SnapshotError naming where, never with a half-built configuration."""
        document = json.loads(config_to_json(everything(tmp_path)))
        change(document)  # type: ignore[operator]
        with pytest.raises(SnapshotError, match=field.replace("[", r"\[").replace("]", r"\]")):
            config_from_json(json.dumps(document))

    def test_not_json(self) -> None:
        """If the file is not JSON, then SnapshotError says so."""
        with pytest.raises(SnapshotError, match="not JSON"):
            config_from_json("{nope")
