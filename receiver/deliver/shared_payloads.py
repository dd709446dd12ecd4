"""Payloads from build workers to the delivery process through shared memory, not the pool's pipe.

A worker's built batch crosses to the delivery process pickled through the
process pool's pipe. The local store's payloads are about 320 bytes a line,
and moving them so cost 0.3 us a line to send and 0.4-0.45 to receive:
copies through the pipe's 64 KiB buffer, and a pickle in each process.
Written into a file in /dev/shm (memory) and read back from it, the same
payloads cost 0.11 and 0.13 (a flood batch of 42,000 lines, one-off script,
2026-12-07). End to end into the local store (delivery_bench -n 2000000
--sinks local, alternating with the pipe): 226-241k against 207-225k lines
a second, the delivery side's peak 480-505 MB against 506-552; SLS 289-297k
against 279-285k.

A file lives from the worker's write to the delivery process's read, which
removes it as it opens it, when the result is unpickled (whatever then
becomes of the batch). One left by a process that died in between is
removed by the next delivery process to start (:func:`remove_stale`); under
systemd, ``RemoveIPC`` removes the service user's when the service stops.
Where /dev/shm is missing, full or not writable, the payloads go through the
pipe as before.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from receiver.runtime.process import process_running

__all__ = ["DIRECTORY", "MIN_BYTES", "read_payloads", "remove_stale", "write_payloads"]

log = logging.getLogger("receiver.deliver")

DIRECTORY = Path("/dev/shm")
"""Where the files go: POSIX shared memory, a tmpfs (memory, never a disk)."""
MIN_BYTES = 1 << 20
"""Batches whose payloads are smaller cross through the pipe: a file costs a few system calls."""
_PREFIX = "receiver-payloads-"
_said_cannot_write = False
"""A worker says once that it cannot write a file there (it tries again each batch, silently)."""


def write_payloads(payloads: Sequence[bytes], owner: int) -> str | None:
    """``payloads`` one after the other in a new file of :data:`DIRECTORY`, named for the delivery
    process ``owner`` that will read it; its name, or None when it cannot be written (the caller sends
    them through the pipe)."""
    name = f"{_PREFIX}{owner}-{os.getpid()}-{secrets.token_hex(8)}"
    path = DIRECTORY / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:  # no /dev/shm, or not writable
        _cannot_write(e)
        return None
    try:
        for payload in payloads:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
    except OSError as e:  # full (a container's /dev/shm is often 64 MiB): this batch goes through the pipe
        _cannot_write(e)
        path.unlink(missing_ok=True)
        return None
    finally:
        os.close(fd)
    return name


def _cannot_write(error: OSError) -> None:
    global _said_cannot_write
    if not _said_cannot_write:
        _said_cannot_write = True
        log.warning("build worker: payloads go through the pipe, slower: cannot write in %s (%s)", DIRECTORY, error)


def read_payloads(name: str, sizes: Sequence[int]) -> list[bytes]:
    """The payloads :func:`write_payloads` wrote as ``name``, of ``sizes``; the file is removed. OSError
    when it cannot be read: the pool then breaks as when a worker dies, the delivery process ends, and
    the one the daemon starts next builds the batch again from the spool."""
    if not name.startswith(_PREFIX) or "/" in name:  # only ever a name write_payloads made
        raise OSError(f"not a payload file's name: {name!r}")
    path = DIRECTORY / name
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        path.unlink()  # gone whatever follows: its memory goes back once this process is done with it
        payloads = []
        for size in sizes:
            payload = os.read(fd, size)
            if len(payload) < size:  # a regular file reads whole unless it is shorter
                raise OSError(f"{path}: {len(payload)} bytes of a payload of {size}")
            payloads.append(payload)
        return payloads
    finally:
        os.close(fd)


def remove_stale() -> int:
    """Remove the files of delivery processes no longer running (a crash between a write and its read);
    returns how many."""
    directory = DIRECTORY
    removed = 0
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.name.startswith(_PREFIX)]
    except OSError:
        return 0
    for name in names:
        owner = name[len(_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not process_running(int(owner)):
            try:
                (directory / name).unlink()
                removed += 1
            except OSError:
                continue  # another user's, or removed meanwhile
    if removed:
        log.info("delivery: removed %d payload file(s) left in %s by a delivery process that ended", removed, directory)
    return removed
