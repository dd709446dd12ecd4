"""Reading a configuration file into :class:`receiver.config.model.Config`.

    loaded = load_config(Path("/etc/syslog-receiver/receiver.toml"))
    loaded.config     # the Config
    loaded.warnings   # things that work but are probably not what was meant

A file is TOML laid out like the dataclasses of ``receiver.config.model``; a file
whose name ends in ``.json`` is read as Logtail's ``ilogtail_config.json``.
Every problem in a file is reported, not just the first: :class:`ConfigError`
carries them all, one line each, and every line names the file, the line, the
key path and what is allowed::

    conf/receiver.toml:14: listeners[1].framing: "crlf" is not one of auto, lf, octet

tomllib gives no positions, so :mod:`.locate` finds the line of a key path
in the text itself (it reads only text tomllib has already accepted), and
:mod:`.report` words each line.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
import typing
import zoneinfo
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from formats.errors import FormatDefinitionError
from formats.framing import Framing
from formats.parse import Format
from formats.streamlog import BUILTIN_FORMATS, LeadingSpace, StreamlogFormat
from receiver.config.identity import MachineGroup
from receiver.config.locate import KeyPath, Locator
from receiver.config.model import (
    DEFAULT_LISTENERS,
    ClickHouseSinkConfig,
    ClientCertificates,
    Config,
    ControlConfig,
    DeliverConfig,
    HttpSinkConfig,
    IdentityConfig,
    LimitsConfig,
    ListenerConfig,
    LocalSinkConfig,
    LoggingConfig,
    LogLevel,
    MetricsConfig,
    ParseConfig,
    RouteConfig,
    ShutdownConfig,
    SinkConfig,
    SlsSinkConfig,
    SpoolConfig,
    SyncMode,
    TlsConfig,
    TlsConfigError,
    TlsVersion,
    Transport,
    WhenFull,
    default_state_directory,
)
from receiver.config.report import Report, as_written, key_path_text, kind_of, wrong_kind
from receiver.config.secrets import redact_url
from receiver.config.streamlog_formats import StreamlogFormatsFileError, read_streamlog_formats

__all__ = [
    "LOGTAIL_STREAMLOG_PORT",
    "MAX_FRAME_BYTES_LIMIT",
    "ConfigError",
    "LoadedConfig",
    "load_config",
]

MAX_FRAME_BYTES_LIMIT = 16 * 1024 * 1024
"""The largest ``max_frame_bytes`` accepted: 16 MiB (memory per connection is bounded by it)."""

LOGTAIL_STREAMLOG_PORT = 11111
"""Logtail's ``streamlog_tcp_port`` when ``ilogtail_config.json`` does not set it."""

_KIB = 1024
_MIB = 1024 * 1024


class ConfigError(ValueError):
    """A configuration file cannot be used.

    ``errors`` holds every problem found, one line each, in file order; each
    names the file, the line, the key path and what is allowed. ``str()`` is
    those lines joined by newlines.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__("\n".join(self.errors))


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A configuration read from a file, and the warnings reading it gave.

    Warnings are about settings that are accepted but probably not what was
    meant (a built-in streamlog version redefined, a TCP-only key on a UDP
    listener, Logtail keys this receiver ignores); they are formatted like
    errors.
    """

    config: Config
    warnings: tuple[str, ...] = ()


def load_config(path: Path) -> LoadedConfig:
    """Read and validate ``path`` (TOML, or Logtail's JSON when it ends in ``.json``).

    Raises :class:`ConfigError` listing every problem. Relative paths in the
    file are relative to the file's directory; omitted keys take the
    defaults of ``receiver.config.model``.
    """
    display = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError([f"{display}: cannot read the configuration: {e.strerror or e}"]) from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError([f"{display}:{line}: not UTF-8 text (byte {e.start})"]) from e
    base = Path(os.path.abspath(path)).parent
    if path.suffix.lower() == ".json":
        return _load_logtail(display, text, base)
    return _load_toml(display, text, base)


# -- values --------------------------------------------------------------------


class _Invalid(Exception):
    """A value is not allowed; the message says what it is and what is."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Rule:
    """What one key takes: a kind, bounds or choices, and how to say so."""

    kind: Literal[
        "int", "number", "bool", "choice", "name", "identifier", "address", "path", "zone", "text", "url", "texts",
        "networks",
    ]
    allowed: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    above: bool = False
    """``low`` itself is not allowed, only numbers above it."""


def _int(low: int, high: int | None = None, note: str = "") -> _Rule:
    span = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    return _Rule("int", span + (f" ({note})" if note else ""), low, high)


def _number(low: float, high: float | None = None, note: str = "", *, above: bool = False) -> _Rule:
    if high is not None:
        span = f"a number from {low:g} to {high:g}"
    else:
        span = f"a number {'greater than' if above else 'of at least'} {low:g}"
    return _Rule("number", span + (f" ({note})" if note else ""), low, high, above=above)


def _choice(literal: object) -> _Rule:
    return _choices(*(str(c) for c in typing.get_args(literal)))


def _choices(*choices: str) -> _Rule:
    return _Rule("choice", "one of " + ", ".join(choices), choices=choices)


def _text(allowed: str = "a non-empty string", *, empty: bool = False) -> _Rule:
    return _Rule("text", allowed, low=0 if empty else 1)


_BOOL = _Rule("bool", "true or false")
_PATH = _Rule("path", "a path (relative paths are relative to this file's directory)")
_ADDRESS = _Rule(
    "address",
    'an IP address: "::" for every IPv6 and IPv4 address, "0.0.0.0" for every IPv4 '
    'address, "127.0.0.1" for this machine only',
)
_NAME = _Rule("name", 'a non-empty name of letters, digits, "-", "_" and "."')
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_IDENTIFIER = _Rule("identifier", 'a plain ClickHouse name: letters, digits and "_", not starting with a digit')
_IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ZONE = _Rule("zone", 'an IANA time zone name such as "UTC" or "Asia/Shanghai"')
_URL = _Rule("url", 'an http:// or https:// URL such as "http://127.0.0.1:8123"')

_LOG_LEVEL = LogLevel

_LISTENER_RULES: dict[str, _Rule] = {
    "name": _NAME,
    "transport": _choice(Transport),
    "port": _int(0, 65535, "0: any free port"),
    "address": _ADDRESS,
    "framing": _choice(Framing),
    "nul_ends_frame": _BOOL,
    "format": _choice(Format),
    "max_frame_bytes": _int(1, MAX_FRAME_BYTES_LIMIT, "16 MiB at most"),
    "allowed_networks": _Rule("networks", 'a list of networks such as ["10.0.0.0/8", "192.168.1.7"]'),
    "rate_limit_records_per_second": _number(0, note="0: no limit"),
    "rate_limit_bytes_per_second": _number(0, note="0: no limit"),
    "rate_limit_burst_seconds": _number(0, 3600, above=True),
    "max_connections": _int(1),
    "max_connections_per_source": _int(1),
    "idle_timeout_seconds": _number(0, note="0: never"),
    "keepalive_seconds": _int(0, 32767, "0: off; 32767 is Linux's limit"),
    "receive_buffer_bytes": _int(1),
}
_DEFAULT_PORT = ListenerConfig(name="default", transport="tcp").port
_DEFAULT_RELP_PORT = 2514
"""rsyslog's customary imrelp port."""
_DEFAULT_TLS_PORT = 6514
"""RFC 5425's port for syslog over TLS."""
_CONNECTION_KEYS = ("max_connections", "max_connections_per_source", "idle_timeout_seconds", "keepalive_seconds")
_APPLIES_TO: dict[str, str] = {
    # listener keys that do nothing on some transports: the listeners they apply to
    "framing": "TCP",
    "nul_ends_frame": "TCP",
    "receive_buffer_bytes": "UDP",
    "tls": "TCP and RELP",
    **{key: "TCP and RELP" for key in _CONNECTION_KEYS},
}
_NOT_FOR: dict[str, tuple[str, ...]] = {
    "udp": ("framing", "nul_ends_frame", *_CONNECTION_KEYS, "tls"),
    "tcp": ("receive_buffer_bytes",),
    "relp": ("framing", "nul_ends_frame", "receive_buffer_bytes"),
}

_TLS_RULES: dict[str, _Rule] = {
    "certificate_file": _PATH,
    "key_file": _PATH,
    "ca_file": _PATH,
    "client_certificates": _choice(ClientCertificates),
    "allowed_subjects": _Rule("texts", 'a list of certificate names such as ["web-1.example.com", "*.example.com"]'),
    "allowed_fingerprints": _Rule("texts", 'a list of SHA-256 fingerprints ("receiverctl tls show CERT" prints them)'),
    "min_version": _choice(TlsVersion),
    "handshake_timeout_seconds": _number(0, 600, above=True),
}

_SPOOL_RULES: dict[str, _Rule] = {
    "directory": _PATH,
    "segment_max_bytes": _int(4 * _KIB, 64 * _MIB, "4 KiB to 64 MiB"),
    "segment_max_delay_ms": _number(0.1, 10000),
    "sync": _choice(SyncMode),
    "max_age_hours": _number(0, above=True),
    "max_bytes": _int(1),
    "when_full": _choice(WhenFull),
    "high_watermark_percent": _number(0, 100),
    "low_watermark_percent": _number(0, 100),
    "memory_high_watermark_bytes": _int(1),
    "memory_low_watermark_bytes": _int(1),
}

_SHUTDOWN_RULES: dict[str, _Rule] = {"drain_seconds": _number(0)}

_LOGGING_RULES: dict[str, _Rule] = {
    "level": _choice(_LOG_LEVEL),
    "repeat_interval_seconds": _number(0),
}

_PARSE_RULES: dict[str, _Rule] = {
    "timezone": _ZONE,
    "streamlog_leading_space": _choice(LeadingSpace),
    "rfc5424_strict": _BOOL,
}
_PARSE_SPECIAL = ("streamlog_formats", "streamlog_formats_file")

_IDENTITY_RULES: dict[str, _Rule] = {"user_defined_id_file": _PATH}

_DELIVER_RULES: dict[str, _Rule] = {
    "enabled": _BOOL,
    "default_sink": _NAME,
    "segments_per_batch": _int(1, 1024),
    "poll_interval_ms": _number(1, 10000),
    "build_processes": _int(0, 64, "0: one per core"),
}

_CONTROL_RULES: dict[str, _Rule] = {"socket": _PATH}

_LIMITS_RULES: dict[str, _Rule] = {
    "memory_limit_bytes": _int(0, note="0: no limit"),
    "cpu_limit_percent": _number(0, 6400, "of one core; 0: no limit"),
    "delivery_memory_limit_bytes": _int(0, note="0: no limit"),
}

_METRICS_RULES: dict[str, _Rule] = {
    "enabled": _BOOL,
    "address": _ADDRESS,
    "port": _int(0, 65535, "0: any free port"),
}

_SECTIONS: dict[str, dict[str, _Rule]] = {
    "spool": _SPOOL_RULES,
    "shutdown": _SHUTDOWN_RULES,
    "logging": _LOGGING_RULES,
    "parse": _PARSE_RULES,
    "identity": _IDENTITY_RULES,
    "deliver": _DELIVER_RULES,
    "metrics": _METRICS_RULES,
    "control": _CONTROL_RULES,
    "limits": _LIMITS_RULES,
}

_BATCH_RULES: dict[str, _Rule] = {
    "timeout_seconds": _number(0, 3600, above=True),
    "concurrency": _int(1, 64),
    "max_records": _int(1, 1_000_000),
}
_SINK_RULES: dict[str, dict[str, _Rule]] = {
    "local": {
        "name": _NAME, "type": _choices("local"), "path": _PATH,
        "max_age_hours": _number(0, above=True), "max_bytes": _int(1 * _MIB),
        "memory_limit_bytes": _int(128 * _MIB, None, "the engine needs some room for its merges"),
    },
    "sls": {
        "name": _NAME, "type": _choices("sls"),
        "endpoint": _text('an endpoint such as "cn-hangzhou.log.aliyuncs.com" or "http://127.0.0.1:8080"'),
        "project": _NAME, "logstore": _NAME, "credentials_file": _PATH,
        "signature": _choices("v1", "v4"), "region": _NAME, "compress": _choices("lz4", "zstd", "none"),
        "topic": _text("a string", empty=True), "route_by_hash_key": _BOOL,
        **_BATCH_RULES,
        "max_bytes": _int(1, 9 * _MIB, "SLS takes 10 MB of raw body per request"),
    },
    "clickhouse": {
        "name": _NAME, "type": _choices("clickhouse"), "url": _URL, "database": _IDENTIFIER, "table": _IDENTIFIER,
        "user": _text(), "password_file": _PATH, "create_table": _BOOL,
        **_BATCH_RULES, "max_bytes": _int(1, 256 * _MIB),
    },
    "http": {
        "name": _NAME, "type": _choices("http"), "url": _URL,
        "signature": _choices("hmac-sha256", "ed25519", "none"), "key_file": _PATH, "key_id": _text(),
        "gzip": _BOOL, **_BATCH_RULES, "max_bytes": _int(1, 256 * _MIB),
    },
}
_SINK_CLASSES: dict[str, type[SinkConfig]] = {
    "local": LocalSinkConfig, "sls": SlsSinkConfig, "clickhouse": ClickHouseSinkConfig, "http": HttpSinkConfig,
}
_SINK_REQUIRED: dict[str, tuple[str, ...]] = {
    "local": (), "sls": ("endpoint", "project", "logstore"), "clickhouse": (), "http": ("url",),
}
_ROUTE_RULES: dict[str, _Rule] = {
    "name": _NAME, "sink": _NAME, "tag": _text('a streamlog tag such as "sys_tag"'),
    "filter": _text('a filter such as "app-name=todo-list and _severity_<=4"'), "destination": _NAME,
    "drop": _BOOL,
}
_MACHINE_GROUP_RULES: dict[str, _Rule] = {
    "name": _NAME,
    "networks": _Rule("networks", 'a list of networks such as ["10.0.0.0/8", "192.168.1.7"]'),
    "hostnames": _Rule("texts", 'a list of hostname patterns such as ["web-*", "db-?.example.com"]'),
}
_ARRAYS = ("listeners", "sinks", "routes", "machine_groups")
_TOP_KEYS = ("state_directory", *_ARRAYS, *_SECTIONS)

_STREAMLOG_ENTRY_KEYS = ("version", "fields", "tag")
_TABLE_NAMES = ("the top level", *(f"[[{array}]]" for array in _ARRAYS), *(f"[{section}]" for section in _SECTIONS))

_KEY_HOMES: dict[str, str] = {
    **{key: "[[sinks]]" for rules in _SINK_RULES.values() for key in rules},
    **{key: "[[listeners]]" for key in _LISTENER_RULES},
    **{key: f"[{section}]" for section, rules in _SECTIONS.items() for key in rules},
    **{key: "[parse]" for key in _PARSE_SPECIAL},
    "state_directory": "the top of the file (before any [table])",
    **{key: "[[routes]]" for key in _ROUTE_RULES if key != "name"},
    **{key: "[[machine_groups]]" for key in _MACHINE_GROUP_RULES if key != "name"},
    **{array: f"the top of the file, as [[{array}]] tables" for array in _ARRAYS},
    **{section: f"the top of the file, as a [{section}] table" for section in _SECTIONS},
}


def _convert(rule: _Rule, value: object, base: Path) -> object:
    """The value for the dataclass, or :class:`_Invalid` saying why not."""
    kind = rule.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Invalid(wrong_kind(value, rule.allowed))
        return value
    if kind in ("int", "number"):
        ok = isinstance(value, int | float) if kind == "number" else isinstance(value, int)
        if isinstance(value, bool) or not ok:
            raise _Invalid(wrong_kind(value, rule.allowed))
        number = float(typing.cast(float, value)) if kind == "number" else typing.cast(int, value)
        if (
            math.isnan(number)
            or math.isinf(number)
            or (rule.low is not None and (number <= rule.low if rule.above else number < rule.low))
            or (rule.high is not None and number > rule.high)
        ):
            raise _Invalid(f"{as_written(value)} is not {rule.allowed}")
        return number
    if kind in ("texts", "networks"):
        return _convert_list(rule, value)
    if not isinstance(value, str):
        raise _Invalid(wrong_kind(value, rule.allowed))
    if kind == "text":
        if len(value) < (rule.low or 0) or "\n" in value:
            raise _Invalid(f"{as_written(value)} is not {rule.allowed}")
        return value
    if kind == "url":
        if not re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", value, re.IGNORECASE):
            # Shown redacted: a URL's user information or query may hold a password.
            raise _Invalid(f"{as_written(redact_url(value))} is not {rule.allowed}")
        return value
    if kind == "choice":
        if value not in rule.choices:
            raise _Invalid(f"{as_written(value)} is not {rule.allowed}{_did_you_mean(value, rule.choices)}")
        return value
    if kind in ("name", "identifier"):
        if not (_NAME_PATTERN if kind == "name" else _IDENTIFIER_PATTERN).fullmatch(value):
            raise _Invalid(f"{as_written(value)} is not {rule.allowed}")
        return value
    if kind == "address":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise _Invalid(f"{as_written(value)} is not {rule.allowed}") from None
        return value
    if kind == "path":
        if not value:
            raise _Invalid(f'"" is not {rule.allowed}')
        p = Path(_credentials_path(value))
        return p if p.is_absolute() else base / p
    # zone
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        suggestion = _did_you_mean(value, sorted(zoneinfo.available_timezones()))
        raise _Invalid(f"{as_written(value)} is not a known time zone{suggestion}; use {rule.allowed}") from None
    return value


_CREDENTIALS_PREFIXES = ("${CREDENTIALS_DIRECTORY}/", "$CREDENTIALS_DIRECTORY/")


def _credentials_path(value: str) -> str:
    """``value`` with a leading ``${CREDENTIALS_DIRECTORY}/`` replaced by systemd's credentials directory.

    Under systemd, ``LoadCredential=NAME:FILE`` gives the service (and only
    it) a copy of FILE at ``$CREDENTIALS_DIRECTORY/NAME``: the way for keys
    to reach the receiver without the environment, which every process it
    starts inherits. Nothing else in a path is expanded.
    """
    for prefix in _CREDENTIALS_PREFIXES:
        if value.startswith(prefix):
            directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
            if not directory:
                raise _Invalid(
                    f"{as_written(value)} names a systemd credential, but CREDENTIALS_DIRECTORY is not set: such paths "
                    "work where the unit has LoadCredential= (docs/systemd.md); elsewhere give the file's own path"
                )
            return str(Path(directory.split(":")[0]) / value[len(prefix):])
    return value


def _convert_list(rule: _Rule, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Invalid(wrong_kind(value, rule.allowed) if not isinstance(value, list) else f"{as_written(value)} is not {rule.allowed}")
    if rule.kind == "networks":
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise _Invalid(f"{as_written(item)} is not a network; use {rule.allowed}") from None
    return tuple(value)


def _did_you_mean(value: str, choices: Sequence[str]) -> str:
    exact = [c for c in choices if c.lower() == value.lower()]
    close = exact or difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _unknown_key(report: Report, key_path: KeyPath, known: Sequence[str], where: str) -> None:
    key = str(key_path[-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        hint = f'did you mean "{close[0]}"?'
    elif key in _KEY_HOMES and _KEY_HOMES[key] != where and where in _TABLE_NAMES:
        hint = f"{key} belongs in {_KEY_HOMES[key]}"
    else:
        hint = f"the keys of {where} are " + ", ".join(known)
    report.error(key_path, f"unknown key; {hint}")


def _read_table(
    report: Report, data: Mapping[str, object], key_path: KeyPath, rules: Mapping[str, _Rule],
    where: str, base: Path, *, extra: Sequence[str] = (),
) -> dict[str, typing.Any]:
    """The valid values of a table, by key; every bad or unknown key is reported.

    The values have the types their rules promise, which are the dataclass
    fields' types (the values are Any so that ``dataclasses.replace`` takes them).
    """
    values: dict[str, typing.Any] = {}
    for key, value in data.items():
        if key in extra:
            continue
        if key not in rules:
            _unknown_key(report, (*key_path, key), [*rules, *extra], where)
            continue
        try:
            values[key] = _convert(rules[key], value, base)
        except _Invalid as e:
            report.error((*key_path, key), str(e))
    return values


def _table(report: Report, data: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        report.error((key,), f"{as_written(value)} is {kind_of(value)}, not a table ([{key}])")
        return {}
    return value


# -- TOML ----------------------------------------------------------------------


def _load_toml(display: str, text: str, base: Path) -> LoadedConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_error(display, text, e)]) from e
    report = Report(display, Locator(text))
    for key in data:
        if key not in _TOP_KEYS:
            _unknown_key(report, (key,), _TOP_KEYS, "the top level")

    state_directory = default_state_directory()
    if "state_directory" in data:
        try:
            state_directory = typing.cast(Path, _convert(_PATH, data["state_directory"], base))
        except _Invalid as e:
            report.error(("state_directory",), str(e))

    listeners = _read_listeners(report, data, base)
    sections = {name: _table(report, data, name) for name in _SECTIONS}
    spool = _read_spool(report, sections["spool"], base)
    shutdown = dataclasses.replace(
        ShutdownConfig(), **_read_table(report, sections["shutdown"], ("shutdown",), _SHUTDOWN_RULES, "[shutdown]", base)
    )
    logging = dataclasses.replace(
        LoggingConfig(), **_read_table(report, sections["logging"], ("logging",), _LOGGING_RULES, "[logging]", base)
    )
    parse = _read_parse(report, sections["parse"], base)
    identity = dataclasses.replace(
        IdentityConfig(), **_read_table(report, sections["identity"], ("identity",), _IDENTITY_RULES, "[identity]", base)
    )
    sinks = _read_sinks(report, data, base)
    machine_groups = _read_machine_groups(report, data, base)
    deliver, routes = _read_delivery(report, data, sections["deliver"], sinks, base)
    limits = dataclasses.replace(
        LimitsConfig(), **_read_table(report, sections["limits"], ("limits",), _LIMITS_RULES, "[limits]", base)
    )
    if 0 < limits.memory_limit_bytes < 128 * _MIB:
        report.warning(
            ("limits", "memory_limit_bytes"),
            "is below 128 MiB, less than the daemon needs to start: it would stop itself at once",
        )
    control = dataclasses.replace(
        ControlConfig(), **_read_table(report, sections["control"], ("control",), _CONTROL_RULES, "[control]", base)
    )
    metrics = dataclasses.replace(
        MetricsConfig(), **_read_table(report, sections["metrics"], ("metrics",), _METRICS_RULES, "[metrics]", base)
    )

    if report.failed or listeners is None or spool is None or parse is None:
        raise ConfigError(report.errors())
    config = Config(
        state_directory=state_directory,
        listeners=listeners,
        spool=spool,
        shutdown=shutdown,
        logging=logging,
        parse=parse,
        sinks=sinks,
        routes=routes,
        machine_groups=machine_groups,
        identity=identity,
        deliver=deliver,
        metrics=metrics,
        control=control,
        limits=limits,
        source=display,
    )
    return LoadedConfig(config, report.warnings())


def _array_of_tables(report: Report, data: Mapping[str, object], key: str) -> list[tuple[KeyPath, dict[str, object]]]:
    """The tables of ``[[key]]``, each with its key path; anything else is reported."""
    raw = data.get(key, [])
    if not isinstance(raw, list):
        report.error((key,), f"{as_written(raw)} is {kind_of(raw)}, not an array of tables ([[{key}]])")
        return []
    out: list[tuple[KeyPath, dict[str, object]]] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, dict):
            out.append(((key, i), entry))
        else:
            report.error((key, i), f"{as_written(entry)} is {kind_of(entry)}, not a table ([[{key}]])")
    return out


def _read_sinks(report: Report, data: Mapping[str, object], base: Path) -> tuple[SinkConfig, ...]:
    """The ``[[sinks]]``; none given means the embedded local store alone."""
    if "sinks" not in data:
        return (LocalSinkConfig(),)
    sinks: list[SinkConfig] = []
    first_of: dict[str, KeyPath] = {}
    entries = _array_of_tables(report, data, "sinks")
    if not entries and isinstance(data.get("sinks"), list):
        report.error(("sinks",), "no sinks: records would have nowhere to go; add a [[sinks]] table, "
                     'or leave sinks out for the embedded local store (type = "local")')
    for key_path, entry in entries:
        kind = entry.get("type")
        if kind not in _SINK_RULES:
            rule = _choices(*_SINK_RULES)
            said = "missing; every sink needs one" if kind is None else f"{as_written(kind)} is not a sink type"
            suggestion = _did_you_mean(kind, rule.choices) if isinstance(kind, str) else ""
            report.error((*key_path, "type"), f"{said}: {rule.allowed}{suggestion}")
            continue
        rules = _SINK_RULES[kind]
        values = _read_table(report, entry, key_path, rules, f'a [[sinks]] table of type "{kind}"', base)
        missing = [key for key in _SINK_REQUIRED[kind] if key not in entry]
        for key in missing:
            report.error((*key_path, key), f'missing; a sink of type "{kind}" needs {key} ({rules[key].allowed})')
        if kind == "http" and values.get("signature", "hmac-sha256") != "none" and "key_file" not in entry:
            report.error(
                (*key_path, "key_file"),
                'missing; a signing HTTP sink needs its key (mode 0600), or signature = "none" to send unsigned',
            )
        if kind == "sls" and values.get("signature") == "v4" and "region" not in entry:
            report.error((*key_path, "region"), 'missing; signature v4 needs the region, such as "cn-hangzhou"')
        if missing or any(key in rules and key not in values for key in entry):
            continue
        name = values.setdefault("name", kind)
        first = first_of.setdefault(name, key_path)
        if first is not key_path:
            report.error(
                (*key_path, "name"),
                f"{as_written(name)} is already the name of {key_path_text(first)} (line {report.line(first)}); "
                "each sink needs its own name (it names the sink's cursor in the spool)",
            )
            continue
        if kind == "local" and any(isinstance(sink, LocalSinkConfig) for sink in sinks):
            report.error(
                (*key_path, "type"),
                'a second local sink: one process runs one embedded store, so there is one local sink '
                "(send records to it from several routes instead)",
            )
            continue
        sinks.append(_SINK_CLASSES[kind](**values))
    return tuple(sinks)


def _read_machine_groups(report: Report, data: Mapping[str, object], base: Path) -> tuple[MachineGroup, ...]:
    groups = []
    for key_path, entry in _array_of_tables(report, data, "machine_groups"):
        values = _read_table(report, entry, key_path, _MACHINE_GROUP_RULES, "[[machine_groups]]", base)
        if "name" not in entry:
            report.error((*key_path, "name"), "missing; a machine group needs a name (its __machine_group__ tag)")
        elif "networks" not in entry and "hostnames" not in entry:
            report.error(key_path, "a machine group needs networks, hostnames or both; this one has neither")
        elif len(values) == len(entry):
            groups.append(MachineGroup(**values))
    return tuple(groups)


def _read_delivery(
    report: Report, data: Mapping[str, object], section: Mapping[str, object],
    sinks: Sequence[SinkConfig], base: Path,
) -> tuple[DeliverConfig, tuple[RouteConfig, ...]]:
    """``[deliver]`` and the ``[[routes]]``: every sink they name must exist, every filter parse."""
    from receiver.filters.expression import FilterError, parse_filter

    values = _read_table(report, section, ("deliver",), _DELIVER_RULES, "[deliver]", base)
    names = [sink.name for sink in sinks]
    known = ", ".join(names) or "none"
    if "default_sink" not in values and sinks and "default_sink" not in section:
        if len(sinks) == 1:
            values["default_sink"] = sinks[0].name
        elif "local" not in names:
            report.error(
                ("deliver", "default_sink"),
                f"missing; with several sinks, say where records no route takes go: one of {known}",
            )
    elif values.get("default_sink") is not None and sinks and values["default_sink"] not in names:
        report.error(("deliver", "default_sink"), f"{as_written(values['default_sink'])} is not a sink; the sinks are {known}")
    routes = []
    for key_path, entry in _array_of_tables(report, data, "routes"):
        route = _read_table(report, entry, key_path, _ROUTE_RULES, "[[routes]]", base)
        if route.get("drop"):
            given = [key for key in ("sink", "destination") if key in entry]
            if given:
                report.error(
                    (*key_path, given[0]),
                    f"a route with drop = true sends its records nowhere: remove {' and '.join(given)}",
                )
                continue
            if "tag" not in entry and "filter" not in entry:
                report.error(
                    (*key_path, "drop"),
                    "this route would drop every record: give it a tag or a filter saying which to drop",
                )
                continue
        elif "sink" not in entry:
            report.error((*key_path, "sink"), f"missing; a route needs the sink its records go to: one of {known}")
            continue
        if "sink" in route and sinks and route["sink"] not in names:
            report.error((*key_path, "sink"), f"{as_written(route['sink'])} is not a sink; the sinks are {known}")
            continue
        target = next((sink for sink in sinks if sink.name == route.get("sink")), None)
        destination = route.get("destination")
        if isinstance(target, ClickHouseSinkConfig) and destination and not _IDENTIFIER_PATTERN.fullmatch(destination):
            report.error((*key_path, "destination"), f"{as_written(destination)} is not {_IDENTIFIER.allowed} (a table)")
            continue
        if "filter" in route:
            try:
                parse_filter(route["filter"])
            except FilterError as e:
                report.error((*key_path, "filter"), str(e).splitlines()[0])
                continue
        if len(route) == len(entry):
            routes.append(RouteConfig(**route))
    return dataclasses.replace(DeliverConfig(), **values), tuple(routes)


def _syntax_error(display: str, text: str, error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        return f"{display}:{match[1]}:{match[2]}: not valid TOML: {message[: match.start()]}"
    match = re.search(r"\s*\(at end of document\)$", message)
    if match:
        last = max(1, len(text.splitlines()))
        return f"{display}:{last}: not valid TOML: {message[: match.start()]} (at the end of the file)"
    return f"{display}:1: not valid TOML: {message}"


def _read_listeners(report: Report, data: Mapping[str, object], base: Path) -> tuple[ListenerConfig, ...] | None:
    if "listeners" not in data:
        return DEFAULT_LISTENERS
    raw = data["listeners"]
    if not isinstance(raw, list):
        report.error(("listeners",), f"{as_written(raw)} is {kind_of(raw)}, not an array of tables ([[listeners]])")
        return None
    if not raw:
        report.error(
            ("listeners",),
            "no listeners: the receiver would have nothing to listen on; add a [[listeners]] "
            "table, or leave listeners out for the defaults (TCP and UDP on port 11111)",
        )
        return None
    listeners: list[tuple[ListenerConfig, KeyPath]] = []
    names: list[tuple[str, KeyPath, bool]] = []
    ok = True
    for i, entry in enumerate(raw):
        key_path: KeyPath = ("listeners", i)
        if not isinstance(entry, dict):
            report.error(key_path, f"{as_written(entry)} is {kind_of(entry)}, not a table ([[listeners]])")
            ok = False
            continue
        listener, name = _read_listener(report, entry, key_path, base)
        if name is not None:
            names.append((name, key_path, "name" in entry))
        if listener is None:
            ok = False
        else:
            listeners.append((listener, key_path))
    _check_names(report, names)
    _check_addresses(report, listeners)
    return tuple(listener for listener, _ in listeners) if ok else None


def _read_listener(
    report: Report, entry: Mapping[str, object], key_path: KeyPath, base: Path
) -> tuple[ListenerConfig | None, str | None]:
    """The listener, or None when it has errors; and its name when that is known."""
    values = _read_table(report, entry, key_path, _LISTENER_RULES, "[[listeners]]", base, extra=("tls",))
    bad = [key for key in entry if key in _LISTENER_RULES and key not in values]
    if "tls" in entry:
        tls = _read_tls(report, entry["tls"], (*key_path, "tls"), base)
        if tls is None:
            bad.append("tls")
        else:
            values["tls"] = tls
    if "transport" not in entry:
        report.error(
            (*key_path, "transport"), f"missing; every listener needs one: {_LISTENER_RULES['transport'].allowed}"
        )
    name: str | None = values.pop("name", None)
    transport: Transport | None = values.pop("transport", None)
    if transport is None:
        return None, name
    if "port" not in entry:
        if transport == "relp":
            values["port"] = _DEFAULT_RELP_PORT
        elif "tls" in entry and transport == "tcp":
            values["port"] = _DEFAULT_TLS_PORT
    if name is None and "name" not in entry and "port" not in bad:
        kind = f"{transport}-tls" if "tls" in entry and transport != "udp" else transport
        name = f"{kind}-{values.get('port', _DEFAULT_PORT)}"
    for key in _NOT_FOR[transport]:
        if key in entry:
            why = "; a RELP frame carries its length" if key == "framing" and transport == "relp" else ""
            report.warning(
                (*key_path, key),
                f"has no effect on a {transport} listener (it applies to {_APPLIES_TO[key]} listeners only){why}",
            )
    if transport == "udp":
        values.pop("tls", None)
    if bad or name is None:
        return None, name
    return dataclasses.replace(ListenerConfig(name=name, transport=transport), **values), name


def _read_tls(report: Report, raw: object, key_path: KeyPath, base: Path) -> TlsConfig | None:
    """A listener's ``tls`` table, or None when it has errors (each reported)."""
    if not isinstance(raw, dict):
        report.error(key_path, f"{as_written(raw)} is {kind_of(raw)}, not a table ([listeners.tls])")
        return None
    values = _read_table(report, raw, key_path, _TLS_RULES, "[listeners.tls]", base)
    missing = [key for key in ("certificate_file", "key_file") if key not in raw]
    for key in missing:
        report.error(
            (*key_path, key),
            "missing; TLS needs a certificate and its key (`receiverctl tls selfsigned --out DIR` makes a pair)",
        )
    if missing or len(values) < len(raw):
        return None
    try:
        return TlsConfig(**values)
    except TlsConfigError as e:
        report.error(key_path, str(e))
        return None


def _check_names(report: Report, names: Sequence[tuple[str, KeyPath, bool]]) -> None:
    """Every listener's name is its own (metrics, logs and the spool tell listeners apart by it)."""
    first_of: dict[str, KeyPath] = {}
    for name, key_path, named in names:
        first = first_of.setdefault(name, key_path)
        if first is not key_path:
            implicit = "" if named else " (a listener without a name is named TRANSPORT-PORT)"
            report.error(
                (*key_path, "name"),
                f"{as_written(name)} is already the name of {key_path_text(first)} (line "
                f"{report.line(first)}); each listener needs its own name{implicit}",
            )


def _check_addresses(report: Report, listeners: Sequence[tuple[ListenerConfig, KeyPath]]) -> None:
    """No two listeners of one transport on one port with overlapping addresses."""
    for n, (listener, key_path) in enumerate(listeners):
        for other, other_path in listeners[:n]:
            if listener.transport != other.transport or listener.port != other.port or listener.port == 0:
                continue
            how = _overlap(listener.address, other.address)
            if how is None:
                continue
            report.error(
                (*key_path, "port"),
                f"{_describe(listener)} {how} {_describe(other)} of {key_path_text(other_path)} "
                f"(line {report.line(other_path)}, {as_written(other.name)}); two {listener.transport} "
                "listeners cannot share a port on the same address",
            )
            break


def _describe(listener: ListenerConfig) -> str:
    host = f"[{listener.address}]" if ":" in listener.address else listener.address
    return f"{listener.transport} {host}:{listener.port}"


def _overlap(a: str, b: str) -> str | None:
    """How two listen addresses clash on one port, or None when they do not."""
    x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    if x == y:
        return "is also"
    dual, ipv4_any = ipaddress.ip_address("::"), ipaddress.ip_address("0.0.0.0")
    for p, q in ((x, y), (y, x)):
        if p == dual or (p == ipv4_any and q.version == 4):
            return "overlaps"  # "::" takes every IPv6 and IPv4 address, "0.0.0.0" every IPv4 one
    return None


def _read_spool(report: Report, data: Mapping[str, object], base: Path) -> SpoolConfig | None:
    values = _read_table(report, data, ("spool",), _SPOOL_RULES, "[spool]", base)
    spool = dataclasses.replace(SpoolConfig(), **values)
    invalid = {key for key in data if key in _SPOOL_RULES and key not in values}
    pairs = (
        ("low_watermark_percent", "high_watermark_percent", "be below",
         "TCP reading stops at the high mark and resumes below the low one"),
        ("memory_low_watermark_bytes", "memory_high_watermark_bytes", "be below",
         "TCP reading stops above the high mark and resumes below the low one"),
        ("segment_max_bytes", "max_bytes", "not exceed", "the spool must hold at least one segment"),
    )
    for low, high, relation, why in pairs:
        if low in invalid or high in invalid or (low not in data and high not in data):
            continue
        low_value, high_value = getattr(spool, low), getattr(spool, high)
        if low_value < high_value or (relation == "not exceed" and low_value == high_value):
            continue
        if low in data:
            report.error(
                ("spool", low),
                f"{as_written(data[low])} must {relation} spool.{high} ({as_written(data.get(high, high_value))}); {why}",
            )
        else:
            above = "be above" if relation == "be below" else "be at least"
            report.error(
                ("spool", high),
                f"{as_written(data[high])} must {above} spool.{low} ({as_written(low_value)}); {why}",
            )
    return spool if not report.failed else None


def _read_parse(report: Report, data: Mapping[str, object], base: Path) -> ParseConfig | None:
    values = _read_table(report, data, ("parse",), _PARSE_RULES, "[parse]", base, extra=_PARSE_SPECIAL)
    found: list[tuple[StreamlogFormat, KeyPath]] = []
    if "streamlog_formats_file" in data:
        key_path: KeyPath = ("parse", "streamlog_formats_file")
        try:
            file = typing.cast(Path, _convert(_PATH, data["streamlog_formats_file"], base))
            formats, warnings = read_streamlog_formats(file)
        except _Invalid as e:
            report.error(key_path, str(e))
        except StreamlogFormatsFileError as e:
            report.error(key_path, str(e))
        else:
            found.extend((f, key_path) for f in formats)
            for warning in warnings:
                report.warning(key_path, warning)
    if "streamlog_formats" in data:
        found.extend(_streamlog_entries(report, data["streamlog_formats"], ("parse", "streamlog_formats")))
    parse = dataclasses.replace(ParseConfig(), **values, streamlog_formats=_combine_formats(report, found))
    return parse if not report.failed else None


def _streamlog_entries(
    report: Report, raw: object, key_path: KeyPath, *, json_syntax: bool = False
) -> list[tuple[StreamlogFormat, KeyPath]]:
    """Formats from ``[{version = "2.1", fields = ["level", "method"]}, ...]``."""
    example = (
        '[{"version": "2.1", "fields": ["level", "method"]}]' if json_syntax
        else '[{version = "2.1", fields = ["level", "method"]}]'
    )
    if not isinstance(raw, list):
        report.error(key_path, f"{as_written(raw)} is {kind_of(raw)}, not a list of formats like {example}")
        return []
    out = []
    for i, entry in enumerate(raw):
        entry_path = (*key_path, i)
        if not isinstance(entry, dict):
            report.error(entry_path, f"{as_written(entry)} is {kind_of(entry)}, not a format like {example[1:-1]}")
            continue
        for key in entry:
            if key not in _STREAMLOG_ENTRY_KEYS:
                _unknown_key(report, (*entry_path, key), _STREAMLOG_ENTRY_KEYS, "a streamlog format")
        version, fields, tag = entry.get("version"), entry.get("fields"), entry.get("tag")
        good = True
        if not isinstance(version, str):
            report.error(
                (*entry_path, "version"),
                "missing; a format needs a version string like \"2.1\"" if version is None
                else f"{as_written(version)} is {kind_of(version)}, not a version string like \"2.1\"",
            )
            good = False
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            report.error(
                (*entry_path, "fields"),
                "missing; a format needs its field names, like [\"level\", \"method\"]" if fields is None
                else f"{as_written(fields)} is not a list of field names like [\"level\", \"method\"]",
            )
            good = False
        if tag is not None and not isinstance(tag, str):
            report.error((*entry_path, "tag"), f"{as_written(tag)} is {kind_of(tag)}, not a tag string like \"sys_tag\"")
            good = False
        if not good:
            continue
        try:
            out.append((
                StreamlogFormat(
                    version=typing.cast(str, version),
                    fields=tuple(typing.cast(list[str], fields)),
                    tag=typing.cast(str | None, tag),
                ),
                entry_path,
            ))
        except FormatDefinitionError as e:
            report.error(entry_path, str(e))
    return out


def _combine_formats(report: Report, found: Sequence[tuple[StreamlogFormat, KeyPath]]) -> tuple[StreamlogFormat, ...]:
    """One layout per version; redefining a built-in one is allowed, with a warning."""
    builtin = {f.version: f for f in BUILTIN_FORMATS}
    seen: dict[str, tuple[StreamlogFormat, KeyPath]] = {}
    out = []
    for fmt, key_path in found:
        if fmt.version in seen:
            first, first_path = seen[fmt.version]
            if first.fields != fmt.fields:
                report.error(
                    key_path,
                    f"streamlog version {fmt.version} is already defined by {key_path_text(first_path)} "
                    f"(line {report.line(first_path)}) with other fields ({' '.join(first.fields)}); "
                    "a version has one layout",
                )
            continue
        seen[fmt.version] = (fmt, key_path)
        known = builtin.get(fmt.version)
        if known is not None and known.fields != fmt.fields:
            report.warning(
                key_path,
                f"redefines the built-in streamlog version {fmt.version} (fields "
                f"{' '.join(known.fields)} msg): its lines will be read as "
                f"{' '.join(fmt.fields)} msg instead",
            )
        out.append(fmt)
    return tuple(out)


# -- Logtail's ilogtail_config.json ---------------------------------------------

_LOGTAIL_KEYS = ("streamlog_open", "streamlog_tcp_addr", "streamlog_tcp_port", "streamlog_formats")


def _load_logtail(display: str, text: str, base: Path) -> LoadedConfig:
    """One TCP listener ``streamlog`` (format auto) from Logtail's streamlog keys."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError([f"{display}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}"]) from e
    report = Report(display, Locator(text, json_text=True))
    if not isinstance(data, dict):
        report.error((), f"{kind_of(data)} is not what ilogtail_config.json holds: a JSON object of Logtail settings")
        raise ConfigError(report.errors())
    for key in data:
        if key not in _LOGTAIL_KEYS:
            close = difflib.get_close_matches(key, _LOGTAIL_KEYS, n=1, cutoff=0.8)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            report.warning((key,), f"ignored: a Logtail setting this receiver does not use{hint}")

    enabled = data.get("streamlog_open", False)
    if not isinstance(enabled, bool):
        report.error(("streamlog_open",), f"{as_written(enabled)} is {kind_of(enabled)}, not true or false")
    elif not enabled:
        said = "is false" if "streamlog_open" in data else "is missing (Logtail's default is false)"
        report.error(
            ("streamlog_open",),
            f"{said}: Logtail's streamlog input is off in this file, so the receiver would have "
            'nothing to listen on; set "streamlog_open": true',
        )

    address = "::"
    raw_address = data.get("streamlog_tcp_addr", "")
    if raw_address != "":
        try:
            address = typing.cast(str, _convert(_ADDRESS, raw_address, base))
        except _Invalid as e:
            report.error(("streamlog_tcp_addr",), f'{e} (or "" for every address)')

    port = LOGTAIL_STREAMLOG_PORT
    try:
        port = typing.cast(int, _convert(_LISTENER_RULES["port"], data.get("streamlog_tcp_port", port), base))
    except _Invalid as e:
        report.error(("streamlog_tcp_port",), str(e))

    found: list[tuple[StreamlogFormat, KeyPath]] = []
    if "streamlog_formats" in data:
        raw = data["streamlog_formats"]
        if isinstance(raw, str):  # Logtail accepts the list as a JSON string too
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as e:
                report.error(("streamlog_formats",), f"is a string that is not JSON: {e.msg} at character {e.pos}")
                raw = []
        found = _streamlog_entries(report, raw, ("streamlog_formats",), json_syntax=True)
    formats = _combine_formats(report, found)

    if report.failed:
        raise ConfigError(report.errors())
    listener = ListenerConfig(name="streamlog", transport="tcp", port=port, address=address, format="auto")
    config = Config(
        state_directory=default_state_directory(),
        listeners=(listener,),
        parse=ParseConfig(streamlog_formats=formats),
        source=display,
    )
    return LoadedConfig(config, report.warnings())

