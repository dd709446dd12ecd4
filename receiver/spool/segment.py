"""The spool's unit of commit: a segment of entries, each a batch of frames with its envelope.

An entry is what one read of one connection (or one datagram) produced: the
frames plus their shared envelope (receive time, peer, listener, transport).
A segment holds the entries of one group commit, compressed with lz4 and
guarded by a CRC, so a damaged segment is recognised before anything in it
is trusted.

Layout (little-endian):

    magic "RSG1" | crc32 of everything after this field (u32)
    frames (u32) | entries (u32) | first receive ns (u64) | last receive ns (u64)
    raw body length (u32) | lz4 block of the body (no stored size)

Body, per entry:

    receive ns (u64) | port (u16) | transport (u8) | peer length (u8) | listener length (u8)
    frame count (u32) | flags length (u32)
    peer (ASCII) | listener (UTF-8) | flags (JSON: {"index": [flag, ...]}, only when some frame has flags)
    frame lengths (u32 each) | frames, back to back

The summary fields in the header let stats and retention look at a segment
without decompressing it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from array import array
from collections.abc import Iterator, Sequence
from itertools import accumulate, islice, pairwise
from typing import Any, overload

import lz4.block

__all__ = [
    "TRANSPORTS",
    "Entry",
    "FrameRun",
    "SegmentError",
    "SegmentFrames",
    "SegmentSummary",
    "decode_segment",
    "encode_segment",
    "read_summary",
]

MAGIC = b"RSG1"
_HEADER = struct.Struct("<4sIIIQQI")
_ENTRY = struct.Struct("<QHBBBII")
TRANSPORTS = ("tcp", "udp", "tls", "relp")
_TRANSPORT_CODES = {name: i for i, name in enumerate(TRANSPORTS)}
_U32 = array("I").itemsize == 4


class SegmentError(ValueError):
    """Bytes that are not an intact segment (damaged on disk, or not ours)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """Frames from one read, with the envelope they share."""

    receive_time_ns: int
    peer: str
    port: int
    listener: str
    transport: str
    frames: Sequence[bytes]
    frame_flags: dict[int, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Index in ``frames`` -> the deframer's flags for that frame (truncated, incomplete...).

    Ingest fills it (rarely needed); encoding does not scan frames for flags."""


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentSummary:
    frames: int
    entries: int
    first_receive_time_ns: int
    last_receive_time_ns: int
    raw_bytes: int


def encode_segment(entries: Sequence[Entry]) -> bytes:
    """One segment holding ``entries``; frames may be deframer ``FlaggedFrame``s."""
    assert _U32, "array('I') must be 32-bit on this platform"
    body: list[bytes] = []
    frame_total = 0
    first = last = entries[0].receive_time_ns if entries else 0
    for entry in entries:
        frames = entry.frames
        flags = entry.frame_flags
        peer = entry.peer.encode("ascii", "replace")[:255]
        listener = entry.listener.encode()[:255]
        flags_json = json.dumps({str(i): list(f) for i, f in flags.items()}).encode() if flags else b""
        body.append(
            _ENTRY.pack(
                entry.receive_time_ns, entry.port, _TRANSPORT_CODES[entry.transport],
                len(peer), len(listener), len(frames), len(flags_json),
            )
        )
        body.append(peer)
        body.append(listener)
        body.append(flags_json)
        body.append(array("I", map(len, frames)).tobytes())
        body.append(b"".join(frames))
        frame_total += len(frames)
        first = min(first, entry.receive_time_ns)
        last = max(last, entry.receive_time_ns)
    raw = b"".join(body)
    packed = lz4.block.compress(raw, store_size=False)
    rest = _HEADER.pack(MAGIC, 0, frame_total, len(entries), first, last, len(raw))[8:] + packed
    return MAGIC + struct.pack("<I", zlib.crc32(rest)) + rest


def read_summary(blob: bytes) -> SegmentSummary:
    """The header of a segment (checks the magic, not the CRC)."""
    if len(blob) < _HEADER.size or blob[:4] != MAGIC:
        raise SegmentError("not a spool segment (bad magic)")
    _, _, frames, entries, first, last, raw = _HEADER.unpack_from(blob)
    return SegmentSummary(frames, entries, first, last, raw)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class SegmentFrames:
    """Every frame of a decoded segment, back to back in ``data``, and their lengths in order."""

    data: bytes
    lengths: array[int]
    """One unsigned 32-bit length a frame (``array("I")``)."""


class FrameRun(Sequence[bytes]):
    """An entry's frames as they lie in its segment's :class:`SegmentFrames`: ``length`` frames from
    the ``first``, whose bytes start at ``offset`` in the data. Each is made a bytes object only when read.

    Building batches from columns hands the data and the lengths to Arrow as they are, so a line
    never becomes a Python object there (decoding a segment into one object a frame, and Arrow
    copying those back into one buffer, took a fifth of a build worker's time).
    """

    __slots__ = ("first", "length", "offset", "segment")

    def __init__(self, segment: SegmentFrames, first: int, length: int, offset: int) -> None:
        self.segment, self.first, self.length, self.offset = segment, first, length, offset

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        data = self.segment.data
        ends = accumulate(islice(self.segment.lengths, self.first, self.first + self.length), initial=self.offset)
        return (data[a:b] for a, b in pairwise(ends))

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return list(self)[index]
        if not -self.length <= index < self.length:
            raise IndexError("frame index out of range")
        index %= self.length
        lengths = self.segment.lengths
        start = self.offset + sum(islice(lengths, self.first, self.first + index))  # (by iterating, read all at once)
        return self.segment.data[start : start + lengths[self.first + index]]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameRun | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__: Any = None

    def __repr__(self) -> str:
        return f"FrameRun({list(self)!r})"


def decode_segment(blob: bytes, *, in_place: bool = False) -> list[Entry]:
    """The entries of an intact segment; :class:`SegmentError` for anything else.

    With ``in_place``, each entry's frames are a :class:`FrameRun` of the segment's
    :class:`SegmentFrames` (the same for every entry) instead of a list.
    """
    summary = read_summary(blob)
    (crc,) = struct.unpack_from("<I", blob, 4)
    if zlib.crc32(memoryview(blob)[8:]) != crc:
        raise SegmentError("checksum mismatch (damaged segment)")
    try:
        raw = lz4.block.decompress(memoryview(blob)[_HEADER.size :], uncompressed_size=summary.raw_bytes)
    except lz4.block.LZ4BlockError as e:
        raise SegmentError(f"body does not decompress: {e}") from e
    try:
        return _entries(raw, summary.entries, in_place=in_place)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise SegmentError(f"body is malformed: {e}") from e


def _entries(raw: bytes, count: int, *, in_place: bool = False) -> list[Entry]:
    out: list[Entry] = []
    placed: list[tuple[Entry, int, int, int]] = []  # in place: each entry, and its frames' first, count, offset
    pieces: list[memoryview] = []
    all_lengths = array("I")
    body = memoryview(raw)
    offset = pos = 0
    for _ in range(count):
        receive_ns, port, transport, peer_len, listener_len, frame_count, flags_len = _ENTRY.unpack_from(raw, pos)
        pos += _ENTRY.size
        peer = raw[pos : pos + peer_len].decode("ascii")
        pos += peer_len
        listener = raw[pos : pos + listener_len].decode()
        pos += listener_len
        flags: dict[int, tuple[str, ...]] = {}
        if flags_len:
            flags = {int(i): tuple(f) for i, f in json.loads(raw[pos : pos + flags_len]).items()}
            pos += flags_len
        lengths = array("I")
        lengths.frombytes(raw[pos : pos + 4 * frame_count])
        pos += 4 * frame_count
        if transport >= len(TRANSPORTS):
            raise ValueError(f"unknown transport code {transport}")
        if in_place:  # the frames' bytes stay together: one piece an entry, joined below
            size = sum(lengths)
            if pos + size > len(raw):
                raise ValueError("entry runs past the segment")
            entry = Entry(receive_ns, peer, port, listener, TRANSPORTS[transport], [], flags)
            placed.append((entry, len(all_lengths), frame_count, offset))
            pieces.append(body[pos : pos + size])
            all_lengths.extend(lengths)
            pos += size
            offset += size
            continue
        ends = list(accumulate(lengths, initial=pos))
        pos = ends[-1]
        if pos > len(raw):
            raise ValueError("entry runs past the segment")
        frames = [raw[a:b] for a, b in pairwise(ends)]
        out.append(Entry(receive_ns, peer, port, listener, TRANSPORTS[transport], frames, flags))
    if pos != len(raw):
        raise ValueError("trailing bytes after the last entry")
    if in_place:
        together = SegmentFrames(b"".join(pieces), all_lengths)
        out = [dataclasses.replace(entry, frames=FrameRun(together, *run)) for entry, *run in placed]
    return out
