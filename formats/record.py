"""The record: what one frame becomes once parsed.

A record is deliberately small and flat, because every sink maps it the same
way: an SLS ``Log`` (time, ordered contents) inside a ``LogGroup`` (source,
tags), a ClickHouse row, an NDJSON object.
"""

from __future__ import annotations

__all__ = [
    "FLAG_BAD_PRI",
    "FLAG_BAD_STRUCTURED_DATA",
    "FLAG_BAD_TIMESTAMP",
    "FLAG_FRAMING_ERROR",
    "FLAG_INCOMPLETE",
    "FLAG_INVALID_UTF8",
    "FLAG_PARSE_ERROR",
    "FLAG_TRUNCATED",
    "FLAG_UNCERTAIN_YEAR",
    "Record",
    "truncated_flag",
]

# The flag vocabulary. A flag never hides data: it says what the receiver
# noticed about a frame that it nevertheless kept.
FLAG_PARSE_ERROR = "parse-error"
"""No parser could read the frame; the whole frame is in ``_content_``."""
FLAG_TRUNCATED = "truncated"
"""Written ``truncated:<original length in bytes>``; see :func:`truncated_flag`."""
FLAG_INCOMPLETE = "incomplete"
"""The stream ended inside this frame (the sender closed mid-frame)."""
FLAG_FRAMING_ERROR = "framing-error"
"""An octet-counting listener got a frame without a valid count; read up to LF."""
FLAG_INVALID_UTF8 = "invalid-utf8"
"""Bytes that are not UTF-8 were replaced by U+FFFD; the spool keeps the originals."""
FLAG_BAD_TIMESTAMP = "bad-timestamp"
"""The frame's timestamp could not be read; the record carries the receive time."""
FLAG_UNCERTAIN_YEAR = "uncertain-year"
"""The timestamp had no year, and the year rule dated it far before the receive time
(over 30 days by default): the sender's clock was reset or wrong, or it replays old
messages, and the year may be wrong."""
FLAG_BAD_PRI = "bad-pri"
"""The PRI was out of range or malformed; priority, facility and severity are -1."""
FLAG_BAD_STRUCTURED_DATA = "bad-structured-data"
"""RFC 5424 STRUCTURED-DATA could not be read; it stays at the start of ``_content_``."""


def truncated_flag(original_length: int) -> str:
    """The flag of a frame cut at the size limit, carrying its original length."""
    return f"{FLAG_TRUNCATED}:{original_length}"


class Record:
    """One parsed frame.

    ``time`` is whole seconds since the epoch and ``time_ns`` the nanoseconds
    within that second (0..999,999,999), as SLS stores them (``Time`` and
    ``Time_ns``). The fields are ``keys`` and ``values`` side by side: the keys
    tuple is shared by every record of one layout and the values list is often
    the parser's own ``split`` result, because building a (key, value) tuple
    per field would cost more than parsing does. ``fields`` gives the pairs.
    ``source`` is where the record comes from as the upstream should show it
    (the streamlog ip column, else the peer address). ``tags`` are the record's
    own tags known at parse time (the streamlog tag used for routing); parsers
    share tag dicts between records, so replace ``tags``, never mutate it.
    ``flags`` come from the vocabulary above and ``error`` says in a few words
    why a frame did not parse.
    """

    __slots__ = ("error", "flags", "keys", "source", "tags", "time", "time_ns", "values")

    def __init__(
        self,
        time: int,
        time_ns: int,
        keys: tuple[str, ...],
        values: list[str],
        source: str,
        tags: dict[str, str],
        flags: tuple[str, ...] = (),
        error: str | None = None,
    ) -> None:
        self.time = time
        self.time_ns = time_ns
        self.keys = keys
        self.values = values
        self.source = source
        self.tags = tags
        self.flags = flags
        self.error = error

    @property
    def fields(self) -> list[tuple[str, str]]:
        """The (key, value) pairs in order."""
        return list(zip(self.keys, self.values, strict=True))

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of the first field named ``key``."""
        try:
            return self.values[self.keys.index(key)]
        except ValueError:
            return default

    def with_flags(self, flags: tuple[str, ...]) -> Record:
        """This record with ``flags`` (a frame's, from the deframer) in front of its own."""
        if flags:
            self.flags = (*flags, *self.flags)
        return self

    def to_dict(self) -> dict[str, object]:
        """The record as plain JSON-ready data (the ``receiverctl parse`` shape)."""
        out: dict[str, object] = {
            "time": self.time,
            "time_ns": self.time_ns,
            "fields": dict(zip(self.keys, self.values, strict=True)),
            "source": self.source,
            "tags": dict(self.tags),
            "flags": list(self.flags),
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (
            self.time == other.time
            and self.time_ns == other.time_ns
            and self.keys == other.keys
            and self.values == other.values
            and self.source == other.source
            and self.tags == other.tags
            and self.flags == other.flags
            and self.error == other.error
        )

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside

    def __repr__(self) -> str:
        return (
            f"Record(time={self.time}, time_ns={self.time_ns}, fields={self.fields!r}, "
            f"source={self.source!r}, tags={self.tags!r}, flags={self.flags!r}, "
            f"error={self.error!r})"
        )
