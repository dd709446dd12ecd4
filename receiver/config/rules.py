"""What each key of a configuration file takes, and the check of one value against it.

The dataclasses of :mod:`.model` are the one description of a setting: its
key, its type, its choices (a ``Literal``) and its default. A rule here adds
only what a file's reader needs beyond them: the range of a number and what
a string must look like (a name, an address, a URL), in the words messages
use. So the tables below are built from the dataclasses by
:func:`rules_of`: every field is a key; a ``bool``, ``Path`` or ``Literal``
field needs no entry (true or false, a path, one of the ``Literal``'s
choices); an ``int`` or ``float`` field gives its :class:`Bounds` (whether
it takes an integer is the field's type); a string or list field gives its
:class:`Rule`. A field without the entry it needs, or an entry for a key
that is no field, fails at import and names it: the file's keys and the
model cannot drift apart. The keys that must be given are the fields
without a default (:func:`required_keys`), and a default the reader needs
is read from the field (:func:`field_default`).

The ranges stay here rather than in ``dataclasses.field(metadata=...)`` on
the model: the model is the page that says what each setting means, read by
every process and by the snapshot; the reader's bounds and wording would
crowd it and make it depend on how a file is checked. Here they sit next to
the code that checks them and the words that say them.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import types
import typing
import zoneinfo
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from receiver.config.identity import MachineGroup
from receiver.config.locate import KeyPath
from receiver.config.model import (
    ClickHouseSinkConfig,
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
    SlsSinkConfig,
    SpoolConfig,
    TlsConfig,
)
from receiver.config.profiles import ParseProfile
from receiver.config.report import Report, as_written, wrong_kind
from receiver.config.secrets import redact_url

__all__ = [
    "ADDRESS",
    "IDENTIFIER",
    "LISTENER_RULES",
    "MACHINE_GROUP_RULES",
    "MAX_FRAME_BYTES_LIMIT",
    "PARSE_EXTRA_KEYS",
    "PATH",
    "ROUTE_RULES",
    "SECTION_RULES",
    "SINK_CLASSES",
    "SINK_RULES",
    "TLS_RULES",
    "TOP_KEYS",
    "Bounds",
    "Invalid",
    "Rule",
    "choice_rule",
    "convert",
    "did_you_mean",
    "field_default",
    "read_table",
    "required_keys",
    "rules_of",
    "unknown_key",
]

MAX_FRAME_BYTES_LIMIT = 16 * 1024 * 1024
"""The largest ``max_frame_bytes`` accepted: 16 MiB (memory per connection is bounded by it)."""

_KIB = 1024
_MIB = 1024 * 1024


class Invalid(Exception):
    """A value is not allowed; the message says what it is and what is."""


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
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


@dataclasses.dataclass(frozen=True, slots=True)
class Bounds:
    """The range of a number setting; whether it takes an integer or any number is its field's type."""

    low: float
    high: float | None = None
    note: str = ""
    """Said after the range, in brackets: what the special values mean (``0: no limit``)."""
    above: bool = False
    """``low`` itself is not allowed, only numbers above it."""

    def rule(self, kind: type) -> Rule:
        """The rule of an ``int`` (``kind`` is int) or ``float`` field with these bounds."""
        note = f" ({self.note})" if self.note else ""
        if kind is int:
            if self.high is not None:
                return Rule("int", f"an integer from {self.low} to {self.high}{note}", self.low, self.high)
            return Rule("int", f"an integer of at least {self.low}{note}", self.low)
        if self.high is not None:
            span = f"a number from {self.low:g} to {self.high:g}"
        else:
            span = f"a number {'greater than' if self.above else 'of at least'} {self.low:g}"
        return Rule("number", span + note, self.low, self.high, above=self.above)


def choice_rule(*choices: str) -> Rule:
    """One of ``choices``, said in their order (a ``Literal``'s order, for a field)."""
    return Rule("choice", "one of " + ", ".join(choices), choices=choices)


def _text(allowed: str = "a non-empty string", *, empty: bool = False) -> Rule:
    return Rule("text", allowed, low=0 if empty else 1)


_BOOL = Rule("bool", "true or false")
PATH = Rule("path", "a path (relative paths are relative to this file's directory)")
ADDRESS = Rule(
    "address",
    'an IP address: "::" for every IPv6 and IPv4 address, "0.0.0.0" for every IPv4 '
    'address, "127.0.0.1" for this machine only',
)
_NAME = Rule("name", 'a non-empty name of letters, digits, "-", "_" and "."')
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
IDENTIFIER = Rule("identifier", 'a plain ClickHouse name: letters, digits and "_", not starting with a digit')
_IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ZONE = Rule("zone", 'an IANA time zone name such as "UTC" or "Asia/Shanghai"')
_URL = Rule("url", 'an http:// or https:// URL such as "http://127.0.0.1:8123"')
_NETWORKS = Rule("networks", 'a list of networks such as ["10.0.0.0/8", "192.168.1.7"]')
_PORT = Bounds(0, 65535, "0: any free port")


# -- the rules, from the dataclasses ---------------------------------------------


def field_default(model: type, key: str) -> Any:
    """The default of field ``key`` of dataclass ``model``, as the model declares it."""
    return next(f.default for f in dataclasses.fields(model) if f.name == key)


def required_keys(model: type) -> tuple[str, ...]:
    """The fields of dataclass ``model`` without a default, in field order: a file must give them."""
    return tuple(
        f.name for f in dataclasses.fields(model)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def rules_of(model: type, given: Mapping[str, Rule | Bounds], *, apart: Sequence[str] = ()) -> dict[str, Rule]:
    """The rule of every field of dataclass ``model`` but those read ``apart``.

    ``given`` holds what the fields' types do not say (see the module's
    docstring). The keys come in field order, with ``name`` and ``type``
    first: messages that list a table's keys start with what names the table
    and what kind it is.
    """
    hints = typing.get_type_hints(model)
    keys = [f.name for f in dataclasses.fields(model) if f.name not in apart]
    strangers = sorted(set(given) - set(keys))
    if strangers:
        raise TypeError(f"rules for {', '.join(strangers)}: not fields of {model.__name__}")
    first = [key for key in ("name", "type") if key in keys]
    return {
        key: _rule_of(model, key, _without_none(hints[key]), given.get(key))
        for key in [*first, *(key for key in keys if key not in first)]
    }


def _rule_of(model: type, key: str, kind: Any, given: Rule | Bounds | None) -> Rule:
    if isinstance(given, Rule):
        return given
    if isinstance(given, Bounds) and kind in (int, float):
        return given.rule(kind)
    if given is None and kind is bool:
        return _BOOL
    if given is None and kind is Path:
        return PATH
    if given is None and typing.get_origin(kind) is Literal:
        return choice_rule(*(str(choice) for choice in typing.get_args(kind)))
    needed = "Bounds" if kind in (int, float) else "a Rule"
    raise TypeError(f"{model.__name__}.{key} ({kind}) needs {needed} in receiver/config/rules.py")


def _without_none(kind: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


LISTENER_RULES = rules_of(ListenerConfig, {
    "name": _NAME,
    "port": _PORT,
    "address": ADDRESS,
    "max_frame_bytes": Bounds(1, MAX_FRAME_BYTES_LIMIT, "16 MiB at most"),
    "allowed_networks": _NETWORKS,
    "rate_limit_records_per_second": Bounds(0, note="0: no limit"),
    "rate_limit_bytes_per_second": Bounds(0, note="0: no limit"),
    "rate_limit_burst_seconds": Bounds(0, 3600, above=True),
    "max_connections": Bounds(1),
    "max_connections_per_source": Bounds(1),
    "idle_timeout_seconds": Bounds(0, note="0: never"),
    "keepalive_seconds": Bounds(0, 32767, "0: off; 32767 is Linux's limit"),
    "receive_buffer_bytes": Bounds(1),
}, apart=("tls",))  # a table of its own: TLS_RULES

TLS_RULES = rules_of(TlsConfig, {
    "allowed_subjects": Rule("texts", 'a list of certificate names such as ["web-1.example.com", "*.example.com"]'),
    "allowed_fingerprints": Rule("texts", 'a list of SHA-256 fingerprints ("receiverctl tls show CERT" prints them)'),
    "handshake_timeout_seconds": Bounds(0, 600, above=True),
})

PARSE_EXTRA_KEYS = ("streamlog_formats", "streamlog_formats_file", "profiles")
"""``[parse]`` keys read apart: a list of formats, a file of them, and the profiles."""

_YEAR_RULE: dict[str, Rule | Bounds] = {
    "timezone": _ZONE,
    "future_tolerance_hours": Bounds(0, 720, "30 days at most: a time further ahead is a wrong clock"),
    "uncertain_year_days": Bounds(0, 366),
}

PROFILE_RULES = rules_of(ParseProfile, {
    "name": _NAME,
    "listeners": Rule("texts", 'a list of listener names such as ["udp", "tcp-tls"]'),
    "networks": _NETWORKS,
    "hostnames": Rule("texts", 'a list of hostname patterns such as ["rtr-*", "fw-?.example.com"]'),
    **_YEAR_RULE,
})
"""The keys of a ``[[parse.profiles]]`` table."""

SECTION_RULES: dict[str, dict[str, Rule]] = {
    "spool": rules_of(SpoolConfig, {
        "segment_max_bytes": Bounds(4 * _KIB, 64 * _MIB, "4 KiB to 64 MiB"),
        "segment_max_delay_ms": Bounds(0.1, 10000),
        "max_age_hours": Bounds(0, above=True),
        "max_bytes": Bounds(1),
        "high_watermark_percent": Bounds(0, 100),
        "low_watermark_percent": Bounds(0, 100),
        "memory_high_watermark_bytes": Bounds(1),
        "memory_low_watermark_bytes": Bounds(1),
    }),
    "shutdown": rules_of(ShutdownConfig, {"drain_seconds": Bounds(0)}),
    "logging": rules_of(LoggingConfig, {"repeat_interval_seconds": Bounds(0)}),
    "parse": rules_of(ParseConfig, _YEAR_RULE, apart=("streamlog_formats", "profiles")),
    "identity": rules_of(IdentityConfig, {}),
    "deliver": rules_of(DeliverConfig, {
        "default_sink": _NAME,
        "segments_per_batch": Bounds(0, 1024, "0: each sink's own"),
        "poll_interval_ms": Bounds(1, 10000),
        "build_processes": Bounds(0, 64, "0: one per core, less one for the local store's engine"),
    }),
    "metrics": rules_of(MetricsConfig, {"address": ADDRESS, "port": _PORT}),
    "control": rules_of(ControlConfig, {}),
    "limits": rules_of(LimitsConfig, {
        "memory_limit_bytes": Bounds(0, note="0: no limit"),
        "cpu_limit_percent": Bounds(0, 6400, "of one core; 0: no limit"),
        "delivery_memory_limit_bytes": Bounds(0, note="0: no limit"),
    }),
}
"""The rules of each ``[section]``, by its key in :class:`~receiver.config.model.Config`."""

SINK_CLASSES: dict[str, type[SinkConfig]] = {field_default(cls, "type"): cls for cls in typing.get_args(SinkConfig)}
"""Each sink's dataclass by its ``type``."""

_BATCH: dict[str, Rule | Bounds] = {
    "timeout_seconds": Bounds(0, 3600, above=True),
    "concurrency": Bounds(1, 64),
    "max_records": Bounds(1, 1_000_000),
}
_SINK_GIVEN: dict[type[SinkConfig], dict[str, Rule | Bounds]] = {
    LocalSinkConfig: {
        "name": _NAME, "max_age_hours": Bounds(0, above=True), "max_bytes": Bounds(1 * _MIB),
        "memory_limit_bytes": Bounds(128 * _MIB, None, "the engine needs some room for its merges"),
    },
    SlsSinkConfig: {
        "name": _NAME,
        "endpoint": _text('an endpoint such as "cn-hangzhou.log.aliyuncs.com" or "http://127.0.0.1:8080"'),
        "project": _NAME, "logstore": _NAME, "region": _NAME, "topic": _text("a string", empty=True),
        **_BATCH,
        "max_bytes": Bounds(1, 9 * _MIB, "SLS takes 10 MB of raw body per request"),
    },
    ClickHouseSinkConfig: {
        "name": _NAME, "url": _URL, "database": IDENTIFIER, "table": IDENTIFIER, "user": _text(),
        **_BATCH, "max_bytes": Bounds(1, 256 * _MIB),
    },
    HttpSinkConfig: {
        "name": _NAME, "url": _URL, "key_id": _text(), **_BATCH, "max_bytes": Bounds(1, 256 * _MIB),
    },
}
SINK_RULES: dict[str, dict[str, Rule]] = {kind: rules_of(cls, _SINK_GIVEN[cls]) for kind, cls in SINK_CLASSES.items()}

ROUTE_RULES = rules_of(RouteConfig, {
    "name": _NAME, "sink": _NAME, "tag": _text('a streamlog tag such as "sys_tag"'),
    "filter": _text('a filter such as "app-name=todo-list and _severity_<=4"'), "destination": _NAME,
})
MACHINE_GROUP_RULES = rules_of(MachineGroup, {
    "name": _NAME,
    "networks": _NETWORKS,
    "hostnames": Rule("texts", 'a list of hostname patterns such as ["web-*", "db-?.example.com"]'),
})

_ARRAYS = ("listeners", "sinks", "routes", "machine_groups")
TOP_KEYS = ("state_directory", *_ARRAYS, *SECTION_RULES)

_TABLE_NAMES = ("the top level", *(f"[[{array}]]" for array in _ARRAYS), *(f"[{section}]" for section in SECTION_RULES))

_KEY_HOMES: dict[str, str] = {
    **{key: "[[sinks]]" for rules in SINK_RULES.values() for key in rules},
    **{key: "[[listeners]]" for key in LISTENER_RULES},
    **{key: f"[{section}]" for section, rules in SECTION_RULES.items() for key in rules},
    **{key: "[parse]" for key in PARSE_EXTRA_KEYS},
    "state_directory": "the top of the file (before any [table])",
    **{key: "[[routes]]" for key in ROUTE_RULES if key != "name"},
    **{key: "[[machine_groups]]" for key in MACHINE_GROUP_RULES if key != "name"},
    **{array: f"the top of the file, as [[{array}]] tables" for array in _ARRAYS},
    **{section: f"the top of the file, as a [{section}] table" for section in SECTION_RULES},
}
"""Where each key belongs, for the hint on a key written in the wrong table."""


# -- checking a value ------------------------------------------------------------


def convert(rule: Rule, value: object, base: Path) -> object:
    """The value for the dataclass, or :class:`Invalid` saying why not."""
    kind = rule.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise Invalid(wrong_kind(value, rule.allowed))
        return value
    if kind in ("int", "number"):
        ok = isinstance(value, int | float) if kind == "number" else isinstance(value, int)
        if isinstance(value, bool) or not ok:
            raise Invalid(wrong_kind(value, rule.allowed))
        number = float(typing.cast(float, value)) if kind == "number" else typing.cast(int, value)
        if (
            math.isnan(number)
            or math.isinf(number)
            or (rule.low is not None and (number <= rule.low if rule.above else number < rule.low))
            or (rule.high is not None and number > rule.high)
        ):
            raise Invalid(f"{as_written(value)} is not {rule.allowed}")
        return number
    if kind in ("texts", "networks"):
        return _convert_list(rule, value)
    if not isinstance(value, str):
        raise Invalid(wrong_kind(value, rule.allowed))
    if kind == "text":
        if len(value) < (rule.low or 0) or "\n" in value:
            raise Invalid(f"{as_written(value)} is not {rule.allowed}")
        return value
    if kind == "url":
        if not re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", value, re.IGNORECASE):
            # Shown redacted: a URL's user information or query may hold a password.
            raise Invalid(f"{as_written(redact_url(value))} is not {rule.allowed}")
        return value
    if kind == "choice":
        if value not in rule.choices:
            raise Invalid(f"{as_written(value)} is not {rule.allowed}{did_you_mean(value, rule.choices)}")
        return value
    if kind in ("name", "identifier"):
        if not (_NAME_PATTERN if kind == "name" else _IDENTIFIER_PATTERN).fullmatch(value):
            raise Invalid(f"{as_written(value)} is not {rule.allowed}")
        return value
    if kind == "address":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise Invalid(f"{as_written(value)} is not {rule.allowed}") from None
        return value
    if kind == "path":
        if not value:
            raise Invalid(f'"" is not {rule.allowed}')
        p = Path(_credentials_path(value))
        return p if p.is_absolute() else base / p
    # zone
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        suggestion = did_you_mean(value, sorted(zoneinfo.available_timezones()))
        raise Invalid(f"{as_written(value)} is not a known time zone{suggestion}; use {rule.allowed}") from None
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
                raise Invalid(
                    f"{as_written(value)} names a systemd credential, but CREDENTIALS_DIRECTORY is not set: such paths "
                    "work where the unit has LoadCredential= (docs/systemd.md); elsewhere give the file's own path"
                )
            return str(Path(directory.split(":")[0]) / value[len(prefix):])
    return value


def _convert_list(rule: Rule, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(wrong_kind(value, rule.allowed) if not isinstance(value, list) else f"{as_written(value)} is not {rule.allowed}")
    if rule.kind == "networks":
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise Invalid(f"{as_written(item)} is not a network; use {rule.allowed}") from None
    return tuple(value)


def did_you_mean(value: str, choices: Sequence[str]) -> str:
    exact = [c for c in choices if c.lower() == value.lower()]
    close = exact or difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def unknown_key(report: Report, key_path: KeyPath, known: Sequence[str], where: str) -> None:
    key = str(key_path[-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        hint = f'did you mean "{close[0]}"?'
    elif key in _KEY_HOMES and _KEY_HOMES[key] != where and where in _TABLE_NAMES:
        hint = f"{key} belongs in {_KEY_HOMES[key]}"
    else:
        hint = f"the keys of {where} are " + ", ".join(known)
    report.error(key_path, f"unknown key; {hint}")


def read_table(
    report: Report, data: Mapping[str, object], key_path: KeyPath, rules: Mapping[str, Rule],
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
            unknown_key(report, (*key_path, key), [*rules, *extra], where)
            continue
        try:
            values[key] = convert(rules[key], value, base)
        except Invalid as e:
            report.error((*key_path, key), str(e))
    return values


