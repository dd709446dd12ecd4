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
from collections.abc import Sequence
from itertools import accumulate, pairwise

import lz4.block

__all__ = [
    "TRANSPORTS",
    "Entry",
    "SegmentError",
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
    frames: list[bytes]
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


def decode_segment(blob: bytes) -> list[Entry]:
    """The entries of an intact segment; :class:`SegmentError` for anything else."""
    summary = read_summary(blob)
    (crc,) = struct.unpack_from("<I", blob, 4)
    if zlib.crc32(memoryview(blob)[8:]) != crc:
        raise SegmentError("checksum mismatch (damaged segment)")
    try:
        raw = lz4.block.decompress(memoryview(blob)[_HEADER.size :], uncompressed_size=summary.raw_bytes)
    except lz4.block.LZ4BlockError as e:
        raise SegmentError(f"body does not decompress: {e}") from e
    try:
        return _entries(raw, summary.entries)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise SegmentError(f"body is malformed: {e}") from e


def _entries(raw: bytes, count: int) -> list[Entry]:
    out = []
    pos = 0
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
        ends = list(accumulate(lengths, initial=pos))
        frames = [raw[a:b] for a, b in pairwise(ends)]
        pos = ends[-1]
        if pos > len(raw) or transport >= len(TRANSPORTS):
            raise ValueError("entry runs past the segment")
        out.append(Entry(receive_ns, peer, port, listener, TRANSPORTS[transport], frames, flags))
    if pos != len(raw):
        raise ValueError("trailing bytes after the last entry")
    return out
