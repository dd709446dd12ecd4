"""The embedded store: records in one SQLite file with full-text search on the message.

With no upstream configured the appliance keeps everything here, and
``receiverctl search`` reads it. One process writes (the delivery process's
local sink thread, through :class:`LocalStore`); any number read at the same
time (``receiverctl search``, through :class:`LocalStoreReader`).

Concurrency. The file is in WAL mode: readers see a consistent snapshot and
never block the writer, and the writer never blocks them. Readers open the
file read-only (``mode=ro``) and read in short transactions, one per page of
results, so a search piped into ``less`` for an hour holds no snapshot that
would keep the WAL from being checkpointed. Search works with the daemon
stopped just the same.

Schema (version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``):

``records``
    One row per record: ``id`` (increasing in delivery order, never reused),
    ``time`` and ``time_ns`` (the record's own time), the common columns of
    :func:`formats.columns.columns_of` (``host``, ``app``, ``severity``,
    ``facility``, ``message``), ``source``, ``tag`` (the streamlog tag),
    ``fields`` (a JSON object of every field, in order), ``flags`` (a JSON
    array), ``error``, ``pack_id`` and ``received_ns``.
``packs``
    One row per stored group: its ``pack_id``, ``group_tags`` (a JSON array
    of [key, value] pairs), ``received_ns`` and the ``first_id`` ..
    ``last_id`` range of its records. It makes a resent group a no-op and
    drives retention by age. Group tags live here rather than on every row:
    they are the same for up to 4096 records, and a copy per row made the
    file 48% larger and SQLite's inserts 35% slower (measured). The view
    ``records_with_tags`` joins them back for people using the ``sqlite3`` shell.
``records_fts``
    An FTS5 index (``unicode61`` tokenizer) of ``records.message``.

Durability. ``synchronous=FULL``: each group's commit reaches the disk
before :meth:`LocalStore.insert` returns. ``NORMAL`` (WAL synced only at
checkpoints) would survive a process crash but not a power loss, and the
spool does not cover that gap: the sink's cursor moves past a batch as soon
as ``insert`` returned, after which the spool may drop its segments. FULL
cost 3% with groups of 4096 records, 2-15% with 256 and 35% with 16
(measured; small groups come from low rates or very many senders). A spool
configured with ``sync = "normal"`` gives up power-loss safety anyway, and
then ``sync="normal"`` here is consistent. A resend after a crash is made a
no-op by the pack ids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import pickle
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from formats.columns import columns_of
from formats.record import Record
from formats.streamlog import STREAMLOG_TAG

__all__ = [
    "SCHEMA_VERSION",
    "LocalStore",
    "LocalStoreError",
    "LocalStoreReader",
    "NoStoreError",
    "RetentionReport",
    "SchemaVersionError",
    "StoredRecord",
    "encode_rows",
]

log = logging.getLogger("receiver.deliver")

SCHEMA_VERSION = 1
"""What ``PRAGMA user_version`` says of a file this code wrote; bumped on any schema change."""

_BUSY_TIMEOUT_SECONDS = 10.0
"""How long a statement waits for a lock another connection holds (a second writer, WAL recovery)."""
_CACHE_KIB = 64 * 1024
"""The writer's page cache: FTS5 merges and the time index stay in memory."""
_WAL_KEEP_BYTES = 64 * 1024 * 1024
"""After a checkpoint the WAL file is truncated to this, so one burst does not keep it large."""
_RETENTION_CHUNK_ROWS = 5000
"""Rows deleted per transaction (about 20-50 ms): the writer commits between chunks."""
_VACUUM_STEP_PAGES = 2048
"""Free pages returned to the file system per incremental vacuum step (8 MiB at 4 KiB pages)."""
_RETENTION_BUDGET_SECONDS = 0.25
"""How long one :meth:`LocalStore.enforce_retention` call may delete before it hands the rest
to the following inserts, one chunk each, so a large deletion never stalls delivery."""
_SEARCH_PAGE_ROWS = 512
"""Rows a search reads per (short) read transaction."""
_INTERN_LIMIT = 1024
"""Layouts (and streamlog tags) remembered; more are rare, and then the caches start over."""

_INSERT_COLUMNS = (
    "time, time_ns, host, app, severity, facility, message, source, tag, fields, flags, error, "
    "pack_id, received_ns"
)
_SELECT_COLUMNS = (
    "r.id, r.time, r.time_ns, r.host, r.app, r.severity, r.facility, r.message, r.source, r.tag, "
    "r.fields, r.flags, r.error, r.pack_id, r.received_ns, p.group_tags"
)

# The FTS5 table is an external-content table: the message text is stored once,
# in records, and the index holds only the terms. (A contentless table on this
# SQLite, 3.40, could not delete rows without being given the text anyway, and
# could not be rebuilt.) Inserts are indexed by the store itself with one
# INSERT ... SELECT per group rather than by an AFTER INSERT trigger: FTS5 writes
# its pending terms out as a new segment at each statement's savepoint, and
# with executemany every row is a statement, so a trigger made one segment per
# row, merged over and over: inserts 2.7x slower (35k against 94k rows/s). Deletes
# go through a trigger, which measured as fast as doing it by hand, and which
# keeps the index right even when someone deletes rows in the sqlite3 shell.
# columnsize=0: no per-row document sizes; they only serve ranking, which
# search does not do (10% faster inserts).
_SCHEMA = f"""
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never come back after retention
    time INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    host TEXT NOT NULL,
    app TEXT NOT NULL,
    severity INTEGER NOT NULL,
    facility INTEGER NOT NULL,
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    tag TEXT,
    fields TEXT NOT NULL,
    flags TEXT NOT NULL,
    error TEXT,
    pack_id TEXT NOT NULL,
    received_ns INTEGER NOT NULL
);
CREATE INDEX records_time ON records (time, time_ns);
CREATE TABLE packs (
    pack_id TEXT PRIMARY KEY,
    group_tags TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX packs_received ON packs (received_ns);
CREATE INDEX packs_last_id ON packs (last_id);
CREATE VIRTUAL TABLE records_fts USING fts5(
    message, content='records', content_rowid='id', tokenize='unicode61', columnsize=0
);
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, message) VALUES ('delete', old.id, old.message);
END;
CREATE VIEW records_with_tags AS
    SELECT r.*, p.group_tags FROM records AS r LEFT JOIN packs AS p USING (pack_id);
PRAGMA user_version = {SCHEMA_VERSION};
"""

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode_pairs = json.JSONDecoder(object_pairs_hook=list).decode
_encode_string: Callable[[str], str] = json.encoder.encode_basestring  # C; keeps UTF-8 as is
_SURROGATE = re.compile("[\ud800-\udfff]")
_NO_FLAGS = "[]"


class LocalStoreError(Exception):
    """The store cannot be opened or used; the message names the file, the problem and the fix."""


class SchemaVersionError(LocalStoreError):
    """The file was written by a newer receiver, or is not a local store at all."""


class NoStoreError(LocalStoreError):
    """There is no store at the path (a reader never creates one)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one :meth:`LocalStore.enforce_retention` call removed."""

    deleted_by_age: int = 0
    deleted_by_size: int = 0
    vacuumed_pages: int = 0
    done: bool = True
    """False when the time budget ran out first; the following inserts carry on."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as the store keeps it: the record, its columns, and its group's identity."""

    id: int
    record: Record
    host: str
    app: str
    severity: int
    facility: int
    message: str
    tag: str | None
    group_tags: tuple[tuple[str, str], ...]
    pack_id: str
    received_ns: int

    def to_dict(self) -> dict[str, object]:
        """The record's :meth:`~formats.record.Record.to_dict` plus its group tags and receive time."""
        out = self.record.to_dict()
        out["group_tags"] = dict(self.group_tags)
        out["received_ns"] = self.received_ns
        return out


# -- opening -------------------------------------------------------------------


def _user_version(conn: sqlite3.Connection) -> int:
    value: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return value


def _check_version(path: Path, conn: sqlite3.Connection) -> None:
    version = _user_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"local store {path} has schema version {version}, written by a newer receiver; "
            f"this one reads version {SCHEMA_VERSION}: upgrade the receiver, or move the file "
            "away to start a new store"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise SchemaVersionError(
            f"{path} is an SQLite database but not a receiver local store (no schema version): "
            "point the local sink's path at another file"
        )


class LocalStore:
    """The writer: one per file, in the delivery process.

    Thread-safe (a lock serialises calls), but built for one thread, the
    local sink's. ``max_age_hours`` applies to the time the appliance
    received a record (the group's ``__receive_time__``); ``max_bytes`` to
    the pages the file uses (indexes included, the WAL not). ``sync`` is
    SQLite's ``synchronous`` (see "Durability" above).
    """

    def __init__(
        self, path: Path, *, max_age_hours: float, max_bytes: int, sync: Literal["full", "normal"] = "full"
    ) -> None:
        self.path = path
        self._sync = sync
        self.max_age_hours = max_age_hours
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pending_retention_ns: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LocalStoreError(f"cannot create the directory of local store {path}: {e.strerror or e}") from e
        try:
            # check_same_thread=False: LocalSink opens the store in one thread
            # and sends from its worker thread; self._lock serialises access.
            self._conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise LocalStoreError(f"cannot open local store {path}: {e}") from e
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise LocalStoreError(
                f"cannot use local store {path}: {e} (if the file is damaged, move it away: "
                "the receiver starts a new one)"
            ) from e
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        conn = self._conn
        _check_version(self.path, conn)
        # auto_vacuum must be chosen before the first table exists; INCREMENTAL
        # lets retention hand freed pages back to the file system in bounded
        # steps instead of one VACUUM that rewrites the whole file.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
        conn.execute(f"PRAGMA synchronous = {self._sync.upper()}")  # see "Durability" in the module docstring
        conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_KEEP_BYTES}")
        # Debian's SQLite is built with SECURE_DELETE on, which zeroes every deleted
        # row (extra writes on each retention pass); FAST zeroes only what costs
        # no extra I/O, and incremental vacuum truncates freed pages off the file.
        conn.execute("PRAGMA secure_delete = FAST")
        if _user_version(conn) == 0:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _check_version(self.path, conn)  # nobody created it while we waited for the lock
                if _user_version(conn) == 0:
                    for statement in _statements(_SCHEMA):
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- writing ---------------------------------------------------------

    def insert(
        self, records: Sequence[Record], *, pack_id: str, group_tags: Sequence[tuple[str, str]]
    ) -> int:
        """Store one group in one transaction; returns the rows added (0 when ``pack_id`` is stored).

        A group resent after a crash inside a send carries the pack id the
        store already has, and is then skipped whole: the check and the
        insert are one transaction. An empty ``pack_id`` is never a duplicate.
        Raises :class:`sqlite3.Error` on disk trouble (the sink retries).
        """
        received_ns = _received_ns(group_tags)
        return self._insert_rows(list(_rows(records, pack_id, received_ns)), pack_id, group_tags, received_ns)

    def insert_encoded(self, payload: bytes, *, pack_id: str, group_tags: Sequence[tuple[str, str]]) -> int:
        """:meth:`insert` of rows :func:`encode_rows` made (in a worker process); same answer."""
        rows: list[tuple[object, ...]] = pickle.loads(payload)  # our own worker processes' bytes, never a peer's
        return self._insert_rows(rows, pack_id, group_tags, _received_ns(group_tags))

    def _insert_rows(
        self, rows: list[tuple[object, ...]], pack_id: str, group_tags: Sequence[tuple[str, str]], received_ns: int
    ) -> int:
        tags_json = _encode_json([list(pair) for pair in group_tags])
        with self._lock:
            try:
                added = self._insert(rows, pack_id, tags_json, received_ns)
            except UnicodeEncodeError:
                # Lone surrogates (the parsers never make them) cannot be UTF-8.
                clean = [tuple(_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for v in row) for row in rows]
                added = self._insert(clean, pack_id, _SURROGATE.sub("\ufffd", tags_json), received_ns)
            if self._pending_retention_ns is not None:
                self._retention_step_after_insert()
        return added

    def _insert(self, rows: list[tuple[object, ...]], pack_id: str, tags_json: str, received_ns: int) -> int:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if pack_id and conn.execute("SELECT 1 FROM packs WHERE pack_id = ?", (pack_id,)).fetchone():
                conn.execute("ROLLBACK")
                return 0
            first_id = self._next_id()
            key = pack_id or f"~{first_id}"  # every group gets a pack row: retention by age needs it
            if key != pack_id:
                rows = [(*row[:-2], key, row[-1]) for row in rows]
            conn.executemany(
                f"INSERT INTO records ({_INSERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            conn.execute(
                "INSERT INTO records_fts (rowid, message) SELECT id, message FROM records WHERE id >= ?",
                (first_id,),
            )
            conn.execute(
                "INSERT INTO packs (pack_id, group_tags, received_ns, first_id, last_id) VALUES (?,?,?,?,?)",
                (key, tags_json, received_ns, first_id, first_id + len(rows) - 1),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return len(rows)

    def _next_id(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return (row[0] if row else 0) + 1

    # -- retention -------------------------------------------------------

    def enforce_retention(self, now_ns: int, *, budget_seconds: float = _RETENTION_BUDGET_SECONDS) -> RetentionReport:
        """Remove records older than ``max_age_hours`` (by receive time), then the oldest beyond ``max_bytes``.

        Works in transactions of at most a few thousand rows and stops after
        ``budget_seconds``; what is left is done one chunk per following
        :meth:`insert`, so delivery goes on meanwhile. Freed pages are
        returned to the file system (incremental vacuum), so the file
        shrinks. Raises :class:`sqlite3.Error` on disk trouble.
        """
        with self._lock:
            self._pending_retention_ns = None
            deadline = time.monotonic() + budget_seconds
            report = self._retention(now_ns, deadline=deadline, chunks=None)
            if not report.done:
                self._pending_retention_ns = now_ns
        if report.deleted_by_age or report.deleted_by_size:
            log.info(
                "local store %s: removed %d records older than %g h and %d beyond %d bytes%s",
                self.path, report.deleted_by_age, self.max_age_hours, report.deleted_by_size,
                self.max_bytes, "" if report.done else "; more to remove, continuing between inserts",
            )
        return report

    def _retention_step_after_insert(self) -> None:
        now_ns = self._pending_retention_ns
        assert now_ns is not None
        try:
            report = self._retention(now_ns, deadline=math.inf, chunks=1)
        except sqlite3.Error as e:
            # The group is stored; failing the insert for this would resend it.
            # The next enforce_retention call starts over.
            self._pending_retention_ns = None
            log.warning("local store %s: retention stopped: %s", self.path, e)
            return
        if report.done:
            self._pending_retention_ns = None

    def _retention(self, now_ns: int, *, deadline: float, chunks: int | None) -> RetentionReport:
        """Delete chunk by chunk until nothing is due, the deadline passes, or ``chunks`` are done."""
        cutoff_ns = max(now_ns - int(self.max_age_hours * 3600 * 1e9), -(2**63))  # SQLite integers are 64-bit
        by_age = by_size = vacuumed = 0
        done_chunks = 0

        def may_go_on() -> bool:
            # The first chunk always runs, so every call makes progress.
            if chunks is not None and done_chunks >= chunks:
                return False
            return done_chunks == 0 or time.monotonic() < deadline

        while may_go_on():
            n, progressed = self._delete_by_age(cutoff_ns)
            if not progressed:
                break
            by_age += n
            done_chunks += 1
        else:
            return RetentionReport(by_age, by_size, vacuumed, done=False)
        while may_go_on():
            n = self._delete_by_size()
            if n == 0:
                break
            by_size += n
            done_chunks += 1
        else:
            return RetentionReport(by_age, by_size, vacuumed, done=False)
        while may_go_on():
            n = self._vacuum_step()
            if n == 0:
                break
            vacuumed += n
            done_chunks += 1
        else:
            return RetentionReport(by_age, by_size, vacuumed, done=False)
        return RetentionReport(by_age, by_size, vacuumed, done=True)

    def _delete_by_age(self, cutoff_ns: int) -> tuple[int, bool]:
        """One transaction: whole packs received before ``cutoff_ns``, up to about a chunk of rows.

        Returns the rows deleted and whether there was anything to do (a pack
        whose rows size retention already took deletes no row but is progress).
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            packs = conn.execute(
                "SELECT pack_id, first_id, last_id FROM packs WHERE received_ns < ? ORDER BY received_ns LIMIT 256",
                (cutoff_ns,),
            ).fetchall()
            deleted = planned = 0
            for pack_id, first_id, last_id in packs:
                if planned and planned + (last_id - first_id + 1) > _RETENTION_CHUNK_ROWS:
                    break
                planned += last_id - first_id + 1
                deleted += conn.execute("DELETE FROM records WHERE id BETWEEN ? AND ?", (first_id, last_id)).rowcount
                conn.execute("DELETE FROM packs WHERE pack_id = ?", (pack_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return deleted, bool(packs)

    def _delete_by_size(self) -> int:
        """One transaction: the oldest rows, as many as the excess over ``max_bytes`` holds (at most a chunk)."""
        used = self.used_bytes()
        if used <= self.max_bytes:
            return 0
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Two subqueries: min() and max() in one SELECT scan the table; alone, each is one seek.
            low, high = conn.execute("SELECT (SELECT min(id) FROM records), (SELECT max(id) FROM records)").fetchone()
            if low is None:
                conn.execute("ROLLBACK")
                return 0  # nothing left to delete: the schema alone is over the limit
            # Rows to delete, from the average row size (ids are dense but for
            # deletions, so high - low + 1 over-counts rows and under-estimates
            # their size: the loop then takes a further chunk).
            per_row = used / (high - low + 1)
            rows = max(1, min(_RETENTION_CHUNK_ROWS, math.ceil((used - self.max_bytes) / per_row)))
            deleted = conn.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id LIMIT ?)", (rows,)
            ).rowcount
            # Packs whose every row is gone: their ids may be stored again, which is
            # what retention means (a group resent after this would be stored again).
            conn.execute(
                "DELETE FROM packs WHERE last_id < coalesce((SELECT min(id) FROM records), 9223372036854775807)"
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return int(deleted)

    def _vacuum_step(self) -> int:
        """Hand up to a step of free pages back to the file system; returns how many went."""
        before: int = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        if before == 0:
            return 0
        # executescript steps the pragma to completion; execute() would free one page
        # (each freed page is a result row without columns, which execute() stops at).
        self._conn.executescript(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES})")
        after: int = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return before - after  # 0 (stop) if the file cannot shrink, e.g. without auto_vacuum

    def used_bytes(self) -> int:
        """Bytes of the file in use: pages minus free pages (what ``max_bytes`` limits)."""
        conn = self._conn
        pages: int = conn.execute("PRAGMA page_count").fetchone()[0]
        free: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def close(self) -> None:
        """Checkpoint and close (the WAL and shared-memory files go away with the last connection)."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # statistics only
                self._conn.execute("PRAGMA optimize")
            self._conn.close()


def _rows(records: Sequence[Record], pack_id: str, received_ns: int) -> Iterator[tuple[object, ...]]:
    """The ``records`` table's rows of ``records`` (pack id and receive time last)."""
    encode = _encode_json
    fields_json = _fields_json
    for r in records:
        host, app, severity, facility, message = columns_of(r)
        yield (
            r.time, r.time_ns, host, app, severity, facility, message, r.source,
            r.tags.get(STREAMLOG_TAG), fields_json(r.keys, r.values),
            encode(r.flags) if r.flags else _NO_FLAGS, r.error, pack_id, received_ns,
        )


def encode_rows(records: Sequence[Record], *, pack_id: str, group_tags: Sequence[tuple[str, str]]) -> bytes:
    """The rows of a group, pickled: what a worker process prepares for :meth:`LocalStore.insert_encoded`.

    Preparing rows (columns, JSON) is about 40% of an insert's time; done in
    the worker processes it leaves the writer only SQLite's part.
    """
    return pickle.dumps(list(_rows(records, pack_id, _received_ns(group_tags))), protocol=pickle.HIGHEST_PROTOCOL)


_KEY_PREFIXES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _fields_json(keys: tuple[str, ...], values: list[str]) -> str:
    """The fields as a JSON object in order, repeated names kept (JSON allows them).

    Twice as fast as encoding a dict: each layout's keys are encoded once
    (``{"hostname":``, ``,"pri-text":``...) and only the values per record.
    """
    if len(keys) != len(values):
        raise ValueError(f"a record with {len(keys)} field names has {len(values)} values")
    if not keys:
        return "{}"
    prefixes = _KEY_PREFIXES.get(keys)
    if prefixes is None:
        if len(_KEY_PREFIXES) >= _INTERN_LIMIT:
            _KEY_PREFIXES.clear()
        prefixes = _KEY_PREFIXES[keys] = tuple(
            ("," if i else "{") + _encode_string(k) + ":" for i, k in enumerate(keys)
        )
    return "".join(map(str.__add__, prefixes, map(_encode_string, values))) + "}"


def _received_ns(group_tags: Sequence[tuple[str, str]]) -> int:
    """The group's ``__receive_time__`` (whole seconds) in ns; now when it is missing or bad."""
    for key, value in group_tags:
        if key == "__receive_time__":
            try:
                return int(value) * 1_000_000_000
            except ValueError:
                break
    return time.time_ns()


def _statements(script: str) -> list[str]:
    """The statements of a script, split with SQLite's own completeness test (triggers hold ``;``)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


# -- reading -------------------------------------------------------------------


class LocalStoreReader:
    """A read-only handle for searching; opens nothing for writing and takes no write lock.

    Raises :class:`NoStoreError` when there is no file at ``path`` and
    :class:`SchemaVersionError` when the file is newer than this code.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._searches = 0
        if not path.exists():
            raise NoStoreError(f"no local store at {path}")
        try:
            self._conn = self._connect(immutable=False)
        except sqlite3.OperationalError as e:
            # A WAL file needs its -shm beside it. With the daemon stopped the
            # writer has removed it, and a reader that may not write in the
            # directory cannot create it: then no writer runs (it would have
            # made the -wal), so reading the file as immutable is safe.
            wal = path.with_name(path.name + "-wal")
            if getattr(e, "sqlite_errorname", "") not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN") or wal.exists():
                raise LocalStoreError(f"cannot read local store {path}: {e}") from e
            self._conn = self._connect(immutable=True)
        except sqlite3.DatabaseError as e:
            raise LocalStoreError(f"cannot read local store {path}: {e}") from e
        try:
            _check_version(path, self._conn)
            if _user_version(self._conn) == 0:
                raise NoStoreError(f"the local store at {path} is empty (the receiver is creating it)")
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, *, immutable: bool) -> sqlite3.Connection:
        uri = self.path.absolute().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
        conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            # mode=ro already keeps the store read-only; the one thing written
            # is a search's list of full-text matches, in memory.
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA user_version").fetchone()  # the first read: opens the WAL index
        except BaseException:
            conn.close()
            raise
        return conn

    def __enter__(self) -> LocalStoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def search(
        self,
        filter_text: str,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
    ) -> Iterator[StoredRecord]:
        """The records that match ``filter_text`` (the filter grammar of :mod:`receiver.filters`).

        ``since_ns`` (inclusive) and ``until_ns`` (exclusive) bound the
        records' own time; ``limit`` None or 0 means all. Ordered by record
        time, then arrival. A blank filter matches every record. Raises
        :class:`receiver.filters.FilterError` (a ``ValueError``) for a bad
        filter, at the call rather than at the first ``next``.
        """
        # Imported here: the writer side (the delivery process) has no need of the grammar.
        from receiver.filters import parse_filter

        matches = None
        words: tuple[str, ...] = ()
        if filter_text.strip():
            parsed = parse_filter(filter_text)
            matches = parsed.matches
            words = parsed.required_words()
        return self._search(
            matches, _fts_query(words), since_ns=since_ns, until_ns=until_ns,
            limit=limit or None, newest_first=newest_first,
        )

    def _search(
        self,
        matches: Callable[[Record], bool] | None,
        fts_query: str | None,
        *,
        since_ns: int | None,
        until_ns: int | None,
        limit: int | None,
        newest_first: bool,
    ) -> Iterator[StoredRecord]:
        where: list[str] = []
        params: list[object] = []
        if since_ns is not None:
            where.append("(r.time, r.time_ns) >= (?, ?)")
            params += divmod(since_ns, 1_000_000_000)
        if until_ns is not None:
            where.append("(r.time, r.time_ns) < (?, ?)")
            params += divmod(until_ns, 1_000_000_000)
        direction, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        order = f"ORDER BY r.time {direction}, r.time_ns {direction}, r.id {direction}"
        with contextlib.ExitStack() as cleanup:
            if fts_query is not None:
                hits, matched = self._matches_table(fts_query, cleanup)
                where.append(self._fts_clause(hits, matched))
            yield from self._pages(where, params, order, compare, matches, limit)

    def _pages(
        self,
        where: list[str],
        params: list[object],
        order: str,
        compare: str,
        matches: Callable[[Record], bool] | None,
        limit: int | None,
    ) -> Iterator[StoredRecord]:
        yielded = 0
        after: tuple[int, int, int] | None = None
        tags_cache: dict[str, tuple[tuple[str, str], ...]] = {}
        while True:
            clauses = list(where)
            page_params = list(params)
            if after is not None:
                clauses.append(f"(r.time, r.time_ns, r.id) {compare} (?, ?, ?)")
                page_params += after
            sql = (
                f"SELECT {_SELECT_COLUMNS} FROM records AS r LEFT JOIN packs AS p ON p.pack_id = r.pack_id"
                + (" WHERE " + " AND ".join(clauses) if clauses else "")
                + f" {order} LIMIT {_SEARCH_PAGE_ROWS}"
            )
            # fetchall: the read transaction ends with the statement, before any
            # row reaches a caller who may keep the iterator open for long.
            rows = self._conn.execute(sql, page_params).fetchall()
            for row in rows:
                record = _record(row)
                if matches is None or matches(record):
                    yield _stored(row, record, tags_cache)
                    yielded += 1
                    if limit is not None and yielded >= limit:
                        return
            if len(rows) < _SEARCH_PAGE_ROWS:
                return
            last = rows[-1]
            after = (last[1], last[2], last[0])

    def _matches_table(self, fts_query: str, cleanup: contextlib.ExitStack) -> tuple[str, int]:
        """The ids the full-text index matches, stored once per search in a temporary table.

        Once, because a page's statement would otherwise rebuild the whole
        match list, and a search through many pages would cost pages times
        matches. The table is also the search's snapshot of the matches:
        records written while it pages are not among them. Returns the
        table's name and how many ids it holds; it is dropped when the search
        ends.
        """
        self._searches += 1
        table = f"temp.search_hits_{self._searches}"
        self._conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
        cleanup.callback(self._drop_table, table)
        matched = self._conn.execute(
            f"INSERT INTO {table} SELECT rowid FROM records_fts WHERE records_fts MATCH ?", (fts_query,)
        ).rowcount
        return table, matched

    def _drop_table(self, table: str) -> None:
        # A search left unfinished may be collected after close(): then the table went with the connection.
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.execute(f"DROP TABLE IF EXISTS {table}")

    def _fts_clause(self, hits: str, matched: int) -> str:
        """The pre-filter by the full-text matches, planned for how many there are.

        Few: look each up by id and sort them (cost grows with the matches).
        Many: walk the time index in order and keep the rows whose id is in
        the match table (the ``+`` stops SQLite from driving the query by
        id); a page then costs about page size / share of matches rows. The
        crossover, measured on 1,000,000 rows, is near sqrt(16 * rows)
        matches: 4000 there.
        """
        low, high = self._conn.execute("SELECT (SELECT min(id) FROM records), (SELECT max(id) FROM records)").fetchone()
        rows = 0 if low is None else high - low + 1
        by_time = "+" if matched >= max(1000, math.isqrt(16 * rows)) else ""
        return f"{by_time}r.id IN (SELECT id FROM {hits})"

    def count(self) -> int:
        """How many records the store holds."""
        value: int = self._conn.execute("SELECT count(*) FROM records").fetchone()[0]
        return value


def _fts_query(words: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression every matching message satisfies, or None for no pre-filter.

    Each word becomes an FTS5 string, which the table's own tokenizer splits
    (``todo-list`` is the phrase ``todo list``), so the index and the query
    always agree on what a token is. Words without a letter or digit are
    left out: they hold no token, and an empty phrase would match nothing.
    """
    terms = ['"' + word.replace('"', '""') + '"' for word in words if any(ch.isalnum() for ch in word)]
    return " AND ".join(terms) if terms else None


_TAGS_BY_TAG: dict[str | None, dict[str, str]] = {None: {}}
_INTERNED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _record(row: Sequence[Any]) -> Record:
    """The record of a result row (columns as in ``_SELECT_COLUMNS``)."""
    pairs = _decode_pairs(row[10])
    keys = tuple([k for k, _ in pairs])
    # One keys tuple per layout, as the parsers make them: filters remember
    # where a field sits per layout by the tuple's identity.
    shared = _INTERNED_KEYS.get(keys)
    if shared is None:
        if len(_INTERNED_KEYS) >= _INTERN_LIMIT:
            _INTERNED_KEYS.clear()
        shared = _INTERNED_KEYS[keys] = keys
    tag = row[9]
    record_tags = _TAGS_BY_TAG.get(tag)
    if record_tags is None:
        record_tags = {STREAMLOG_TAG: tag}
        if len(_TAGS_BY_TAG) < _INTERN_LIMIT:  # shared dicts, as the parsers share them
            _TAGS_BY_TAG[tag] = record_tags
    flags = row[11]
    return Record(
        row[1], row[2], shared, [v for _, v in pairs], row[8], record_tags,
        tuple(json.loads(flags)) if flags != _NO_FLAGS else (), row[12],
    )


def _stored(
    row: Sequence[Any], record: Record, tags_cache: dict[str, tuple[tuple[str, str], ...]]
) -> StoredRecord:
    pack_id: str = row[13]
    tags = tags_cache.get(pack_id)
    if tags is None:
        group_tags = row[15]
        tags = tuple((k, v) for k, v in json.loads(group_tags)) if group_tags is not None else ()
        tags_cache[pack_id] = tags
    return StoredRecord(
        row[0], record, row[3], row[4], row[5], row[6], row[7], row[9], tags, pack_id, row[14]
    )
