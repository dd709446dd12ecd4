"""Logtail "streamlog" lines, as rsyslog's ALI_LOG_FMT template writes them.

    $version $tag $unixtimestamp $ip [field-1 ... field-n] $msg

Fields are separated by single spaces; only the last one, ``msg``, may hold
spaces. ``version`` picks the layout; ``version`` and ``tag`` are not stored as
fields, but the tag is kept (``__streamlog_tag__``) because routes select on
it. The timestamp is the record time; the ip is the record's source, except
that a loopback ip (what rsyslog writes for local input) is replaced by the
address of the peer that sent the line. A timestamp column that is not a
time gives the receive time, and its text is kept in ``_raw_timestamp_``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Literal

from formats._timestamps import MAX_EPOCH_SECONDS
from formats.errors import FormatDefinitionError
from formats.framing import message_bytes
from formats.logtail_fields import RAW_TIMESTAMP, raw_record
from formats.record import (
    FLAG_BAD_TIMESTAMP,
    FLAG_INVALID_UTF8,
    FLAG_PARSE_ERROR,
    Record,
)

__all__ = [
    "BUILTIN_FORMATS",
    "LOOPBACK_SOURCES",
    "STREAMLOG_TAG",
    "LeadingSpace",
    "StreamlogFormat",
    "StreamlogParser",
    "format_table",
]

STREAMLOG_TAG = "__streamlog_tag__"
"""The record tag that carries a line's streamlog tag, for routing."""

_TAG_CACHE_LIMIT = 1024

LOOPBACK_SOURCES = frozenset({"127.0.0.1", "::1"})
"""Source ips that mean "this sender itself" and are replaced by the peer."""

LeadingSpace = Literal["strip-rfc3164", "keep"]
"""What to do with the space rsyslog leaves at the start of an RFC 3164 ``msg``.

rsyslog's ``%msg%`` of an RFC 3164 message keeps the space that followed the
TAG's colon, so an ALI_LOG_FMT line has two spaces after the msgid. With
``strip-rfc3164`` (the default) exactly one leading space is removed when the
line's ``protocol-version`` column is ``0`` (RFC 3164 input), so ``msg`` holds
what the application logged whatever protocol carried it. ``keep`` stores the
bytes exactly as received, as Logtail does.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class StreamlogFormat:
    """One line layout: its version, the middle field names, and the tag.

    ``fields`` are the names between the ip column and ``msg`` (``msg`` itself
    is always last and implicit), as in Logtail's
    ``{"version": "2.1", "fields": ["level", "method"]}``. ``tag`` is only
    known when the format comes from an rsyslog template; lines carry their
    own tag.
    """

    version: str
    fields: tuple[str, ...]
    tag: str | None = None

    def __post_init__(self) -> None:
        if not self.version or any(c.isspace() for c in self.version):
            raise FormatDefinitionError(
                f"streamlog version {self.version!r} must be a non-empty word without spaces"
            )
        seen: set[str] = set()
        for name in (*self.fields, "msg"):
            if not name or any(c.isspace() for c in name):
                raise FormatDefinitionError(
                    f"streamlog version {self.version}: field name {name!r} must be a "
                    "non-empty word without spaces"
                )
            if name in seen:
                raise FormatDefinitionError(
                    f"streamlog version {self.version}: field {name!r} appears twice "
                    "(msg is always the last field and is implicit)"
                )
            seen.add(name)

    @classmethod
    def from_logtail(cls, entry: Mapping[str, object]) -> StreamlogFormat:
        """Read one ``streamlog_formats`` entry of ``ilogtail_config.json``."""
        version = entry.get("version")
        fields = entry.get("fields")
        if not isinstance(version, str):
            raise FormatDefinitionError(
                f"streamlog format {entry!r}: 'version' must be a string like \"2.1\""
            )
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise FormatDefinitionError(
                f"streamlog format {version}: 'fields' must be a list of field names"
            )
        return cls(version=version, fields=tuple(fields))

    def to_logtail(self) -> dict[str, object]:
        """The ``streamlog_formats`` entry for this layout (plus its tag when known)."""
        out: dict[str, object] = {"version": self.version, "fields": list(self.fields)}
        if self.tag is not None:
            out["tag"] = self.tag
        return out


BUILTIN_FORMATS: tuple[StreamlogFormat, ...] = (
    StreamlogFormat(
        version="0.1",
        fields=("hostname", "pri-text", "protocol-version", "app-name", "procid", "msgid"),
    ),
)
"""What Logtail knows without configuration: rsyslog's ALI_LOG_FMT."""


def format_table(extra: Iterable[StreamlogFormat] = ()) -> dict[str, StreamlogFormat]:
    """The built-in formats, overlaid with ``extra`` (later entries win).

    Whether a user may redefine a built-in version is the configuration's
    decision (Logtail reserves ``0.`` and ``1.``); this table just applies it.
    """
    table = {f.version: f for f in BUILTIN_FORMATS}
    for f in extra:
        table[f.version] = f
    return table


class StreamlogParser:
    """Parses streamlog lines for one table of formats.

    Settings are fixed at construction; :meth:`parse` is the hot path and is
    written for speed: one UTF-8 decode, two ``split`` calls, one ``zip``.
    """

    __slots__ = ("_layouts", "_strip_rfc3164_space", "_tags", "versions")

    def __init__(
        self,
        formats: Mapping[str, StreamlogFormat] | None = None,
        *,
        leading_space: LeadingSpace = "strip-rfc3164",
    ) -> None:
        table = dict(formats) if formats is not None else format_table()
        # Per version: the field names (msg appended), how many splits the
        # line needs, where protocol-version sits among the values (or -1),
        # and the names of a record whose timestamp column is kept raw.
        self._layouts: dict[str, tuple[tuple[str, ...], int, int, tuple[str, ...]]] = {}
        for version, fmt in table.items():
            names = (*fmt.fields, "msg")
            try:
                pv_index = fmt.fields.index("protocol-version")
            except ValueError:
                pv_index = -1
            # version tag ts ip f1..fn msg  ->  4 + n splits.
            self._layouts[version] = (names, 4 + len(fmt.fields), pv_index, (*names, RAW_TIMESTAMP))
        # tag -> the shared tags dict of its records (bounded: tags come from senders).
        self._tags: dict[str, dict[str, str]] = {}
        if leading_space not in ("strip-rfc3164", "keep"):
            raise FormatDefinitionError(
                f"leading_space must be 'strip-rfc3164' or 'keep', not {leading_space!r}"
            )
        self._strip_rfc3164_space = leading_space == "strip-rfc3164"
        self.versions: tuple[str, ...] = tuple(self._layouts)

    @property
    def strips_rfc3164_space(self) -> bool:
        """Whether ``msg`` loses the one space rsyslog leaves in front of it on RFC 3164 input."""
        return self._strip_rfc3164_space

    def layout(self, version: str) -> tuple[tuple[str, ...], int, int] | None:
        """How lines of ``version`` are read: their field names (``msg`` last), how many times the
        line is split, and where protocol-version sits among the fields (-1: nowhere); None for a
        version this parser does not know."""
        layout = self._layouts.get(version)
        return None if layout is None else layout[:3]

    def parse(self, frame: bytes, peer: str, receive_time_ns: int) -> Record:
        """One line (without its LF) into a record; never raises."""
        if frame[-1:] in (b"\0", b"\r"):
            frame = message_bytes(frame)
        try:
            text = frame.decode()
            flags: tuple[str, ...] = ()
        except UnicodeDecodeError:
            text = frame.decode("utf-8", "replace")
            flags = (FLAG_INVALID_UTF8,)
        version = text[: text.find(" ")]
        layout = self._layouts.get(version)
        if layout is None:
            return _unparsed(text, peer, receive_time_ns, flags, f"unknown streamlog version {version!r}")
        names, splits, pv_index, names_with_raw_ts = layout
        values = text.split(" ", splits)
        n = len(values)
        if n < splits:
            return _unparsed(
                text, peer, receive_time_ns, flags,
                f"streamlog {version} needs {splits} columns after the version, found {n - 1}",
            )
        if n == splits:
            # The line ends right after the last middle field: msg is empty.
            values.append("")
        tag = values[1]
        ts = values[2]
        ip = values[3]
        del values[:4]
        if self._strip_rfc3164_space and pv_index >= 0 and values[pv_index] == "0":
            msg = values[-1]
            if msg[:1] == " ":
                values[-1] = msg[1:]
        source = peer if (ip in LOOPBACK_SOURCES and peer) else ip
        try:
            # int() also takes "+5" and "1_0"; harmless here, and cheaper than checking.
            time = int(ts)
            if not 0 <= time <= MAX_EPOCH_SECONDS:
                raise ValueError(ts)
        except ValueError:
            time = receive_time_ns // 1_000_000_000
            flags = (*flags, FLAG_BAD_TIMESTAMP)
            names = names_with_raw_ts
            values.append(ts)
        tags = self._tags.get(tag)
        if tags is None:
            tags = {STREAMLOG_TAG: tag}
            if len(self._tags) < _TAG_CACHE_LIMIT:
                self._tags[tag] = tags
        return Record(time, 0, names, values, source, tags, flags)


def _unparsed(
    text: str, peer: str, receive_time_ns: int, flags: tuple[str, ...], reason: str
) -> Record:
    return raw_record(text, peer, receive_time_ns, (*flags, FLAG_PARSE_ERROR), reason)
