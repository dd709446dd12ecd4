"""HTTP over a Unix socket: the control API's and the store's, served by the receiver and asked by receiverctl."""

from __future__ import annotations

import http.client
import socket
import stat
from pathlib import Path

__all__ = ["SocketPathTakenError", "UnixHTTPConnection", "remove_stale_socket"]


class SocketPathTakenError(Exception):
    """Something that is not ours to remove is where a socket is to listen."""

    def __init__(self, path: Path, *, answering: bool) -> None:
        self.path = path
        self.answering = answering
        """True: a process answers on the socket; False: the path is not a socket at all."""
        super().__init__(f"{path}: {'another process answers there' if answering else 'not a socket'}")


def remove_stale_socket(path: Path) -> None:
    """Remove the socket a process that did not stop cleanly left at ``path``, before listening there.

    Nothing else is removed: raises :class:`SocketPathTakenError` when the
    path is some other file, or a socket that a live process answers on.
    """
    try:
        found = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise SocketPathTakenError(path, answering=False)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
    else:
        raise SocketPathTakenError(path, answering=True)
    finally:
        probe.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """An :class:`http.client.HTTPConnection` to the server listening on the socket ``path``."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # the Host header; the socket is the address
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
