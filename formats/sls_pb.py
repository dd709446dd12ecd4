"""The SLS ``LogGroup`` protobuf, written by hand.

The upstream body of every PutLogs request is one ``LogGroup``. Encoding it is
the receiver's hottest path, and the schema is tiny and frozen, so a direct
encoder beats a protobuf runtime (and keeps this package free of third-party
imports). The schema (proto2)::

    Log      { required uint32 Time = 1; repeated Content Contents = 2; optional fixed32 Time_ns = 4; }
    Content  { required string Key = 1; required string Value = 2; }
    LogTag   { required string Key = 1; required string Value = 2; }
    LogGroup { repeated Log Logs = 1; optional string Reserved = 2; optional string Topic = 3;
               optional string Source = 4; optional string MachineUUID = 5; repeated LogTag LogTags = 6; }

Fields are written in field-number order, as the official serializer does, so
for the same content our bytes equal the SDK's byte for byte.

``Time_ns`` is written only when a record's ``time_ns`` is not zero. An absent
``Time_ns`` means 0 to SLS, and Logtail itself omits it unless nanosecond
timestamps are enabled, so second-precision records (most syslog) save five
bytes each and nothing is lost.

The decoder is for tests and tools: strict, it raises :class:`SlsDecodeError`
on anything malformed and never another exception.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from formats.errors import SlsDecodeError
from formats.record import Record

__all__ = [
    "SMALL_LENGTHS",
    "DecodedLog",
    "DecodedLogGroup",
    "content_head",
    "decode_log_group",
    "encode_log_group",
    "log_group_tail",
    "log_head",
    "time_part",
]

_UINT32_MAX = 0xFFFFFFFF
_NS_PER_SECOND = 1_000_000_000


_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
"""The varints of 0..127, one byte each: most lengths a LogGroup's tags and contents have."""


def _varint(n: int) -> bytes:
    """The base-128 varint of a non-negative integer."""
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Field tags (field number << 3 | wire type 2, "length-delimited"). Contents in
# Log and Value in Content are both field 2, so they share one tag byte.
_TAG_LOG = b"\x0a"  # LogGroup.Logs
_TAG_2 = b"\x12"  # field 2: Log.Contents, Content.Value, LogTag.Value
_TAG_KEY = b"\x0a"  # Content.Key, LogTag.Key
_TAG_TIME = b"\x08"  # Log.Time, varint
_TIME_NS = struct.Struct("<BI").pack  # Log.Time_ns: tag 0x25, then fixed32

# Tag plus length for every small length: one list index instead of a varint.
SMALL_LENGTHS = _SMALL = 16384
"""Lengths below this have their heads tabled (here, and in formats/sls_pb_columns.py)."""
_LOG_HEAD = [_TAG_LOG + _varint(n) for n in range(_SMALL)]


def log_head(size: int) -> bytes:
    """What precedes a ``Log`` of ``size`` bytes in the ``LogGroup``: its tag and length."""
    return _LOG_HEAD[size] if size < _SMALL else _TAG_LOG + _varint(size)


def time_part(seconds: int) -> bytes:
    """A ``Log``'s ``Time`` field (``seconds`` within 0..2**32-1)."""
    return _TAG_TIME + _varint(seconds)

_SURROGATE = re.compile("[\ud800-\udfff]")

# Content heads: key -> {value length in bytes -> the bytes that precede the
# value (Contents tag and length, Key tag, length and key, Value tag and
# length)}. Records of one layout share their keys tuple, so each layout maps
# to its keys' length tables once, and a field then costs one encode, one
# lookup and two appends. Bounded (a few MB at worst) so that odd keys or
# lengths cannot grow it without limit; past the bounds heads are built each
# time, which is slower but the same bytes.
_MAX_KEYS = 256
_MAX_KEY_BYTES = 256  # SLS keys are at most 128 bytes
_MAX_HEADS = 16384
_MAX_LAYOUTS = 1024
_heads: dict[str, dict[int, bytes]] = {}
_key_parts: dict[str, bytes] = {}
_layouts: dict[tuple[str, ...], list[Mapping[int, bytes]]] = {}
_head_count = 0
_NOT_CACHED: Mapping[int, bytes] = MappingProxyType({})  # read-only: always a miss


def _key_part(key: str) -> bytes:
    """Key tag, length and key."""
    part = _key_parts.get(key)
    if part is None:
        kb = key.encode()
        part = _TAG_KEY + _varint(len(kb)) + kb
        if len(_key_parts) < _MAX_KEYS and len(kb) <= _MAX_KEY_BYTES:
            _key_parts[key] = part
            _heads[key] = {}
    return part


def content_head(key: str, value_length: int) -> bytes:
    """What precedes a value of ``value_length`` bytes in the content of ``key``: the content's tag and
    length, the key's tag, length and bytes, the value's tag and length. Not cached here (the
    column encoder tables every length of a key; that must not use up :func:`_head`'s room)."""
    key_part = _key_part(key)
    value_head = _TAG_2 + _varint(value_length)
    return _TAG_2 + _varint(len(key_part) + len(value_head) + value_length) + key_part + value_head


def _head(key: str, value_length: int) -> bytes:
    """The content head of ``key`` and a value of that length, cached while there is room."""
    global _head_count
    lengths = _heads.get(key)
    if lengths is not None and value_length in lengths:
        return lengths[value_length]
    head = content_head(key, value_length)
    lengths = _heads.get(key)
    if lengths is not None and _head_count < _MAX_HEADS:
        lengths[value_length] = head
        _head_count += 1
    return head


def _layout(keys: tuple[str, ...]) -> list[Mapping[int, bytes]]:
    """The length tables of a layout's keys, in order."""
    layout = _layouts.get(keys)
    if layout is None:
        for key in keys:
            _key_part(key)  # registers the key while there is room
        layout = [_heads.get(key, _NOT_CACHED) for key in keys]
        if len(_layouts) < _MAX_LAYOUTS:
            _layouts[keys] = layout
    return layout


def _contents(parts: list[bytes], keys: Sequence[str], values: Sequence[str]) -> None:
    """Append a record's contents the slow way, filling the caches (a cache miss)."""
    add = parts.append
    for key, value in zip(keys, values, strict=True):
        vb = value.encode()
        add(_head(key, len(vb)))
        add(vb)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _pair(tag: bytes, key: str, value: str) -> bytes:
    return _length_delimited(
        tag,
        _length_delimited(_TAG_KEY, _utf8(key)) + _length_delimited(_TAG_2, _utf8(value)),
    )


def _clean(text: str) -> str:
    # Lone surrogates cannot be UTF-8; SLS would refuse the whole batch.
    return _SURROGATE.sub("\ufffd", text)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _clean(text).encode()


def _clean_record(record: Record) -> Record:
    return Record(
        record.time,
        record.time_ns,
        tuple(_clean(k) for k in record.keys),
        [_clean(v) for v in record.values],
        record.source,
        record.tags,
        tuple(_clean(f) for f in record.flags),
        record.error,
    )


def _encode_logs(records: Sequence[Record], flags_field: str | None) -> list[bytes]:
    """The ``Logs`` entries of a group, as pieces to join."""
    out: list[bytes] = []
    append = out.append
    log_heads = _LOG_HEAD
    # No int or tuple sentinels: they could match a record's.
    last_time: int | None = None
    time_bytes = b""
    last_keys: tuple[str, ...] | None = None
    layout: list[Mapping[int, bytes]] = []
    width = 0
    for record in records:
        t = record.time
        if t != last_time:
            if not 0 <= t <= _UINT32_MAX:
                raise ValueError(f"record time {t} is not a uint32")
            last_time = t
            time_bytes = _TAG_TIME + _varint(t)
        keys = record.keys
        if keys is not last_keys:
            layout = _layout(keys)
            width = len(layout)
            last_keys = keys
        values = record.values
        if len(values) != width:  # cheaper than zip(strict=True)
            raise ValueError(f"record has {len(keys)} keys and {len(values)} values")
        parts = [time_bytes]
        add = parts.append
        try:
            # Lengths checked above; any keyword makes zip() slower here.
            for lengths, value in zip(layout, values):  # noqa: B905
                vb = value.encode()
                add(lengths[len(vb)])
                add(vb)
        except KeyError:
            parts = [time_bytes]
            add = parts.append
            _contents(parts, keys, values)
        if flags_field is not None and record.flags:
            vb = " ".join(record.flags).encode()
            add(_head(flags_field, len(vb)))
            add(vb)
        ns = record.time_ns
        if ns:
            if not 0 < ns < _NS_PER_SECOND:
                raise ValueError(f"record time_ns {ns} is not within 0..999999999")
            add(_TIME_NS(0x25, ns))
        body = b"".join(parts)
        size = len(body)
        append(log_heads[size] if size < _SMALL else _TAG_LOG + _varint(size))
        append(body)
    return out


def encode_log_group(
    records: Sequence[Record],
    *,
    topic: str = "",
    source: str = "",
    tags: Sequence[tuple[str, str]] = (),
    machine_uuid: str = "",
    flags_field: str | None = None,
) -> bytes:
    """One ``LogGroup`` holding ``records`` in order: a PutLogs body before compression.

    Each record gives ``Time``, ``Time_ns`` (only when not zero) and its fields
    as ``Contents``, in order. Nothing else of the record is written: its
    source and tags belong to the group, so the caller groups records and
    passes ``source`` and ``tags`` (written as ``LogTags`` in order). Empty
    ``topic``, ``source`` and ``machine_uuid`` are left out. When
    ``flags_field`` is given, a record with flags gets one more content,
    ``(flags_field, " ".join(flags))``.

    Lone surrogates (never produced by the parsers) become U+FFFD rather than
    make the body invalid UTF-8. A time outside uint32, a ``time_ns`` outside
    0..999,999,999 or a record whose keys and values differ in number raises
    :class:`ValueError`.
    """
    try:
        pieces = _encode_logs(records, flags_field)
    except UnicodeEncodeError:
        clean_flags_field = None if flags_field is None else _clean(flags_field)
        pieces = _encode_logs([_clean_record(r) for r in records], clean_flags_field)
    pieces.append(log_group_tail(topic=topic, source=source, tags=tags, machine_uuid=machine_uuid))
    return b"".join(pieces)


def log_group_tail(
    *, topic: str = "", source: str = "", tags: Sequence[tuple[str, str]] = (), machine_uuid: str = ""
) -> bytes:
    """What follows the ``Logs`` in a ``LogGroup``: ``Topic``, ``Source``, ``MachineUUID`` (empty ones
    left out) and the ``LogTags`` in order, as :func:`encode_log_group` writes them."""
    pieces = []
    if topic:
        pieces.append(_length_delimited(b"\x1a", _utf8(topic)))
    if source:
        pieces.append(_length_delimited(b"\x22", _utf8(source)))
    if machine_uuid:
        pieces.append(_length_delimited(b"\x2a", _utf8(machine_uuid)))
    for key, value in tags:
        pieces.append(_pair(b"\x32", key, value))
    return b"".join(pieces)


# Decoding.


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """One ``Log``: ``time_ns`` is None when the field is absent."""

    time: int
    contents: list[tuple[str, str]]
    time_ns: int | None


@dataclass(frozen=True, slots=True)
class DecodedLogGroup:
    """One ``LogGroup``: an optional string is None when the field is absent."""

    logs: list[DecodedLog]
    topic: str | None
    source: str | None
    machine_uuid: str | None
    reserved: str | None
    tags: list[tuple[str, str]]


_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_WIRE_NAMES = {
    _VARINT: "varint",
    _FIXED64: "fixed64",
    _LEN: "length-delimited",
    _FIXED32: "fixed32",
}


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise SlsDecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            # As protobuf does, keep the low 64 bits of a 10-byte varint.
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise SlsDecodeError("varint longer than 10 bytes")


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Each field in ``buf[pos:end]`` as (number, wire type, a, b).

    ``a`` is the value of a numeric field; a length-delimited field spans
    ``buf[a:b]``. Groups (wire types 3 and 4, deprecated, never in SLS) are
    rejected.
    """
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or key > _UINT32_MAX:
            raise SlsDecodeError(f"invalid field number {number}")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, end)
            yield number, wire, value, 0
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos, end)
            if size > end - pos:
                raise SlsDecodeError(f"field {number} runs past the end of its message")
            yield number, wire, pos, pos + size
            pos += size
        elif wire in (_FIXED32, _FIXED64):
            width = 4 if wire == _FIXED32 else 8
            if width > end - pos:
                raise SlsDecodeError(f"truncated fixed-width field {number}")
            yield number, wire, int.from_bytes(buf[pos : pos + width], "little"), 0
            pos += width
        else:
            raise SlsDecodeError(f"unsupported wire type {wire} for field {number}")


def _expect(what: str, wire: int, expected: int) -> None:
    if wire != expected:
        raise SlsDecodeError(f"{what} has wire type {wire}, expected {_WIRE_NAMES[expected]}")


def _text(buf: bytes, start: int, end: int, what: str) -> str:
    try:
        return buf[start:end].decode()
    except UnicodeDecodeError as e:
        raise SlsDecodeError(f"{what} is not valid UTF-8") from e


def _decode_pair(buf: bytes, start: int, end: int, what: str) -> tuple[str, str]:
    key: str | None = None
    value: str | None = None
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1:
            _expect(f"{what}.Key", wire, _LEN)
            key = _text(buf, a, b, f"{what}.Key")
        elif number == 2:
            _expect(f"{what}.Value", wire, _LEN)
            value = _text(buf, a, b, f"{what}.Value")
    if key is None:
        raise SlsDecodeError(f"{what} without Key")
    if value is None:
        raise SlsDecodeError(f"{what} without Value")
    return key, value


def _decode_log(buf: bytes, start: int, end: int) -> DecodedLog:
    time: int | None = None
    time_ns: int | None = None
    contents: list[tuple[str, str]] = []
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1:
            _expect("Log.Time", wire, _VARINT)
            time = a & _UINT32_MAX  # uint32: protobuf keeps the low 32 bits
        elif number == 2:
            _expect("Log.Contents", wire, _LEN)
            contents.append(_decode_pair(buf, a, b, "Content"))
        elif number == 4:
            _expect("Log.Time_ns", wire, _FIXED32)
            time_ns = a
    if time is None:
        raise SlsDecodeError("Log without Time")
    return DecodedLog(time=time, contents=contents, time_ns=time_ns)


def decode_log_group(data: bytes | bytearray | memoryview) -> DecodedLogGroup:
    """Read a ``LogGroup`` (uncompressed), strictly.

    Unknown fields are skipped, as proto2 does; malformed input (truncation,
    lengths past the end, wrong wire types, groups, invalid UTF-8, a missing
    required field) raises :class:`SlsDecodeError`, never anything else.
    """
    buf = bytes(data)
    logs: list[DecodedLog] = []
    tags: list[tuple[str, str]] = []
    strings: dict[int, str] = {}
    names = {2: "Reserved", 3: "Topic", 4: "Source", 5: "MachineUUID"}
    for number, wire, a, b in _fields(buf, 0, len(buf)):
        if number == 1:
            _expect("LogGroup.Logs", wire, _LEN)
            logs.append(_decode_log(buf, a, b))
        elif number in names:
            name = f"LogGroup.{names[number]}"
            _expect(name, wire, _LEN)
            strings[number] = _text(buf, a, b, name)  # the last one wins
        elif number == 6:
            _expect("LogGroup.LogTags", wire, _LEN)
            tags.append(_decode_pair(buf, a, b, "LogTag"))
    return DecodedLogGroup(
        logs=logs,
        topic=strings.get(3),
        source=strings.get(4),
        machine_uuid=strings.get(5),
        reserved=strings.get(2),
        tags=tags,
    )
