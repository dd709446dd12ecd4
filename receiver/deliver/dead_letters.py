"""The dead-letter area: groups an upstream rejected for good, kept to inspect and replay.

One NDJSON file per group, ``<state>/dead-letters/<sink>/<pack id>.ndjson``:
a first line ``{"dead_letter": {...}}`` (sink, reason, destination, source,
tags, record count, when) and then the records, one ``Record.to_dict``
object per line, so ``jq`` and ``receiverctl spool show`` read
them alike.

Replaying moves a file into ``<sink>/replay/``. The sink's worker in the
delivery process picks it up between batches and sends it through the same
path as everything else (backoff, outcomes, Retry-After); accepted, the file
is removed; rejected again, it returns to the dead-letter area with the new
reason. Only the delivery process sends, so a replay requested while the
daemon is stopped happens when it next runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from formats.ndjson import decode_ndjson, encode_ndjson
from formats.record import Record
from receiver.deliver.batches import Group

__all__ = ["DeadLetter", "DeadLetters"]

_SUFFIX = ".ndjson"
_REPLAY = "replay"


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One kept group, as listed (its records are read only by :meth:`DeadLetters.load`)."""

    sink: str
    pack_id: str
    path: Path
    reason: str
    destination: str
    records: int
    time_ns: int
    replay_pending: bool


class DeadLetters:
    """The dead-letter area under one directory (``<state>/dead-letters``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def keep(self, sink: str, group: Group, reason: str) -> Path:
        """Write ``group`` as rejected by ``sink`` for ``reason``; returns its file."""
        folder = self.directory / sink
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{group.pack_id}{_SUFFIX}"
        header = {
            "dead_letter": {
                "sink": sink, "pack_id": group.pack_id, "reason": reason, "destination": group.destination,
                "source": group.source, "client_ip": group.client_ip, "tags": [list(t) for t in group.tags],
                "records": group.count, "time_ns": time.time_ns(),
            }
        }
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(json.dumps(header, ensure_ascii=False).encode() + b"\n" + encode_ndjson(group.records))
            f.flush()
            os.fsync(f.fileno())  # the spool forgets these records once the cursor moves past them
        tmp.replace(path)
        return path

    def letters(self, sink: str | None = None) -> list[DeadLetter]:
        """Every kept group (of ``sink``, or of all sinks), oldest first."""
        out = []
        for path in self._files(sink):
            header = self._header(path)
            out.append(DeadLetter(
                sink=str(header.get("sink", path.parent.name)), pack_id=path.stem, path=path,
                reason=str(header.get("reason", "")), destination=str(header.get("destination", "")),
                records=int(header.get("records", 0)), time_ns=int(header.get("time_ns", 0)),
                replay_pending=path.parent.name == _REPLAY,
            ))
        return sorted(out, key=lambda d: (d.time_ns, d.pack_id))

    def find(self, pack_id: str) -> DeadLetter:
        """The kept group of ``pack_id``; KeyError when there is none."""
        for letter in self.letters():
            if letter.pack_id == pack_id:
                return letter
        raise KeyError(pack_id)

    def load(self, path: Path) -> Group:
        """The group a file holds, ready to send again."""
        lines = decode_ndjson(path.read_bytes())
        header: dict[str, Any] = lines[0].get("dead_letter", {}) if lines else {}
        records = [_record(obj) for obj in lines[1:]]
        return Group(
            destination=str(header.get("destination", "")), source=str(header.get("source", "")),
            client_ip=str(header.get("client_ip", "")), records=records,
            tags=[(str(k), str(v)) for k, v in header.get("tags", [])], pack_id=path.stem,
        )

    def request_replay(self, letter: DeadLetter) -> Path:
        """Queue ``letter`` for its sink to send again; returns where it now waits."""
        if letter.replay_pending:
            return letter.path
        folder = self.directory / letter.sink / _REPLAY
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            # An operator running this as root must not leave a folder the receiver's user cannot empty.
            owner = folder.parent.stat()
            if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
                os.chown(folder, owner.st_uid, owner.st_gid)
        target = folder / letter.path.name
        letter.path.replace(target)
        return target

    def replays(self, sink: str) -> list[Path]:
        """The files waiting to be replayed through ``sink``, oldest request first."""
        folder = self.directory / sink / _REPLAY
        try:
            paths = [p for p in folder.iterdir() if p.name.endswith(_SUFFIX)]
        except FileNotFoundError:
            return []
        return sorted(paths, key=lambda p: p.stat().st_mtime_ns)

    def _files(self, sink: str | None) -> Iterator[Path]:
        folders = [self.directory / sink] if sink else sorted(p for p in self._dirs())
        for folder in folders:
            for sub in (folder, folder / _REPLAY):
                try:
                    yield from (p for p in sub.iterdir() if p.name.endswith(_SUFFIX))
                except FileNotFoundError:
                    continue

    def _dirs(self) -> Iterator[Path]:
        try:
            yield from (p for p in self.directory.iterdir() if p.is_dir())
        except FileNotFoundError:
            return

    @staticmethod
    def _header(path: Path) -> dict[str, Any]:
        with path.open("rb") as f:
            first = f.readline()
        try:
            value = json.loads(first).get("dead_letter", {})
        except (ValueError, AttributeError):
            return {}
        return value if isinstance(value, dict) else {}


def _record(obj: dict[str, Any]) -> Record:
    fields = obj.get("fields") or {}
    return Record(
        int(obj.get("time", 0)), int(obj.get("time_ns", 0)), tuple(str(k) for k in fields),
        [str(v) for v in fields.values()], str(obj.get("source", "")),
        {str(k): str(v) for k, v in (obj.get("tags") or {}).items()},
        tuple(str(f) for f in obj.get("flags") or ()), obj.get("error"),
    )
