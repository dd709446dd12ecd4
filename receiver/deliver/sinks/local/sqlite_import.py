"""Moving an older release's SQLite local store (``local.db``) into the embedded ClickHouse store, once.

Until this release the local store was one SQLite file. When the local sink
starts and finds that file, it imports it on a thread of its own, while
delivery goes on: chunk by chunk, oldest first, each chunk one insert with a
deduplication token of its first row id, its progress kept in
``sqlite-import.json`` in the store's directory, so an import interrupted by
a stop resumes where it was and never stores a row twice. Records past the
store's ``max_age_hours`` are dropped by the store's retention as they land.
When every row is in, the file (and its ``-wal``/``-shm``) is renamed
``*.imported``: the operator deletes it once satisfied.

The rows become the store's columns directly (the SQLite store kept the
columns the store needs, and the group tags per pack).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = ["SqliteImport", "legacy_store"]

log = logging.getLogger("receiver.deliver")

_CHUNK_ROWS = 50_000
_PROGRESS = "sqlite-import.json"
_IMPORTED_SUFFIX = ".imported"


def legacy_store(configured: Path | None, state_directory: Path) -> Path | None:
    """The SQLite store an older release wrote for this sink, if there is one to import."""
    candidate = configured if configured is not None else state_directory / "local.db"
    return candidate if candidate.is_file() else None


class SqliteImport:
    """Imports ``source`` into ``store`` (an EmbeddedStore) on a thread; :meth:`stop` ends it early."""

    def __init__(self, source: Path, store: Any) -> None:
        self.source = source
        self.store = store
        self.imported = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._progress_file = Path(store.directory) / _PROGRESS
        self._thread = threading.Thread(target=self._run, name="sqlite-import", daemon=True)

    def start(self) -> SqliteImport:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._import()
        except Exception:
            log.exception("local store: importing %s failed; it is left as it is and tried again at the next "
                          "start (receiverctl search does not see its records meanwhile)", self.source)
        finally:
            self.done.set()

    def _last_id(self) -> int:
        try:
            progress = json.loads(self._progress_file.read_text())
        except (OSError, ValueError):
            return 0
        if not isinstance(progress, dict) or progress.get("source") != str(self.source):
            return 0
        value = progress.get("last_id", 0)
        return value if isinstance(value, int) else 0

    def _save(self, last_id: int) -> None:
        temporary = self._progress_file.with_name(self._progress_file.name + ".tmp")
        temporary.write_text(json.dumps({"source": str(self.source), "last_id": last_id}))
        temporary.replace(self._progress_file)

    def _import(self) -> None:
        uri = self.source.absolute().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30.0)
        try:
            total = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            last_id = self._last_id()
            log.info("local store: importing %s (%d records) into %s%s", self.source, total, self.store.directory,
                     f", from row {last_id + 1}" if last_id else "")
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT r.id, r.time, r.time_ns, r.host, r.app, r.severity, r.facility, r.source, "
                    "r.tag, r.fields, r.flags, r.pack_id, r.received_ns, p.group_tags, p.first_id "
                    "FROM records AS r LEFT JOIN packs AS p ON p.pack_id = r.pack_id "
                    "WHERE r.id > ? ORDER BY r.id LIMIT ?",
                    (last_id, _CHUNK_ROWS),
                ).fetchall()
                if not rows:
                    break
                self.store.insert([_chunk_table(rows)], token=f"sqlite-import-{rows[0][0]}")
                last_id = rows[-1][0]
                self.imported += len(rows)
                self._save(last_id)
                log.info("local store: imported %d of %d records of %s", self.imported, total, self.source)
            else:
                return  # stopping: resumed at the next start
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            path = self.source.with_name(self.source.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                path.replace(path.with_name(path.name + _IMPORTED_SUFFIX))
        log.info("local store: %s imported (%d records); renamed %s%s, delete it when satisfied",
                 self.source, self.imported, self.source.name, _IMPORTED_SUFFIX)


def _chunk_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    from receiver.deliver.sinks.local.store import STORED_COLUMNS, table_from_columns

    columns: dict[str, list[Any]] = {name: [] for name in STORED_COLUMNS}
    tags_cache: dict[str, dict[str, str]] = {}
    for (row_id, time_s, time_ns, host, app, severity, facility, source, tag, fields, flags, pack_id,
         received_ns, group_tags, first_id) in rows:
        tags = tags_cache.get(group_tags or "")
        if tags is None:
            tags = tags_cache[group_tags or ""] = {str(k): str(v) for k, v in json.loads(group_tags or "[]")}
        pairs = json.loads(fields, object_pairs_hook=list)
        columns["time"].append(time_s)
        columns["time_ns"].append(time_ns)
        columns["host"].append(host)
        columns["app"].append(app)
        columns["severity"].append(severity)
        columns["facility"].append(facility)
        columns["source"].append(source)
        columns["client_ip"].append(tags.get("__client_ip__", ""))
        columns["tag"].append(tag or "")
        columns["field_keys"].append([k for k, _ in pairs])
        columns["field_values"].append([str(v) for _, v in pairs])
        columns["flags"].append(json.loads(flags) if flags else [])
        columns["user_defined_id"].append(tags.get("__user_defined_id__", ""))
        columns["machine_group"].append(tags.get("__machine_group__", ""))
        columns["receive_time"].append(received_ns // 1_000_000_000)
        columns["hostname"].append(tags.get("__hostname__", ""))
        columns["pack_id"].append(pack_id)
        columns["pack_row"].append(row_id - first_id if first_id is not None else 0)
    return table_from_columns(list(columns.values()))
