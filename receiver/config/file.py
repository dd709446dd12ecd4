"""Reading a configuration file into :class:`receiver.config.model.Config`.

    loaded = load_config(Path("/etc/syslog-receiver/receiver.toml"))
    loaded.config     # the Config
    loaded.warnings   # things that work but are probably not what was meant

A file is TOML laid out like the dataclasses of ``receiver.config.model``; a file
whose name ends in ``.json`` is read as Logtail's ``ilogtail_config.json``
(:mod:`.logtail`). Every problem in a file is reported, not just the first:
:class:`ConfigError` carries them all, one line each, and every line names the
file, the line, the key path and what is allowed::

    conf/receiver.toml:14: listeners[1].framing: "crlf" is not one of auto, lf, octet

This module reads the TOML tables and checks what spans keys (a listener's
transport and port, the spool's watermarks, routes that name sinks). What
one key takes is in :mod:`.rules`; tomllib gives no positions, so
:mod:`.locate` finds the line of a key path in the text itself (it reads only
text tomllib has already accepted), and :mod:`.report` words each line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from formats.streamlog import StreamlogFormat
from receiver.config.identity import MachineGroup
from receiver.config.locate import KeyPath, Locator
from receiver.config.logtail import read_logtail
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
    SinkConfig,
    SpoolConfig,
    TlsConfig,
    TlsConfigError,
    Transport,
    default_state_directory,
)
from receiver.config.profiles import ParseProfile
from receiver.config.report import Report, as_written, key_path_text, kind_of
from receiver.config.rules import (
    IDENTIFIER,
    LISTENER_RULES,
    MACHINE_GROUP_RULES,
    PARSE_EXTRA_KEYS,
    PATH,
    PROFILE_RULES,
    ROUTE_RULES,
    SECTION_RULES,
    SINK_CLASSES,
    SINK_RULES,
    TLS_RULES,
    TOP_KEYS,
    Invalid,
    choice_rule,
    convert,
    did_you_mean,
    field_default,
    read_table,
    required_keys,
    unknown_key,
)
from receiver.config.streamlog_formats import (
    StreamlogFormatsFileError,
    formats_in_entries,
    one_layout_per_version,
    read_streamlog_formats,
)

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "load_config",
]


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
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError([f"{display}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}"]) from e
        report = Report(display, Locator(text, json_text=True))
        config = read_logtail(report, data, base)
    else:
        try:
            toml = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([_syntax_error(display, text, e)]) from e
        report = Report(display, Locator(text))
        config = _read_toml(report, toml, base)
    if config is None or report.failed:
        raise ConfigError(report.errors())
    return LoadedConfig(config, report.warnings())


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


# -- the TOML file, table by table -------------------------------------------------


def _read_toml(report: Report, data: Mapping[str, object], base: Path) -> Config | None:
    """The configuration of a TOML file's ``data``, or None when ``report`` has errors."""
    for key in data:
        if key not in TOP_KEYS:
            unknown_key(report, (key,), TOP_KEYS, "the top level")

    state_directory = default_state_directory()
    if "state_directory" in data:
        try:
            state_directory = typing.cast(Path, convert(PATH, data["state_directory"], base))
        except Invalid as e:
            report.error(("state_directory",), str(e))

    listeners = _read_listeners(report, data, base)
    sections = {name: _table(report, data, name) for name in SECTION_RULES}
    spool = _read_spool(report, sections["spool"], base)
    shutdown = dataclasses.replace(ShutdownConfig(), **_section_values(report, "shutdown", sections["shutdown"], base))
    logging = dataclasses.replace(LoggingConfig(), **_section_values(report, "logging", sections["logging"], base))
    parse = _read_parse(report, sections["parse"], base)
    identity = dataclasses.replace(IdentityConfig(), **_section_values(report, "identity", sections["identity"], base))
    sinks = _read_sinks(report, data, base)
    machine_groups = _read_machine_groups(report, data, base)
    deliver, routes = _read_delivery(report, data, sections["deliver"], sinks, base)
    limits = dataclasses.replace(LimitsConfig(), **_section_values(report, "limits", sections["limits"], base))
    if 0 < limits.memory_limit_bytes < 128 * 1024**2:
        report.warning(
            ("limits", "memory_limit_bytes"),
            "is below 128 MiB, less than the daemon needs to start: it would stop itself at once",
        )
    control = dataclasses.replace(ControlConfig(), **_section_values(report, "control", sections["control"], base))
    metrics = dataclasses.replace(MetricsConfig(), **_section_values(report, "metrics", sections["metrics"], base))
    if parse is not None and listeners is not None:
        _check_profile_listeners(report, parse.profiles, listeners)

    if report.failed or listeners is None or spool is None or parse is None:
        return None
    return Config(
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
        source=report.display,
    )


def _table(report: Report, data: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        report.error((key,), f"{as_written(value)} is {kind_of(value)}, not a table ([{key}])")
        return {}
    return value


def _section_values(
    report: Report, name: str, table: Mapping[str, object], base: Path, *, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """The valid values of the ``[name]`` table, by key (see :func:`~receiver.config.rules.read_table`)."""
    return read_table(report, table, (name,), SECTION_RULES[name], f"[{name}]", base, extra=extra)


def _array_of_tables(
    report: Report, data: Mapping[str, object], key: str, *, within: KeyPath = ()
) -> list[tuple[KeyPath, dict[str, object]]]:
    """The tables of ``[[key]]`` (``[[within.key]]`` inside a table), each with its key path; anything
    else is reported."""
    raw = data.get(key, [])
    name = ".".join(str(part) for part in (*within, key))
    if not isinstance(raw, list):
        report.error((*within, key), f"{as_written(raw)} is {kind_of(raw)}, not an array of tables ([[{name}]])")
        return []
    out: list[tuple[KeyPath, dict[str, object]]] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, dict):
            out.append(((*within, key, i), entry))
        else:
            report.error((*within, key, i), f"{as_written(entry)} is {kind_of(entry)}, not a table ([[{name}]])")
    return out


_DEFAULT_PORT: int = field_default(ListenerConfig, "port")
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
    values = read_table(report, entry, key_path, LISTENER_RULES, "[[listeners]]", base, extra=("tls",))
    bad = [key for key in entry if key in LISTENER_RULES and key not in values]
    if "tls" in entry:
        tls = _read_tls(report, entry["tls"], (*key_path, "tls"), base)
        if tls is None:
            bad.append("tls")
        else:
            values["tls"] = tls
    if "transport" not in entry:
        report.error(
            (*key_path, "transport"), f"missing; every listener needs one: {LISTENER_RULES['transport'].allowed}"
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
    values = read_table(report, raw, key_path, TLS_RULES, "[listeners.tls]", base)
    missing = [key for key in required_keys(TlsConfig) if key not in raw]
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
    values = _section_values(report, "spool", data, base)
    spool = dataclasses.replace(SpoolConfig(), **values)
    invalid = {key for key in data if key in SECTION_RULES["spool"] and key not in values}
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
    values = _section_values(report, "parse", data, base, extra=PARSE_EXTRA_KEYS)
    found: list[tuple[StreamlogFormat, KeyPath]] = []
    if "streamlog_formats_file" in data:
        key_path: KeyPath = ("parse", "streamlog_formats_file")
        try:
            file = typing.cast(Path, convert(PATH, data["streamlog_formats_file"], base))
            formats, warnings = read_streamlog_formats(file)
        except Invalid as e:
            report.error(key_path, str(e))
        except StreamlogFormatsFileError as e:
            report.error(key_path, str(e))
        else:
            found.extend((f, key_path) for f in formats)
            for warning in warnings:
                report.warning(key_path, warning)
    if "streamlog_formats" in data:
        found.extend(formats_in_entries(report, data["streamlog_formats"], ("parse", "streamlog_formats")))
    parse = dataclasses.replace(
        ParseConfig(), **values, streamlog_formats=one_layout_per_version(report, found),
        profiles=_read_profiles(report, data, base),
    )
    return parse if not report.failed else None


def _check_profile_listeners(
    report: Report, profiles: Sequence[ParseProfile], listeners: Sequence[ListenerConfig]
) -> None:
    """A profile may name only listeners the file has (a typo would quietly leave its senders alone)."""
    names = [listener.name for listener in listeners]
    for i, profile in enumerate(profiles):
        for name in profile.listeners:
            if name not in names:
                report.error(
                    ("parse", "profiles", i, "listeners"),
                    f"{as_written(name)} is no listener of this file{did_you_mean(name, names)}; "
                    f"the listeners are {', '.join(names)}",
                )


def _read_profiles(report: Report, data: Mapping[str, object], base: Path) -> tuple[ParseProfile, ...]:
    profiles: list[ParseProfile] = []
    seen: set[str] = set()
    for key_path, entry in _array_of_tables(report, data, "profiles", within=("parse",)):
        values = read_table(report, entry, key_path, PROFILE_RULES, "[[parse.profiles]]", base)
        if "name" not in entry:
            report.error((*key_path, "name"), "missing; a profile needs a name (receiverctl parse --profile uses it)")
        elif values.get("name") in seen:
            report.error((*key_path, "name"), f"{as_written(entry['name'])} names another profile too; names must differ")
        elif len(values) == len(entry):
            seen.add(values["name"])
            profiles.append(ParseProfile(**values))
    return tuple(profiles)


def _read_sinks(report: Report, data: Mapping[str, object], base: Path) -> tuple[SinkConfig, ...]:
    """The ``[[sinks]]``; none given means the embedded local store alone."""
    if "sinks" not in data:
        return typing.cast(tuple[SinkConfig, ...], field_default(Config, "sinks"))
    sinks: list[SinkConfig] = []
    first_of: dict[str, KeyPath] = {}
    entries = _array_of_tables(report, data, "sinks")
    if not entries and isinstance(data.get("sinks"), list):
        report.error(("sinks",), "no sinks: records would have nowhere to go; add a [[sinks]] table, "
                     'or leave sinks out for the embedded local store (type = "local")')
    for key_path, entry in entries:
        kind = entry.get("type")
        if kind not in SINK_RULES:
            rule = choice_rule(*SINK_RULES)
            said = "missing; every sink needs one" if kind is None else f"{as_written(kind)} is not a sink type"
            suggestion = did_you_mean(kind, rule.choices) if isinstance(kind, str) else ""
            report.error((*key_path, "type"), f"{said}: {rule.allowed}{suggestion}")
            continue
        rules = SINK_RULES[kind]
        values = read_table(report, entry, key_path, rules, f'a [[sinks]] table of type "{kind}"', base)
        # "name" may be left out: a sink without one is named after its type
        missing = [key for key in required_keys(SINK_CLASSES[kind]) if key != "name" and key not in entry]
        for key in missing:
            report.error((*key_path, key), f'missing; a sink of type "{kind}" needs {key} ({rules[key].allowed})')
        if kind == "http" and values.get("signature", field_default(HttpSinkConfig, "signature")) != "none" and "key_file" not in entry:
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
        sinks.append(SINK_CLASSES[kind](**values))
    return tuple(sinks)


def _read_machine_groups(report: Report, data: Mapping[str, object], base: Path) -> tuple[MachineGroup, ...]:
    groups = []
    for key_path, entry in _array_of_tables(report, data, "machine_groups"):
        values = read_table(report, entry, key_path, MACHINE_GROUP_RULES, "[[machine_groups]]", base)
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

    values = _section_values(report, "deliver", section, base)
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
        route = read_table(report, entry, key_path, ROUTE_RULES, "[[routes]]", base)
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
        if isinstance(target, ClickHouseSinkConfig) and destination:
            try:
                convert(IDENTIFIER, destination, base)
            except Invalid as e:
                report.error((*key_path, "destination"), f"{e} (a table)")
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
