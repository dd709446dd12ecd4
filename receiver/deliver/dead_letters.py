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

The files are read as untrusted: an operator may edit one, a disk may damage
it. A file that is not a dead letter raises :class:`DamagedDeadLetterError`
and is moved to ``<sink>/damaged/`` with a note of why, never sent and never
the reason another one is not.
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

__all__ = ["DamagedDeadLetterError", "DeadLetter", "DeadLetters"]

_SUFFIX = ".ndjson"
_REPLAY = "replay"
_DAMAGED = "damaged"


class DamagedDeadLetterError(ValueError):
    """A dead-letter file that cannot be read as one; the message says what is wrong with it."""


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
            folder = path.parent.parent if path.parent.name == _REPLAY else path.parent
            out.append(DeadLetter(
                sink=str(header.get("sink", folder.name)), pack_id=path.stem, path=path,
                reason=str(header.get("reason", "")), destination=str(header.get("destination", "")),
                records=_int(header.get("records")), time_ns=_int(header.get("time_ns")),
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
        """The group a file holds, ready to send again.

        OSError when it cannot be read; :class:`DamagedDeadLetterError` when
        what it holds is not a dead letter (every field is checked here, so
        nothing downstream meets a value of the wrong type).
        """
        data = path.read_bytes()
        try:
            lines = decode_ndjson(data)
            if not lines or not isinstance(lines[0], dict) or not isinstance(lines[0].get("dead_letter"), dict):
                raise DamagedDeadLetterError('its first line is not {"dead_letter": {...}}')
            header: dict[str, Any] = lines[0]["dead_letter"]
            records = [_record(number, obj) for number, obj in enumerate(lines[1:], 2)]
            tags = header.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, list) and len(t) == 2 for t in tags):
                raise DamagedDeadLetterError("its tags are not a list of [key, value] pairs")
            return Group(
                destination=str(header.get("destination", "")), source=str(header.get("source", "")),
                client_ip=str(header.get("client_ip", "")), records=records,
                tags=[(str(k), str(v)) for k, v in tags], pack_id=path.stem,
            )
        except DamagedDeadLetterError:
            raise
        except Exception as e:  # not NDJSON, or a shape no writer of ours makes
            raise DamagedDeadLetterError(f"{type(e).__name__}: {e}") from None

    def set_aside(self, path: Path, why: str) -> Path:
        """Move a damaged file out of the way (``<sink>/damaged/``), with a note of why; returns where."""
        sink_folder = path.parent.parent if path.parent.name == _REPLAY else path.parent
        folder = sink_folder / _DAMAGED
        folder.mkdir(mode=0o750, exist_ok=True)
        target = folder / path.name
        path.replace(target)
        target.with_name(target.name + ".reason").write_text(why + "\n")
        return target

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


def _record(number: int, obj: object) -> Record:
    """Line ``number``'s record (``Record.to_dict``'s shape), every value checked."""
    if not isinstance(obj, dict):
        raise DamagedDeadLetterError(f"line {number} is not a JSON object")
    fields = obj.get("fields") or {}
    tags = obj.get("tags") or {}
    flags = obj.get("flags") or []
    time, time_ns = obj.get("time", 0), obj.get("time_ns", 0)
    if type(time) is not int or type(time_ns) is not int or not 0 <= time_ns < 1_000_000_000:
        raise DamagedDeadLetterError(f"line {number}: time and time_ns must be whole numbers")
    if not isinstance(fields, dict) or not isinstance(tags, dict) or not isinstance(flags, list):
        raise DamagedDeadLetterError(f"line {number}: fields and tags must be objects, flags a list")
    error = obj.get("error")
    return Record(
        time, time_ns, tuple(str(k) for k in fields), [str(v) for v in fields.values()],
        str(obj.get("source", "")), {str(k): str(v) for k, v in tags.items()},
        tuple(str(f) for f in flags), None if error is None else str(error),
    )


def _int(value: object) -> int:
    """A header's number, 0 when it is not one (listing never fails over a damaged header)."""
    return value if type(value) is int else 0
