"""Reading a secret (a key, a password, credentials) from a file only its owner may read.

Every sink that authenticates keeps its secret in a file of mode 0600 (or
0400), and all of them read it the same way: opened first, then checked on
the opened file (so a swap between check and read cannot slip through),
refused if it is not a regular file (a FIFO must not hang a sink: opened
non-blocking) or if group or others have any access to it, and bounded in
size. Errors name the file and the fix, never a byte of its content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["read_private_file", "redact_url"]


def read_private_file(path: Path, *, what: str, max_bytes: int, error: type[Exception]) -> bytes:
    """The bytes of ``path``; ``error(message)`` if it is missing, unreadable, shared or too large.

    ``what`` names the file in messages ("SLS credentials file").
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as e:
        raise error(
            f"{what} {path}: cannot open it ({e.strerror}); it must be readable by the user the receiver runs as"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise error(
                f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}), "
                f"so others may read the secret; run: chmod 600 {path}"
            )
        if info.st_size > max_bytes:
            raise error(f"{what} {path} is larger than {max_bytes} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{what} {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes} bytes")
    return data


def redact_url(url: str) -> str:
    """``url`` fit for logs and errors: no user information, the query (which may hold a password) elided."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is not a number: show no more than the scheme
        return f"{url.partition(':')[0]}://..." if "://" in url else "..."
    if ":" in host:
        host = f"[{host}]"
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"
