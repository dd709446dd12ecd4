"""The configuration a daemon runs, written down for the processes it starts.

The delivery process must deliver what the daemon spools, with the sinks,
routes and parsing the daemon is running: not with whatever the
configuration file says now. The two differ after the file was edited and
not reloaded, and after a reload that changed settings a running daemon
keeps until restart (the spool, the state directory) together with ones it
applies (sinks): a delivery process that read the file would then read a
spool nobody writes. So the daemon writes the :class:`~receiver.config.model.Config`
it runs to ``running-config.json`` in its state directory (before it starts
delivery, and at every reload) and delivery reads that.

The format is JSON, the dataclasses' fields by name: readable by an
operator (``jq . running-config.json``), and, unlike a pickle, nothing in it
can run code in the process that reads it. :func:`config_from_json` checks
every value against the field's type, so a damaged or edited file fails with
:class:`SnapshotError` naming the field, never halfway.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from receiver.config.model import Config, SinkConfig

__all__ = ["SNAPSHOT_NAME", "SnapshotError", "config_from_json", "config_to_json", "read_snapshot", "write_snapshot"]

SNAPSHOT_NAME = "running-config.json"
_FORMAT = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be read back into a configuration; the message names the field."""


def config_to_json(config: Config) -> str:
    """``config`` as JSON text (Paths as strings, tuples as lists)."""
    return json.dumps({"format": _FORMAT, "config": _plain(config)}, indent=1, ensure_ascii=False)


def config_from_json(text: str) -> Config:
    """The configuration :func:`config_to_json` wrote; :class:`SnapshotError` for anything else."""
    try:
        document = json.loads(text)
    except ValueError as e:
        raise SnapshotError(f"not JSON: {e}") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise SnapshotError(f"not a configuration snapshot of format {_FORMAT}")
    value = _typed(Config, document.get("config"), "config")
    assert isinstance(value, Config)
    return value


def write_snapshot(config: Config, directory: Path) -> Path:
    """Write ``config`` to ``directory/running-config.json`` (atomically, mode 0640); returns the path."""
    path = directory / SNAPSHOT_NAME
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(config_to_json(config))
        f.flush()
        os.fsync(f.fileno())
    temporary.replace(path)
    return path


def read_snapshot(path: Path) -> Config:
    """The configuration in ``path``; OSError when it cannot be read, SnapshotError when it is not one."""
    return config_from_json(path.read_text(encoding="utf-8"))


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a configuration holds no {type(value).__name__}")


def _typed(kind: Any, value: object, where: str) -> object:
    """``value`` (from JSON) as the type ``kind`` of a dataclass field; SnapshotError saying where not."""
    origin = typing.get_origin(kind)
    if kind is SinkConfig or origin in (typing.Union, types.UnionType):
        return _union(kind, value, where)
    if origin is typing.Literal:
        if value not in typing.get_args(kind):
            raise SnapshotError(f"{where}: {value!r} is not one of {typing.get_args(kind)}")
        return value
    if origin is tuple:
        (item, _) = typing.get_args(kind)
        if not isinstance(value, list):
            raise SnapshotError(f"{where}: a list was expected")
        return tuple(_typed(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise SnapshotError(f"{where}: an object was expected")
        hints = typing.get_type_hints(kind)
        fields = {f.name for f in dataclasses.fields(kind)}
        unknown = set(value) - fields
        if unknown:
            raise SnapshotError(f"{where}: unknown fields {sorted(unknown)}")
        arguments = {name: _typed(hints[name], v, f"{where}.{name}") for name, v in value.items()}
        try:
            return kind(**arguments)
        except (TypeError, ValueError) as e:
            raise SnapshotError(f"{where}: {e}") from None
    if kind is Path:
        if not isinstance(value, str):
            raise SnapshotError(f"{where}: a path was expected")
        return Path(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SnapshotError(f"{where}: a number was expected")
        return float(value)
    if kind in (int, str, bool):
        if type(value) is not kind:
            raise SnapshotError(f"{where}: {kind.__name__} was expected, not {type(value).__name__}")
        return value
    if kind is type(None):
        if value is not None:
            raise SnapshotError(f"{where}: null was expected")
        return None
    raise SnapshotError(f"{where}: values of type {kind!r} cannot be read")


def _union(kind: Any, value: object, where: str) -> object:
    options = typing.get_args(kind)
    if value is None and type(None) in options:
        return None
    choices = [o for o in options if o is not type(None)]
    if all(dataclasses.is_dataclass(o) for o in choices) and isinstance(value, dict):
        # A tagged union (the sinks): the "type" field names the member.
        for option in choices:
            tag = {f.name: f.default for f in dataclasses.fields(option)}.get("type")
            if len(choices) == 1 or tag == value.get("type"):
                return _typed(option, value, where)
        raise SnapshotError(f"{where}: unknown type {value.get('type')!r}")
    for option in choices:
        try:
            return _typed(option, value, where)
        except SnapshotError:
            continue
    raise SnapshotError(f"{where}: {value!r} fits none of {choices}")
