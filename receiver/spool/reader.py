"""Reading the spool, from any process, while the daemon writes it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from receiver.spool.segment import SegmentError, decode_segment
from receiver.spool.store import SpoolStore

__all__ = ["SpoolEntry", "SpoolReader", "SpoolStats"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One read's frames and their envelope, with the segment that holds them."""

    seq: int
    receive_time_ns: int
    peer: str
    port: int
    listener: str
    transport: str
    frames: Sequence[bytes]
    frame_flags: dict[int, tuple[str, ...]]


@dataclasses.dataclass(frozen=True, slots=True)
class SpoolStats:
    segments: int
    frames: int
    bytes: int
    """Stored (compressed) bytes of the segments held."""
    raw_bytes: int
    """Their size uncompressed: frames and envelopes."""
    oldest_receive_time_ns: int | None
    newest_receive_time_ns: int | None
    frames_written: int
    """Every frame ever committed to this spool."""
    discarded_frames: int
    """Removed by retention before every sink had them."""
    quarantined: int
    """Damaged segments moved aside."""
    cursors: dict[str, int]


class SpoolReader:
    """Read-only view of a spool directory; sees committed segments only."""

    def __init__(self, directory: Path | str) -> None:
        self._store = SpoolStore(Path(directory), readonly=True)
        self.damaged_seen = 0
        """Damaged segments skipped by :meth:`entries` (the daemon quarantines them)."""

    def __enter__(self) -> SpoolReader:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()

    def stats(self) -> SpoolStats:
        """The spool's counters (cheap: no segment is read)."""
        meta = self._store.refresh()
        return SpoolStats(
            segments=meta.segments,
            frames=meta.frames,
            bytes=meta.stored_bytes,
            raw_bytes=meta.raw_bytes,
            oldest_receive_time_ns=meta.oldest_receive_time_ns,
            newest_receive_time_ns=meta.newest_receive_time_ns,
            frames_written=meta.frames_written,
            discarded_frames=meta.discarded_frames,
            quarantined=meta.quarantined_segments,
            cursors=self._store.cursors(),
        )

    def last_seq(self) -> int:
        """The sequence number of the newest committed segment (0 before the first)."""
        return self._store.refresh().next_seq - 1

    def entries(self, after_seq: int = 0) -> Iterator[SpoolEntry]:
        """Every entry of every segment after ``after_seq``, in commit order."""
        self._store.refresh()
        for seq in self._store.sequence_numbers():
            if seq <= after_seq:
                continue
            blob = self._store.get(seq)
            if blob is None:
                continue  # removed by retention meanwhile
            try:
                entries = decode_segment(blob)
            except SegmentError as e:
                self.damaged_seen += 1
                log.warning("spool segment %d is damaged (%s); skipped", seq, e)
                continue
            for entry in entries:
                yield SpoolEntry(
                    seq, entry.receive_time_ns, entry.peer, entry.port, entry.listener,
                    entry.transport, entry.frames, entry.frame_flags,
                )
