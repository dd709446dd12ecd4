"""The segments on disk, in a diskcache (SQLite, WAL), and the spool's bookkeeping.

Keys are the segments' sequence numbers (dense integers, in commit order);
``meta`` holds the counters and ``cursor:<sink>`` each sink's position, so
that a segment and the counters that describe it change in one transaction.

One process writes (the daemon's writer thread); any number read
(``SpoolReader``, ``receiverctl``), concurrently, seeing committed
segments only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import diskcache

from receiver.spool.segment import SegmentError, SegmentSummary, read_summary

__all__ = ["SpoolDamagedError", "SpoolMeta", "SpoolStore"]

log = logging.getLogger(__name__)

_META = "meta"
_CURSOR = "cursor:"
_SPOOL_ID = "spool-id"
_QUARANTINE_DIR = "quarantine"


class SpoolDamagedError(RuntimeError):
    """The spool's database cannot be opened; the message says where it was moved."""


@dataclasses.dataclass(slots=True)
class SpoolMeta:
    """Counters kept with the segments (updated in the same transaction)."""

    first_seq: int = 1
    """The oldest segment still held (== next_seq when empty)."""
    next_seq: int = 1
    segments: int = 0
    """Segments held."""
    oldest_receive_time_ns: int | None = None
    """When the oldest frame held was received."""
    newest_receive_time_ns: int | None = None
    frames: int = 0
    """Frames in the segments held."""
    stored_bytes: int = 0
    """Bytes of the segments held, as stored (compressed)."""
    raw_bytes: int = 0
    """Bytes of frames and envelopes held, uncompressed."""
    frames_written: int = 0
    """Frames ever committed."""
    discarded_frames: int = 0
    """Frames removed by retention (age or size) before every sink had them."""
    discarded_segments: int = 0
    quarantined_segments: int = 0
    """Damaged segments moved to the quarantine directory."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SpoolMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


class SpoolStore:
    """Synchronous access to one spool directory."""

    def __init__(
        self, directory: Path, *, sync: Literal["normal", "full"] = "full", readonly: bool = False
    ) -> None:
        self.directory = directory
        self.readonly = readonly
        if readonly:
            if not (directory / "cache.db").exists():
                raise FileNotFoundError(f"{directory}: no spool here (no cache.db); is this the spool directory?")
            self._cache = diskcache.Cache(str(directory))
        else:
            directory.mkdir(parents=True, exist_ok=True)
            try:
                self._cache = _open_for_writing(directory, sync)
            except sqlite3.DatabaseError as e:
                moved = directory.with_name(f"{directory.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
                directory.rename(moved)
                directory.mkdir()
                self._cache = _open_for_writing(directory, sync)
                raise SpoolDamagedError(
                    f"spool database in {directory} could not be opened ({e}); it was moved to {moved} "
                    "for inspection and an empty spool was started"
                ) from e
        self.meta = self._read_meta()

    def _read_meta(self) -> SpoolMeta:
        text = self._cache.get(_META)
        return SpoolMeta.from_json(text) if isinstance(text, str) else SpoolMeta()

    def refresh(self) -> SpoolMeta:
        """Re-read the counters (readers: to see new commits)."""
        self.meta = self._read_meta()
        return self.meta

    def close(self) -> None:
        self._cache.close()

    # -- writing (one thread) --------------------------------------------

    @contextlib.contextmanager
    def _changing_meta(self) -> Iterator[SpoolMeta]:
        """A copy of the counters to change in one transaction: they become the store's only once it commits.

        A commit that fails (a full disk) rolls the database back; changing
        ``self.meta`` in place would have kept the counts of a segment that
        was never stored, and the next good commit would have saved them.
        """
        meta = dataclasses.replace(self.meta)
        with self._cache.transact(retry=True):
            yield meta
            self._cache.set(_META, meta.to_json())
        self.meta = meta

    def append(self, blob: bytes, summary: SegmentSummary) -> int:
        """Commit one segment; returns its sequence number once durable."""
        with self._changing_meta() as meta:
            seq = meta.next_seq
            self._cache.set(seq, blob)
            meta.next_seq = seq + 1
            if meta.segments == 0:
                meta.oldest_receive_time_ns = summary.first_receive_time_ns
            meta.segments += 1
            meta.newest_receive_time_ns = max(meta.newest_receive_time_ns or 0, summary.last_receive_time_ns)
            meta.frames += summary.frames
            meta.stored_bytes += len(blob)
            meta.raw_bytes += summary.raw_bytes
            meta.frames_written += summary.frames
        return seq

    def delete_oldest(self, *, delivered: bool) -> SegmentSummary | None:
        """Remove the oldest segment; ``delivered`` says whether every sink had it."""
        if self.meta.first_seq >= self.meta.next_seq:
            return None
        seq = self.meta.first_seq
        blob = self._cache.get(seq)
        with self._changing_meta() as meta:
            summary = self._forget(meta, seq, blob)
            if not delivered and summary is not None:
                meta.discarded_frames += summary.frames
                meta.discarded_segments += 1
        return summary

    def quarantine(self, seq: int, reason: str) -> Path:
        """Move a damaged segment out of the spool (kept as a file for inspection)."""
        blob = self._cache.get(seq)
        target_dir = self.directory / _QUARANTINE_DIR
        target_dir.mkdir(exist_ok=True)
        target = target_dir / f"segment-{seq}.bin"
        target.write_bytes(blob if isinstance(blob, bytes) else b"")
        (target_dir / f"segment-{seq}.reason").write_text(reason + "\n")
        with self._changing_meta() as meta:
            self._forget(meta, seq, blob)
            meta.quarantined_segments += 1
        return target

    def _forget(self, meta: SpoolMeta, seq: int, blob: object) -> SegmentSummary | None:
        """Delete a segment and take it out of ``meta`` (inside a transaction)."""
        summary = None
        if isinstance(blob, bytes):
            try:
                summary = read_summary(blob)
            except SegmentError:
                summary = None
            meta.stored_bytes -= len(blob)
        if summary is not None:
            meta.frames -= summary.frames
            meta.raw_bytes -= summary.raw_bytes
        self._cache.delete(seq)
        meta.segments -= 1
        if seq == meta.first_seq:
            meta.first_seq += 1
            while meta.first_seq < meta.next_seq and meta.first_seq not in self._cache:
                meta.first_seq += 1
            meta.oldest_receive_time_ns = self._first_receive_time(meta.first_seq, meta.next_seq)
        if meta.segments == 0:
            meta.oldest_receive_time_ns = meta.newest_receive_time_ns = None
        return summary

    def _first_receive_time(self, seq: int, next_seq: int) -> int | None:
        blob = self._cache.get(seq) if seq < next_seq else None
        if not isinstance(blob, bytes):
            return None
        try:
            return read_summary(blob).first_receive_time_ns
        except SegmentError:
            return None

    def set_cursor(self, sink: str, seq: int) -> None:
        """Record that ``sink`` has everything up to and including segment ``seq``."""
        self._cache.set(_CURSOR + sink, seq)

    def delete_cursor(self, sink: str) -> None:
        """Forget a sink that is no longer configured (its cursor would hold segments forever)."""
        self._cache.delete(_CURSOR + sink)

    # -- reading ---------------------------------------------------------

    def cursor(self, sink: str) -> int:
        """The last segment ``sink`` has (0: none yet)."""
        value = self._cache.get(_CURSOR + sink, 0)
        return value if isinstance(value, int) else 0

    def cursors(self) -> dict[str, int]:
        return {
            key[len(_CURSOR) :]: value
            for key in self._cache.iterkeys()
            if isinstance(key, str) and key.startswith(_CURSOR)
            and isinstance(value := self._cache.get(key), int)
        }

    def spool_id(self) -> str:
        """A random name given to this spool when it was created (for pack ids)."""
        value = self._cache.get(_SPOOL_ID)
        if isinstance(value, str):
            return value
        new = uuid.uuid4().hex
        return new if self._cache.add(_SPOOL_ID, new) else str(self._cache.get(_SPOOL_ID))

    def get(self, seq: int) -> bytes | None:
        value = self._cache.get(seq)
        return value if isinstance(value, bytes) else None

    def sequence_numbers(self) -> Iterator[int]:
        """The segments held, oldest first (a snapshot of the counters' range)."""
        meta = self.meta
        for seq in range(meta.first_seq, meta.next_seq):
            if seq in self._cache:
                yield seq


def _open_for_writing(directory: Path, sync: str) -> diskcache.Cache:
    return diskcache.Cache(
        str(directory),
        # Segments stay inside SQLite (one WAL write per commit), never as files.
        disk_min_file_size=2**31 - 1,
        # Nothing is ever evicted or culled behind our back: retention is ours.
        eviction_policy="none",
        size_limit=2**62,
        cull_limit=0,
        statistics=0,
        sqlite_synchronous=2 if sync == "full" else 1,
        sqlite_journal_mode="wal",
        # The spool is written once and read once: SQLite's default 32 MiB page
        # cache and 64 MiB memory map would only add to the receiver's memory.
        sqlite_cache_size=1024,
        sqlite_mmap_size=0,
    )
