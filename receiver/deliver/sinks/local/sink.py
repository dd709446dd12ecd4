"""The local sink: the embedded store (an in-process ClickHouse) that ``receiverctl search`` and ``sql`` read."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from receiver.config.model import LocalSinkConfig
from receiver.deliver.batches import Group
from receiver.deliver.outcomes import SendOutcome
from receiver.deliver.sinks.clickhouse import QUOTA_CODES, exception_code
from receiver.deliver.sinks.local.server import StoreServer
from receiver.deliver.sinks.local.sqlite_import import SqliteImport, legacy_store
from receiver.deliver.sinks.local.store import EmbeddedStore

__all__ = ["LocalSink", "local_store_directory"]

log = logging.getLogger("receiver.deliver")


class LocalSink:
    """The embedded store (an in-process ClickHouse): what ``receiverctl search`` and ``sql`` read.

    It owns the store's directory in the delivery process, and serves the
    store's queries on ``store.sock`` beside the control socket for
    receiverctl. A batch's groups are inserted as one part (``send_batch``).
    """

    max_records = 65536
    max_bytes = 32 * 1024 * 1024
    segments_per_batch = 16
    """Twice other sinks' batches: each batch is one insert, one part the engine merges later, and
    larger parts mean fewer merges (8M relay-shaped rows inserted about 37k rather than 19k at a time:
    56 instead of 81 engine CPU-seconds; 75k at a time saved no more, and holds twice the memory)."""

    def __init__(self, config: LocalSinkConfig, state_directory: Path, *, query_socket: Path | None = None) -> None:
        self.name = config.name
        self.path = local_store_directory(config, state_directory)
        self._store = EmbeddedStore(
            self.path, max_age_hours=config.max_age_hours, max_bytes=config.max_bytes,
            memory_limit_bytes=config.memory_limit_bytes,
        )
        self._server: StoreServer | None = None
        self._import: SqliteImport | None = None
        try:
            if query_socket is not None:
                self._server = StoreServer(self._store, query_socket)
            legacy = legacy_store(config.path, state_directory)
            if legacy is not None:
                self._import = SqliteImport(legacy, self._store).start()
        except Exception:
            self.close()
            raise

    @property
    def store(self) -> EmbeddedStore:
        """The :class:`~receiver.deliver.sinks.local.store.EmbeddedStore` this sink writes."""
        return self._store

    def send(self, group: Group) -> SendOutcome:
        return self.send_batch([group])

    def send_batch(self, groups: Sequence[Group]) -> SendOutcome:
        """Insert ``groups`` as one part; the pack ids make a resent batch a no-op."""
        if not groups:
            return SendOutcome("ok")
        token = groups[0].pack_id if len(groups) == 1 else f"{groups[0].pack_id}..{groups[-1].pack_id}:{len(groups)}"
        try:
            if all(g.payload is not None for g in groups):
                self._store.insert_payloads([g.payload for g in groups if g.payload is not None], token=token)
            else:
                self._store.insert_groups(groups, token=token)
        except Exception as e:
            return _store_outcome(self, e)
        return SendOutcome("ok")

    def close(self) -> None:
        if self._import is not None:
            self._import.stop()
        if self._server is not None:
            self._server.close()
        self._store.close()


def local_store_directory(config: LocalSinkConfig, state_directory: Path) -> Path:
    """Where a local sink keeps its store: ``path``, else ``store`` in the state directory.

    A ``path`` that is a file is an older release's SQLite store: the store
    goes beside it (``<name>.store``), and the file is imported into it.
    """
    if config.path is None:
        return state_directory / "store"
    return config.path.with_name(config.path.name + ".store") if config.path.is_file() else config.path


def _store_outcome(sink: LocalSink, error: Exception) -> SendOutcome:
    """A failed insert's outcome: what can heal is retried, anything else is a dead letter."""

    code = exception_code({}, str(error).encode())
    if isinstance(error, OSError | MemoryError) or code in QUOTA_CODES:
        # A full or failing disk, memory, too many parts: retried, the spool keeps the batch.
        return SendOutcome("retry", f"local store {sink.path}: {error}")
    # Anything else (a bug, a row the store refuses) fails the same way every time: retrying
    # would fill the spool and hold back every sender, so the groups are kept as dead letters.
    log.exception("%s: the local store refused a batch", sink.name)
    return SendOutcome("permanent", f"local store {sink.path}: {type(error).__name__}: {error}")
