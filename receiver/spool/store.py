"""The segments on disk, in a diskcache (SQLite, WAL), and the spool's bookkeeping.

Keys are the segments' sequence numbers (dense integers, in commit order);
``meta`` holds the counters, so that a segment and the counters that
describe it change in one transaction, and ``cursors`` every sink's
position, as one JSON object: reading them all is one lookup, whatever the
size of the backlog (status and metrics read them on every call).
``in-flight`` holds, by sink, the batches (first and last segment of each)
it is sending past its cursor, so that a restart sends the same ones again.

The spool holds only bytes (segments) and JSON text (everything else), and
reads nothing else back: diskcache would unpickle a value (or a key) whose
row says it is a pickle, and open a file whose name a row gives, so whoever
can write the database could run code as, or read files of, whoever reads
the spool (``receiverctl spool`` runs as root). :class:`BytesAndTextDisk`
refuses both, and a refused value is damage, quarantined like a segment
that fails its checksum.

One process writes (the daemon's writer thread); any number read
(``SpoolReader``, ``receiverctl``), concurrently, seeing committed
segments only. Sinks' cursors are written by the delivery process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import diskcache
import diskcache.core

from receiver.spool.segment import SegmentError, SegmentSummary, read_summary

__all__ = ["BytesAndTextDisk", "RefusedValueError", "SpoolDamagedError", "SpoolMeta", "SpoolStore"]

log = logging.getLogger(__name__)

_META = "meta"
_CURSORS = "cursors"
_IN_FLIGHT = "in-flight"
_LEGACY_CURSOR = "cursor:"  # one key per sink, before the cursors became one JSON object
_SPOOL_ID = "spool-id"
_QUARANTINE_DIR = "quarantine"


class SpoolDamagedError(RuntimeError):
    """The spool's database cannot be opened; the message says where it was moved."""


class RefusedValueError(ValueError):
    """A row of the spool that is not bytes or text (a pickle, a file): not written by this receiver."""


class BytesAndTextDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no types
    """diskcache's serialisation, limited to what the spool stores: bytes and str, inline in SQLite.

    Writing anything else is a bug (TypeError); reading a row that claims
    another form (a pickle, a file) raises :class:`RefusedValueError`
    instead of unpickling it or opening the file it names.
    """

    def put(self, key: object) -> tuple[object, bool]:
        if type(key) is str or type(key) is int:
            return super().put(key)
        raise TypeError(f"spool keys are str or int, not {type(key).__name__}")

    def get(self, key: object, raw: bool) -> object:
        if not raw:
            raise RefusedValueError("a key stored as a pickle")
        return super().get(key, raw)

    def store(self, value: object, read: bool, key: object = diskcache.core.UNKNOWN) -> tuple[object, ...]:
        if read or not (type(value) is bytes or type(value) is str):
            raise TypeError(f"the spool stores bytes and str only, not {type(value).__name__}")
        if len(value) >= self.min_file_size:  # diskcache would write it to a file of its own
            raise TypeError(f"a spool value of {len(value)} bytes is over the inline limit")
        return tuple(super().store(value, read, key))

    def fetch(self, mode: int, filename: str | None, value: object, read: bool) -> object:
        if mode != diskcache.core.MODE_RAW or filename is not None or read:
            raise RefusedValueError(f"a value stored as {_MODES.get(mode, f'mode {mode}')}")
        value = super().fetch(mode, filename, value, read)
        # int: cursors of older spools (read once, to move them into ``cursors``).
        if type(value) is not bytes and type(value) is not str and type(value) is not int:
            raise RefusedValueError(f"a value of type {type(value).__name__}")
        return value


_MODES = {diskcache.core.MODE_BINARY: "a file", diskcache.core.MODE_TEXT: "a text file",
          diskcache.core.MODE_PICKLE: "a pickle"}


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
        """The counters of ``text``; ValueError when it is not an object of them."""
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("the spool's counters are not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


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
            self._cache = diskcache.Cache(str(directory), disk=BytesAndTextDisk)
            self.meta = self._read_meta()
            return
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            self._cache = _open_for_writing(directory, sync)
            self.meta = self._read_meta()
            self._migrate_cursors()
        except (sqlite3.DatabaseError, RefusedValueError, ValueError) as e:
            with contextlib.suppress(Exception):
                self._cache.close()
            moved = directory.with_name(f"{directory.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            directory.rename(moved)
            directory.mkdir(mode=0o750)
            self._cache = _open_for_writing(directory, sync)
            self.meta = self._read_meta()
            self._migrate_cursors()
            raise SpoolDamagedError(
                f"spool database in {directory} could not be opened ({e}); it was moved to {moved} "
                "for inspection and an empty spool was started"
            ) from e

    def _read_meta(self) -> SpoolMeta:
        """The counters; ValueError (RefusedValueError) when the row is not JSON text of them."""
        text = self._cache.get(_META)
        if text is None:
            return SpoolMeta()
        if not isinstance(text, str):
            raise RefusedValueError("the spool's counters are not text")
        return SpoolMeta.from_json(text)

    def _migrate_cursors(self) -> None:
        """Move cursors kept one key per sink (older spools) into the ``cursors`` object, once.

        Done by the daemon at open, before delivery starts: retention must
        see every sink's cursor, never a part of them.
        """
        try:
            if self._cache.get(_CURSORS) is not None:
                return
        except RefusedValueError as e:
            # Every sink then starts from the oldest segment held: duplicates, never loss.
            log.error("the spool's cursors are damaged (%s); every sink delivers again what the spool holds", e)
        found: dict[str, int] = {}
        legacy: list[str] = []
        try:
            for key in self._cache.iterkeys():  # once per spool: later opens find ``cursors``
                if isinstance(key, str) and key.startswith(_LEGACY_CURSOR):
                    legacy.append(key)
                    value = self._cache.get(key)
                    if type(value) is int:
                        found[key[len(_LEGACY_CURSOR):]] = value
        except RefusedValueError as e:  # keys sort int, text, blob: a pickled key comes after every cursor
            log.error("the spool holds a key it refuses to read (%s); ignored", e)
        with self._cache.transact(retry=True):
            self._cache.set(_CURSORS, json.dumps(found))
            for key in legacy:
                self._cache.delete(key)

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
        blob = self.get(seq)
        with self._changing_meta() as meta:
            summary = self._forget(meta, seq, blob)
            if not delivered and summary is not None:
                meta.discarded_frames += summary.frames
                meta.discarded_segments += 1
        return summary

    def quarantine(self, seq: int, reason: str) -> Path:
        """Move a damaged segment out of the spool (kept as a file for inspection)."""
        blob = self.get(seq)
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
        blob = self.get(seq) if seq < next_seq else None
        if not blob:
            return None
        try:
            return read_summary(blob).first_receive_time_ns
        except SegmentError:
            return None

    def set_cursor(self, sink: str, seq: int) -> None:
        """Record that ``sink`` has everything up to and including segment ``seq`` (and that what it had
        in flight up to there is delivered)."""
        with self._cache.transact(retry=True):  # sinks save from several threads and processes
            cursors = self.cursors()
            cursors[sink] = seq
            self._cache.set(_CURSORS, json.dumps(cursors))
            flights = self._in_flights()
            batches = flights.get(sink)
            if batches is not None and batches[-1][1] <= seq:
                del flights[sink]
                self._cache.set(_IN_FLIGHT, json.dumps(flights))

    def delete_cursor(self, sink: str) -> None:
        """Forget a sink that is no longer configured (its cursor would hold segments forever)."""
        with self._cache.transact(retry=True):
            cursors = self.cursors()
            if cursors.pop(sink, None) is not None:
                self._cache.set(_CURSORS, json.dumps(cursors))
            flights = self._in_flights()
            if flights.pop(sink, None) is not None:
                self._cache.set(_IN_FLIGHT, json.dumps(flights))

    def set_in_flight(self, sink: str, batches: Sequence[tuple[int, int]]) -> None:
        """Record that ``sink`` is sending ``batches`` (each its first and last segment, in order, the
        first right after its cursor) as one delivery, until :meth:`set_cursor` passes them.

        A batch is made of the segments there are when it is read, and its groups' pack ids of its
        first segment: read again after a restart it could hold more segments under the same ids,
        and an upstream that drops an id it has seen (an HTTP collector's Idempotency-Key, the local
        store's insert token) would drop the records it never had. So a restart sends these again,
        segment for segment (:meth:`in_flight`), merged as they were.
        """
        with self._cache.transact(retry=True):
            flights = self._in_flights()
            flights[sink] = [[first, last] for first, last in batches]
            self._cache.set(_IN_FLIGHT, json.dumps(flights))

    # -- reading ---------------------------------------------------------

    def cursor(self, sink: str) -> int:
        """The last segment ``sink`` has (0: none yet)."""
        return self.cursors().get(sink, 0)

    def cursors(self) -> dict[str, int]:
        """Every sink's cursor: one lookup. A damaged row reads as no cursors (retention then keeps segments)."""
        value = self._json_object(_CURSORS, "cursors", "every sink is treated as having nothing")
        return {str(k): v for k, v in value.items() if type(v) is int}

    def _json_object(self, key: str, what: str, meaning: str) -> dict[object, object]:
        """The JSON object stored under ``key``; ``{}`` when there is none, or when it cannot be read
        (logged: the spool's ``what`` cannot be read; ``meaning``)."""
        try:
            text = self._cache.get(key)
            value = json.loads(text) if isinstance(text, str) else {}
        except (RefusedValueError, ValueError) as e:
            log.error("the spool's %s cannot be read (%s); %s", what, e, meaning)
            return {}
        return value if isinstance(value, dict) else {}

    def in_flight(self, sink: str) -> list[tuple[int, int]]:
        """What :meth:`set_in_flight` recorded for ``sink`` and :meth:`set_cursor` has not passed yet
        (none: ``[]``; a damaged record reads as none: the sink then reads its batches anew)."""
        batches = self._in_flights().get(sink, [])
        return [(first, last) for first, last in batches]

    def _in_flights(self) -> dict[str, list[list[int]]]:
        value = self._json_object(_IN_FLIGHT, "batches in flight", "sinks read their batches anew")
        return {
            str(sink): batches for sink, batches in value.items()
            if isinstance(batches, list) and batches and all(
                isinstance(b, list) and len(b) == 2 and all(type(n) is int for n in b) and b[0] <= b[1]
                for b in batches
            )
        }

    def spool_id(self) -> str:
        """A random name given to this spool when it was created (for pack ids)."""
        value = self._get_text(_SPOOL_ID)
        if value:
            return value
        new = uuid.uuid4().hex
        return new if self._cache.add(_SPOOL_ID, new) else self._get_text(_SPOOL_ID) or new

    def _get_text(self, key: str) -> str | None:
        try:
            value = self._cache.get(key)
        except RefusedValueError:
            return None
        return value if isinstance(value, str) else None

    def get(self, seq: int) -> bytes | None:
        """Segment ``seq`` as stored; None when it is not there.

        A row the spool refuses to read (not bytes: not written by this
        receiver) comes back as ``b""``, which is no segment: decoding it
        fails as damage, and the daemon's check quarantines it.
        """
        try:
            value = self._cache.get(seq)
        except RefusedValueError as e:
            log.error("spool segment %d: refused to read %s; it is treated as damaged", seq, e)
            return b""
        if value is None:
            return None
        return value if isinstance(value, bytes) else b""

    def sequence_numbers(self) -> Iterator[int]:
        """The segments held, oldest first (a snapshot of the counters' range)."""
        meta = self.meta
        for seq in range(meta.first_seq, meta.next_seq):
            if seq in self._cache:
                yield seq


def _open_for_writing(directory: Path, sync: str) -> diskcache.Cache:
    return diskcache.Cache(
        str(directory),
        disk=BytesAndTextDisk,
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
